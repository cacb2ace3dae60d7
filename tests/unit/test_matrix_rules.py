"""Every cell of the subscription matrix beyond death: applied, no record, not applicable."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from consumers import council_tax, disability, housing_benefit, pensions
from consumers.rules import Record
from consumers.seed import ARTHUR, HOME, MARGARET
from consumers.services import SERVICES
from tellusonce.events import (
    SERVICE_PATTERN,
    Address,
    EventType,
    MaritalStatus,
    Outcome,
    Person,
)
from tellusonce.topics import matrix, subscriptions
from tests.factories import NEW_HOME, event, move, record
from tests.handlers import handler
from tests.messages import NOWHERE

AWAY = Address(lines=("1 Far Street", "Cardiff"), postcode="CF10 1AA")


def wedding(home: Address = HOME) -> Any:
    """Margaret (widowed, say) marries Ruth in a civil partnership; they live at `home`."""
    ruth = {
        "given_names": "Ruth",
        "family_name": "Ellis",
        "date_of_birth": "1952-03-03",
        "nino": "JT222222C",
    }
    return event(
        EventType.MARRIAGE,
        kind="CIVIL_PARTNERSHIP",
        parties=[
            {
                "person": MARGARET.model_dump(mode="json"),
                "address_before": HOME.model_dump(mode="json"),
            },
            {
                "person": ruth,
                "family_name_after": None,
                "address_before": AWAY.model_dump(mode="json"),
            },
        ],
        address_after=home.model_dump(mode="json"),
    )


def baby() -> Any:
    return event(
        EventType.BIRTH,
        parents=[ARTHUR.model_dump(mode="json")],
        address=HOME.model_dump(mode="json"),
    )


def roles(**found: Record | None) -> dict[str, Record | None]:
    return dict(found)


def test_every_matrix_cell_has_a_rule_and_no_rule_is_outside_it() -> None:
    """Each service has exactly the rules for the event types it is entitled to."""
    for name, subscription in subscriptions().items():
        if not subscription.external:
            assert set(subscription.events) == set(SERVICES[name].rules), name


class TestPensions:
    """Marriage and address change for State Pension."""

    def test_marriage_records_civil_partnership_and_partner(self) -> None:
        decision = pensions.on_marriage(wedding(), roles(party1=record("pensions", "SP-100002")))
        (changed,) = decision.changed
        assert decision.outcome == Outcome.APPLIED
        assert (changed.marital_status, changed.partner.given_names) == (
            MaritalStatus.CIVIL_PARTNERSHIP,
            "Ruth",
        )

    def test_the_partner_is_recorded_by_the_name_after_the_marriage(self) -> None:
        """The partner was kept by the name before it, while the pensioner took the new one."""
        union = wedding()
        ruth = union.facts.parties[1].model_copy(update={"family_name_after": "Thompson"})
        facts = union.facts.model_copy(update={"parties": (union.facts.parties[0], ruth)})
        union = union.model_copy(update={"facts": facts})
        decision = pensions.on_marriage(union, roles(party1=record("pensions", "SP-100002")))
        (changed,) = decision.changed
        assert changed.partner.family_name == "Thompson"

    def test_marriage_already_recorded_is_not_applicable(self) -> None:
        first = pensions.on_marriage(wedding(), roles(party1=record("pensions", "SP-100002")))
        again = pensions.on_marriage(wedding(), roles(party1=first.changed[0]))
        assert again.outcome == Outcome.NOT_APPLICABLE

    def test_marriage_of_non_pensioners_is_no_record(self) -> None:
        assert pensions.on_marriage(wedding(), roles(party1=None, party2=None)).outcome == (
            Outcome.NO_RECORD
        )

    def test_move_updates_address(self) -> None:
        decision = pensions.SERVICE.rules[EventType.ADDRESS_CHANGE](
            move(ARTHUR), roles(mover1=record("pensions", "SP-100001"))
        )
        assert (decision.outcome, decision.changed[0].address) == (Outcome.APPLIED, NEW_HOME)

    def test_move_to_the_same_address_is_not_applicable(self) -> None:
        moved = record("pensions", "SP-100001").model_copy(update={"address": NEW_HOME})
        rule = pensions.SERVICE.rules[EventType.ADDRESS_CHANGE]
        assert rule(move(ARTHUR), roles(mover1=moved)).outcome == Outcome.NOT_APPLICABLE

    def test_move_of_non_pensioner_is_no_record(self) -> None:
        rule = pensions.SERVICE.rules[EventType.ADDRESS_CHANGE]
        assert rule(move(ARTHUR), roles(mover1=None)).outcome == Outcome.NO_RECORD


class TestDisability:
    """Address change for disability benefits."""

    @pytest.mark.parametrize(
        ("matched_record", "expected"),
        [
            (record("disability", "DLA-200001"), Outcome.APPLIED),
            (
                record("disability", "DLA-200001").model_copy(update={"address": NEW_HOME}),
                Outcome.NOT_APPLICABLE,
            ),
            (None, Outcome.NO_RECORD),
        ],
    )
    def test_move(self, matched_record: Record | None, expected: Outcome) -> None:
        rule = disability.SERVICE.rules[EventType.ADDRESS_CHANGE]
        assert rule(move(ARTHUR), roles(mover1=matched_record)).outcome == expected


class TestCouncilTax:
    """Marriage and address change for Council Tax."""

    def widow_account(self) -> council_tax.CouncilTaxAccount:
        return record("council_tax", "CT-300001").model_copy(
            update={"residents": (MARGARET,), "discount": "SINGLE_PERSON"}
        )

    def test_partner_joining_ends_single_person_discount(self) -> None:
        decision = council_tax.on_marriage(wedding(), roles(party1=self.widow_account()))
        (account,) = decision.changed
        assert (len(account.residents), account.discount, account.charge_pence()) == (
            2,
            "NONE",
            198_000,
        )

    def test_a_partner_joining_leaves_their_own_former_account(self) -> None:
        """Grace joined Chidi's account and stayed on her flat's, counted at two homes; her
        flatmate missed the single person discount. And the couple's home written as the
        registrar typed it ("3 OAK STREET,") was not the account's property."""
        chidi = Person(given_names="Chidi", family_name="Okafor", date_of_birth=date(1990, 1, 15))
        grace = Person(given_names="Grace", family_name="Obi", date_of_birth=date(1991, 4, 22))
        mate = Person(given_names="Flat", family_name="Mate", date_of_birth=date(1985, 1, 1))
        oak = Address(lines=("3 Oak Street", "Leeds"), postcode="LS1 2AB")
        birch = Address(lines=("9 Birch Lane", "Leeds"), postcode="LS2 3DF")
        his = record("council_tax", "CT-300001").model_copy(
            update={"record_id": "CT-A", "property": oak, "residents": (chidi,)}
        )
        hers = his.model_copy(
            update={"record_id": "CT-G", "property": birch, "residents": (grace, mate)}
        )
        parties = [(chidi, oak), (grace, birch)]
        union = event(
            EventType.MARRIAGE,
            parties=[
                {"person": p.model_dump(mode="json"), "address_before": a.model_dump(mode="json")}
                for p, a in parties
            ],
            address_after={"lines": ["3 OAK STREET,", "LEEDS"], "postcode": "LS1 2AB"},
        )
        decision = council_tax.on_marriage(union, roles(party1=his, party2=hers))
        home, former = decision.changed
        assert (home.record_id, len(home.residents), home.discount) == ("CT-A", 2, "NONE")
        assert (former.record_id, former.residents, former.discount) == (
            "CT-G",
            (mate,),
            "SINGLE_PERSON",
        )

    def test_couple_living_elsewhere_is_not_applicable(self) -> None:
        decision = council_tax.on_marriage(wedding(home=AWAY), roles(party1=self.widow_account()))
        assert decision.outcome == Outcome.NOT_APPLICABLE

    def test_marriage_of_people_without_account_is_no_record(self) -> None:
        assert council_tax.on_marriage(wedding(), roles(party1=None)).outcome == Outcome.NO_RECORD

    def test_a_couple_marrying_into_a_household_join_its_account(self) -> None:
        """Neither party on an account here, their home after the union on one (a parent's,
        single person discount): NO_RECORD, the discount kept for a household of three."""
        parent = Person(given_names="Joan", family_name="Ellis", date_of_birth=date(1930, 1, 1))
        account = record("council_tax", "CT-300001").model_copy(
            update={
                "record_id": "CT-J",
                "property": AWAY,
                "residents": (parent,),
                "discount": "SINGLE_PERSON",
            }
        )
        union = wedding(home=AWAY)
        decision = council_tax.on_marriage(union, roles(party1=None, party2=None, home=account))
        (joined,) = decision.changed
        assert [p.given_names for p in joined.residents] == ["Joan", "Margaret", "Ruth"]  # type: ignore[attr-defined]
        assert joined.discount == "NONE"  # type: ignore[attr-defined]
        assert decision.service_reference == "CT-J"

    def test_move_within_area_closes_old_and_opens_new_account(self) -> None:
        decision = council_tax.on_address_change(
            move(ARTHUR, MARGARET), roles(mover1=record("council_tax", "CT-300001"))
        )
        closed, opened = decision.changed
        assert (closed.status, closed.closed_from) == ("CLOSED", date(2025, 1, 6))
        assert (opened.property, opened.discount, opened.annual_charge_pence) == (
            NEW_HOME,
            "NONE",
            None,
        )

    def test_moves_whose_event_ids_share_a_prefix_open_two_accounts(self) -> None:
        """The new account is named by the whole event id: two moves whose ids begin alike
        (one pair in 4 billion; over a million moves, about a hundred pairs) must not open the
        same account, the second overwriting the first household's."""
        first = move(ARTHUR, MARGARET)
        twin_id = UUID(first.envelope.event_id.hex[:8] + "0" * 24)
        second = first.model_copy(
            update={"envelope": first.envelope.model_copy(update={"event_id": twin_id})}
        )
        account = roles(mover1=record("council_tax", "CT-300001"))
        opened = [
            council_tax.on_address_change(e, account).changed[-1].record_id for e in (first, second)
        ]
        assert opened[0] != opened[1]

    def test_a_closed_account_is_no_record(self) -> None:
        """Nothing more happens to an account closed when its residents left (a store indexed
        before closed accounts stopped matching can still find one)."""
        closed = record("council_tax", "CT-300001").model_copy(update={"status": "CLOSED"})
        assert closed.people() == []
        for decision in (
            council_tax.on_death(event(EventType.DEATH), roles(deceased=closed)),
            council_tax.on_address_change(move(ARTHUR), roles(mover1=closed)),
            council_tax.on_marriage(wedding(), roles(party1=closed)),
        ):
            assert decision.outcome == Outcome.NO_RECORD

    def test_a_death_after_moving_away_leaves_the_closed_account_alone(
        self, tmp_path: Path
    ) -> None:
        """Through the store: the couple moved out of the area, their account closed; Arthur's
        death months later found it still, and set a Class F exemption on a closed account."""
        h = handler(tmp_path, "council_tax")
        assert h.handle(move(ARTHUR, MARGARET, new=AWAY), NOWHERE) == "applied"
        assert h.handle(event(EventType.DEATH), NOWHERE) == "no_record"
        (account,) = [r for r in h.store.records() if r.record_id == "CT-300001"]
        assert (account.status, account.closed_from, account.discount) == (
            "CLOSED",
            date(2025, 1, 6),
            "NONE",
        )

    def test_move_of_one_resident_out_of_area_leaves_single_person_discount(self) -> None:
        decision = council_tax.on_address_change(
            move(ARTHUR, new=AWAY), roles(mover1=record("council_tax", "CT-300001"))
        )
        (account,) = decision.changed
        assert (account.residents, account.discount) == ((MARGARET,), "SINGLE_PERSON")

    def test_adults_moving_out_leaving_a_child_is_not_class_f(self) -> None:
        """Class F, "the estate is responsible", was given when the adults moved away from a
        child: it is for a liable person who died."""
        child = Person(given_names="Amy", family_name="Thompson", date_of_birth=date(2015, 1, 1))
        home = record("council_tax", "CT-300001")
        home = home.model_copy(update={"residents": (*home.residents, child)})
        decision = council_tax.on_address_change(move(ARTHUR, MARGARET), roles(mover1=home))
        left = decision.changed[0]
        assert (left.residents, left.discount) == ((child,), "NO_ADULT")
        assert left.charge_pence() == 198_000
        assert not any("Class F" in action for action in decision.actions)

    def test_move_of_someone_without_account_is_no_record(self) -> None:
        assert council_tax.on_address_change(move(ARTHUR), roles(mover1=None)).outcome == (
            Outcome.NO_RECORD
        )

    def test_children_do_not_count_as_adults(self) -> None:
        """One adult and a baby: single person discount."""
        child = MARGARET.model_copy(update={"date_of_birth": date(2024, 1, 1), "nino": None})
        assert council_tax.adults((MARGARET, child), date(2026, 1, 1)) == 1


