"""The registrar's ledger: every published event recorded, whoever publishes at the same time."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from structlog.testing import capture_logs

from producers.ledger import Ledger, submissions
from tellusonce.codec import Codec
from tellusonce.events import LifeEvent
from tests.factories import deaths

THREADS, BATCHES, PER_BATCH = 8, 15, 10


def test_batches_recorded_at_once_by_several_threads_are_all_kept(tmp_path: Path) -> None:
    """The API records each request's events on its own thread. A record reads which events are
    known, then inserts the rest; begun as a plain SQLite transaction, a record whose read came
    before another thread's commit was refused ("database is locked") and its events were left
    out of the ledger, logged as ledger_write_failed."""
    codec = Codec()
    ledger = Ledger(f"sqlite:///{tmp_path / 'registrar.db'}", codec)
    batches = [
        [(e, codec.encode(e)) for e in deaths(PER_BATCH, first=1 + b * PER_BATCH)]
        for b in range(THREADS * BATCHES)
    ]
    start = threading.Barrier(THREADS)

    def record(mine: list[list[tuple[LifeEvent[Any], bytes]]]) -> None:
        start.wait()
        for batch in mine:
            ledger.record(batch)

    with capture_logs() as logs:
        threads = [
            threading.Thread(target=record, args=(batches[t::THREADS],)) for t in range(THREADS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)

    assert [line for line in logs if line["event"] == "ledger_write_failed"] == []
    with ledger.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(submissions)).scalar() == (
            THREADS * BATCHES * PER_BATCH
        )


def test_an_event_withdrawn_while_the_ledger_is_locked_stays_recorded_and_is_logged(
    tmp_path: Path,
) -> None:
    """Withdrawing what Kafka refused for good must not raise over the refusal it follows (the
    API answered 500, not 413): the row stays, unacknowledged, and the failure is logged."""
    codec = Codec()
    ledger = Ledger(f"sqlite:///{tmp_path / 'registrar.db'}", codec)
    (death,) = deaths(1)
    ledger.reserve(death, codec.encode(death), lambda: None)
    holder = sqlite3.connect(tmp_path / "registrar.db", timeout=0, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with capture_logs() as logs:
            ledger.withdraw(death.envelope.event_id_text)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert [entry["event"] for entry in logs] == ["ledger_write_failed"]
    assert ledger.unacknowledged(death.envelope.event_id_text)
    ledger.withdraw(death.envelope.event_id_text)
    assert ledger.find(death.envelope.event_id_text) is None
