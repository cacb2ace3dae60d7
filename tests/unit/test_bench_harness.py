"""The benchmark's own bookkeeping: what it counts must be what the stores hold."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from consumers.tracker import TrackerHandler, confirmations
from tellusonce.codec import Codec, Tracked
from tellusonce.events import EventType, LifeEvent, Outcome
from tellusonce.settings import Settings
from tellusonce.topics import Topics, subscribers
from tests.bench.harness import Bus, with_duplicates
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