class TestHousingBenefit:
    """Birth, marriage and address change for Housing Benefit."""

    def claim(self) -> housing_benefit.HousingBenefitClaim:
        return record("housing_benefit", "HB-500001")

    def test_birth_adds_child_and_reassesses(self) -> None:
        decision = housing_benefit.on_birth(baby(), roles(parent1=self.claim()))
        (claim,) = decision.changed
        assert (len(claim.children), claim.reassess_from) == (1, date(2024, 6, 2))
        assert housing_benefit.REASSESS in claim.flags

    def test_a_birth_to_parents_living_apart_goes_to_the_claim_at_the_childs_address(
        self,
    ) -> None:
        """Each parent holds a claim: the child was added to the first parent's, in Newport,
        though registered at the other's, in Cardiff, the household the child lives in."""
        born = baby()
        first_parent = self.claim()
        at_the_childs = first_parent.model_copy(
            update={"record_id": "HB-P2", "address": born.facts.address}
        )
        elsewhere = first_parent.model_copy(update={"address": AWAY})
        decision = housing_benefit.on_birth(born, roles(parent1=elsewhere, parent2=at_the_childs))
        (claim,) = decision.changed
        assert (claim.record_id, len(claim.children)) == ("HB-P2", 1)
        assert decision.service_reference == "HB-P2"

    def test_birth_already_recorded_is_not_applicable(self) -> None:
        first = housing_benefit.on_birth(baby(), roles(parent1=self.claim())).changed[0]
        assert housing_benefit.on_birth(baby(), roles(parent1=first)).outcome == (
            Outcome.NOT_APPLICABLE
        )

    def test_birth_to_parents_without_claim_is_no_record(self) -> None:
        assert housing_benefit.on_birth(baby(), roles(parent1=None)).outcome == Outcome.NO_RECORD

    def test_marriage_adds_partner(self) -> None:
        single = self.claim().model_copy(update={"claimant": MARGARET, "partner": None})
        (claim,) = housing_benefit.on_marriage(wedding(), roles(party1=single)).changed
        assert claim.partner.given_names == "Ruth"

    def test_two_claimants_marrying_keep_one_claim_the_one_at_their_home(self) -> None:
        """Grace's own claim went on beside the couple's: the household paid twice."""
        hers = self.claim().model_copy(update={"claimant": MARGARET, "partner": None})
        union = wedding(home=AWAY)
        ruth = union.facts.parties[1].person
        theirs = hers.model_copy(update={"record_id": "HB-R", "claimant": ruth, "address": AWAY})
        decision = housing_benefit.on_marriage(union, roles(party1=hers, party2=theirs))
        couple, ended = decision.changed
        assert (couple.record_id, couple.partner.given_names) == ("HB-R", "Margaret")
        assert (ended.record_id, ended.status, ended.ended_from) == (
            "HB-500001",
            "ENDED",
            union.facts.married_on,
        )
        assert decision.service_reference == "HB-R"

    def test_marriage_to_existing_partner_is_not_applicable(self) -> None:
        single = self.claim().model_copy(update={"claimant": MARGARET, "partner": None})
        first = housing_benefit.on_marriage(wedding(), roles(party1=single)).changed[0]
        assert housing_benefit.on_marriage(wedding(), roles(party1=first)).outcome == (
            Outcome.NOT_APPLICABLE
        )

    def test_marriage_without_claim_is_no_record(self) -> None:
        assert housing_benefit.on_marriage(wedding(), roles(party1=None)).outcome == (
            Outcome.NO_RECORD
        )

    def test_move_ends_claim_and_asks_for_new_one(self) -> None:
        decision = housing_benefit.on_address_change(move(ARTHUR), roles(mover1=self.claim()))
        (claim,) = decision.changed
        assert (claim.status, claim.ended_from) == ("ENDED", date(2025, 1, 6))
        assert housing_benefit.NEW_CLAIM in claim.flags

    def test_move_of_ended_claim_is_not_applicable(self) -> None:
        ended = self.claim().model_copy(update={"status": "ENDED"})
        assert housing_benefit.on_address_change(move(ARTHUR), roles(mover1=ended)).outcome == (
            Outcome.NOT_APPLICABLE
        )

    def test_move_without_claim_is_no_record(self) -> None:
        assert housing_benefit.on_address_change(move(ARTHUR), roles(mover1=None)).outcome == (
            Outcome.NO_RECORD
        )

    def ended(self, record_id: str = "HB-1") -> housing_benefit.HousingBenefitClaim:
        return self.claim().model_copy(
            update={"record_id": record_id, "status": "ENDED", "ended_from": date(2020, 1, 1)}
        )

    def test_the_active_claim_is_found_whichever_party_holds_it(self) -> None:
        """One party's claim ended years ago, the other's goes on: the event is for the one
        that goes on (it was NOT_APPLICABLE whenever the ended claim came first)."""
        single = self.claim().model_copy(update={"claimant": MARGARET, "partner": None})
        married = housing_benefit.on_marriage(wedding(), roles(party1=self.ended(), party2=single))
        born = housing_benefit.on_birth(baby(), roles(parent1=self.ended(), parent2=self.claim()))
        for decision in (married, born):
            assert (decision.outcome, decision.service_reference) == (
                Outcome.APPLIED,
                "HB-500001",
            )

    def test_a_move_ends_every_active_claim_of_the_movers(self) -> None:
        second = self.claim().model_copy(update={"record_id": "HB-2", "claimant": MARGARET})
        decision = housing_benefit.on_address_change(
            move(ARTHUR, MARGARET),
            roles(mover1=self.claim(), mover2=second, mover3=self.ended("HB-3")),
        )
        assert [(c.record_id, c.status) for c in decision.changed] == [
            ("HB-500001", "ENDED"),
            ("HB-2", "ENDED"),
        ]

    def test_a_partner_or_child_moving_out_leaves_the_claim_going_on(self) -> None:
        """The claimant's whole claim ended, a new claim asked for, when only the partner (or
        a grown-up child) moved away."""
        tom = Person(given_names="Tom", family_name="Thompson", date_of_birth=date(2000, 1, 1))
        claim = self.claim().model_copy(update={"children": (tom,)})
        decision = housing_benefit.on_address_change(
            move(MARGARET, tom), roles(mover1=claim, mover2=claim)
        )
        (changed,) = decision.changed
        assert (decision.outcome, changed.status) == (Outcome.APPLIED, "ACTIVE")
        assert (changed.partner, changed.children) == (None, ())
        assert changed.reassess_from == date(2025, 1, 6)
        assert decision.actions == (
            "Partner and 1 child left the household of claim HB-500001; reassessed from 2025-01-06",
        )

    def test_a_move_to_the_claims_own_address_written_differently_changes_nothing(self) -> None:
        there = Address(
            lines=tuple(line.upper() + "," for line in NEW_HOME.lines), postcode=NEW_HOME.postcode
        )
        moved = self.claim().model_copy(update={"address": there})
        decision = housing_benefit.on_address_change(move(ARTHUR), roles(mover1=moved))
        assert decision.outcome == Outcome.NOT_APPLICABLE

    def test_marriage_gives_both_the_names_they_have_after_it(self) -> None:
        """The partner was stored by the name before the marriage, the claimant's unchanged:
        a later death under the new name found no claim."""
        single = self.claim().model_copy(update={"claimant": MARGARET, "partner": None})
        union = wedding()
        after = {"family_name_after": "Ellis-Thompson"}
        parties = [p.model_copy(update=after) for p in union.facts.parties]
        union = union.model_copy(
            update={"facts": union.facts.model_copy(update={"parties": tuple(parties)})}
        )
        (claim,) = housing_benefit.on_marriage(union, roles(party1=single)).changed
        assert (claim.claimant.family_name, claim.partner.family_name) == (
            "Ellis-Thompson",
            "Ellis-Thompson",
        )
        assert housing_benefit.on_marriage(union, roles(party1=claim)).outcome == (
            Outcome.NOT_APPLICABLE
        )
        assert claim.claimant == MARGARET.model_copy(update={"family_name": "Ellis-Thompson"})

    def test_a_couple_on_one_claim_marrying_take_the_names_they_have_after_it(self) -> None:
        """Already the partner, the union was NOT_APPLICABLE and the claim kept their names
        before it: the claimant's death, registered under her new name without a NINO, found
        no claim, which went on being paid."""
        union = wedding()
        ruth = union.facts.parties[1].person
        couple = self.claim().model_copy(update={"claimant": MARGARET, "partner": ruth})
        after = {"family_name_after": "Ellis-Thompson"}
        parties = [p.model_copy(update=after) for p in union.facts.parties]
        union = union.model_copy(
            update={"facts": union.facts.model_copy(update={"parties": tuple(parties)})}
        )
        decision = housing_benefit.on_marriage(union, roles(party1=couple))
        (claim,) = decision.changed
        assert decision.outcome == Outcome.APPLIED
        assert (claim.claimant.family_name, claim.partner.family_name) == (
            "Ellis-Thompson",
            "Ellis-Thompson",
        )
        assert (claim.claimant.nino, claim.reassess_from) == (MARGARET.nino, couple.reassess_from)
        assert housing_benefit.on_marriage(union, roles(party1=claim)).outcome == (
            Outcome.NOT_APPLICABLE
        )

    def test_marriage_keeps_what_the_claim_knows_of_the_claimant(self) -> None:
        """The claimant was replaced by the event's person: a NINO the event left out, and the
        given names the claim knew, were lost."""
        single = self.claim().model_copy(update={"claimant": MARGARET, "partner": None})
        union = wedding()
        as_named = MARGARET.model_copy(update={"nino": None, "given_names": "Maggie"})
        parties = (
            union.facts.parties[0].model_copy(update={"person": as_named}),
            union.facts.parties[1],
        )
        facts = union.facts.model_copy(update={"parties": parties})
        union = union.model_copy(update={"facts": facts})
        (claim,) = housing_benefit.on_marriage(union, roles(party1=single)).changed
        assert claim.claimant == MARGARET

    def test_an_ended_claim_matches_nobody(self) -> None:
        """A person with an ended claim and an active one was matched (by NINO, the lowest
        record id) to the ended one: "Claim already ended", the active claim left as it was."""
        assert self.ended().people() == []
        assert self.claim().people() != []


