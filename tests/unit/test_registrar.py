"""What a registrar publishes for a register entry it published already: the same event again,
or a conflict naming what to do, and nothing published (no broker: a publisher that keeps)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
import structlog

from producers.submission import Registrar
from tellusonce.codec import Codec
from tellusonce.errors import NotRecorded, SubmissionConflict
from tellusonce.events import EventType
from tellusonce.settings import Settings
from tests.bench.instructions import Kept
from tests.factories import document


@pytest.fixture
def registrar(tmp_path: Path) -> Registrar:
    return Registrar(Settings(data_dir=tmp_path), Kept(), Codec())  # type: ignore[arg-type]


def sent(registrar: Registrar) -> int:
    return len(registrar.publisher.sent)  # type: ignore[attr-defined]


def death(**changes: Any) -> dict[str, Any]:
    return document(EventType.DEATH, **changes)


def conflict(registrar: Registrar, call: Any) -> str:
    before = sent(registrar)
    with pytest.raises(SubmissionConflict) as caught:
        call()
    assert sent(registrar) == before  # nothing published
    ((_, reason),) = caught.value.problems
    return reason


def test_the_same_submission_again_is_the_event_published(registrar: Registrar) -> None:
    first = registrar.submit(EventType.DEATH, death())
    assert registrar.submit(EventType.DEATH, death()) == first
    assert sent(registrar) == 1


def test_other_facts_for_a_published_entry_are_a_conflict(registrar: Registrar) -> None:
    """Published under the same id, they would be applied by whichever services saw them first."""
    first = registrar.submit(EventType.DEATH, death())
    other = death(date_of_death="2026-03-10")
    reason = conflict(registrar, lambda: registrar.submit(EventType.DEATH, other))
    assert reason == (
        f"this register entry was submitted already (reference {first.reference}) with other "
        f"facts: correct {first.reference} instead"
    )


def test_another_offices_entry_is_a_conflict_that_keeps_its_reference(
    registrar: Registrar,
) -> None:
    first = registrar.submit(EventType.DEATH, death())
    other = death(registration={"district": "Leeds", "entry_number": 1042, "office": "YORK-1"})
    reason = conflict(registrar, lambda: registrar.submit(EventType.DEATH, other))
    assert reason == "this register entry was submitted by another office"
    assert first.reference not in reason


def test_a_cancelled_registration_is_not_submitted_again(registrar: Registrar) -> None:
    first = registrar.submit(EventType.DEATH, death())
    registrar.cancel(first.reference, "registered in error")
    reason = conflict(registrar, lambda: registrar.submit(EventType.DEATH, death()))
    assert reason == f"the registration {first.reference} of this register entry was cancelled"


def test_an_amendment_made_from_an_older_revision_is_a_conflict(
    registrar: Registrar, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two amendments made at once from the same revision: the second would supersede what the
    first superseded (a correction after a cancellation, say) and undo it at every service."""
    first = registrar.submit(EventType.DEATH, death())
    stale = registrar.ledger.latest(first.reference)
    registrar.cancel(first.reference, "registered in error")
    monkeypatch.setattr(registrar, "_latest", lambda _reference: stale)  # made before the cancel
    corrected = death(date_of_death="2026-03-10")
    reason = conflict(registrar, lambda: registrar.correct(first.reference, corrected))
    assert reason == (
        f"{first.reference} was cancelled meanwhile (revision 1): send this again if it is still "
        "wanted"
    )


def test_an_event_the_ledger_could_not_record_is_recorded_when_sent_again(
    registrar: Registrar, tmp_path: Path
) -> None:
    """Kafka acknowledged it, but another process held the ledger's lock: the submitter is told
    (it used to be logged only, the reference then unknown here: not correctable, and a
    resubmission published again), and the same submission again records it."""
    holder = sqlite3.connect(tmp_path / "registrar.db", timeout=0)
    holder.execute("BEGIN IMMEDIATE")
    with pytest.raises(NotRecorded):
        registrar.submit(EventType.DEATH, death())
    holder.rollback()
    assert sent(registrar) == 1
    receipt = registrar.submit(EventType.DEATH, death())
    assert sent(registrar) == 2  # the same event again: services take it as a repeat
    assert registrar.ledger.latest(receipt.reference) is not None


@pytest.mark.parametrize(
    ("servers", "secret", "warned"),
    [
        ("kafka1.example:9093,kafka2.example:9093", None, True),
        ("127.0.0.1:9092,localhost:9093,[::1]:9094", None, False),
        ("kafka1.example:9093", "a real secret", False),
    ],
)
def test_the_placeholder_secret_is_flagged_away_from_this_machine(
    tmp_path: Path, servers: str, secret: str | None, warned: bool
) -> None:
    """Kafka keys made with the published placeholder are NINOs anyone can recover."""
    given = {"pseudonym_secret": secret} if secret else {}
    settings = Settings(data_dir=tmp_path, bootstrap_servers=servers, **given)
    with structlog.testing.capture_logs() as logged:
        Registrar(settings, Kept(), Codec())  # type: ignore[arg-type]
    events = [line["event"] for line in logged]
    assert ("pseudonym_secret_is_the_development_placeholder" in events) == warned
