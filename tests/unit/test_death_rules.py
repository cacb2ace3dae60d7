"""Each service's death rule as a pure function: applied, no record, not applicable."""

from __future__ import annotations

from datetime import date
from typing import Any

from consumers import council_tax, disability, housing_benefit, pensions
from consumers.money import describe, pounds, settle
from consumers.rules import Record
from consumers.seed import ARTHUR, HOME, MARGARET
from tellusonce.events import EventType, LifeEvent, MaritalStatus, Outcome
from tests.factories import event, record

HERO_DEATH = event(EventType.DEATH)  # Arthur, died 2026-03-11, Margaret survives him


def matches(deceased: Record | None, partner: Record | None = None) -> dict[str, Record | None]:
    return {"deceased": deceased, "partner": partner}


class TestMoney:
    """Settling a weekly payment at a date of death, in integer pence."""

    def test_paid_beyond_death_is_an_overpayment_rounded_down(self) -> None:
        """£230/week paid 4 days past death: 23000 * 4 // 7 = 13142 pence."""
        assert settle(23_000, date(2026, 3, 15), date(2026, 3, 11)) == (13_142, 0, 4)

    def test_paid_short_of_death_is_arrears(self) -> None:
        """Paid to 3 days before death: arrears due to the estate."""
        assert settle(7_000, date(2026, 3, 8), date(2026, 3, 11)) == (0, 3_000, 3)

    def test_arrears_are_rounded_up(self) -> None:
        """£221.65/week unpaid for 3 days: 22165 * 3 / 7 = 9499.29 pence, owed as 9500 (the
        rounding is in the family's favour either way)."""
        assert settle(22_165, date(2026, 3, 8), date(2026, 3, 11)) == (0, 9_500, 3)

    def test_paid_to_the_day_of_death_settles_nothing(self) -> None:
        """Paid exactly to the date of death: nothing either way."""
        assert settle(7_000, date(2026, 3, 11), date(2026, 3, 11)) == (0, 0, 0)

    def test_one_day_is_a_day(self) -> None:
        """It said "(1 days paid after death)"."""
        (overpaid,) = describe(settle(7_000, date(2026, 3, 12), date(2026, 3, 11)), "DLA")
        assert overpaid == "DLA overpayment £10.00 recorded (1 day paid after death)"

    def test_pounds_format(self) -> None:
        """Pence render as pounds with thousands separators."""
        assert pounds(123_456) == "£1,234.56"
        assert pounds(5) == "£0.05"


class TestPensionsDeath:
    """State Pension stops from the day after death, settled; a pensioner widow is flagged."""

    def test_death_of_pensioner_stops_pension_and_records_overpayment(self) -> None:
        """Arthur's pension stops from 12 March with £131.42 overpaid."""
        decision = pensions.on_death(
            HERO_DEATH, matches(record("pensions", "SP-100001"), record("pensions", "SP-100002"))
        )
        assert decision.outcome == Outcome.APPLIED
        stopped, widow = decision.changed
        assert (stopped.status, stopped.stopped_from, stopped.overpayment_pence) == (
            "STOPPED",
            date(2026, 3, 12),
            13_142,
        )
        assert pensions.BEREAVEMENT_REVIEW in widow.flags
        assert widow.marital_status == MaritalStatus.WIDOWED
        assert decision.actions[0] == "State Pension stopped from 2026-03-12"

    def test_death_of_someone_without_pension_is_no_record(self) -> None:
        """Nobody matched: NO_RECORD and nothing changed."""
        decision = pensions.on_death(HERO_DEATH, matches(None))
        assert (decision.outcome, decision.changed) == (Outcome.NO_RECORD, ())

    def test_pension_already_stopped_is_not_applicable(self) -> None:
        """A second death notice for a stopped pension changes nothing."""
        stopped = record("pensions", "SP-100001").model_copy(
            update={"status": "STOPPED", "stopped_from": date(2026, 3, 12)}
        )
        decision = pensions.on_death(HERO_DEATH, matches(stopped))
        assert (decision.outcome, decision.changed) == (Outcome.NOT_APPLICABLE, ())

    def test_partner_without_pension_is_not_flagged(self) -> None:
        """Only a partner who draws State Pension is flagged for review."""
        decision = pensions.on_death(HERO_DEATH, matches(record("pensions", "SP-100001")))
        assert len(decision.changed) == 1

    def test_a_pensioner_widow_is_flagged_whatever_the_deceased_drew(self) -> None:
        """The rule answered NO_RECORD (or "already stopped") for the deceased before looking
        at the partner: a widow who draws State Pension was not flagged."""
        widow = record("pensions", "SP-100002")
        stopped = record("pensions", "SP-100001").model_copy(
            update={"status": "STOPPED", "stopped_from": date(2026, 3, 1)}
        )
        for deceased in (None, stopped):
            decision = pensions.on_death(HERO_DEATH, matches(deceased, widow))
            assert decision.outcome == Outcome.APPLIED
            (flagged,) = decision.changed
            assert (flagged.record_id, flagged.marital_status) == (
                "SP-100002",
                MaritalStatus.WIDOWED,
            )
            assert flagged.flags.count(pensions.BEREAVEMENT_REVIEW) == 1
            assert decision.service_reference == "SP-100002"
            again = pensions.on_death(HERO_DEATH, matches(deceased, flagged))
            assert (again.outcome, again.changed) == (Outcome.NOT_APPLICABLE, ())


