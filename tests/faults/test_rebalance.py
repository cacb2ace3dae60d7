"""Two instances of one service share its partitions; one joins and one leaves mid-stream, or
joins while the other has them paused for a retry."""

from __future__ import annotations

import sqlite3

import pytest

from producers.submission import Registrar
from tellusonce.kafka import Admin
from tellusonce.settings import Settings
from tellusonce.topics import Topics, subscribers
from tests.faults.conftest import Processes, exactly_once, publish_in_chunks, report, settle
from tests.faults.ledger import batches
from tests.faults.stream import events
from tests.integration.conftest import wait_for


def handled(processes: Processes, key: str) -> int:
    logged = batches(processes.logs / f"{key}.log")
    return sum(batch["messages"] - batch["held_back"] for batch in logged)


def test_second_instance_joins_and_first_leaves_mid_stream(
    settings: Settings,
    processes: Processes,
    registrar: Registrar,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """pensions-2 joins after 400 of 1,200 events, pensions-1 leaves (SIGTERM) after 800."""
    stream = events(1200, settings, seed=3)
    admin, group = Admin(settings), Topics(settings.topic_prefix).group("pensions")
    processes.start_all()
    for published in publish_in_chunks(registrar, stream, size=100):
        if published == 400:  # the next 400 are shared between the two
            processes.start("pensions", "2")
            wait_for(lambda: admin.group_assigned(group, members=2), "pensions-2 to join")
        if published == 800:  # once both have done some of the work, pensions-1 leaves
            wait_for(lambda: handled(processes, "pensions-1") > 0, "pensions-1 to handle events")
            wait_for(lambda: handled(processes, "pensions-2") > 0, "pensions-2 to handle events")
            before_leaving = handled(processes, "pensions-2")  # while the two shared them
            assert processes.terminate("pensions-1") == 0

    ledger = settle(settings, stream, processes.logs)
    report(
        capsys,
        ledger.line("rebalance") + f" | pensions-1 handled "
        f"{handled(processes, 'pensions-1')}, pensions-2 {handled(processes, 'pensions-2')}",
    )
    assert handled(processes, "pensions-2") > before_leaving  # it took pensions-1's share over
    assert set(processes.terminate_all().values()) == {0}
    exactly_once(settings, stream, processes.logs)


def paused(processes: Processes, key: str) -> int:
    """How many times an instance paused a partition for a retry, by its log."""
    log = processes.logs / f"{key}.log"
    return log.read_text().count('"partition_paused_for_retry"') if log.exists() else 0


def test_partitions_paused_for_a_retry_move_to_an_instance_joining_meanwhile(
    settings: Settings,
    processes: Processes,
    registrar: Registrar,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Pensions' store locked while 400 events arrive: pensions-1 pauses its partitions for a
    retry, pensions-2 joins and takes some of them while they are paused, then the lock goes.
    (The mock cluster alone showed a paused partition taken away and given back is read again,
    and a revoked one's offsets are not stored.) Every event applied once; the group's offsets
    end where the events do."""
    stream = events(400, settings, seed=5)
    admin, group = Admin(settings), Topics(settings.topic_prefix).group("pensions")
    processes.start_all()
    lock = sqlite3.connect(settings.data_dir / "pensions.db", isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        list(publish_in_chunks(registrar, stream, size=100))
        wait_for(lambda: paused(processes, "pensions-1") > 3, "pensions-1 to pause for a retry")
        processes.start("pensions", "2")
        wait_for(lambda: admin.group_assigned(group, members=2), "pensions-2 to join")
        wait_for(lambda: paused(processes, "pensions-2") > 0, "pensions-2 to pause as well")
        assert sum(admin.committed(group).values()) == 0  # nothing applied, nothing committed
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    ledger = settle(settings, stream, processes.logs)
    report(
        capsys,
        ledger.line("rebalance while paused") + f" | pensions-1 handled "
        f"{handled(processes, 'pensions-1')}, pensions-2 {handled(processes, 'pensions-2')}",
    )
    exactly_once(settings, stream, processes.logs)
    # once the lock went, each applied its share: the partitions it held paused
    for key in ("pensions-1", "pensions-2"):
        assert sum(b.get("applied", 0) for b in batches(processes.logs / f"{key}.log")) > 0, key
    entitled = [e for e in stream if "pensions" in subscribers(e.envelope.event_type)]
    wait_for(
        lambda: sum(admin.committed(group).values()) == len(entitled),
        "pensions' offsets committed up to what it applied, on both instances",
    )
    assert set(processes.terminate_all().values()) == {0}
