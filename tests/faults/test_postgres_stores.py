"""The stores on PostgreSQL: consumers SIGKILLed at random while events flow, still exactly once,
and each store holds what SQLite makes of the same events in the same order."""

from __future__ import annotations

from collections.abc import Iterator

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
from tests.postgres import Server

KILLS = 8


@pytest.fixture
def settings(settings: Settings, postgres: Server) -> Settings:
    """Every store (the services', the tracker's, the registrar's) a new PostgreSQL database."""
    return settings.model_copy(update={"store_url": postgres.fresh()})


@pytest.fixture
def registrar(registrar: Registrar) -> Iterator[Registrar]:
    """The registrar, its ledger's connections closed after the test."""
    yield registrar
    registrar.ledger.engine.dispose()


def test_sigkills_with_stores_on_postgresql(
    settings: Settings,
    processes: Processes,
    registrar: Registrar,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """8 SIGKILLs of random consumers while 800 events flow; the ledger is exact after, and the
    replay (on SQLite) makes the same records, outcomes and confirmations."""
    assert settings.store_url_for("pensions").startswith("postgresql")
    stream = events(800, settings, seed=8)
    processes.start_all()
    kills = publish_while_killing(processes, registrar, stream, KILLS, seed=8)

    ledger = settle(settings, stream, processes.logs)
    report(capsys, ledger.line(f"PostgreSQL, {kills} SIGKILLs"))
    assert set(processes.terminate_all().values()) == {0}
    exactly_once(settings, stream, processes.logs)
