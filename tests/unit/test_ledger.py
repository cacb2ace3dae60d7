"""The registrar's ledger: every published event recorded, whoever publishes at the same time."""

from __future__ import annotations

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