def test_every_service_name_is_one_a_confirmation_accepts() -> None:
    """Services encode their confirmations without the model: their names must pass its check."""
    assert set(SERVICES) == {n for n, s in subscriptions().items() if not s.external}
    assert all(re.fullmatch(SERVICE_PATTERN, name) for name in subscriptions())


def test_a_service_of_its_own_code_joins_by_the_matrix_alone() -> None:
    """One running elsewhere (another language) has no module here; a key misspelt is named."""
    text = """
[services.pensions]
title = "State Pension"
events = ["death"]

[services.tv_licensing]
title = "TV Licensing"
events = ["death", "address-change"]
external = true
"""
    joined = matrix(text)
    assert (joined["tv_licensing"].external, joined["pensions"].external) == (True, False)
    with pytest.raises(ValueError, match=r"services.tv_licensing: unknown keys \['extrenal'\]"):
        matrix(text.replace("external =", "extrenal ="))


@pytest.mark.parametrize("name", ["tv-licensing", "dwp2", "Pensions", "x", "tracker", "registrar"])
def test_a_service_name_no_confirmation_could_carry_is_refused_with_the_matrix(name: str) -> None:
    """Accepted, a name with a hyphen or a digit joined: its dead-letter topic and group were
    made, the tracker awaited it, and then dead-lettered each of its confirmations (their
    `service` does not match the contract's pattern), its events awaited for ever; the
    tracker's or the registrar's name would share their groups, topics and metrics ports."""
    text = f'[services.{name}]\ntitle = "A service"\nevents = ["death"]\nexternal = true\n'
    with pytest.raises(ValueError, match=rf"services\.{name}: "):
        matrix(text)


def test_a_records_summary_counts_in_words() -> None:
    """What the family page and `status` show after a cancellation: "2 resident(s)", "0
    child(ren)"."""
    account = record("council_tax", "CT-300001")
    claim = record("housing_benefit", "HB-500001")
    assert account.summary().startswith("2 residents, ")
    assert (
        account.model_copy(update={"residents": account.residents[:1]})
        .summary()
        .startswith("1 resident, ")
    )
    assert claim.summary() == "claim active for the claimant and partner and 0 children"


def test_a_store_from_before_ended_claims_matched_nobody_matches_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store made by the release before kept an ended claim's household as matching keys:
    a death was matched to the ended claim ("Claim already ended"), the active one untouched."""
    from sqlalchemy import delete

    from consumers.store import ServiceStore, store_meta
    from tests.unit.test_amend import last_confirmation

    h = handler(tmp_path, "housing_benefit")
    active = next(r for r in h.store.records() if r.record_id == "HB-500001")
    ended = active.model_copy(
        update={"record_id": "HB-000001", "status": "ENDED", "ended_from": date(2020, 1, 1)}
    )
    everyone = housing_benefit.HousingBenefitClaim.people
    with monkeypatch.context() as before:  # as that release kept its keys
        before.setattr(
            housing_benefit.HousingBenefitClaim,
            "people",
            lambda claim: everyone(claim.model_copy(update={"status": "ACTIVE"})),
        )
        with h.store.transaction() as tx:
            tx.put(ended)
    with h.store.engine.begin() as conn:
        conn.execute(delete(store_meta))  # that release kept no version
    h.store = ServiceStore(h.store.engine.url.render_as_string(), h.service.record_type)

    assert h.handle(event(EventType.DEATH), NOWHERE) == "applied"
    assert last_confirmation(h).service_reference == "HB-500001"


YORK = Address(lines=("9 Far Lane", "York"), postcode="YO1 7HH")


def moving(people: tuple[Person, ...], old: Address, new: Address, on: str, entry: int) -> Any:
    return event(
        EventType.ADDRESS_CHANGE,
        people_moving=[p.model_dump(mode="json") for p in people],
        old_address=old.model_dump(mode="json"),
        new_address=new.model_dump(mode="json"),
        effective_on=on,
        registered_at=f"{on}T12:00:00Z",
        registration={"district": "Leeds", "entry_number": entry, "office": "L"},
    )


@pytest.mark.parametrize(
    ("service", "arthurs"), [("pensions", "SP-100001"), ("disability", "DLA-200001")]
)
def test_a_move_read_after_a_later_one_leaves_the_later_address(
    tmp_path: Path, service: str, arthurs: str
) -> None:
    """Margaret and Arthur move in January (keyed by Margaret), Arthur alone again in June
    (keyed by him): on different partitions, June's may be read first, and January's then
    overwrote it: Arthur's pension paid to an address he had left."""
    together = moving((MARGARET, ARTHUR), HOME, NEW_HOME, "2025-01-06", 1)
    alone = moving((ARTHUR,), NEW_HOME, YORK, "2025-06-02", 2)
    assert together.envelope.person_ref != alone.envelope.person_ref
    h = handler(tmp_path, service)

    assert h.handle(alone, NOWHERE) == "applied"
    h.handle(together, NOWHERE)  # Margaret's own record, if she has one, moves in January
    record = next(r for r in h.store.records() if r.record_id == arthurs)
    assert (record.address, record.address_from) == (YORK, date(2025, 6, 2))  # type: ignore[attr-defined]


def test_a_move_older_than_the_address_recorded_says_so() -> None:
    later = record("disability", "DLA-200001").model_copy(
        update={"address": YORK, "address_from": date(2025, 6, 2)}
    )
    older = moving((ARTHUR,), HOME, NEW_HOME, "2025-01-06", 1)
    decision = disability.SERVICE.rules[EventType.ADDRESS_CHANGE](older, roles(mover1=later))
    assert (decision.outcome, decision.actions, decision.changed) == (
        Outcome.NOT_APPLICABLE,
        ("A later move, from 2025-06-02, is recorded",),
        (),
    )


def test_a_store_keyed_by_an_older_name_key_makes_its_keys_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keys the release before made dropped Devanagari vowel signs: Kamala's pension was found
    under Kamal's key. A store opened by this release makes them again, once."""
    from sqlalchemy import select, update

    from consumers import store as stores
    from tellusonce import events
    from tellusonce.fields import name_key

    kamala = record("pensions", "SP-100002").model_copy(
        update={"record_id": "SP-KAMALA", "pensioner": Person(
            given_names="Priya", family_name="कमला", date_of_birth=date(1950, 1, 2)
        )}
    )  # fmt: skip
    h = handler(tmp_path, "pensions")
    with monkeypatch.context() as before:  # that release's key: letters only
        before.setattr(events, "name_key", lambda name: "".join(c for c in name if c.isalpha()))
        with h.store.transaction() as tx:
            tx.put(kamala)
    with h.store.engine.begin() as conn:
        conn.execute(update(stores.store_meta).values(value="1"))  # that release's version
    surnames = select(stores.record_people.c.surname).where(
        stores.record_people.c.record_id == "SP-KAMALA"
    )
    with h.store.engine.connect() as conn:
        assert conn.execute(surnames).scalar_one() == "कमल"  # the vowel sign dropped

    reopened = stores.ServiceStore(h.store.engine.url.render_as_string(), h.service.record_type)

    with reopened.engine.connect() as conn:
        assert conn.execute(surnames).scalar_one() == name_key("कमला") != "कमल"


