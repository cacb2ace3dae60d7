"""Corrections and cancellations through a service handler and its real (SQLite) store."""

from __future__ import annotations

import contextlib
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from consumers.applier import ServiceHandler
from consumers.seed import MARGARET
from producers.submission import cancellation, correction
from tellusonce.errors import InvalidSubmission, RuleRejected
from tellusonce.events import Confirmation, EventType, LifeEvent
from tellusonce.settings import Settings
from tests.factories import corrected_death, document, event
from tests.handlers import CODEC, handler, pension
from tests.messages import NOWHERE

SETTINGS = Settings()


def last_confirmation(h: ServiceHandler) -> Confirmation:
    confirmation = CODEC.decode(h.store.pending()[-1].payload)
    assert isinstance(confirmation, Confirmation)
    return confirmation


@pytest.fixture
def death() -> LifeEvent[Any]:
    return event(EventType.DEATH)


def refuse_a_correction(h: ServiceHandler, death: LifeEvent[Any]) -> tuple[LifeEvent[Any], Any]:
    """The death applied, the pension changed by hand since, then a correction: refused for
    manual review. The correction, and the pension as the death left it."""
    h.handle(death, NOWHERE)
    stopped = pension(h)
    with h.store.transaction() as tx:
        tx.put(stopped.model_copy(update={"weekly_amount_pence": 1}))
    fix = corrected_death(death, "2026-03-04")
    assert h.handle(fix, NOWHERE) == "rejected"
    return fix, stopped


class TestCorrection:
    """A correction replaces the original's effect instead of adding to it."""

    def test_date_of_death_a_week_earlier_recomputes_overpayment_once(
        self, tmp_path: Path, death: LifeEvent[Any]
    ) -> None:
        """4 days overpaid becomes 11 days overpaid, not 15; stopped from the new day after."""
        h = handler(tmp_path, "pensions")
        assert h.handle(death, NOWHERE) == "applied"
        assert h.handle(corrected_death(death, "2026-03-04"), NOWHERE) == "applied"
        record = pension(h)
        assert (record.stopped_from, record.overpayment_pence) == (
            date(2026, 3, 5),
            23_000 * 11 // 7,
        )
        assert last_confirmation(h).actions[0] == "Correction: the previous decision was replaced"

    def test_correction_of_an_event_never_seen_is_applied_as_new(
        self, tmp_path: Path, death: LifeEvent[Any]
    ) -> None:
        """The service missed the original: the corrected facts are applied, and it says so."""
        h = handler(tmp_path, "pensions")
        assert h.handle(corrected_death(death, "2026-03-04"), NOWHERE) == "applied"
        assert pension(h).overpayment_pence == 23_000 * 11 // 7
        assert "not seen here" in last_confirmation(h).actions[0]

    def test_record_changed_since_is_rejected_for_manual_review(
        self, tmp_path: Path, death: LifeEvent[Any]
    ) -> None:
        """Someone changed the pension after the death: nothing is undone automatically."""
        h = handler(tmp_path, "pensions")
        refuse_a_correction(h, death)
        assert pension(h).weekly_amount_pence == 1
        assert "manual review" in last_confirmation(h).actions[0]


class TestCorrectionSaysWhatItUndid:
    def test_a_record_the_corrected_facts_no_longer_change_is_named(self, tmp_path: Path) -> None:
        """A correction that drops the surviving partner withdrew her bereavement review and
        her widowed status, and its confirmation did not mention her record."""
        h = handler(tmp_path, "pensions")
        death = event(EventType.DEATH)
        h.handle(death, NOWHERE)
        alone = document(EventType.DEATH, surviving_partner=None, marital_status="WIDOWED")
        assert h.handle(correction(death, alone, SETTINGS, None), NOWHERE) == "applied"
        actions = last_confirmation(h).actions
        assert actions[-1].startswith("SP-100002 restored: State Pension in payment")
        assert not any(a.startswith("SP-100001 restored") for a in actions)  # changed again


