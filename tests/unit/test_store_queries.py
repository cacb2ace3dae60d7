"""The look-ups a consumer batch makes search the store's indexes, not every row (a service's
store holds a row per person it knows of: a scan per batch grew with it)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from consumers.services import SERVICES
from consumers.store import _KEYS_OF_DETAILS, _KEYS_OF_NINOS, _PROCESSED_AMONG, ServiceStore
from tellusonce.database import Query

BORN = date(1950, 1, 1)


def plan(store: ServiceStore, query: Query, params: dict[str, Any]) -> list[str]:
    """SQLite's query plan for a look-up, as SQLite ran it with these parameters."""
    ran: list[str] = []
    with store.connections.begin() as conn:
        sqlite = conn.connection.driver_connection
        sqlite.set_trace_callback(ran.append)  # the SQL run, its values written in
        query.rows(conn, params)
        sqlite.set_trace_callback(None)
        [select] = [sql for sql in ran if sql.lstrip().startswith("SELECT")]
        return [row[3] for row in sqlite.execute(f"EXPLAIN QUERY PLAN {select}")]


@pytest.mark.parametrize(
    ("query", "params", "index"),
    [
        (
            _KEYS_OF_DETAILS,
            {"surnames": ["smith", "jones"], "details": [("smith", BORN), ("jones", BORN)]},
            "ix_record_people_details",
        ),
        (_KEYS_OF_NINOS, {"ninos": ["QQ123456C"]}, "ix_record_people_nino"),
        (_PROCESSED_AMONG, {"event_ids": ["a", "b"]}, "sqlite_autoindex_processed_1"),
    ],
)
def test_a_batchs_look_ups_search_an_index(
    tmp_path: Path, query: Query, params: dict[str, Any], index: str
) -> None:
    store = ServiceStore(f"sqlite:///{tmp_path / 'pensions.db'}", SERVICES["pensions"].record_type)
    steps = plan(store, query, params)
    assert not [s for s in steps if s.startswith("SCAN") and "CONSTANT ROWS" not in s], steps
    assert any(index in s for s in steps), steps
