"""`tellusonce dlq replay --offset N`: an offset is a partition's, and a dead-letter topic has
several: replaying every letter at N (unrelated people's, some held back on purpose) is refused.
A letter kept without its message (too large for Kafka) is listed as such, and not replayed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from consumers import dead_letters
from consumers.dead_letters import DeadLetter
from tellusonce import cli
from tellusonce.kafka import Received


def letter(partition: int, offset: int, body_dropped: str | None = None) -> DeadLetter:
    message = Received("pensions.dead-letters", partition, offset, b"k", b"v", [], 0)
    return DeadLetter(
        offset, partition, "life-events.death", 0, 9, "RuleRejected", "x", message, body_dropped
    )


@pytest.fixture
def replayed(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    letters = [letter(0, 0), letter(1, 0), letter(2, 0), letter(1, 1), letter(0, 2, "1048600")]
    sent: list[tuple[int, int]] = []

    def replay(_settings: Any, chosen: list[DeadLetter], _publisher: Any) -> int:
        sent.extend((d.partition, d.offset) for d in chosen)
        return len(chosen)

    monkeypatch.setattr(dead_letters, "read", lambda _settings, _service: letters)
    monkeypatch.setattr(dead_letters, "replay", replay)
    return sent


def test_an_offset_in_several_partitions_needs_the_partition(
    replayed: list[tuple[int, int]],
    capsys: pytest.CaptureFixture[str],
    run_cli: Callable[[list[str]], int],
) -> None:
    assert run_cli(["dlq", "replay", "pensions", "--offset", "0"]) == cli.EXIT_INVALID
    assert replayed == []
    assert "partitions 0, 1, 2: say which with --partition" in capsys.readouterr().err
    assert run_cli(["dlq", "replay", "pensions", "--offset", "0", "--partition", "1"]) == 0
    assert run_cli(["dlq", "replay", "pensions", "--offset", "1"]) == 0  # only one there
    assert replayed == [(1, 0), (1, 1)]


def test_a_letter_kept_without_its_message_is_not_replayed(
    replayed: list[tuple[int, int]],
    capsys: pytest.CaptureFixture[str],
    run_cli: Callable[[list[str]], int],
) -> None:
    """Skipped, saying so, while the others are replayed: one such letter refused every replay
    of its service (the alert's runbook) until each other letter was replayed by offset."""
    assert run_cli(["dlq", "list", "pensions"]) == 0
    assert (
        "partition 0 offset 2: from life-events.death [0]@9: RuleRejected: x (kept without "
        "its 1048600 bytes)" in capsys.readouterr().out
    )
    assert run_cli(["dlq", "replay", "pensions", "--partition", "0"]) == 0
    assert replayed == [(0, 0)]
    assert "skipped: the dead letter at partition 0 offset 2" in capsys.readouterr().err
    assert run_cli(["dlq", "replay", "pensions", "--partition", "0", "--offset", "2"]) == (
        cli.EXIT_INVALID
    )
    assert replayed == [(0, 0)]
    assert "read it from life-events.death [0]@9 while that topic retains it" in (
        capsys.readouterr().err
    )


def test_a_letter_is_listed_with_its_event_id_and_type(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    run_cli: Callable[[list[str]], int],
) -> None:
    """So that it can be told apart from the others and found in `tellusonce status`; a
    header of another form (another producer's: it may hold anything) is not shown."""
    event_id = "0f88a705-962e-5229-aecc-1ce6e7e1b772"
    headers = [("ce_id", event_id.encode()), ("ce_type", b"uk.gov.tellusonce.death.registered.v1")]
    message = Received("life-events.dead-letter.pensions", 0, 0, b"k", b"v", headers, 0)
    odd = Received("life-events.dead-letter.pensions", 0, 1, b"k", b"v", [("ce_id", b"AB 12")], 0)

    class Reader:  # the dead-letter topic, as read from Kafka
        def __init__(self, *_args: Any) -> None:
            pass

        def read_all(self) -> list[Received]:
            return [message, odd]

    monkeypatch.setattr(dead_letters, "Reader", Reader)
    assert run_cli(["dlq", "list", "pensions"]) == 0
    out = capsys.readouterr().out
    assert f"event {event_id} (uk.gov.tellusonce.death.registered.v1)" in out
    assert "AB 12" not in out
