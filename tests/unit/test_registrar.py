"""What a registrar publishes for a register entry it published already: the same event again,
or a conflict naming what to do, and nothing published (no broker: a publisher that keeps)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select, text

from producers.submission import Registrar
from tellusonce.codec import Codec
from tellusonce.errors import (
    BrokerUnavailable,
    InvalidSubmission,
    NotRecorded,
    SubmissionConflict,
    UnsafeSettings,
)
from tellusonce.events import EventType
from tellusonce.headers import header
from tellusonce.settings import Settings
from tests.factories import document, event
from tests.integration.conftest import wait_for
from tests.metrics import samples_in_a_new_process
from tests.postgres import Server
from tests.stand_ins import Failing, Kept


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
    monkeypatch.setattr(registrar, "registration", lambda *_args, **_kw: stale)  # made before
    corrected = death(date_of_death="2026-03-10")
    reason = conflict(registrar, lambda: registrar.correct(first.reference, corrected))
    assert reason == (
        f"{first.reference} was cancelled meanwhile (revision 1): send this again if it is still "
        "wanted"
    )


@pytest.fixture
def failing(tmp_path: Path) -> Registrar:
    return Registrar(Settings(data_dir=tmp_path), Failing(), Codec())  # type: ignore[arg-type]


def test_a_submission_the_ledger_cannot_record_is_not_published(
    registrar: Registrar, tmp_path: Path
) -> None:
    """Another process holds the ledger's lock: the event is recorded before it is published."""
    holder = sqlite3.connect(tmp_path / "registrar.db", timeout=0)
    holder.execute("BEGIN IMMEDIATE")
    with pytest.raises(NotRecorded) as caught:
        registrar.submit(EventType.DEATH, death())
    holder.rollback()
    assert (caught.value.published, sent(registrar)) == (False, 0)
    receipt = registrar.submit(EventType.DEATH, death())
    assert sent(registrar) == 1
    assert registrar.ledger.latest(receipt.reference) is not None


def test_an_event_the_ledger_could_not_record_is_recorded_when_sent_again(
    failing: Registrar, tmp_path: Path
) -> None:
    """Kafka acknowledged it, but another process took the ledger's lock meanwhile: the
    submitter is told (it used to be logged only, the reference then unknown here: not
    correctable), and the same submission again records it."""
    holder = sqlite3.connect(tmp_path / "registrar.db", timeout=0, isolation_level=None)
    failing.publisher.meanwhile = lambda: holder.execute("BEGIN IMMEDIATE")  # type: ignore[attr-defined]
    acknowledged = {"event_type": "death", "status": "acknowledged"}
    before = REGISTRY.get_sample_value("tellusonce_events_published_total", acknowledged)
    with pytest.raises(NotRecorded) as caught:
        failing.submit(EventType.DEATH, death())
    holder.rollback()
    assert (caught.value.published, sent(failing)) == (True, 1)
    # counted as Kafka acknowledged it: it was counted nowhere, neither acknowledged nor failed
    after = REGISTRY.get_sample_value("tellusonce_events_published_total", acknowledged)
    assert after == (before or 0) + 1
    failing.publisher.meanwhile = lambda: None  # type: ignore[attr-defined]
    receipt = failing.submit(EventType.DEATH, death())
    assert sent(failing) == 2  # the same event again: services take it as a repeat
    assert failing.submit(EventType.DEATH, death()) == receipt  # now answered from the ledger
    assert sent(failing) == 2


@pytest.mark.parametrize("delivered", [True, False])
def test_other_facts_after_an_unacknowledged_submission_are_a_conflict(
    failing: Registrar, delivered: bool
) -> None:
    """Kafka did not acknowledge the first (it may have reached services all the same): other
    facts under the same event id were published and skipped as a repeat by every service that
    had the first, while the registrar showed them as applied. They are a correction's."""
    publisher = failing.publisher
    publisher.error, publisher.delivered = BrokerUnavailable("no acknowledgement"), delivered  # type: ignore[attr-defined]
    with pytest.raises(BrokerUnavailable):
        failing.submit(EventType.DEATH, death())
    publisher.error = None  # type: ignore[attr-defined]
    first = sent(failing)
    other = death(date_of_death="2026-03-10")
    reason = conflict(failing, lambda: failing.submit(EventType.DEATH, other))
    ref = failing.submit(EventType.DEATH, death()).reference  # the same facts: published again
    assert sent(failing) == first + 1
    assert reason == (
        f"this register entry was submitted (reference {ref}) with other facts, which Kafka has "
        "not acknowledged (they may have reached services): send that submission again once "
        f"Kafka answers, then correct {ref}"
    )
    corrected = failing.correct(ref, death(date_of_death="2026-03-10"))
    assert corrected.action.value == "CORRECTED"


