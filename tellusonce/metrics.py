"""Every Prometheus metric of tellusonce, and the /metrics, /healthz, /readyz endpoint.

Labels are service, topic, partition, event_type, outcome, status, error, and the API's method
and route: never ids or personal data, and never a value without bound.
"""

from __future__ import annotations

import math
import socket
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from itertools import accumulate
from typing import cast
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    make_wsgi_app,
)
from prometheus_client import metrics as prometheus_metrics
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from tellusonce import __version__

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)
# a message takes 40 us to a few ms to handle: in the latency buckets all of it fell below the
# first (10 ms), and the p99 read 0.0099 s whatever the store did; up to 10 s, or a p99 above
# the last bucket reads as that bucket (a store waiting on a lock read "1 s")
PROCESSING_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.25, 1, 2.5, 10,
)  # fmt: skip
BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


_as_go_writes = cast(Callable[[float], str], floatToGoString)


def _created_series() -> bool:
    """Whether histograms have a `_created` series, as prometheus_client's own do: not once
    PROMETHEUS_DISABLE_CREATED_SERIES or its disable_created_metrics() turned them off."""
    return bool(getattr(prometheus_metrics, "_use_created", True))


class Tally:
    """One service's series of a BatchedHistogram: counts per bucket, and their sum."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self._counts = [0] * len(bounds)
        self._sum = 0.0
        self._lock = threading.Lock()  # the metrics thread reads while the consumer adds
        self.created = time.time()

    def add(self, values: Iterable[float]) -> None:
        """Observe each of these values (a batch's), under one lock."""
        bounds, counts = self._bounds, self._counts
        with self._lock:
            total = self._sum
            for value in values:
                counts[bisect_left(bounds, value)] += 1  # the first bucket it is <= to
                total += value
            self._sum = total

    def read(self) -> tuple[list[int], float]:
        """The counts per bucket (not cumulative) and the sum, as of one moment."""
        with self._lock:
            return list(self._counts), self._sum


class BatchedHistogram:
    """A histogram labelled by service that consumers add to a batch at a time (each message's
    handling time, each confirmation's latency), exposed as prometheus_client's Histogram
    exposes one (buckets, count, sum, created) by a collector of the registry. Histogram.observe
    walks the buckets in Python and takes two locks for each value: 1.9% of the consumers'
    instructions per event; here a value costs a bisect, and a batch one lock."""

    def __init__(
        self,
        name: str,
        documentation: str,
        buckets: Iterable[float],
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.bounds = (*(float(b) for b in buckets), math.inf)
        self._les = [_as_go_writes(b) for b in self.bounds]  # "le" as prometheus_client writes
        self._children: dict[str, Tally] = {}
        self._lock = threading.Lock()
        registry.register(self)

    def labels(self, service: str) -> Tally:
        """The series of a service, made on first use (from 0, so rate() sees its first)."""
        with self._lock:
            child = self._children.get(service)
            if child is None:
                child = self._children[service] = Tally(self.bounds)
            return child

    def describe(self) -> list[Metric]:
        return [HistogramMetricFamily(self.name, self.documentation, labels=["service"])]

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=["service"])
        with self._lock:
            children = list(self._children.items())
        for service, child in children:
            counts, total = child.read()
            buckets = list(zip(self._les, accumulate(counts), strict=True))
            family.add_metric([service], buckets, total)
            if _created_series():
                family.samples.append(
                    Sample(f"{self.name}_created", {"service": service}, child.created)
                )
        yield family


BUILD = Info("tellusonce_build", "Version of the running tellusonce code")
BUILD.info({"version": __version__})

EVENTS_PUBLISHED = Counter(
    "tellusonce_events_published_total",
    "Life events submitted for publishing, by whether Kafka acknowledged them",
    ["event_type", "status"],
)
EVENTS_CONSUMED = Counter(
    "tellusonce_events_consumed_total",
    "Life events handled by a service, by outcome (applied, no_record, not_applicable, "
    "rejected, duplicate, retried, dead_lettered; the tracker's: recorded)",
    ["service", "event_type", "outcome"],
)
PROCESSING_SECONDS = BatchedHistogram(
    "tellusonce_processing_seconds",
    "Time a consumer spent handling one decoded message in its batch's unit of work (the "
    "unit's commit is the batch's: tellusonce_batch_seconds)",
    buckets=PROCESSING_BUCKETS,
)
BATCH_SECONDS = Histogram(
    "tellusonce_batch_seconds",
    "Time a consumer spent on one poll batch, from decoding it to its store commit",
    ["service"],
    buckets=BATCH_BUCKETS,
)
CONFIRMATION_SECONDS = BatchedHistogram(
    "tellusonce_submission_to_confirmation_seconds",
    "Time from an event's publication to a service's confirmation of it, as Kafka timed each "
    "(the confirmation's time is when the service published it, not when the tracker read it: "
    "the tracker's own lag is tellusonce_consumer_lag_messages) (the SLO)",
    buckets=LATENCY_BUCKETS,
)
OUTBOX_PENDING = Gauge(
    "tellusonce_outbox_pending", "Confirmations stored but not yet published", ["service"]
)
CONSUMER_LAG = Gauge(
    "tellusonce_consumer_lag_messages",
    "Messages not yet consumed, per partition",
    ["service", "topic", "partition"],
)
# the tracker's alone: registered by tracking(), in a tracker (every process exported them at 0,
# so that a dead tracker's absence was hidden, and every query had to take the max)
AWAITING = Gauge(
    "tellusonce_events_awaiting_confirmation",
    "Events for which some subscribed service has not confirmed yet",
    registry=None,
)
OLDEST_AWAITING = Gauge(
    "tellusonce_oldest_awaiting_confirmation_age_seconds",
    "Age of the oldest event still waiting for a confirmation (0 when none waits)",
    registry=None,
)
_TRACKING = threading.Lock()
_tracked: list[Gauge] = []


def tracking() -> None:
    """Export the tracker's gauges from this process (once)."""
    with _TRACKING:
        if not _tracked:
            _tracked.extend((AWAITING, OLDEST_AWAITING))
            for gauge in _tracked:
                REGISTRY.register(gauge)


HTTP_REQUESTS = Counter(
    "tellusonce_http_requests_total",
    "Requests to the registrar API by method, route template and status code",
    ["method", "route", "status"],
)
LOOP_TURNED = Gauge(
    "tellusonce_consumer_loop_turned_timestamp_seconds",
    "When a consumer's loop last polled Kafka (every few seconds while it works: its metrics are "
    "served by another thread, which answers while the loop is stuck)",
    ["service"],
)
BROKERS_REACHABLE = Gauge(
    "tellusonce_kafka_brokers_reachable",
    "1 while a consumer has a connection up to a Kafka broker (librdkafka's statistics, every "
    "5 s), 0 while none answers: its loop goes on turning, its lag figures frozen",
    ["service"],
)
DEAD_LETTERS = Counter(
    "tellusonce_dead_letters_total",
    "Messages a service sent to its dead-letter topic, by error class",
    ["service", "topic", "error"],
)


class _QuietHandler(WSGIRequestHandler):
    timeout = 10  # seconds a connection may send nothing (each has a thread of its own)

    def log_message(self, format: str, *args: object) -> None:
        """Scrapes are not worth a log line each."""


def serve(
    port: int,
    ready: Callable[[], bool],
    host: str = "127.0.0.1",
    alive: Callable[[], bool] = lambda: True,
) -> WSGIServer:
    """Serve /metrics, /healthz (alive() is true: this server's thread answering is not enough
    for a process whose work is another thread's) and /readyz (ready() is true) on host:port."""
    metrics_app = make_wsgi_app()

    def app(environ: dict[str, object], start_response: Callable[..., object]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO")
        if path == "/healthz":
            ok = alive()
            start_response(
                "200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain")]
            )
            return [b"ok\n" if ok else b"stuck\n"]
        if path == "/readyz":
            ok = ready()
            start_response(
                "200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain")]
            )
            return [b"ready\n" if ok else b"not ready\n"]
        return metrics_app(environ, start_response)  # type: ignore[no-any-return]

    # a thread per connection: one that sent nothing held the only one, and /healthz, /readyz
    # and scrapes went unanswered until it closed (a probe failing, the process restarted)
    server = make_server(host, port, app, server_class=_server_for(host, port),
                         handler_class=_QuietHandler)  # fmt: skip
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server


def _server_for(host: str, port: int) -> type[ThreadingWSGIServer]:
    """The server class for the address family of `host` (an IPv6 address such as ::1 could
    not be bound by the IPv4 server: the process ended as it started)."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family = found[0][0]
    except socket.gaierror:
        return ThreadingWSGIServer  # its own bind says what is wrong with the host

    class Server(ThreadingWSGIServer):
        address_family = family

    return Server


def stop_serving(server: WSGIServer) -> None:
    """Stop a server made by serve() and release its port."""
    server.shutdown()
    server.server_close()
