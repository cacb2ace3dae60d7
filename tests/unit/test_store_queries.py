"""The look-ups a consumer batch makes search the store's indexes, not every row (a service's
store holds a row per person it knows of: a scan per batch grew with it)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Executable

from consumers.services import SERVICES
from consumers.store import _KEYS_OF_DETAILS, _KEYS_OF_NINOS, _PROCESSED_AMONG, ServiceStore

BORN = date(1950, 1, 1)


def plan(store: ServiceStore, statement: Executable, params: dict[str, Any]) -> list[str]:
    """SQLite's query plan for a statement, as run with these parameters."""
    with store.engine.connect() as conn:
        ran = conn.execute(statement, params).context
        query, bound = ran.statement, ran.parameters[0]
        return [row[3] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {query}", bound)]


@pytest.mark.parametrize(
    ("statement", "params", "index"),
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
    tmp_path: Path, statement: Executable, params: dict[str, Any], index: str
) -> None:
    store = ServiceStore(f"sqlite:///{tmp_path / 'pensions.db'}", SERVICES["pensions"].record_type)
    steps = plan(store, statement, params)
    assert not [s for s in steps if s.startswith("SCAN") and "CONSTANT ROWS" not in s], steps
    assert any(index in s for s in steps), steps
