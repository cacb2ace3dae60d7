"""The benchmark's own bookkeeping: what it counts must be what the stores hold."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import func, select

from consumers.tracker import TrackerHandler, confirmations
from tellusonce.codec import Codec, Tracked
from tellusonce.errors import BrokerUnavailable
from tellusonce.events import EventType, Outcome
from tellusonce.settings import Settings
from tellusonce.topics import Topics, subscribers
from tests.bench import harness, run
from tests.bench.harness import Bus, Latencies, Paced, paced, with_duplicates
from tests.factories import deaths
from tests.messages import answer, at


def test_confirmed_counts_what_the_tracker_stored_batch_after_batch(tmp_path: Path) -> None:
    """Counting only the rows stored since the last call adds up to a count of the table,
    however the rows arrive: several per batch, none, or an answer replacing a REJECTED one."""
    bus = Bus(Settings(data_dir=tmp_path))
    tracker = TrackerHandler(bus.tracker, Topics(), Codec())
    dead = deaths(2)
    first, *others = subscribers(EventType.DEATH)

    def stored(*messages: Tracked) -> int:
        with tracker.batch(messages):
            for m in messages:
                tracker.handle(m, at(1))
        with bus.tracker.engine.connect() as conn:
            in_table = conn.execute(select(func.count()).select_from(confirmations)).scalar_one()
        assert bus.confirmed() == in_table
        return in_table

    assert bus.confirmed() == 0
    assert stored(dead[0].envelope, answer(dead[0], first, Outcome.REJECTED)) == 1
    assert stored(*(answer(dead[0], s, Outcome.APPLIED) for s in others)) == len(others) + 1
    assert stored() == len(others) + 1
    assert stored(answer(dead[0], first, Outcome.APPLIED)) == len(others) + 1  # replaced
    assert stored(dead[1].envelope, *(answer(dead[1], s, Outcome.APPLIED) for s in others)) == (
        2 * len(others) + 1
    )


def test_with_duplicates_repeats_a_share_of_events_each_after_its_first_delivery() -> None:
    """10% of the events come a second time, each later than the first; nothing else changes."""
    stream = deaths(200)
    doubled = with_duplicates(stream, 0.10)
    ids = [e.envelope.event_id for e in doubled]
    assert len(doubled) == 220
    assert list(dict.fromkeys(ids)) == [e.envelope.event_id for e in stream]  # order kept
    deliveries = Counter(ids)
    assert sorted(deliveries.values()) == [1] * 180 + [2] * 20
    for i in [i for i, n in deliveries.items() if n == 2]:
        first = ids.index(i)
        assert doubled[ids.index(i, first + 1)] is doubled[first]  # the same event, again


def test_paced_offers_each_tick_when_due_while_earlier_ones_await_acknowledgement() -> None:
    """Open loop: every tick is handed out although no publish has returned (a bus slower than the
    rate asked is offered that rate, not the pace it accepts), each item once, none early."""
    all_in_flight = threading.Barrier(20, timeout=10)  # broken unless 20 publishes run at once
    published: list[int] = []
    lock = threading.Lock()

    def publish(items: list[int]) -> None:
        with lock:
            published.extend(items)
        all_in_flight.wait()

    before = time.time() * 1000
    rate, started_ms = paced(publish, list(range(200)), 1000, publishers=20)
    assert sorted(published) == list(range(200))
    assert rate <= 1000 * 1.001  # no tick starts before it is due (a busy machine starts later)
    assert before <= started_ms <= before + 1000  # when the first tick was due, by the wall clock


def test_latencies_of_the_warm_up_seconds_are_kept_apart_from_the_measure() -> None:
    """The events published in the first seconds of a latency run, as the load steps up from
    nothing, are not in its measure: split by their publication time."""
    start = 1_700_000_000_000
    timed = [(start, 900), (start + 4_999, 800), (start + 5_000, 30), (start + 20_000, 40)]
    split = Latencies.split(timed, Paced(1000.0, float(start)), warm_up=5)
    assert (split.ms, split.warm_up_ms, split.offered_per_second) == ([30, 40], [900, 800], 1000)
    assert Latencies.split(timed, Paced(1000.0, float(start)), warm_up=0).ms == [900, 800, 30, 40]


def test_paced_waits_for_a_publisher_only_when_all_are_busy_and_reports_the_rate_reached() -> None:
    """With 2 publishers whose first publishes take 0.3 s, no third publish starts before one of
    them returns, and the rate reported is the one the ticks started at."""
    in_flight, most = 0, 0
    calls = 0
    lock = threading.Lock()
    both_slow_ones = threading.Barrier(2, timeout=10)

    def publish(_items: list[int]) -> None:
        nonlocal in_flight, most, calls
        with lock:
            calls += 1
            slow = calls <= 2
            in_flight += 1
            most = max(most, in_flight)
        if slow:  # in flight together, then waiting 0.3 s for their acknowledgements
            both_slow_ones.wait()
            threading.Event().wait(0.3)
        with lock:
            in_flight -= 1

    rate, _ = paced(publish, list(range(200)), 1000, publishers=2)
    assert calls == 20
    assert most == 2
    assert rate < 700  # the later ticks waited for a publisher: 200 items over at least 0.3 s


def test_paced_fails_when_a_publish_fails() -> None:
    def publish(items: list[int]) -> None:
        if 50 in items:
            raise BrokerUnavailable("no acknowledgement in time")

    with pytest.raises(BrokerUnavailable):
        paced(publish, list(range(100)), 1000)


def test_a_run_removes_its_stores_and_a_failed_run_keeps_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A make bench wrote about 3 GB of stores and logs to /tmp and left them there."""

    class Stopped(Bus):
        def stop(self) -> None:
            """No processes or topics in this test."""

    made: list[Bus] = []

    def fresh(root: Path) -> Bus:
        settings = Settings(data_dir=root / f"run{len(made)}")
        settings.data_dir.mkdir(parents=True)
        made.append(Stopped(settings))
        return made[-1]

    def logged(bus: Bus) -> int:
        (bus.settings.data_dir / "logs.log").write_text("a line\n")
        return 1

    def failing(bus: Bus) -> int:
        logged(bus)
        raise RuntimeError("the run failed")

    monkeypatch.setattr(run, "Bus", SimpleNamespace(fresh=fresh))
    assert run.measure(tmp_path, "a run", logged) == 1
    assert not made[0].settings.data_dir.exists()
    with pytest.raises(RuntimeError, match="the run failed"):
        run.measure(tmp_path, "a failing run", failing)
    assert (made[1].settings.data_dir / "logs.log").read_text() == "a line\n"


