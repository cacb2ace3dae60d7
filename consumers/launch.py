"""Builds a service's or the tracker's runtime from settings and runs it until SIGTERM or Ctrl-C."""

from __future__ import annotations

import gc
from datetime import timedelta
from typing import Any

from consumers.applier import ServiceHandler
from consumers.runtime import BATCH, Handler, Runtime
from consumers.services import SERVICES
from consumers.store import ServiceStore
from consumers.tracker import TrackerHandler, TrackerStore
from tellusonce import shutdown
from tellusonce.codec import Codec
from tellusonce.kafka import Publisher, Subscriber
from tellusonce.metrics import serve, stop_serving
from tellusonce.settings import Settings
from tellusonce.topics import TRACKER, Topics

NAMES = (*SERVICES, TRACKER)
# The tracker reads every event and each service's confirmation of it, about four messages an
# event, alone: with batches of a service's size it fell behind the services and finished a
# backlog alone, on one core (tests/bench/README.md).
TRACKER_BATCH = 4 * BATCH


def build(name: str, settings: Settings, codec: Codec | None = None) -> Runtime[Any]:
    """The runtime of one service (pensions, ...) or of the tracker."""
    codec = codec or Codec(settings.schema_dirs)
    topics = Topics(settings.topic_prefix)
    return Runtime(
        build_handler(name, settings, codec),
        Subscriber(settings, topics.group(name), name),
        Publisher(settings, name),
        topics,
        TRACKER_BATCH if name == TRACKER else BATCH,
    )


def build_handler(name: str, settings: Settings, codec: Codec) -> Handler[Any]:
    """The handler of one service or of the tracker, with its store (no Kafka clients)."""
    topics = Topics(settings.topic_prefix)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if name == TRACKER:
        return TrackerHandler(TrackerStore(settings.store_url_for(TRACKER)), topics, codec)
    service = SERVICES[name]
    keep = timedelta(days=settings.unmatched_deaths_days)
    store = ServiceStore(settings.store_url_for(name), service.record_type, keep)
    return ServiceHandler(service, store, codec, topics)


def run_until_signalled(
    runtime: Runtime[Any], metrics_port: int | None, host: str = "127.0.0.1"
) -> None:
    """Run until SIGTERM or SIGINT (shutdown.install()ed by main), then drain, commit, close."""
    server = (
        serve(metrics_port, runtime.ready, host, alive=runtime.alive)
        if metrics_port is not None
        else None
    )
    if server is not None:
        runtime.log.info("metrics_served", url=f"http://{host}:{server.server_port}/metrics")
    tune_garbage_collector()
    try:
        runtime.run(shutdown.requested)
    finally:
        if server is not None:
            stop_serving(server)


def tune_garbage_collector() -> None:
    """What start-up made lives as long as the process: freeze it out of the cyclic collector's
    scans. A consumer makes many short-lived objects per message, almost none in cycles: look
    for cycles every 50,000 allocations rather than every 700 (CPython's default)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 10, 10)
