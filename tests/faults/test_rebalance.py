"""Two instances of one service share its partitions; one joins and one leaves mid-stream."""

from __future__ import annotations

import pytest

from producers.submission import Registrar
from tellusonce.settings import Settings
from tests.faults.conftest import Processes, publish_in_chunks, report, settle
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
    processes.start_all()
    for published in publish_in_chunks(registrar, stream, size=100):
        if published == 400:
            processes.start("pensions", "2")
        if published == 800:  # once it has done some of the work, pensions-1 leaves
            wait_for(lambda: handled(processes, "pensions-1") > 0, "pensions-1 to handle events")
            assert processes.terminate("pensions-1") == 0

    ledger = settle(settings, stream, processes.logs)
    report(
        capsys,
        ledger.line("rebalance") + f" | pensions-1 handled "
        f"{handled(processes, 'pensions-1')}, pensions-2 {handled(processes, 'pensions-2')}",
    )
    assert handled(processes, "pensions-1") > 0
    assert handled(processes, "pensions-2") > 0
    assert set(processes.terminate_all().values()) == {0}
    assert ledger.exact
