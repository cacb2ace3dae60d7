"""What one benchmark run does: a fresh bus (own topics, groups, stores), ours or the baseline."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import func, select, text

from consumers.seed import seed
from consumers.services import SERVICES
from consumers.store import outbox
from consumers.tracker import TrackerStore, confirmations
from producers.submission import Registrar
from tellusonce.codec import Codec
from tellusonce.database import connect
from tellusonce.events import LifeEvent
from tellusonce.kafka import Admin, Publisher
from tellusonce.settings import Settings
from tellusonce.stack import Children, start_processes, stop_processes, wait_ready
from tellusonce.topics import TRACKER, Topics, subscribers
from tests.bench.transport import Sink
from tests.faults.stream import CROWD_SIZE, events
from tests.integration.conftest import wait_for
from tests.messages import encoded

CODEC = Codec()
_STORED_SINCE = text("SELECT count(*), max(rowid) FROM confirmations WHERE rowid > :seen")
TIMEOUT = 900.0  # seconds a run may take before it is given up
STALLED = 60.0  # seconds a run may go without a new confirmation before it is given up
CHUNK = 500
PUBLISHERS = 16  # a latency run's ticks being published at once, at most


@dataclass
class Bus:
    """One run's own topics, groups and stores."""

    settings: Settings
    children: Children = field(default_factory=dict)
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    tracker: TrackerStore = field(init=False)
    _stored: int = 0  # confirmations counted so far, up to the row numbered _last_rowid
    _last_rowid: int = 0

    def __post_init__(self) -> None:
        self.tracker = TrackerStore(self.settings.store_url_for(TRACKER))  # read while measuring

    @classmethod
    def fresh(cls, root: Path) -> Bus:
        run = uuid.uuid4().hex[:8]
        settings = Settings(topic_prefix=f"bench{run}.", data_dir=root / run, log_level="info")
        Admin(settings).ensure_topics(Topics(settings.topic_prefix).all(), {})
        settings.data_dir.mkdir(parents=True)
        seed(settings, others=CROWD_SIZE)
        return cls(settings)

    def start_ours(self, base_port: int = 9501) -> None:
        self.children = start_processes(self.settings, base_port)
        wait_ready(self.children)

    def start_baseline(self) -> None:
        """Start the four bare workers; return once they and the sink have their partitions
        (as ours are started and ready before the clock starts)."""
        env = os.environ | self.settings.as_environment()
        services = ("pensions", "disability", "council_tax", "housing_benefit")
        self.workers = [
            subprocess.Popen([sys.executable, "-m", "tests.bench.transport", name], env=env)
            for name in services
        ]
        topics, admin = Topics(self.settings.topic_prefix), Admin(self.settings)
        groups = [topics.group(f"baseline-{name}") for name in (*services, "sink")]
        wait_for(
            lambda: all(admin.group_assigned(g) for g in groups), "baseline workers joined", 60
        )

    def stop(self) -> None:
        stop_processes(self.children) if self.children else None
        for worker in self.workers:
            worker.terminate()
            worker.wait(60)
        Admin(self.settings).delete_topics(Topics(self.settings.topic_prefix).all())

    def discard(self) -> None:
        """Remove this run's stores and logs (after stop())."""
        self.tracker.engine.dispose()
        shutil.rmtree(self.settings.data_dir)

    def confirmed(self) -> int:
        """Confirmations the tracker has stored, counting only the rows stored since the last
        call: the harness asks every 50 ms, and a COUNT(*) of the whole table (90,000 rows by the
        end of a run) took 2.7 ms of the CPU the services share. The tracker only inserts (a
        replacing answer is an UPDATE) and SQLite gives each new row a rowid above every other."""
        with self.tracker.engine.connect() as conn:
            count, last = conn.execute(_STORED_SINCE, {"seen": self._last_rowid}).one()
        self._stored += count
        self._last_rowid = last if last is not None else self._last_rowid
        return self._stored

    def latencies_ms(self) -> list[tuple[int, int]]:
        """(publication time, publication-to-confirmation milliseconds) of every confirmation
        the tracker stored."""
        from consumers.tracker import events as tracked

        with self.tracker.engine.connect() as conn:
            rows = conn.execute(
                select(
                    tracked.c.published_ms, confirmations.c.received_ms - tracked.c.published_ms
                ).join(tracked, tracked.c.event_id == confirmations.c.event_id)
            )
            return [(int(at), int(ms)) for at, ms in rows]


