"""Two instances of one service share its partitions; one joins and one leaves mid-stream."""

from __future__ import annotations

import pytest

from producers.submission import Registrar
from tellusonce.kafka import Admin
from tellusonce.settings import Settings
from tellusonce.topics import Topics
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