def test_ours_and_the_baseline_take_turns_at_running_first() -> None:
    orders = [[kind for kind, _ in run.alternating(i, "ours()", "baseline()")] for i in range(3)]

    assert orders == [["ours", "baseline"], ["baseline", "ours"], ["ours", "baseline"]]
    assert dict(run.alternating(1, "ours()", "baseline()")) == {
        "ours": "ours()",
        "baseline": "baseline()",
    }


def test_the_machine_speed_is_the_hot_path_alone_in_a_process_of_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """make bench gauges the machine with tests.bench.instructions' CPU per event, read back
    from a child process in which every service and the tracker handled the events."""
    monkeypatch.setattr(run, "SPEED_EVENTS", 20)
    children: list[subprocess.CompletedProcess[str]] = []
    real = subprocess.run

    def recorded(*args: Any, **kwargs: Any) -> Any:
        children.append(real(*args, **kwargs))
        return children[-1]

    monkeypatch.setattr(subprocess, "run", recorded)
    speed = run.machine_speed()

    (child,) = children
    assert child.args[0] == sys.executable
    handled = dict(re.findall(r"(\w+): (\d+) messages handled", child.stdout))
    assert handled == {  # 20 events; the tracker, each and the 60 confirmations made
        "pensions": "15", "disability": "10", "council_tax": "15", "housing_benefit": "20",
        "tracker": "80",
    }  # fmt: skip
    assert speed == float(child.stdout.split()[-1]) > 0


def test_a_run_that_stops_confirming_is_given_up_saying_how_far_it_got(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Waiting for a run's confirmations ends once they stop coming (STALLED), not after the
    whole TIMEOUT; a count that keeps moving is waited for."""
    monkeypatch.setattr(harness, "STALLED", 0.2)
    stuck = iter([1, 2, 3])
    with pytest.raises(harness.Stalled, match="our confirmations: 3 of 5, none new for 0 s"):
        harness.counted(lambda: next(stuck, 3), 5, "our confirmations")

    moving = iter(range(100))
    harness.counted(lambda: next(moving), 5, "our confirmations")
    assert next(moving) == 6  # polled until it reached 5, then no more