def workload(count: int, settings: Settings, seed_: int = 11) -> list[LifeEvent[Any]]:
    """A realistic mix of the four kinds of event about the seeded crowd."""
    return events(count, settings, seed=seed_, district=f"Bench{seed_}")


def expected(stream: list[LifeEvent[Any]]) -> int:
    """Confirmations a stream should produce: one per entitled service per distinct event."""
    distinct = {e.envelope.event_id: e for e in stream}
    return sum(len(subscribers(e.envelope.event_type)) for e in distinct.values())


class Stalled(Exception):
    """A run stopped making progress, or ran out of time."""


def counted(count: Callable[[], int], want: int, what: str) -> None:
    """Poll `count` every 50 ms until it reaches `want`. A run that gets no further for STALLED
    seconds (a stuck consumer, confirmations left unpublished) is given up then, saying how far
    it got, rather than after TIMEOUT: a run takes 1 to 30 s."""
    started = moved = time.monotonic()
    last = -1
    while (done := count()) < want:
        now = time.monotonic()
        if done != last:
            last, moved = done, now
        elif now - moved > STALLED:
            raise Stalled(f"{what}: {done:,} of {want:,}, none new for {STALLED:.0f} s")
        if now - started > TIMEOUT:
            raise Stalled(f"{what}: {done:,} of {want:,} after {TIMEOUT:.0f} s")
        time.sleep(0.05)


def ours_throughput(bus: Bus, stream: list[LifeEvent[Any]]) -> float:
    """Events/s from the first submission to the last confirmation stored by the tracker."""
    bus.start_ours()
    registrar = Registrar(bus.settings, Publisher(bus.settings, "bench"), CODEC)
    want = expected(stream)
    started = time.monotonic()
    for i in range(0, len(stream), CHUNK):
        registrar.publish_many(stream[i : i + CHUNK])
    counted(bus.confirmed, want, "our confirmations")
    return len(stream) / (time.monotonic() - started)


def baseline_throughput(bus: Bus, stream: list[LifeEvent[Any]]) -> float:
    """Events/s of the same bytes through the bare transport."""
    sink = Sink(bus.settings)
    bus.start_baseline()
    messages = encoded(stream, Topics(bus.settings.topic_prefix))
    publisher = Publisher(bus.settings, "bench")
    want = expected(stream)
    started = time.monotonic()
    for i in range(0, len(messages), CHUNK):
        publisher.publish(messages[i : i + CHUNK])
    counted(lambda: sink.count, want, "baseline confirmations")
    elapsed = time.monotonic() - started
    sink.close()
    return len(stream) / elapsed


class Latencies(NamedTuple):
    """A latency run's publication-to-confirmation milliseconds: of the events published once
    the load had been offered for the warm-up seconds (the measure), and of those published
    before (the step from idle to the rate, kept apart); and the rate events were in fact
    offered at (below the rate asked only if every publisher thread was still publishing an
    earlier tick when one was due)."""

    ms: list[int]
    warm_up_ms: list[int]
    offered_per_second: float

    def __str__(self) -> str:
        return (
            f"{len(self.ms)} at {self.offered_per_second:.0f} events/s offered "
            f"(and {len(self.warm_up_ms)} in the warm-up)"
        )

    @classmethod
    def split(cls, timed: list[tuple[int, int]], paced_: Paced, warm_up: float) -> Latencies:
        """Latencies by publication time: before or after `warm_up` seconds of the run."""
        boundary = paced_.started_ms + warm_up * 1000
        return cls(
            [ms for at, ms in timed if at >= boundary],
            [ms for at, ms in timed if at < boundary],
            paced_.offered_per_second,
        )


class Paced(NamedTuple):
    offered_per_second: float
    started_ms: float  # wall clock (as Kafka's timestamps) when the first tick was due


