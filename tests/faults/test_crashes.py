"""Consumers SIGKILLed at random points and restarted: still exactly once, confirmed once, and
the stores hold what a run without faults makes of the same events, amendments included."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from sqlalchemy import select

from consumers.tracker import TrackerStore, confirmations
from producers.submission import Registrar
from tellusonce.events import Action
from tellusonce.settings import Settings
from tellusonce.topics import TRACKER
from tests.faults.conftest import (
    Processes,
    exactly_once,
    publish_while_killing,
    report,
    settle,
)
from tests.faults.stream import events

KILLS = 24


def test_random_sigkills_during_a_stream_of_2000_events(
    settings: Settings,
    processes: Processes,
    registrar: Registrar,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """24 SIGKILLs of random consumers while 2,000 events and 200 amendments of them (corrections
    and cancellations, each undoing what its event did) flow; the ledger is exact after, and the
    replay oracle finds every store as a fault-free run of the same order leaves it."""
    stream = events(2000, settings, amended=0.1)
    processes.start_all()
    kills = publish_while_killing(processes, registrar, stream, KILLS, seed=20)

    ledger = settle(settings, stream, processes.logs)
    report(capsys, ledger.line(f"{kills} SIGKILLs"))
    assert all(processes.alive().values())
    assert set(processes.terminate_all().values()) == {0}
    ledger = exactly_once(settings, stream, processes.logs)
    # kills landed between a batch's store commit and its offsets' commit: its messages came
    # again, and were skipped as applied
    assert ledger.duplicates_skipped > 0
    # the amendments were applied (undone and redone) by services, some refused for review
    assert {"APPLIED", "REJECTED"} <= set(amendment_outcomes(settings, stream))


def amendment_outcomes(settings: Settings, stream: list[Any]) -> Counter[str]:
    """The services' answers to the stream's corrections and cancellations, by outcome."""
    amendments = {
        e.envelope.event_id_text for e in stream if e.envelope.action != Action.REGISTERED
    }
    tracker = TrackerStore(settings.store_url_for(TRACKER))
    try:
        with tracker.engine.connect() as conn:
            rows = conn.execute(select(confirmations.c.event_id, confirmations.c.outcome)).all()
    finally:
        tracker.close()
    return Counter(outcome for event_id, outcome in rows if event_id in amendments)