class TestCancellation:
    """A cancellation leaves records as if the registration had never been made."""

    def test_cancelled_death_reinstates_pension(
        self, tmp_path: Path, death: LifeEvent[Any]
    ) -> None:
        h = handler(tmp_path, "pensions")
        before = pension(h)
        h.handle(death, NOWHERE)
        assert h.handle(cancellation(death, SETTINGS, "registered in error"), NOWHERE) == "applied"
        assert pension(h) == before
        assert last_confirmation(h).actions[1].startswith("SP-100001 restored: State Pension in")

    def test_cancelled_death_restores_council_tax_household(
        self, tmp_path: Path, death: LifeEvent[Any]
    ) -> None:
        h = handler(tmp_path, "council_tax")

        def household() -> Any:
            (account,) = [r for r in h.store.records() if r.record_id == "CT-300001"]
            return account.residents, account.discount

        before = household()
        assert h.handle(death, NOWHERE) == "applied"
        assert household() == ((MARGARET,), "SINGLE_PERSON")
        assert h.handle(cancellation(death, SETTINGS, "registered in error"), NOWHERE) == "applied"
        assert household() == (before[0], "NONE")

    def test_cancelling_what_changed_nothing_is_not_applicable(
        self, tmp_path: Path, death: LifeEvent[Any]
    ) -> None:
        h = handler(tmp_path, "pensions")
        assert h.handle(cancellation(death, SETTINGS, "registered in error"), NOWHERE) == (
            "not_applicable"
        )

    def test_a_cancellation_is_applied_once(self, tmp_path: Path, death: LifeEvent[Any]) -> None:
        h = handler(tmp_path, "pensions")
        h.handle(death, NOWHERE)
        cancel = cancellation(death, SETTINGS, "registered in error")
        assert [h.handle(cancel, NOWHERE), h.handle(cancel, NOWHERE)] == ["applied", "duplicate"]


class TestAfterARefusedCorrection:
    """A correction refused here (the record changed since: manual review) changed nothing, so
    the next amendment acts on what is in place: the registration's effects. A cancellation of
    the refused correction said "it had changed nothing here" and left the pension stopped."""

    def refused(self, h: ServiceHandler, death: LifeEvent[Any]) -> LifeEvent[Any]:
        fix, stopped = refuse_a_correction(h, death)
        with h.store.transaction() as tx:  # the change is put right by hand
            tx.put(stopped)
        return fix

    def test_a_cancellation_then_undoes_the_registration(
        self, tmp_path: Path, death: LifeEvent[Any]
    ) -> None:
        h = handler(tmp_path, "pensions")
        before = pension(h)
        fix = self.refused(h, death)
        assert h.handle(cancellation(fix, SETTINGS, "registered in error"), NOWHERE) == "applied"
        assert pension(h) == before

    def test_a_cancellation_while_the_record_differs_is_refused_too(
        self, tmp_path: Path, death: LifeEvent[Any]
    ) -> None:
        h = handler(tmp_path, "pensions")
        fix, _ = refuse_a_correction(h, death)
        cancel = cancellation(fix, SETTINGS, "registered in error")
        assert h.handle(cancel, NOWHERE) == "rejected"
        assert "manual review" in last_confirmation(h).actions[0]

    def test_a_second_correction_replaces_the_registration(
        self, tmp_path: Path, death: LifeEvent[Any]
    ) -> None:
        h = handler(tmp_path, "pensions")
        fix = self.refused(h, death)
        fixed_again = document(EventType.DEATH, date_of_death="2026-03-04")
        again = correction(fix, fixed_again, SETTINGS, None)
        assert h.handle(again, NOWHERE) == "applied"
        assert pension(h).overpayment_pence == 23_000 * 11 // 7  # not 15 days: 4 were undone