@pytest.mark.parametrize("delivered", [True, False])
@pytest.mark.parametrize("amend", ["correct", "cancel"])
def test_an_amendment_kafka_did_not_acknowledge_is_the_same_event_when_sent_again(
    failing: Registrar, amend: str, delivered: bool
) -> None:
    """Made again from the newest revision recorded, the unacknowledged one: a cancellation was
    refused as "already cancelled" for good, and a correction became revision 2, superseding a
    revision 1 that services never had."""
    first = failing.submit(EventType.DEATH, death())

    def again() -> Any:
        if amend == "correct":
            return failing.correct(first.reference, death(date_of_death="2026-03-10"), "typo")
        return failing.cancel(first.reference, "registered in error")

    publisher = failing.publisher
    publisher.error, publisher.delivered = BrokerUnavailable("no acknowledgement"), delivered  # type: ignore[attr-defined]
    with pytest.raises(BrokerUnavailable):
        again()
    publisher.error = None  # type: ignore[attr-defined]
    receipt = again()
    assert failing.ledger.newest(event_of(failing, receipt)).envelope.revision == 1  # type: ignore[union-attr]
    assert not failing.ledger.unacknowledged(str(receipt.event_id))
    assert failing.ledger.latest(first.reference).envelope.event_id == receipt.event_id  # type: ignore[union-attr]


def test_another_amendment_waits_for_one_kafka_did_not_acknowledge(failing: Registrar) -> None:
    first = failing.submit(EventType.DEATH, death())
    failing.publisher.error = BrokerUnavailable("no acknowledgement")  # type: ignore[attr-defined]
    with pytest.raises(BrokerUnavailable):
        failing.correct(first.reference, death(date_of_death="2026-03-10"), "typo")
    failing.publisher.error = None  # type: ignore[attr-defined]
    reason = conflict(failing, lambda: failing.cancel(first.reference, "registered in error"))
    assert reason == (
        f"{first.reference} was corrected (revision 1), which Kafka has not acknowledged yet: "
        "once it has (sent again, if it failed), send this again if it is still wanted"
    )


def event_of(registrar: Registrar, receipt: Any) -> Any:
    found = registrar.ledger.find(str(receipt.event_id))
    assert found is not None
    return found


def test_a_registration_kafka_did_not_acknowledge_is_sent_again_before_it_is_amended(
    failing: Registrar,
) -> None:
    """`correct` said no registration had that reference: a dead end after exit 3."""
    failing.publisher.error = BrokerUnavailable("no acknowledgement")  # type: ignore[attr-defined]
    with pytest.raises(BrokerUnavailable):
        failing.submit(EventType.DEATH, death())
    failing.publisher.error = None  # type: ignore[attr-defined]
    reference = event(EventType.DEATH).envelope.reference
    reason = conflict(failing, lambda: failing.correct(reference, death(), "typo"))
    assert reason == (
        "Kafka has not acknowledged this registration: submit it again once Kafka answers, then "
        "correct or cancel it"
    )


def test_two_processes_amending_one_reference_at_once_cannot_both_publish(
    failing: Registrar, tmp_path: Path
) -> None:
    """Each checked the ledger before the other recorded: a correction and a cancellation of
    revision 0 both published, each undoing the registration at every service."""
    first = failing.submit(EventType.DEATH, death())
    stale = failing.ledger.latest(first.reference)
    other = Registrar(Settings(data_dir=tmp_path), Kept(), Codec())  # type: ignore[arg-type]
    other._latest = lambda _reference: stale  # type: ignore[method-assign]
    refused: list[str] = []

    def cancel_meanwhile() -> None:  # the other process, while this one's correction publishes
        refused.append(conflict(other, lambda: other.cancel(first.reference, "in error")))

    failing.publisher.meanwhile = cancel_meanwhile  # type: ignore[attr-defined]
    failing.correct(first.reference, death(date_of_death="2026-03-10"))
    assert refused == [  # the correction not acknowledged yet: being published
        f"{first.reference} was corrected (revision 1), which Kafka has not acknowledged yet: "
        "once it has (sent again, if it failed), send this again if it is still wanted"
    ]


