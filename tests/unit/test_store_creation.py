"""Processes started together on a fresh store (`tellusonce up`'s tracker and registrar API, a
service's instances) each create or upgrade it: every one opens it, and it is made once."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from consumers.services import SERVICES
from consumers.store import ServiceStore
from consumers.tracker import TrackerStore
from producers.ledger import Ledger
from tellusonce.codec import Codec
from tests.postgres import Server

TOGETHER = 4

OPENERS: dict[str, Callable[[str], object]] = {
    "pensions": lambda url: ServiceStore(url, SERVICES["pensions"].record_type),
    "tracker": TrackerStore,
    "registrar": lambda url: Ledger(url, Codec()),
}


def _opened_together(url: str, opener: Callable[[str], object]) -> list[str]:
    """What each of TOGETHER threads, released at once, met opening the store: "opened" or the
    error."""
    start = threading.Barrier(TOGETHER)
    met: list[str] = []

    def one() -> None:
        start.wait()
        try:
            store = opener(url)
        except Exception as exc:
            met.append(f"{type(exc).__name__}: {exc}")
        else:
            met.append("opened")
            store.engine.dispose()  # type: ignore[attr-defined]

    threads = [threading.Thread(target=one) for _ in range(TOGETHER)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return met


@pytest.mark.parametrize("store", OPENERS)
def test_a_fresh_sqlite_store_opened_together_opens_for_each(tmp_path: Path, store: str) -> None:
    """All but one were refused at once: "database is locked" (a check, then a create, in
    transactions that each wanted the write lock), and SQLite's switch to WAL refused too."""
    for attempt in range(5):  # the race, five times over
        url = f"sqlite:///{tmp_path}/{attempt}-{store}.db"
        assert _opened_together(url, OPENERS[store]) == ["opened"] * TOGETHER


@pytest.mark.parametrize("store", OPENERS)
def test_a_fresh_postgresql_store_opened_together_opens_for_each(
    postgres: Server, store: str
) -> None:
    for _attempt in range(3):
        url = postgres.fresh().format(service=store)
        assert _opened_together(url, OPENERS[store]) == ["opened"] * TOGETHER


@pytest.mark.parametrize("store", OPENERS)
def test_a_made_store_opens_while_another_process_writes(tmp_path: Path, store: str) -> None:
    """Opening one that lacks nothing only reads: a `tellusonce status` beside consumers holding
    the write lock was refused after SQLite's busy timeout ("database is locked")."""
    url = f"sqlite:///{tmp_path}/{store}.db"
    OPENERS[store](url).engine.dispose()  # type: ignore[attr-defined]
    writer = sqlite3.connect(tmp_path / f"{store}.db", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # a consumer's batch, held
    try:
        assert _opened_together(url, OPENERS[store]) == ["opened"] * TOGETHER
    finally:
        writer.execute("ROLLBACK")
        writer.close()