class TestAfterADeadLetteredCorrection:
    """A correction dead-lettered here (its rule failed, a record unreadable) leaves no
    processed row, so a replay after the fix is applied. The chain ran through it all the same:
    its cancellation said "it had changed nothing here" and left the registration's effects in
    place, and the correction replayed after its cancellation was applied."""

    def dead_lettered(self, h: ServiceHandler, death: LifeEvent[Any]) -> LifeEvent[Any]:
        fix = corrected_death(death, "2026-03-04")
        h.reject(fix, RuleRejected("rule failed with ZeroDivisionError"))
        assert last_confirmation(h).outcome == "REJECTED"
        return fix

    def test_the_answer_after_a_replay_is_another_cloudevent(
        self, tmp_path: Path, death: LifeEvent[Any]
    ) -> None:
        """The REJECTED answer and the one after the replay had the same ce_source and ce_id:
        a consumer deduplicating by them, as CloudEvents allows, dropped the second."""
        h = handler(tmp_path, "pensions")
        h.reject(death, RuleRejected("record SP-100001 is unreadable"))
        refused = last_confirmation(h)
        assert h.handle(death, NOWHERE) == "applied"
        applied = last_confirmation(h)
        assert refused.confirmation_id != applied.confirmation_id
        ids = [dict(p.headers)["ce_id"] for p in h.store.pending()]
        assert len(set(ids)) == 2

    @pytest.mark.parametrize("one_batch", [False, True])
    def test_its_cancellation_undoes_the_registration_and_its_replay_does_nothing(
        self, tmp_path: Path, death: LifeEvent[Any], one_batch: bool
    ) -> None:
        h = handler(tmp_path, "pensions")
        before = pension(h)
        assert h.handle(death, NOWHERE) == "applied"
        fix = corrected_death(death, "2026-03-04")
        cancel = cancellation(fix, SETTINGS, "registered in error")
        with h.batch([fix, cancel]) if one_batch else contextlib.nullcontext():
            h.reject(fix, RuleRejected("rule failed with ZeroDivisionError"))
            assert h.handle(cancel, NOWHERE) == "applied"
        assert pension(h) == before
        assert h.handle(fix, NOWHERE) == "not_applicable"  # replayed once its rule was fixed
        assert pension(h) == before
        assert "correction not applied" in last_confirmation(h).actions[0]

    def test_a_second_correction_replaces_the_registration(
        self, tmp_path: Path, death: LifeEvent[Any]
    ) -> None:
        h = handler(tmp_path, "pensions")
        h.handle(death, NOWHERE)
        fix = self.dead_lettered(h, death)
        earlier = document(EventType.DEATH, date_of_death="2026-03-01")
        again = correction(fix, earlier, SETTINGS, None)
        assert h.handle(again, NOWHERE) == "applied"
        assert pension(h).stopped_from == date(2026, 3, 2)
        assert pension(h).overpayment_pence == 23_000 * 14 // 7  # from the registration's undo

    def test_a_registration_replayed_after_its_chain_was_cancelled_is_not_applied(
        self, tmp_path: Path, death: LifeEvent[Any]
    ) -> None:
        """Both the registration and its correction dead-lettered, then the cancellation of the
        correction: the registration, replayed, stopped a living person's pension."""
        h = handler(tmp_path, "pensions")
        before = pension(h)
        h.reject(death, RuleRejected("record SP-100001 is unreadable"))
        fix = self.dead_lettered(h, death)
        assert h.handle(cancellation(fix, SETTINGS, "registered in error"), NOWHERE) == (
            "not_applicable"
        )
        assert [h.handle(death, NOWHERE), h.handle(fix, NOWHERE)] == ["not_applicable"] * 2
        assert pension(h) == before


class TestRegistrationAfterItsAmendment:
    """A registration that comes after its correction or cancellation was processed here (it
    was dead-lettered, and replayed once its rule was fixed) is not applied: replayed after a
    cancellation, it stopped a living person's pension."""

    @pytest.mark.parametrize("one_batch", [False, True])
    def test_after_its_cancellation_it_is_not_applicable(
        self, tmp_path: Path, death: LifeEvent[Any], one_batch: bool
    ) -> None:
        """Processed in batches of their own, or the cancellation first in the same batch."""
        h = handler(tmp_path, "pensions")
        before = pension(h)
        cancel = cancellation(death, SETTINGS, "registered in error")
        with h.batch([cancel, death]) if one_batch else contextlib.nullcontext():
            outcomes = [h.handle(cancel, NOWHERE), h.handle(death, NOWHERE)]
        assert outcomes == ["not_applicable", "not_applicable"]
        assert pension(h) == before
        assert "not applied" in last_confirmation(h).actions[0]

    def test_after_its_correction_only_the_correction_counts(
        self, tmp_path: Path, death: LifeEvent[Any]
    ) -> None:
        h = handler(tmp_path, "pensions")
        assert h.handle(corrected_death(death, "2026-03-04"), NOWHERE) == "applied"
        assert h.handle(death, NOWHERE) == "not_applicable"
        assert pension(h).overpayment_pence == 23_000 * 11 // 7  # the correction's alone


class TestAmendmentEvents:
    """What the producer builds for corrections and cancellations."""

    def test_correction_keeps_reference_and_key_and_counts_revision(
        self, death: LifeEvent[Any]
    ) -> None:
        fixed = corrected_death(death, "2026-03-04")
        assert (fixed.envelope.reference, fixed.envelope.person_ref) == (
            death.envelope.reference,
            death.envelope.person_ref,
        )
        assert (fixed.envelope.revision, fixed.envelope.supersedes) == (1, death.envelope.event_id)

    def test_correction_of_another_register_entry_is_refused(self, death: LifeEvent[Any]) -> None:
        other = document(
            EventType.DEATH, registration={"district": "York", "entry_number": 1, "office": "Y"}
        )
        with pytest.raises(InvalidSubmission, match="register entry"):
            correction(death, other, SETTINGS, None)

    def test_cancelled_registration_cannot_be_cancelled_again(self, death: LifeEvent[Any]) -> None:
        cancelled = cancellation(death, SETTINGS, "registered in error")
        with pytest.raises(InvalidSubmission, match="already cancelled"):
            cancellation(cancelled, SETTINGS, "again")
