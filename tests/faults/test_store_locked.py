"""A service's store held locked for 30 s: the consumer pauses, commits nothing it did not
apply, stays in its group, then catches up."""

from __future__ import annotations

import sqlite3
import time

import pytest
from prometheus_client import REGISTRY

from consumers.seed import seed
from producers.submission import Registrar
from tellusonce.events import EventType
from tellusonce.kafka import Admin
from tellusonce.settings import Settings
from tellusonce.topics import Topics, subscribers
from tests.faults.conftest import exactly_once, publish_in_chunks, report, settle
from tests.faults.stream import CROWD_SIZE, events
from tests.integration.conftest import Fleet, wait_for

LOCK_SECONDS = 30


def retried(service: str) -> float:
    return sum(
        REGISTRY.get_sample_value(
            "tellusonce_events_consumed_total",
            {"service": service, "event_type": t.value, "outcome": "retried"},
        )
        or 0.0
        for t in EventType
    )


def test_locked_store_pauses_then_catches_up(
    settings: Settings,
    topics: Topics,
    fleet: Fleet,
    registrar: Registrar,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Pensions' SQLite store exclusively locked for 30 s while 400 events arrive."""
    seed(settings, others=CROWD_SIZE)
    stream = events(400, settings)
    admin, group = Admin(settings), topics.group("pensions")
    before_retries = retried("pensions")
    lock = sqlite3.connect(settings.data_dir / "pensions.db", isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        list(publish_in_chunks(registrar, stream))
        wait_for(lambda: retried("pensions") > before_retries + 3, "pensions to retry")
        locked_until = time.monotonic() + LOCK_SECONDS
        while time.monotonic() < locked_until:  # the fault lasts 30 s; check while it does
            assert fleet.threads["pensions"][0].is_alive()
            assert admin.group_assigned(group)  # still a member with its partitions: it polls
            assert sum(admin.committed(group).values()) == 0  # nothing applied, nothing committed
            time.sleep(1)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    ledger = settle(settings, stream)
    retries = retried("pensions") - before_retries
    report(capsys, ledger.line("store locked 30 s") + f" | retries {retries:.0f}")
    exactly_once(settings, stream)
    entitled = [e for e in stream if "pensions" in subscribers(e.envelope.event_type)]
    wait_for(
        lambda: sum(admin.committed(group).values()) == len(entitled),
        "pensions' offsets committed up to what it applied",
    )
