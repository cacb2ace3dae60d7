"""The benchmark's own bookkeeping: what it counts must be what the stores hold."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import func, select

from consumers.tracker import TrackerHandler, confirmations
from tellusonce.codec import Codec, Tracked
from tellusonce.events import EventType, LifeEvent, Outcome
from tellusonce.settings import Settings
from tellusonce.topics import Topics, subscribers
from tests.bench import harness, run
from tests.bench.harness import Bus, paced, with_duplicates
from tests.factories import event
from tests.unit.test_batches import answer, at


def distinct_deaths(count: int) -> list[LifeEvent[Any]]:
    """The example death under `count` register entries: as many distinct events."""
    return [
        event(EventType.DEATH, registration={"district": "Leeds", "entry_number": n, "office": "L"})
        for n in range(1, count + 1)
    ]


def test_confirmed_counts_what_the_tracker_stored_batch_after_batch(tmp_path: Path) -> None:
    """Counting only the rows stored since the last call adds up to a count of the table,
    however the rows arrive: several per batch, none, or an answer replacing a REJECTED one."""
    bus = Bus(Settings(data_dir=tmp_path))
    tracker = TrackerHandler(bus.tracker, Topics(), Codec())
    deaths = distinct_deaths(2)
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
    assert stored(deaths[0].envelope, answer(deaths[0], first, Outcome.REJECTED)) == 1
    assert stored(*(answer(deaths[0], s, Outcome.APPLIED) for s in others)) == len(others) + 1
    assert stored() == len(others) + 1
    assert stored(answer(deaths[0], first, Outcome.APPLIED)) == len(others) + 1  # replaced
    assert stored(deaths[1].envelope, *(answer(deaths[1], s, Outcome.APPLIED) for s in others)) == (
        2 * len(others) + 1
    )


def test_with_duplicates_repeats_a_share_of_events_each_after_its_first_delivery() -> None:
    """10% of the events come a second time, each later than the first; nothing else changes."""
    stream = distinct_deaths(200)
    doubled = with_duplicates(stream, 0.10)
    ids = [e.envelope.event_id for e in doubled]
    assert len(doubled) == 220
    assert list(dict.fromkeys(ids)) == [e.envelope.event_id for e in stream]  # order kept
    deliveries = Counter(ids)
    assert sorted(deliveries.values()) == [1] * 180 + [2] * 20
    for i in [i for i, n in deliveries.items() if n == 2]:
        first = ids.index(i)
        assert doubled[ids.index(i, first + 1)] is doubled[first]  # the same event, again


class Clock:
    """Time that passes only when something takes it (a publish) or sleeps."""

    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_paced_reports_the_rate_it_reached(monkeypatch: pytest.MonkeyPatch) -> None:
    """At 1,000/s asked, a publish of a tick's 10 items that takes 4 ms keeps the pace; one that
    takes 25 ms offers them at 400/s, and that is the rate reported."""
    clock = Clock()
    monkeypatch.setattr(
        harness, "time", SimpleNamespace(monotonic=clock.monotonic, sleep=clock.sleep)
    )
    published: list[int] = []

    def publish_taking(seconds: float) -> Any:
        def publish(items: list[int]) -> None:
            published.extend(items)
            clock.now += seconds

        return publish

    assert paced(publish_taking(0.004), list(range(500)), 1000) == pytest.approx(1000)
    assert paced(publish_taking(0.025), list(range(500)), 1000) == pytest.approx(400)
    assert published == [*range(500), *range(500)]


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
