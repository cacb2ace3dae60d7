"""`tellusonce seed --if-empty` (what the Compose stack runs at each start): seeds new stores,
and leaves stores that hold records as events left them; `seed` refuses to overwrite them but
with `--force`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from consumers.pensions import PensionRecord
from consumers.seed import demo_records
from consumers.store import ServiceStore
from tellusonce.settings import Settings


def pension(store: ServiceStore) -> PensionRecord:
    found = [r for r in store.records() if r.record_id == "SP-100001"]
    assert isinstance(found[0], PensionRecord)
    return found[0]


def test_seeding_if_empty_keeps_what_events_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: Callable[[list[str]], int]
) -> None:
    monkeypatch.setenv("TELLUSONCE_DATA_DIR", str(tmp_path))
    assert run_cli(["seed", "--if-empty"]) == 0
    store = ServiceStore(Settings().store_url_for("pensions"), PensionRecord)
    stopped = pension(store).model_copy(update={"status": "STOPPED"})
    with store.transaction() as tx:  # as a death would
        tx.put(stopped)

    assert run_cli(["seed", "--if-empty"]) == 0
    assert pension(store) == stopped
    assert run_cli(["seed"]) == 2  # it put the demo's records back, undoing the death
    assert pension(store) == stopped
    assert run_cli(["seed", "--force"]) == 0
    assert pension(store).status == "IN_PAYMENT"


def test_a_seed_cut_short_goes_on_where_it_was(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    run_cli: Callable[[list[str]], int],
) -> None:
    """Stopped after State Pension's store (a container's SIGKILL), `seed --if-empty` found
    pensions' records and seeded nothing more, ever: three services with no records."""
    monkeypatch.setenv("TELLUSONCE_DATA_DIR", str(tmp_path))
    pensions = ServiceStore(Settings().store_url_for("pensions"), PensionRecord)
    with pensions.transaction() as tx:
        tx.put(demo_records(0)["pensions"][0])  # the first of its records
    assert run_cli(["seed", "--if-empty"]) == 0
    said = capsys.readouterr().out.splitlines()
    assert said[0] == (
        "stores holding records already, not seeded (events may have changed them): pensions"
    )
    assert [line.split(":")[0] for line in said[1:]] == [
        "disability", "council_tax", "housing_benefit"
    ]  # fmt: skip
    assert run_cli(["seed", "--if-empty"]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == []
