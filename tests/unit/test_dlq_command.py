"""`tellusonce dlq replay --offset N`: an offset is a partition's, and a dead-letter topic has
several: replaying every letter at N (unrelated people's, some held back on purpose) is refused.
A letter kept without its message (too large for Kafka) is listed as such, and not replayed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from consumers import dead_letters
from consumers.dead_letters import DeadLetter
from tellusonce import cli
from tellusonce.headers import DEAD_LETTER_BODY_DROPPED
from tellusonce.kafka import Received
from tellusonce.settings import Settings
from tests.stand_ins import Kept


def letter(partition: int, offset: int, body_dropped: str | None = None) -> DeadLetter:
    message = Received("pensions.dead-letters", partition, offset, b"k", b"v", [], 0)
    return DeadLetter(
        offset, partition, "life-events.death", 0, 9, "RuleRejected", "x", message, body_dropped
    )


@pytest.fixture
def replayed(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    letters = [letter(0, 0), letter(1, 0), letter(2, 0), letter(1, 1), letter(0, 2, "1048600")]
    sent: list[tuple[int, int]] = []

    def replay(_settings: Any, _service: str, chosen: list[DeadLetter], *_rest: Any) -> int:
        sent.extend((d.partition, d.offset) for d in chosen)
        return len(chosen)

    monkeypatch.setattr(dead_letters, "read", lambda _settings, _service: letters)
    monkeypatch.setattr(dead_letters, "replay", replay)
    return sent


def on_the_topic(
    monkeypatch: pytest.MonkeyPatch, messages: list[Received], marks: dict[Any, int] | None = None
) -> None:
    """A dead-letter topic holding these messages, as read from Kafka; replayed up to `marks`
    (none, if not given)."""

    class Reader:
        def __init__(self, *_args: Any) -> None:
            pass

        def read_all(self) -> list[Received]:
            return messages

    class Admin:
        def __init__(self, *_args: Any) -> None:
            pass

        def committed(self, _group: str) -> dict[tuple[str, int], int]:
            return marks or {}

    monkeypatch.setattr(dead_letters, "Reader", Reader)
    monkeypatch.setattr(dead_letters, "Admin", Admin)


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
        "its 1048600 bytes: not replayable, read it from its origin)" in capsys.readouterr().out
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

    on_the_topic(monkeypatch, [message, odd])
    assert run_cli(["dlq", "list", "pensions"]) == 0
    out = capsys.readouterr().out
    assert f"event {event_id} (uk.gov.tellusonce.death.registered.v1)" in out
    assert "AB 12" not in out


def test_a_replay_sends_only_the_letters_not_replayed_yet(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    run_cli: Callable[[list[str]], int],
) -> None:
    """Each replay sent every letter again: each still failing came back, doubling the topic
    (1, 2, 4, 8), and nothing said which were settled. One named by its offset is sent again."""
    done = replace(letter(0, 0), replayed=True)
    letters = [done, letter(0, 1), letter(1, 0)]
    sent: list[tuple[int, int]] = []

    def replay(_settings: Any, _service: str, chosen: list[DeadLetter], *_rest: Any) -> int:
        sent.extend((d.partition, d.offset) for d in chosen)
        return len(chosen)

    monkeypatch.setattr(dead_letters, "read", lambda _settings, _service: letters)
    monkeypatch.setattr(dead_letters, "replay", replay)
    assert run_cli(["dlq", "list", "pensions"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0] == "3 dead letters for pensions, 1 of them replayed"
    assert listed[1].endswith("[replayed]")
    assert not listed[2].endswith("[replayed]")
    assert run_cli(["dlq", "replay", "pensions"]) == 0
    assert sent == [(0, 1), (1, 0)]
    assert run_cli(["dlq", "replay", "pensions", "--partition", "0", "--offset", "0"]) == 0
    assert sent[2:] == [(0, 0)]
    letters[1:] = [replace(d, replayed=True) for d in letters[1:]]
    capsys.readouterr()
    assert run_cli(["dlq", "replay", "pensions"]) == 0
    assert capsys.readouterr().out == (
        "nothing to replay: every dead letter of pensions was replayed "
        "(--partition P --offset N sends one again)\n"
    )


@pytest.mark.parametrize(
    ("letters", "now", "mark"),
    [
        ("...", [0, 1], 2),  # . waiting, r replayed before, b kept without its message
        ("r..", [1, 2], 3),
        ("...", [1], None),  # the first neither sent nor replayed: the mark stays before it
        ("...", [0, 2], 1),  # past the first, not past the one left out
        (".b.", [0], 2),  # past one with nothing to replay
    ],
)
def test_the_replay_mark_passes_only_settled_letters(
    letters: str, now: list[int], mark: int | None
) -> None:
    every = [
        replace(letter(0, n, "1048600" if kind == "b" else None), replayed=kind == "r")
        for n, kind in enumerate(letters)
    ]
    assert dead_letters._mark([d for d in every if d.offset in now], every) == mark


def test_a_letter_whose_numbers_are_not_numbers_is_listed(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    run_cli: Callable[[list[str]], int],
) -> None:
    """`dlq_origin_offset: n/a` (another producer's letter) stopped `dlq list` and `replay` for
    the whole topic with a ValueError."""
    odd = [("dlq_origin_topic", b"life-events.death"), ("dlq_origin_offset", b"n/a")]
    message = Received("life-events.dead-letter.pensions", 0, 0, b"k", b"v", odd, 0)

    on_the_topic(monkeypatch, [message])
    assert run_cli(["dlq", "list", "pensions"]) == 0
    assert "from life-events.death [-1]@-1" in capsys.readouterr().out


def test_a_letter_kept_without_its_message_is_never_listed_as_replayed(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    run_cli: Callable[[list[str]], int],
) -> None:
    """The replay mark passes it (there is nothing to send), and it was listed "[replayed]":
    the next replay said every letter had been, the event it was never applied, unsaid."""
    topic = "life-events.dead-letter.pensions"
    kept = Received(topic, 0, 0, b"k", b"", [(DEAD_LETTER_BODY_DROPPED, b"1048000")], 0)
    sent = Received(topic, 0, 1, b"k", b"v", [], 0)
    on_the_topic(monkeypatch, [kept, sent], marks={(topic, 0): 2})
    assert run_cli(["dlq", "list", "pensions"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0] == (
        "2 dead letters for pensions, 1 of them replayed, 1 kept without their message (not "
        "replayable)"
    )
    assert [line.endswith("[replayed]") for line in listed[1:]] == [False, True]


def test_a_letter_of_a_message_without_a_key_is_replayed_without_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Replayed with an empty key, a key-less message went to the partition of that key's hash,
    as no message of its own had; a keyed one keeps its key."""
    keyless = letter(0, 0)
    keyless = replace(keyless, message=keyless.message._replace(key=None))
    kept = Kept()
    marks: list[dict[tuple[str, int], int]] = []
    monkeypatch.setattr(dead_letters, "commit_offsets", lambda _s, _g, mark: marks.append(mark))
    chosen = [keyless, letter(0, 1)]
    sent = dead_letters.replay(Settings(), "pensions", chosen, chosen, kept)  # type: ignore[arg-type]
    assert sent == 2
    assert [(m.topic, m.key) for m in kept.sent] == [
        ("life-events.death", None),
        ("life-events.death", b"k"),
    ]
    assert marks == [{("pensions.dead-letters", 0): 2}]