AMY = Person(given_names="Amy", family_name="Thompson", date_of_birth=date(2000, 3, 1))
BETH = Person(given_names="Beth", family_name="Thompson", date_of_birth=date(2000, 3, 1))


def test_twins_born_the_same_day_are_both_added_to_the_claim(tmp_path: Path) -> None:
    """No NINO at birth and one surname, date of birth and postcode: Beth's birth was answered
    "Child already on the claim" (Amy), and the claim kept one child."""
    h = handler(tmp_path, "housing_benefit")
    for entry, child in enumerate((AMY, BETH), start=1):
        born = event(
            EventType.BIRTH,
            registration={"district": "Leeds", "entry_number": entry, "office": "L"},
            child=child.model_dump(mode="json"),
            parents=[ARTHUR.model_dump(mode="json"), MARGARET.model_dump(mode="json")],
            address=HOME.model_dump(mode="json"),
        )
        assert h.handle(born, NOWHERE) == "applied"
    claim = next(r for r in h.store.records() if r.record_id == "HB-500001")
    assert [c.given_names for c in claim.children] == ["Amy", "Beth"]  # type: ignore[attr-defined]


def test_the_death_of_a_twin_leaves_the_other_on_the_claim_and_the_account() -> None:
    """Both twins left the household (and a council tax account of the two was left with
    nobody: Class F, the exemption for the deceased's property, for the living twin)."""
    died = event(
        EventType.DEATH,
        deceased=AMY.model_dump(mode="json"),
        surviving_partner=None,
        marital_status="SINGLE",
    )
    claim = record("housing_benefit", "HB-500001").model_copy(update={"children": (AMY, BETH)})
    (after,) = housing_benefit.on_death(died, roles(deceased=claim)).changed
    assert after.children == (BETH,)  # type: ignore[attr-defined]
    account = record("council_tax", "CT-300001").model_copy(update={"residents": (AMY, BETH)})
    (after,) = council_tax.on_death(died, roles(deceased=account)).changed
    assert (after.residents, after.discount) == ((BETH,), "SINGLE_PERSON")  # type: ignore[attr-defined]


def test_a_twin_moving_out_leaves_the_other_in_the_household() -> None:
    claim = record("housing_benefit", "HB-500001").model_copy(update={"children": (AMY, BETH)})
    account = record("council_tax", "CT-300001").model_copy(
        update={"residents": (*record("council_tax", "CT-300001").residents, AMY, BETH)}
    )
    leaving = moving((BETH,), HOME, YORK, "2026-02-02", 1)
    (after,) = housing_benefit.on_address_change(leaving, roles(mover1=claim)).changed
    assert after.children == (AMY,)  # type: ignore[attr-defined]
    (after,) = council_tax.on_address_change(leaving, roles(mover1=account)).changed
    stayed = after.residents  # type: ignore[attr-defined]
    assert (AMY in stayed, BETH in stayed) == (True, False)


def test_a_partner_alike_the_deceased_is_not_reviewed_on_the_deceased_s_award(
    tmp_path: Path,
) -> None:
    """A widow named without a NINO, born the day her husband was, matched his own award: it
    was stopped, then written again from before the stop ("widowed", IN_PAYMENT), while the
    confirmation said it was stopped."""
    alike = {"given_names": "Margaret", "family_name": "Thompson", "date_of_birth": "1946-05-14"}
    assert ARTHUR.date_of_birth == date(1946, 5, 14)
    h = handler(tmp_path, "pensions")
    assert h.handle(event(EventType.DEATH, surviving_partner=alike), NOWHERE) == "applied"
    arthurs = next(r for r in h.store.records() if r.record_id == "SP-100001")
    assert (arthurs.status, arthurs.flags) == ("STOPPED", ())  # type: ignore[attr-defined]


LS8 = Address(lines=("3 Oak Street", "Leeds"), postcode="LS8 1AA")