def paced(
    publish: Callable[[list[Any]], object],
    items: list[Any],
    rate: int,
    publishers: int = PUBLISHERS,
) -> Paced:
    """Offer items at `rate` per second in 10 ms ticks, open loop: each tick's items are handed
    to one of `publishers` threads when due, whether or not earlier ticks have been acknowledged
    (as registrars submit concurrently), so a bus slower than the rate asked is measured under
    that rate, not at the pace it accepts. A tick waits only if every thread is still publishing;
    return the rate the ticks in fact started at. A publish that fails fails the run."""
    per_tick = max(1, rate // 100)
    free = threading.BoundedSemaphore(publishers)

    def publish_tick(chunk: list[Any]) -> None:
        try:
            publish(chunk)
        finally:
            free.release()

    with ThreadPoolExecutor(publishers, thread_name_prefix="paced") as pool:
        started, started_ms = time.monotonic(), time.time() * 1000
        ticks = []
        for tick, i in enumerate(range(0, len(items), per_tick)):
            ahead = started + tick / 100 - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
            free.acquire()
            ticks.append(pool.submit(publish_tick, items[i : i + per_tick]))
        last_started = time.monotonic()
        for done in ticks:
            done.result()
    return Paced(len(items) / (last_started - started + 1 / 100), started_ms)


def ours_latency(bus: Bus, stream: list[LifeEvent[Any]], rate: int, warm_up: float) -> Latencies:
    bus.start_ours()
    registrar = Registrar(bus.settings, Publisher(bus.settings, "bench"), CODEC)
    want = expected(stream)  # worked out once: 50 ms for 20,000 events, and polled every 50 ms
    offered = paced(registrar.publish_many, stream, rate)
    counted(bus.confirmed, want, "our confirmations")
    return Latencies.split(bus.latencies_ms(), offered, warm_up)


def baseline_latency(
    bus: Bus, stream: list[LifeEvent[Any]], rate: int, warm_up: float
) -> Latencies:
    sink = Sink(bus.settings)
    bus.start_baseline()
    publisher = Publisher(bus.settings, "bench")
    want = expected(stream)
    offered = paced(publisher.publish, encoded(stream, Topics(bus.settings.topic_prefix)), rate)
    counted(lambda: sink.count, want, "baseline confirmations")
    sink.close()
    return Latencies.split(sink.latencies_ms, offered, warm_up)


def with_duplicates(stream: list[LifeEvent[Any]], share: float) -> list[LifeEvent[Any]]:
    """The same stream with `share` of its events delivered a second time, each repeat at a
    random later point (a redelivery follows the first delivery); the stream's order is kept."""
    rng = random.Random(3)  # noqa: S311 (benchmark data)
    repeats: dict[int, list[LifeEvent[Any]]] = {}
    for i in rng.sample(range(len(stream)), int(len(stream) * share)):
        repeats.setdefault(rng.randrange(i, len(stream)), []).append(stream[i])
    return [e for i, event in enumerate(stream) for e in (event, *repeats.get(i, ()))]


def ours_applied_once(bus: Bus, stream: list[LifeEvent[Any]]) -> float:
    """ours_throughput of a stream with repeats, then the proof that each event was applied once:
    every service stored exactly one confirmation per distinct event it is entitled to."""
    rate = ours_throughput(bus, stream)
    distinct = {e.envelope.event_id: e for e in stream}.values()
    for name in SERVICES:
        want = sum(name in subscribers(e.envelope.event_type) for e in distinct)
        engine = connect(bus.settings.store_url_for(name))
        with engine.connect() as conn:
            per_event = conn.execute(
                select(outbox.c.event_id, func.count()).group_by(outbox.c.event_id)
            ).all()
        engine.dispose()
        twice = sum(n > 1 for _, n in per_event)
        if len(per_event) != want or twice:
            raise AssertionError(
                f"{name}: {len(per_event)} events confirmed (want {want}), {twice} more than once"
            )
    return rate


def catch_up(bus: Bus, stream: list[LifeEvent[Any]]) -> float:
    """Seconds from starting stopped services to every confirmation of a waiting backlog."""
    registrar = Registrar(bus.settings, Publisher(bus.settings, "bench"), CODEC)
    for i in range(0, len(stream), CHUNK):
        registrar.publish_many(stream[i : i + CHUNK])
    want = expected(stream)
    started = time.monotonic()
    bus.start_ours()
    counted(bus.confirmed, want, "catch-up confirmations")
    return time.monotonic() - started