@pytest.mark.parametrize(
    ("servers", "secret", "refused"),
    [
        ("kafka1.example:9093,kafka2.example:9093", None, True),
        ("127.0.0.1:9092,kafka1.example:9093", None, True),
        ("127.0.0.1:9092,localhost:9093,[::1]:9094", None, False),
        ("kafka1.example:9093", "a real secret of our own", False),
        ("kafka1.example:9093", " ", True),  # an unset variable's: as easily reversed
        ("kafka1.example:9093", "short", True),
    ],
)
def test_the_placeholder_secret_is_refused_away_from_this_machine(
    tmp_path: Path, servers: str, secret: str | None, refused: bool
) -> None:
    """Kafka keys made with the published placeholder are NINOs anyone can recover (a key was
    reversed in 16 s): it was only a warning in the log, and the registrar published."""
    given = {"pseudonym_secret": secret} if secret else {}
    settings = Settings(data_dir=tmp_path, bootstrap_servers=servers, **given)
    if refused:
        with pytest.raises(UnsafeSettings, match="set TELLUSONCE_PSEUDONYM_SECRET"):
            Registrar(settings, Kept(), Codec())  # type: ignore[arg-type]
        assert not (tmp_path / "registrar.db").exists()  # refused, it makes no store
    else:
        Registrar(settings, Kept(), Codec())  # type: ignore[arg-type]


def test_publish_counters_start_at_zero_in_a_new_registrar(tmp_path: Path) -> None:
    """The first acknowledged or failed publish of each type after a restart was a series'
    first sample (1), which increase() and the publish-failing alert do not see. In a process
    of its own: this one's counters were made by other tests."""
    setup = "from producers.submission import Registrar\nRegistrar(settings, Kept(), Codec())"
    samples = samples_in_a_new_process(setup, "tellusonce_events_published_total", tmp_path)
    types = ("death", "birth", "marriage", "address-change")
    assert samples == {f"{t} {s} 0.0" for t in types for s in ("acknowledged", "failed")}


def test_an_amendment_sent_again_keeps_its_reason_or_is_refused(tmp_path: Path) -> None:
    """A cancellation Kafka did not acknowledge, sent again with another reason, was published
    with the first reason and answered 0, the new one dropped without a word; a cancellation
    acknowledged and sent again was "already cancelled" (exit 2) where a submission or a
    correction sent again answers with what was published."""
    failing = Failing()
    registrar = Registrar(Settings(data_dir=tmp_path), failing, Codec())  # type: ignore[arg-type]
    first = registrar.submit(EventType.DEATH, death())
    failing.error = BrokerUnavailable("no answer")
    with pytest.raises(BrokerUnavailable):
        registrar.cancel(first.reference, "registered in error")
    failing.error = None
    with pytest.raises(SubmissionConflict) as caught:
        registrar.cancel(first.reference, "wrong person")
    assert [p.field for p in caught.value.problems] == ["reason"]
    cancelled = registrar.cancel(first.reference, "registered in error")  # published now
    assert registrar.cancel(first.reference, "registered in error") == cancelled
    with pytest.raises(SubmissionConflict) as caught:
        registrar.cancel(first.reference, "wrong person")
    assert "for another reason" in caught.value.problems[0].reason


def test_advice_after_a_cancellation_and_for_a_correction_fits_the_case(
    registrar: Registrar,
) -> None:
    """Other facts for a cancelled entry were told to "correct REF instead" (which refuses: it
    was cancelled); a correction with a birth's body was told to submit it as a birth; a blank
    reason was said alone, hiding the document's problems."""
    first = registrar.submit(EventType.DEATH, death())
    registrar.cancel(first.reference, "registered in error")
    with pytest.raises(SubmissionConflict) as caught:
        registrar.submit(EventType.DEATH, death(date_of_death="2026-03-10"))
    assert "was cancelled" in caught.value.problems[0].reason
    assert "correct" not in caught.value.problems[0].reason

    other = registrar.submit(EventType.DEATH, death(registration=_entry(7)))
    with pytest.raises(InvalidSubmission) as caught:
        registrar.correct(other.reference, document(EventType.BIRTH), "  ")
    said = dict(caught.value.problems)
    assert said["reason"] == "must not be blank"
    assert said["(document)"] == (
        f"is a birth registration, not a death: a correction of {other.reference} is a whole "
        "death submission"
    )


def _entry(number: int) -> dict[str, Any]:
    return {"district": "Leeds", "entry_number": number, "office": "LEEDS-RO-1"}


def test_an_event_an_earlier_try_may_have_published_is_kept_when_refused_as_too_large(
    failing: Registrar,
) -> None:
    """Sent again after Kafka did not acknowledge it (it may have reached services), then
    refused as too large: the ledger forgot it, and the registrar said nothing was published
    of what services had."""
    from tellusonce.errors import MessageTooLarge

    publisher = failing.publisher
    publisher.error, publisher.delivered = BrokerUnavailable("no acknowledgement"), True  # type: ignore[attr-defined]
    with pytest.raises(BrokerUnavailable):
        failing.submit(EventType.DEATH, death())
    publisher.error, publisher.delivered = MessageTooLarge("the topic's limit lowered"), False  # type: ignore[attr-defined]
    with pytest.raises(MessageTooLarge):
        failing.submit(EventType.DEATH, death())
    (sent,) = publisher.sent  # type: ignore[attr-defined]
    event_id = header(sent.headers, "ce_id")
    assert failing.ledger.unacknowledged(event_id)  # kept: it may have gone out