def _households(tmp_path: Path, service: str, june_first: bool) -> list[tuple[Any, ...]]:
    """Margaret and Arthur move in January (keyed by Margaret), Arthur alone on in June (keyed
    by him), read in either order: what the service's store then holds, in a comparable form."""
    together = moving((MARGARET, ARTHUR), HOME, NEW_HOME, "2025-01-06", 1)
    alone = moving((ARTHUR,), NEW_HOME, LS8, "2025-06-02", 2)
    tmp_path.mkdir()
    h = handler(tmp_path, service)
    for moved in (alone, together) if june_first else (together, alone):
        h.handle(moved, NOWHERE)
    if service == "council_tax":
        return sorted(
            (a.property.postcode, a.status, a.closed_from, [p.given_names for p in a.residents],
             a.discount)
            for a in h.store.records()
            if a.record_id == "CT-300001" or a.record_id.startswith("CT-N")
        )  # fmt: skip
    claim = next(c for c in h.store.records() if c.record_id == "HB-500001")
    return [(claim.status, claim.ended_from, claim.flags)]  # type: ignore[attr-defined]


def test_council_tax_ends_up_the_same_whichever_of_two_moves_is_read_first(
    tmp_path: Path,
) -> None:
    """June's read first, January's closed Arthur's new LS8 account "from 2025-01-06", five
    months before it opened, and put him on the LS7 account with Margaret, at no discount."""
    assert _households(tmp_path / "a", "council_tax", june_first=True) == [
        ("LS6 2AB", "CLOSED", date(2025, 1, 6), ["Margaret"], "SINGLE_PERSON"),
        ("LS7 3BB", "OPEN", None, ["Margaret"], "SINGLE_PERSON"),
        ("LS8 1AA", "OPEN", None, ["Arthur James"], "SINGLE_PERSON"),
    ]
    in_order = _households(tmp_path / "b", "council_tax", june_first=False)
    assert [a[0:2] + a[3:] for a in in_order] == [
        ("LS6 2AB", "CLOSED", ["Arthur James", "Margaret"], "NONE"),
        ("LS7 3BB", "OPEN", ["Margaret"], "SINGLE_PERSON"),
        ("LS8 1AA", "OPEN", ["Arthur James"], "SINGLE_PERSON"),
    ]


def test_a_move_into_a_household_joins_its_account_and_its_cancellation_undoes_that(
    tmp_path: Path,
) -> None:
    """Margaret moved out first and opened an account at the new address; Arthur followed,
    the address written otherwise: a second account was opened there, each on a single person
    discount. He joins hers (no discount: two adults), and cancelling his move puts him back
    on the old account and her account as it was."""
    from producers.submission import cancellation
    from tellusonce.settings import Settings
    from tests.unit.test_amend import last_confirmation

    h = handler(tmp_path, "council_tax")
    hers = moving((MARGARET,), HOME, NEW_HOME, "2025-01-06", 1)
    written_otherwise = NEW_HOME.model_copy(update={"lines": ("5 NEW ROAD,", "leeds")})
    his = moving((ARTHUR,), HOME, written_otherwise, "2025-02-03", 2)

    def accounts() -> dict[str, tuple[Any, ...]]:
        return {
            a.record_id: (a.status, [p.given_names for p in a.residents], a.discount)
            for a in h.store.records()
            if a.record_id == "CT-300001" or a.record_id.startswith("CT-N")
        }

    assert h.handle(hers, NOWHERE) == "applied"
    new_account = f"CT-N{hers.envelope.event_id.hex.upper()}"
    assert h.handle(his, NOWHERE) == "applied"
    assert accounts() == {
        "CT-300001": ("CLOSED", ["Arthur James"], "SINGLE_PERSON"),
        new_account: ("OPEN", ["Margaret", "Arthur James"], "NONE"),
    }
    confirmed = last_confirmation(h)
    assert confirmed.service_reference == "CT-300001"
    assert f"1 mover joined account {new_account} at the new address from 2025-02-03" in (
        confirmed.actions
    )
    assert h.handle(cancellation(his, Settings(), "registered in error"), NOWHERE) == "applied"
    assert accounts() == {
        "CT-300001": ("OPEN", ["Arthur James"], "SINGLE_PERSON"),
        new_account: ("OPEN", ["Margaret"], "SINGLE_PERSON"),
    }


def test_a_move_read_after_a_later_one_that_joined_an_account_leaves_him_there(
    tmp_path: Path,
) -> None:
    """Arthur joined Margaret's account at the new address in February; his move of January
    to York (keyed by him, Margaret's by her) read after: he came to that account by the later
    move, so he stays on it, and is put on no other."""
    h = handler(tmp_path, "council_tax")
    for moved in (
        moving((MARGARET,), HOME, NEW_HOME, "2025-01-06", 1),
        moving((ARTHUR,), HOME, NEW_HOME, "2025-02-03", 2),
    ):
        assert h.handle(moved, NOWHERE) == "applied"
    before = {a.record_id: a for a in h.store.records()}
    assert h.handle(moving((ARTHUR,), HOME, LS8, "2025-01-20", 3), NOWHERE) == "not_applicable"
    assert {a.record_id: a for a in h.store.records()} == before
    from tests.unit.test_amend import last_confirmation

    assert last_confirmation(h).actions == ("A later move, from 2025-02-03, is recorded",)