class TestDisabilityDeath:
    """Every disability award in payment stops from the day after death."""

    def test_death_stops_every_award_with_overpayments(self) -> None:
        """Both DLA components stop; 11 days overpaid on each."""
        decision = disability.on_death(HERO_DEATH, matches(record("disability", "DLA-200001")))
        assert decision.outcome == Outcome.APPLIED
        (changed,) = decision.changed
        assert [a.status for a in changed.awards] == ["STOPPED", "STOPPED"]
        assert [a.overpayment_pence for a in changed.awards] == [7_390 * 11 // 7, 2_920 * 11 // 7]

    def test_no_award_in_payment_is_not_applicable(self) -> None:
        """A claimant whose awards all stopped already: NOT_APPLICABLE."""
        claimant = record("disability", "DLA-200001")
        stopped = claimant.model_copy(
            update={
                "awards": tuple(a.model_copy(update={"status": "STOPPED"}) for a in claimant.awards)
            }
        )
        assert disability.on_death(HERO_DEATH, matches(stopped)).outcome == Outcome.NOT_APPLICABLE

    def test_no_claimant_is_no_record(self) -> None:
        """Nobody matched: NO_RECORD."""
        assert disability.on_death(HERO_DEATH, matches(None)).outcome == Outcome.NO_RECORD


class TestCouncilTaxDeath:
    """The deceased leaves the account; the discount follows the adults left."""

    def test_one_adult_left_gets_single_person_discount(self) -> None:
        """Margaret alone: 25% off £1,980.00 is £1,485.00."""
        decision = council_tax.on_death(HERO_DEATH, matches(record("council_tax", "CT-300001")))
        (account,) = decision.changed
        assert account.residents == (MARGARET,)
        assert (account.discount, account.charge_pence()) == ("SINGLE_PERSON", 148_500)

    def test_nobody_left_gets_class_f_exemption(self) -> None:
        """A sole resident's death: Class F, nothing charged."""
        alone = council_tax.CouncilTaxAccount(
            record_id="CT-1",
            property=HOME,
            residents=(ARTHUR,),
            annual_charge_pence=150_000,
            discount="SINGLE_PERSON",
        )
        (account,) = council_tax.on_death(HERO_DEATH, matches(alone)).changed
        assert (account.residents, account.discount, account.charge_pence()) == ((), "CLASS_F", 0)

    def test_two_adults_left_keep_the_full_charge(self) -> None:
        """Three adults, one dies: no discount."""
        third = MARGARET.model_copy(update={"given_names": "Ruth", "nino": "JT111111C"})
        busy = council_tax.CouncilTaxAccount(
            record_id="CT-2",
            property=HOME,
            residents=(ARTHUR, MARGARET, third),
            annual_charge_pence=150_000,
        )
        decision = council_tax.on_death(HERO_DEATH, matches(busy))
        (account,) = decision.changed
        assert (len(account.residents), account.discount) == (2, "NONE")
        assert decision.actions[-1].startswith("Discount unchanged")

    def test_no_account_is_no_record(self) -> None:
        """Nobody matched: NO_RECORD."""
        assert council_tax.on_death(HERO_DEATH, matches(None)).outcome == Outcome.NO_RECORD


class TestHousingBenefitDeath:
    """Claimant's death ends the claim; a partner's or child's death reassesses it."""

    def test_death_of_claimant_ends_claim_and_flags_partner(self) -> None:
        """Arthur was the claimant: claim ends from 12 March, Margaret invited to claim."""
        decision = housing_benefit.on_death(
            HERO_DEATH, matches(record("housing_benefit", "HB-500001"))
        )
        (claim,) = decision.changed
        assert (claim.status, claim.ended_from) == ("ENDED", date(2026, 3, 12))
        assert housing_benefit.PARTNER_TO_CLAIM in claim.flags

    def test_death_of_partner_reassesses_as_single(self) -> None:
        """Arthur as the partner: he leaves the claim, which is reassessed as single."""
        claim = housing_benefit.HousingBenefitClaim(
            record_id="HB-1",
            claimant=MARGARET,
            partner=ARTHUR,
            address=HOME,
            weekly_award_pence=9_000,
        )
        (changed,) = housing_benefit.on_death(HERO_DEATH, matches(claim)).changed
        assert (changed.status, changed.partner) == ("ACTIVE", None)
        assert housing_benefit.REASSESS in changed.flags

    def test_ended_claim_is_not_applicable(self) -> None:
        """A claim that already ended is left alone."""
        ended = record("housing_benefit", "HB-500001").model_copy(update={"status": "ENDED"})
        assert (
            housing_benefit.on_death(HERO_DEATH, matches(ended)).outcome == Outcome.NOT_APPLICABLE
        )

    def test_no_claim_is_no_record(self) -> None:
        """Nobody matched: NO_RECORD."""
        assert housing_benefit.on_death(HERO_DEATH, matches(None)).outcome == Outcome.NO_RECORD


def test_hero_event_is_the_seeded_couple() -> None:
    """The example death names the seeded couple (so the demo matches by NINO)."""
    death: LifeEvent[Any] = HERO_DEATH
    assert (death.facts.deceased, death.facts.surviving_partner) == (ARTHUR, MARGARET)
