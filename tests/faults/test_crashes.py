"""Consumers SIGKILLed at random points and restarted: still exactly once, confirmed once."""

from __future__ import annotations

import pytest

from producers.submission import Registrar
from tellusonce.settings import Settings
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
    """24 SIGKILLs of random consumers while 2,000 events flow; the ledger is exact after."""
    stream = events(2000, settings)
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