@pytest.mark.parametrize("back_first", [False, True])
def test_a_move_back_home_read_before_the_move_away_ends_him_at_home(
    tmp_path: Path, back_first: bool
) -> None:
    """Arthur moves to LS7 in January and back home in June (keyed by him, read in either
    order). June's read first found him still on the home account ("already on it") and noted
    nothing; January's then took him off it and opened an account for him at LS7, an address
    he had left. Now his return is recorded, and the move away is known as the earlier one."""
    h = handler(tmp_path, "council_tax")
    away = moving((ARTHUR,), HOME, NEW_HOME, "2025-01-06", 1)
    back = moving((ARTHUR,), NEW_HOME, HOME, "2025-06-02", 2)
    for moved in (back, away) if back_first else (away, back):
        h.handle(moved, NOWHERE)
    open_accounts = sorted(
        (a.property.postcode, sorted(p.given_names or "" for p in a.residents), a.discount)
        for a in h.store.records()
        if (a.record_id == "CT-300001" or a.record_id.startswith("CT-N")) and a.status == "OPEN"
    )
    assert open_accounts == [("LS6 2AB", ["Arthur James", "Margaret"], "NONE")]


def test_a_twin_moving_into_their_twins_home_joins_the_account() -> None:
    """Beth (no NINO; Amy's surname and date of birth) was taken for Amy, already on the
    account at her new address: not added, Amy's single person discount kept."""
    account = record("council_tax", "CT-300001").model_copy(
        update={"property": LS8, "residents": (AMY,), "discount": "SINGLE_PERSON"}
    )
    decision = council_tax.on_address_change(
        moving((BETH,), HOME, LS8, "2025-03-03", 1), roles(mover1=None, new_address=account)
    )
    (joined,) = decision.changed
    assert [p.given_names for p in joined.residents] == ["Amy", "Beth"]  # type: ignore[attr-defined]
    assert joined.discount == "NONE"  # type: ignore[attr-defined]


@pytest.mark.parametrize("died", ["Ethel", "Edna"])
def test_a_twins_death_registered_without_a_nino_stops_that_twins_pension(
    tmp_path: Path, died: str
) -> None:
    """Twin sisters, pensioners at one address; the death registration gives no NINO: the
    record with the lower id was stopped, whichever twin had died (a living twin's pension
    stopped, with an overpayment to recover, and the deceased's paid on)."""
    from consumers.pensions import PensionRecord
    from tellusonce.events import MaritalStatus

    twins = {
        name: Person(
            given_names=name, family_name="Hart", date_of_birth=date(1940, 1, 1), nino=nino
        )
        for name, nino in (("Ethel", "AB111111A"), ("Edna", "AB222222B"))
    }
    h = handler(tmp_path, "pensions")
    with h.store.transaction() as tx:
        for i, twin in enumerate(twins.values()):
            tx.put(PensionRecord(
                record_id=f"SP-9{i}", pensioner=twin, address=HOME, weekly_amount_pence=20_000,
                paid_to=date(2026, 3, 15), marital_status=MaritalStatus.SINGLE,
            ))  # fmt: skip
    without_nino = twins[died].model_copy(update={"nino": None}).model_dump(mode="json")
    death = event(
        EventType.DEATH, deceased=without_nino, marital_status="SINGLE", surviving_partner=None
    )
    assert h.handle(death, NOWHERE) == "applied"
    status = {
        r.pensioner.given_names: r.status  # type: ignore[attr-defined]
        for r in h.store.records()
        if r.record_id.startswith("SP-9")
    }
    assert status == {name: "STOPPED" if name == died else "IN_PAYMENT" for name in twins}


@pytest.mark.parametrize("death_first", [False, True])
def test_a_housing_benefit_claim_of_a_claimant_who_moved_then_died_ends_from_the_move(
    tmp_path: Path, death_first: bool
) -> None:
    """Arthur and Margaret move in January 2025; he dies at the new home in March 2026 (a death
    and a move: two topics, read in either order). Read first, the death ended the claim on the
    home they had left from the day after it, 14 months late, with Margaret invited to claim
    for it; the move then found no claim."""
    h = handler(tmp_path, "housing_benefit")
    moved = move(ARTHUR, MARGARET)
    died = event(EventType.DEATH, usual_address=NEW_HOME.model_dump(mode="json"))
    for happened in (died, moved) if death_first else (moved, died):
        h.handle(happened, NOWHERE)
    claim = next(c for c in h.store.records() if c.record_id == "HB-500001")
    assert (claim.status, claim.ended_from, claim.flags) == (  # type: ignore[attr-defined]
        "ENDED",
        date(2025, 1, 6),
        (housing_benefit.NEW_CLAIM,),
    )


def test_a_store_from_before_accounts_had_places_finds_them_at_their_property(
    tmp_path: Path,
) -> None:
    """A store of the release before kept no places: opened by this one, its open accounts are
    found at their property (a move into one joins it), its closed ones are not."""
    from sqlalchemy import delete, update

    from consumers.store import ServiceStore, record_places, store_meta

    h = handler(tmp_path, "council_tax")
    with h.store.engine.begin() as conn:
        conn.execute(delete(record_places))
        conn.execute(update(store_meta).values(value="1.2"))  # that release's version
    h.store = ServiceStore(h.store.engine.url.render_as_string(), h.service.record_type)
    with h.store.transaction() as tx:
        (home,) = tx.at_place(
            HOME.model_copy(update={"lines": ("14 ELM ROAD,", *HOME.lines[1:])}).place
        )
        assert home.record_id == "CT-300001"
        tx.put(home.model_copy(update={"status": "CLOSED"}))
        assert tx.at_place(HOME.place) == []


def test_a_housing_benefit_claim_ends_from_the_first_move_whichever_is_read_first(
    tmp_path: Path,
) -> None:
    """June's read first ended the LS6 claim from 2025-06-02, and January's then found none."""
    ended = [("ENDED", date(2025, 1, 6), (housing_benefit.NEW_CLAIM,))]
    assert _households(tmp_path / "a", "housing_benefit", june_first=True) == ended
    assert _households(tmp_path / "b", "housing_benefit", june_first=False) == ended