def test_a_new_event_refused_as_too_large_is_not_kept(failing: Registrar) -> None:
    from tellusonce.errors import MessageTooLarge

    failing.publisher.error = MessageTooLarge("larger than the topic takes")  # type: ignore[attr-defined]
    with pytest.raises(MessageTooLarge):
        failing.submit(EventType.DEATH, death())
    with failing.ledger.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM submissions").scalar() == 0


def test_two_processes_on_postgresql_cannot_both_amend_one_reference(
    postgres: Server, tmp_path: Path
) -> None:
    """Two registrar processes (the API and a CLI run, each its own ledger) on one PostgreSQL
    ledger: the CLI cancels a reference while the API, having checked it unamended, is about to
    record a correction of it. The cancellation waits for the correction's write lock, then is
    refused as made from a reference amended since; without the lock both were published."""
    settings = Settings(data_dir=tmp_path, store_url=postgres.fresh())
    api = Registrar(settings, Kept(), Codec())  # type: ignore[arg-type]
    cli = Registrar(settings, Kept(), Codec())  # type: ignore[arg-type]
    first = api.submit(EventType.DEATH, death())
    correction = api.correction_of(first.reference, death(date_of_death="2026-03-04"), "misread")
    cancellation = cli.cancellation_of(first.reference, "registered in error")
    refused: list[Exception] = []

    def cancel() -> None:
        try:
            cli.publish_once(cancellation)
        except SubmissionConflict as exc:
            refused.append(exc)

    other = threading.Thread(target=cancel)
    waiting = select(func.count()).select_from(text("pg_locks")).where(text("NOT granted"))
    checked = api.earlier

    def earlier_while_the_cli_cancels(event: Any, reason_field: str = "reason") -> Any:
        found = checked(event, reason_field)  # the reference is unamended
        other.start()
        with api.ledger.engine.connect() as conn:  # the cancellation waits for the lock
            wait_for(lambda: conn.execute(waiting).scalar(), "the CLI waiting for the lock", 10)
        return found

    api.earlier = earlier_while_the_cli_cancels  # type: ignore[method-assign]
    try:
        _, published = api.publish_once(correction, "correction_reason")
        other.join(30)
        under = [e.envelope.action.value for e, _ in api.ledger.under(first.reference)]
    finally:
        for registrar in (api, cli):
            registrar.ledger.engine.dispose()
    assert published
    assert [type(e) for e in refused] == [SubmissionConflict]
    assert sent(cli) == 0
    assert under == ["REGISTERED", "CORRECTED"]


def test_an_event_refused_in_a_batch_too_large_is_not_kept_to_block_its_entry(
    failing: Registrar,
) -> None:
    """Batched with other threads' messages, the batch was refused as too large ("not
    acknowledged": kept, as it might have gone out); sent again alone and refused as too large,
    it stayed kept, unacknowledged, for ever: every submission of its register entry with
    other facts a 409 ("send that submission again once Kafka answers")."""
    from tellusonce.errors import MessageTooLarge

    publisher = failing.publisher
    refused = BrokerUnavailable("the topic refused a batch holding them as too large", False)
    publisher.error = refused  # type: ignore[attr-defined]
    with pytest.raises(BrokerUnavailable):
        failing.submit(EventType.DEATH, death())
    publisher.error = MessageTooLarge("larger than the topic takes")  # type: ignore[attr-defined]
    with pytest.raises(MessageTooLarge):
        failing.submit(EventType.DEATH, death())
    with failing.ledger.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM submissions").scalar() == 0
    publisher.error = None  # type: ignore[attr-defined]
    smaller = failing.submit(EventType.DEATH, death(date_of_death="2026-03-10"))
    assert failing.ledger.find(str(smaller.event_id)) is not None  # not a conflict


def test_the_same_correction_sent_again_after_a_cancellation_is_a_conflict(
    registrar: Registrar,
) -> None:
    """A correction sent again, made before the registration was cancelled and published
    after, was answered with the correction (200), as if it stood: it is a 409 now, as any
    amendment made from a revision amended since."""
    first = registrar.submit(EventType.DEATH, death())
    fixed = death(date_of_death="2026-03-10")
    registrar.correct(first.reference, fixed, "date misread")
    again = registrar.correction_of(first.reference, fixed, "date misread")  # the API builds it
    registrar.cancel(first.reference, "registered in error")  # meanwhile, from another process
    said = conflict(registrar, lambda: registrar.publish_once(again))
    assert "cancelled meanwhile" in said
