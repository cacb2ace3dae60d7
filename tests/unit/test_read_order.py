"""Two events about the same people travel on different topics (a death and a marriage, a
death and a birth): a service may read them in either order, and must end up the same."""

from __future__ import annotations

import itertools
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from consumers import housing_benefit
from consumers.applier import ServiceHandler
from consumers.council_tax import CouncilTaxAccount
from consumers.housing_benefit import HousingBenefitClaim
from consumers.rules import Record
from consumers.seed import ARTHUR, HOME, MARGARET
from tellusonce.events import Address, EventType, MaritalStatus, Outcome, Person, PersonKey
from tests.factories import NEW_HOME, document, event
from tests.handlers import handler
from tests.messages import NOWHERE
from tests.unit.test_matrix_rules import AWAY, wedding

RUTH = {
    "given_names": "Ruth",
    "family_name": "Ellis",
    "date_of_birth": "1952-03-03",
    "nino": "JT222222C",
}


ENTRIES = itertools.count(5_000)  # each death its own registration (its own event id)


def in_turn(h: ServiceHandler, events: tuple[Any, ...]) -> list[str]:
    """Each event handled by the service, in this order: the outcomes."""
    return [h.handle(e, NOWHERE) for e in events]


def stored(h: ServiceHandler, record_id: str) -> Any:
    """One record of the service's store, as it is now."""
    return next(r for r in h.store.records() if r.record_id == record_id)


def wed(first: Person, second: Person, home: Address, on: str, before: Address = HOME) -> Any:
    """A marriage of two people who lived at `before` (the first) and at `home`, their home
    after it."""
    return event(
        EventType.MARRIAGE,
        married_on=on,
        registered_at=f"{on}T12:00:00Z",
        parties=[
            {
                "person": first.model_dump(mode="json"),
                "address_before": before.model_dump(mode="json"),
            },
            {
                "person": second.model_dump(mode="json"),
                "address_before": home.model_dump(mode="json"),
            },
        ],
        address_after=home.model_dump(mode="json"),
    )


def death(of: Person, at: Address, on: str, survivor: Person | None = None) -> Any:
    """A death at a usual address, with the surviving partner if any."""
    return event(
        EventType.DEATH,
        deceased=of.model_dump(mode="json"),
        usual_address=at.model_dump(mode="json"),
        marital_status="MARRIED" if survivor else "SINGLE",
        date_of_death=on,
        registered_at=f"{on}T18:00:00Z",
        registration={"district": "Leeds", "entry_number": next(ENTRIES), "office": "L"},
        surviving_partner=survivor.model_dump(mode="json") if survivor else None,
        informant={"name": "A Relative", "relationship": "Relative"},
    )


def moving(*people: Person, old: Address = HOME, new: Address = NEW_HOME) -> Any:
    """A move of these people, its own registration (its own event id)."""
    return event(
        EventType.ADDRESS_CHANGE,
        people_moving=[p.model_dump(mode="json") for p in people],
        old_address=old.model_dump(mode="json"),
        new_address=new.model_dump(mode="json"),
        registration={"district": "Leeds", "entry_number": next(ENTRIES), "office": "L"},
    )


def ruths_death(died: str) -> Any:
    """Ruth dies, Margaret's civil partner (`wedding`: their union of 2023-09-09)."""
    return event(
        EventType.DEATH,
        deceased=RUTH,
        usual_address=AWAY.model_dump(mode="json"),
        marital_status="CIVIL_PARTNERSHIP",
        date_of_death=died,
        surviving_partner=MARGARET.model_dump(mode="json"),
        informant={"name": "Margaret Thompson", "relationship": "Civil partner"},
    )


@pytest.mark.parametrize("death_first", [False, True])
def test_a_pensioner_widowed_soon_after_a_union_stays_widowed_whichever_is_read_first(
    tmp_path: Path, death_first: bool
) -> None:
    """Margaret and Ruth's civil partnership (2023-09-09), Ruth's death in January: read
    first, the death recorded Margaret as widowed and the union then set her back to a civil
    partnership, her bereavement review still flagged."""
    h = handler(tmp_path, "pensions")
    union, died = wedding(), ruths_death("2024-01-10")
    assert in_turn(h, (died, union) if death_first else (union, died)) == ["applied"] * 2
    hers = stored(h, "SP-100002")
    assert (hers.marital_status, hers.partner.given_names, hers.flags) == (
        MaritalStatus.WIDOWED,
        "Ruth",
        ("BEREAVEMENT_REVIEW",),
    )
    assert hers.widowed_on == date(2024, 1, 10)


def test_a_union_read_after_a_later_one_changes_nothing(tmp_path: Path) -> None:
    """Widowed by Ruth's death, Margaret marries again in 2025; the 2023 union, read last, set
    her partner back to Ruth and her status to a civil partnership."""
    from consumers import pensions

    h = handler(tmp_path, "pensions")
    again = wedding()
    later = again.facts.model_copy(update={"married_on": date(2025, 5, 1), "kind": "MARRIAGE"})
    h.handle(ruths_death("2024-01-10"), NOWHERE)
    h.handle(again.model_copy(update={"facts": later}), NOWHERE)
    hers = stored(h, "SP-100002")
    assert (hers.marital_status, hers.united_on) == (MaritalStatus.MARRIED, date(2025, 5, 1))
    decision = pensions.on_marriage(wedding(), {"party1": hers})
    assert (decision.outcome, decision.changed) == (Outcome.NOT_APPLICABLE, ())


def holding(tmp_path: Path, service: str, *held: Record, seeded: bool = True) -> ServiceHandler:
    """A service's handler on a store of these records (and the demo's, if `seeded`)."""
    h = handler(tmp_path, service, seeded=seeded)
    with h.store.transaction() as tx:
        for record in held:
            tx.put(record)
    return h


def claims(tmp_path: Path, *held: HousingBenefitClaim) -> ServiceHandler:
    """Housing Benefit's handler on a store of these claims alone."""
    return holding(tmp_path, "housing_benefit", *held, seeded=False)


def state(h: ServiceHandler, record_id: str) -> tuple[Any, ...]:
    c = stored(h, record_id)
    partner = c.partner.given_names if c.partner else None
    return (c.status, c.ended_from, partner, c.reassess_from, c.flags)


MARGARETS = HousingBenefitClaim(
    record_id="HB-M", claimant=MARGARET, address=HOME, weekly_award_pence=7_000
)
RUTHS = HousingBenefitClaim(
    record_id="HB-R", claimant=Person(**RUTH), address=AWAY, weekly_award_pence=8_000
)


@pytest.mark.parametrize("death_first", [False, True])
def test_a_claimant_dying_soon_after_a_union_leaves_the_widow_invited_to_claim(
    tmp_path: Path, death_first: bool
) -> None:
    """Ruth and Margaret each claim; their civil partnership makes Ruth's claim (at their
    home) the couple's, and Ruth dies in January. Read first, her death ended her claim with
    nobody to invite, and the union then found no claim of Ruth's: Margaret was not invited to
    claim, and her own claim went on as a single person's."""
    h = claims(tmp_path, MARGARETS, RUTHS)
    union, died = wedding(home=AWAY), ruths_death("2024-01-10")
    assert in_turn(h, (died, union) if death_first else (union, died)) == ["applied"] * 2
    assert state(h, "HB-R") == (
        "ENDED",
        date(2024, 1, 11),
        "Margaret",
        date(2023, 9, 9),
        (housing_benefit.REASSESS, housing_benefit.PARTNER_TO_CLAIM),
    )
    assert state(h, "HB-M") == ("ENDED", date(2023, 9, 9), None, None, ())


@pytest.mark.parametrize("death_first", [False, True])
def test_a_partner_joining_a_claim_and_dying_soon_after_is_not_added_after_the_death(
    tmp_path: Path, death_first: bool
) -> None:
    """The union makes Margaret's claim (at their home) the couple's; Ruth dies in January.
    Read first, her death ended her own claim from the day after it, and the union then added
    her, dead, to Margaret's claim as its partner."""
    h = claims(tmp_path, MARGARETS, RUTHS)
    union, died = wedding(home=HOME), ruths_death("2024-01-10")
    assert in_turn(h, (died, union) if death_first else (union, died)) == ["applied"] * 2
    assert state(h, "HB-M") == (
        "ACTIVE",
        None,
        None,
        date(2024, 1, 11),
        (housing_benefit.REASSESS,),
    )
    assert state(h, "HB-R") == ("ENDED", date(2023, 9, 9), None, None, ())


@pytest.mark.parametrize("death_first", [False, True])
def test_a_partner_on_the_claim_who_died_soon_after_marrying_its_claimant_stays_off_it(
    tmp_path: Path, death_first: bool
) -> None:
    """Margaret, Arthur's partner on his claim, marries him in January and dies in March. Read
    first, her death took her off the claim, and the marriage then put her back on it."""
    h = handler(tmp_path, "housing_benefit")
    union = wed(ARTHUR, MARGARET, HOME, "2026-01-10")
    died = event(
        EventType.DEATH,
        deceased=MARGARET.model_dump(mode="json"),
        surviving_partner=ARTHUR.model_dump(mode="json"),
        informant={"name": "Arthur Thompson", "relationship": "Widower"},
    )
    outcomes = in_turn(h, (died, union) if death_first else (union, died))
    assert sorted(outcomes) == ["applied", "not_applicable"]
    assert state(h, "HB-500001") == (
        "ACTIVE",
        None,
        None,
        date(2026, 3, 12),
        (housing_benefit.REASSESS,),
    )


@pytest.mark.parametrize("death_first", [False, True])
def test_a_death_long_before_a_remarriage_read_after_it_leaves_the_pensioner_married(
    tmp_path: Path, death_first: bool
) -> None:
    """Ruth dies in 2024; Margaret marries again in 2025. Read last, the death set her back
    to widowed."""
    h = handler(tmp_path, "pensions")
    died, again = ruths_death("2024-01-10"), wed(MARGARET, Person(**FRANK), HOME, "2025-05-01")
    assert in_turn(h, (died, again) if death_first else (again, died)) == ["applied"] * 2
    hers = stored(h, "SP-100002")
    assert (hers.marital_status, hers.partner.given_names, hers.flags) == (
        MaritalStatus.MARRIED,
        "Frank",
        ("BEREAVEMENT_REVIEW",),
    )


FRANK = {
    "given_names": "Frank",
    "family_name": "Hale",
    "date_of_birth": "1950-07-07",
    "nino": "JT333333D",
}
OAK = Address(lines=("3 Oak Street", "Leeds"), postcode="LS8 1AA")
BIRCH = Address(lines=("9 Birch Lane", "Leeds"), postcode="LS9 2BB")


def accounts(tmp_path: Path, *held: CouncilTaxAccount) -> ServiceHandler:
    """Council Tax's handler on its demo store and these accounts."""
    return holding(tmp_path, "council_tax", *held)


def account(h: ServiceHandler, record_id: str) -> tuple[Any, ...]:
    a = stored(h, record_id)
    return (
        a.status,
        a.closed_from,
        sorted(p.given_names for p in a.residents),
        a.discount,
        a.discount_from,
    )


@pytest.mark.parametrize("death_first", [False, True])
def test_a_resident_dying_soon_after_a_union_is_not_put_back_on_the_account(
    tmp_path: Path, death_first: bool
) -> None:
    """Ruth joins Frank at Oak Street on their marriage; he dies six weeks later. Read first,
    his death left the account empty (Class F), and the union then put him back on it, with
    Ruth, at no discount: she paid the full charge, alone, for ever."""
    frank, ruth = Person(**FRANK), Person(**RUTH)
    h = accounts(
        tmp_path,
        CouncilTaxAccount(
            record_id="CT-OAK",
            property=OAK,
            residents=(frank,),
            annual_charge_pence=150_000,
            discount="SINGLE_PERSON",
        ),
        CouncilTaxAccount(
            record_id="CT-BIRCH",
            property=BIRCH,
            residents=(ruth,),
            annual_charge_pence=140_000,
            discount="SINGLE_PERSON",
        ),
    )
    union = wed(ruth, frank, OAK, "2026-05-04", before=BIRCH)
    died = death(frank, OAK, "2026-06-15", survivor=ruth)
    assert in_turn(h, (died, union) if death_first else (union, died)) == ["applied"] * 2
    assert account(h, "CT-OAK") == ("OPEN", None, ["Ruth"], "SINGLE_PERSON", date(2026, 6, 16))
    assert account(h, "CT-BIRCH") == ("CLOSED", date(2026, 5, 4), ["Ruth"], "SINGLE_PERSON", None)


@pytest.mark.parametrize("death_first", [False, True])
def test_a_couple_moving_then_one_dying_opens_the_new_account_for_both_then_one(
    tmp_path: Path, death_first: bool
) -> None:
    """Arthur and Margaret move to New Road in May; he dies there in July. Read first, his
    death (at an address with no account yet) took him off the Elm Road account, and the move
    then opened the New Road account with him on it, at no discount."""
    h = accounts(tmp_path)
    moved = event(
        EventType.ADDRESS_CHANGE,
        people_moving=[p.model_dump(mode="json") for p in (ARTHUR, MARGARET)],
        old_address=HOME.model_dump(mode="json"),
        new_address=NEW_HOME.model_dump(mode="json"),
        effective_on="2026-05-04",
        registered_at="2026-05-04T12:00:00Z",
    )
    died = death(ARTHUR, NEW_HOME, "2026-07-03", survivor=MARGARET)
    assert in_turn(h, (died, moved) if death_first else (moved, died)) == ["applied"] * 2
    (new,) = (r.record_id for r in h.store.records() if r.record_id.startswith("CT-N"))
    assert account(h, new) == ("OPEN", None, ["Margaret"], "SINGLE_PERSON", date(2026, 7, 4))
    assert account(h, "CT-300001")[:2] == ("CLOSED", date(2026, 5, 4))


@pytest.mark.parametrize("death_first", [False, True])
def test_a_child_born_weeks_before_the_claimants_death_is_on_the_claim_it_ended(
    tmp_path: Path, death_first: bool
) -> None:
    """Siân is born in June; her father, the claimant, dies four weeks later. Read first, his
    death ended the claim, and the birth then found it ended: the child was never on it, and
    the claim not reassessed for her weeks."""
    born = event(EventType.BIRTH)
    rhys, nia = born.facts.parents
    h = claims(
        tmp_path,
        HousingBenefitClaim(
            record_id="HB-E",
            claimant=rhys,
            partner=nia,
            address=born.facts.address,
            weekly_award_pence=9_000,
        ),
    )
    died = death(rhys, born.facts.address, "2024-06-30", survivor=nia)
    assert in_turn(h, (died, born) if death_first else (born, died)) == ["applied"] * 2
    claim = stored(h, "HB-E")
    assert (claim.status, claim.ended_from, [c.given_names for c in claim.children]) == (
        "ENDED",
        date(2024, 7, 1),
        ["Siân Elin"],
    )
    assert (claim.reassess_from, set(claim.flags)) == (
        date(2024, 6, 2),
        {housing_benefit.REASSESS, housing_benefit.PARTNER_TO_CLAIM},
    )


@pytest.mark.parametrize("death_first", [False, True])
def test_a_resident_moving_out_then_dying_leaves_the_other_a_single_person_from_the_move(
    tmp_path: Path, death_first: bool
) -> None:
    """Arthur moves out of Elm Road in May and dies in July; Margaret stays. Read first, his
    death gave her the single person discount from July, and the move then changed nothing:
    two months of it lost, and the account still matched him."""
    h = accounts(tmp_path)
    moved = event(
        EventType.ADDRESS_CHANGE,
        people_moving=[ARTHUR.model_dump(mode="json")],
        old_address=HOME.model_dump(mode="json"),
        new_address=NEW_HOME.model_dump(mode="json"),
        effective_on="2026-05-04",
        registered_at="2026-05-04T12:00:00Z",
    )
    died = death(ARTHUR, NEW_HOME, "2026-07-03")
    assert in_turn(h, (died, moved) if death_first else (moved, died)) == ["applied"] * 2
    assert account(h, "CT-300001") == (
        "OPEN",
        None,
        ["Margaret"],
        "SINGLE_PERSON",
        date(2026, 5, 4),
    )
    home = stored(h, "CT-300001")
    assert home.died == ()


@pytest.mark.parametrize("death_first", [False, True])
def test_a_widow_widowed_again_soon_after_a_new_union_stays_widowed(
    tmp_path: Path, death_first: bool
) -> None:
    """Margaret, widowed by Ruth's death in 2024, marries Frank in March 2026; he dies in May.
    Read first, his death changed nothing (she was widowed, her review flagged) and kept the
    2024 widowing: the union then recorded her as married to him."""
    h = handler(tmp_path, "pensions")
    assert h.handle(ruths_death("2024-01-10"), NOWHERE) == "applied"
    frank = Person(**FRANK)
    union = wed(MARGARET, frank, HOME, "2026-03-20")
    died = death(frank, HOME, "2026-05-01", survivor=MARGARET)
    in_turn(h, (died, union) if death_first else (union, died))
    hers = stored(h, "SP-100002")
    assert (hers.marital_status, hers.partner.given_names, hers.widowed_on) == (
        MaritalStatus.WIDOWED,
        "Frank",
        date(2026, 5, 1),
    )


def test_who_died_is_told_by_nino_else_by_surname_birth_and_every_given_name() -> None:
    """Frank died, with his NINO; an event naming him without one is about him only by the
    same surname, date of birth and given names: his twin brother George is not him, nor
    "Frank Edward" (a twin may share a first name), nor someone whose given names are not
    known. A living person is never taken off a record on less."""
    from consumers.rules import Died, died_on
    from consumers.store import UnmatchedDeath

    frank = Person(**FRANK)
    died = (Died(person=frank, on=date(2026, 6, 15)),)
    unnumbered = frank.model_copy(update={"nino": None})
    dead = PersonKey(None, "hale", frank.date_of_birth, None, "frank")
    kept = UnmatchedDeath("e", dead, date(2026, 6, 15), b"")
    for same in (frank, unnumbered):
        assert died_on(died, same) == date(2026, 6, 15)
        assert kept.of(same.key(None))
    for other in ("Frank Edward", "George", None):
        someone = unnumbered.model_copy(update={"given_names": other})
        assert died_on(died, someone) is None
        assert not kept.of(someone.key(None))
    assert not kept._replace(deceased=dead._replace(given=None)).of(unnumbered.key(None))


def evans_claim(born: Any) -> HousingBenefitClaim:
    """Rhys's claim, Nia his partner, at the address their child is born at."""
    rhys, nia = born.facts.parents
    return HousingBenefitClaim(
        record_id="HB-E", claimant=rhys, partner=nia, address=born.facts.address,
        weekly_award_pence=9_000,
    )  # fmt: skip


@pytest.mark.parametrize("death_first", [False, True])
def test_a_babys_death_read_before_the_birth_takes_the_baby_off_the_claim(
    tmp_path: Path, death_first: bool
) -> None:
    """Siân is born in June and dies five days later. Read first, her death found no record
    (she was on no claim yet), and the birth then put her on her father's claim for good."""
    born = event(EventType.BIRTH)
    h = claims(tmp_path, evans_claim(born))
    died = death(born.facts.child, born.facts.address, "2024-06-07")
    in_turn(h, (died, born) if death_first else (born, died))
    claim = stored(h, "HB-E")
    assert (claim.children, claim.reassess_from) == ((), date(2024, 6, 8))
    outcomes = h.store.outcomes()
    assert outcomes[born.envelope.event_id_text] == "APPLIED"


@pytest.mark.parametrize("cancelled", [False, True])
def test_a_death_nobody_had_a_record_of_is_kept_until_it_is_cancelled(
    tmp_path: Path, cancelled: bool
) -> None:
    """The baby's death, read first, is kept in the store (another instance of the service, or
    the same after a restart, applies it again after the birth), and forgotten when cancelled
    (the birth then leaves the child on the claim)."""
    from producers.submission import cancellation
    from tellusonce.settings import Settings

    born = event(EventType.BIRTH)
    h = claims(tmp_path, evans_claim(born))
    died = death(born.facts.child, born.facts.address, "2024-06-07")
    assert h.handle(died, NOWHERE) == "no_record"
    if cancelled:
        undone = cancellation(died, Settings(), "registered in error")
        assert h.handle(undone, NOWHERE) == "not_applicable"
    h = handler(tmp_path, "housing_benefit", seeded=False)  # another instance, the same store
    assert h.handle(born, NOWHERE) == "applied"
    claim = stored(h, "HB-E")
    assert [c.given_names for c in claim.children] == (["Siân Elin"] if cancelled else [])


@pytest.mark.parametrize("death_first", [False, True])
def test_a_partner_from_outside_the_area_dying_soon_after_joining_leaves_the_account(
    tmp_path: Path, death_first: bool
) -> None:
    """Ruth, from Cardiff (no account here), joins Frank at Oak Street on their marriage and
    dies six weeks later. Read first, her death found no account, and the union then put her
    on his for good: his single person discount gone."""
    frank, ruth = Person(**FRANK), Person(**RUTH)
    h = accounts(
        tmp_path,
        CouncilTaxAccount(record_id="CT-OAK", property=OAK, residents=(frank,),
                          annual_charge_pence=150_000, discount="SINGLE_PERSON"),
    )  # fmt: skip
    union = wed(frank, ruth, OAK, "2026-05-04", before=OAK)
    union = union.model_copy(
        update={"facts": union.facts.model_copy(update={"parties": (
            union.facts.parties[0],
            union.facts.parties[1].model_copy(update={"address_before": AWAY}),
        )})}
    )  # fmt: skip
    died = death(ruth, OAK, "2026-06-15", survivor=frank)
    in_turn(h, (died, union) if death_first else (union, died))
    assert account(h, "CT-OAK") == ("OPEN", None, ["Frank"], "SINGLE_PERSON", date(2026, 6, 16))


def test_a_twin_born_after_her_sisters_death_was_read_stays_on_the_claim(
    tmp_path: Path,
) -> None:
    """Siân Elin's death is read first (kept: no claim had her); then the birth of her twin
    Siân, the same surname and day, is read: Siân is not taken for her sister."""
    born = event(EventType.BIRTH)
    twin = born.facts.child.model_copy(update={"given_names": "Siân"})
    hers = born.model_copy(update={"facts": born.facts.model_copy(update={"child": twin})})
    h = claims(tmp_path, evans_claim(born))
    assert h.handle(death(born.facts.child, born.facts.address, "2024-06-07"), NOWHERE) == (
        "no_record"
    )
    assert h.handle(hers, NOWHERE) == "applied"
    claim = stored(h, "HB-E")
    assert [c.given_names for c in claim.children] == ["Siân"]


@pytest.mark.parametrize("amended", ["death cancelled", "birth corrected"])
def test_a_death_applied_again_is_the_deaths_change(tmp_path: Path, amended: str) -> None:
    """The baby's death (read first, as the bytes it came in) is applied again after her
    birth, as the death's own change: cancelled, the death gives her back to the claim; the
    birth corrected is referred for review (its records changed since), not applied over the
    death (it put her back on the claim)."""
    from producers.submission import cancellation, correction
    from tellusonce.settings import Settings
    from tests.messages import as_received

    born = event(EventType.BIRTH)
    h = claims(tmp_path, evans_claim(born))
    died = death(born.facts.child, born.facts.address, "2024-06-07")
    assert h.handle(died, as_received(died, h.codec.encode(died))) == "no_record"
    assert h.handle(born, NOWHERE) == "applied"
    claim = stored(h, "HB-E")
    assert (claim.children, claim.reassess_from) == ((), date(2024, 6, 8))
    if amended == "death cancelled":
        undone = cancellation(died, Settings(), "registered in error")
        assert h.handle(undone, NOWHERE) == "applied"
        children, since = ["Siân Elin"], date(2024, 6, 2)
    else:
        moved = {"lines": ["8 Heol y Nant", "Cardiff"], "postcode": "CF10 3AT"}
        again = correction(born, document(EventType.BIRTH, address=moved), Settings(), "typo")
        assert h.handle(again, NOWHERE) == "rejected"
        children, since = [], date(2024, 6, 8)
    claim = stored(h, "HB-E")
    assert ([c.given_names for c in claim.children], claim.reassess_from) == (children, since)


def test_a_kept_death_that_no_longer_reads_does_not_stop_the_event_after_it(
    tmp_path: Path,
) -> None:
    """A kept death whose message this version cannot read (or whose rule refuses it now) is
    passed over: the birth is applied, not dead-lettered."""
    born = event(EventType.BIRTH)
    h = claims(tmp_path, evans_claim(born))
    with h.store.transaction() as tx:
        key = born.facts.child.key(None)
        tx.remember_death("0" * 32, key, date(2024, 6, 7), b"not a message")
    assert h.handle(born, NOWHERE) == "applied"
    claim = stored(h, "HB-E")
    assert [c.given_names for c in claim.children] == ["Siân Elin"]


def test_a_kept_death_is_forgotten_after_the_days_it_is_kept_for(tmp_path: Path) -> None:
    """Kept longer than TELLUSONCE_UNMATCHED_DEATHS_DAYS (here none at all), a death is
    forgotten as a batch begins: the birth read after it keeps the child on the claim."""
    from datetime import timedelta

    from consumers.store import ServiceStore

    born = event(EventType.BIRTH)
    h = claims(tmp_path, evans_claim(born))
    assert h.handle(death(born.facts.child, born.facts.address, "2024-06-07"), NOWHERE) == (
        "no_record"
    )
    url = h.store.engine.url.render_as_string(hide_password=False)
    h.store = ServiceStore(url, h.service.record_type, keep_deaths=timedelta(0))
    with h.batch([born]):
        assert h.handle(born, NOWHERE) == "applied"
    claim = stored(h, "HB-E")
    assert [c.given_names for c in claim.children] == ["Siân Elin"]


def test_a_partner_who_took_a_new_name_and_died_soon_after_leaves_the_account(
    tmp_path: Path,
) -> None:
    """Ruth (no NINO given) takes Frank's family name on their marriage and joins his account;
    she dies six weeks later, registered as Ruth Hale. Read first, her death was kept under
    the new name, and the union (naming her Ellis) did not find it: she stayed on the account."""
    frank = Person(**FRANK)
    ruth = Person(**{**RUTH, "nino": None})
    h = accounts(
        tmp_path,
        CouncilTaxAccount(record_id="CT-OAK", property=OAK, residents=(frank,),
                          annual_charge_pence=150_000, discount="SINGLE_PERSON"),
    )  # fmt: skip
    union = event(
        EventType.MARRIAGE,
        married_on="2026-05-04",
        registered_at="2026-05-04T12:00:00Z",
        parties=[
            {"person": frank.model_dump(mode="json"),
             "address_before": OAK.model_dump(mode="json")},
            {"person": ruth.model_dump(mode="json"), "family_name_after": "Hale",
             "address_before": AWAY.model_dump(mode="json")},
        ],
        address_after=OAK.model_dump(mode="json"),
    )  # fmt: skip
    hale = ruth.model_copy(update={"family_name": "Hale"})
    assert in_turn(h, (death(hale, OAK, "2026-06-15", survivor=frank), union)) == [
        "no_record",
        "applied",
    ]
    assert account(h, "CT-OAK") == ("OPEN", None, ["Frank"], "SINGLE_PERSON", date(2026, 6, 16))


def test_a_kept_death_is_keyed_again_when_matching_keys_are_made_another_way(
    tmp_path: Path,
) -> None:
    """The baby's death was kept under keys an earlier version of name_key() made (here: a
    surname and given names written another way, and the store marked as keyed by version 0).
    Started again, the service makes them again from the death's message: the birth read
    after it finds the death, and the baby is not left on the claim."""
    from sqlalchemy import update

    from consumers.store import store_meta, unmatched_deaths

    born = event(EventType.BIRTH)
    h = claims(tmp_path, evans_claim(born))
    assert h.handle(death(born.facts.child, born.facts.address, "2024-06-07"), NOWHERE) == (
        "no_record"
    )
    with h.store.engine.begin() as conn:
        conn.execute(update(unmatched_deaths).values(surname="evans~", given_names="sian~elin"))
        conn.execute(
            update(store_meta).where(store_meta.c.name == "deaths_version").values(value="0")
        )
    h = handler(tmp_path, "housing_benefit", seeded=False)  # the service started again
    assert h.handle(born, NOWHERE) == "applied"
    claim = stored(h, "HB-E")
    assert (claim.children, claim.reassess_from) == ((), date(2024, 6, 8))


def test_a_store_failing_as_a_kept_death_is_applied_again_holds_the_event_after_it(
    tmp_path: Path,
) -> None:
    """The store fails as the baby's kept death is matched again after her birth (an I/O
    error, say): the birth is not applied without it (the death would wait for another event
    for ever) but held, as any event whose store fails, and applied with it once it answers."""
    from sqlalchemy.exc import OperationalError

    from tellusonce.errors import StoreBusy

    born = event(EventType.BIRTH)
    h = claims(tmp_path, evans_claim(born))
    assert h.handle(death(born.facts.child, born.facts.address, "2024-06-07"), NOWHERE) == (
        "no_record"
    )
    assert h.deaths is not None
    matches = h.deaths.matches

    def failing(*_: Any) -> Any:
        raise OperationalError("SELECT", {}, Exception("disk I/O error"))

    h.deaths.matches = failing
    with pytest.raises(StoreBusy):
        h.handle(born, NOWHERE)
    assert born.envelope.event_id_text not in h.store.outcomes()
    h.deaths.matches = matches
    assert h.handle(born, NOWHERE) == "applied"
    assert stored(h, "HB-E").children == ()


def test_a_kept_death_is_applied_after_a_correction_that_puts_the_person_on_a_record(
    tmp_path: Path,
) -> None:
    """The baby's death is read first (kept), then her birth, registered with her parents'
    NINOs and dates of birth misread (NO_RECORD), then its correction, which puts her on her
    father's claim: the kept death was applied after a registration only, and she stayed on
    the claim, assessed with her in it."""
    from producers.submission import correction
    from tellusonce.settings import Settings

    parents = [
        {"given_names": "Rhys", "family_name": "Evans", "date_of_birth": "1994-02-12",
         "nino": "CE445599B"},
        {"given_names": "Nia", "family_name": "Evans", "date_of_birth": "1995-07-31",
         "nino": "CE445598C"},
    ]  # fmt: skip
    misread = event(EventType.BIRTH, parents=parents)
    born = event(EventType.BIRTH)
    h = claims(tmp_path, evans_claim(born))
    died = death(born.facts.child, born.facts.address, "2024-06-07")
    assert in_turn(h, (died, misread)) == ["no_record", "no_record"]
    fixed = correction(misread, document(EventType.BIRTH), Settings(), "parents misread")
    assert h.handle(fixed, NOWHERE) == "applied"
    claim = stored(h, "HB-E")
    assert (claim.children, claim.reassess_from) == ((), date(2024, 6, 8))


@pytest.mark.parametrize("service", ["pensions", "disability"])
@pytest.mark.parametrize("death_first", [False, True])
def test_a_death_without_a_nino_at_a_new_home_stops_the_award_whichever_is_read_first(
    tmp_path: Path, service: str, death_first: bool
) -> None:
    """Arthur and Margaret move on 6 January; he dies on the 20th, registered without his NINO
    at their new home. Read first, his death matched no award (his was at the old postcode):
    State Pension flagged Margaret's alone and went on paying his, disability benefits answered
    NO_RECORD and went on paying DLA. It is kept, and applied once the move is."""
    from tests.factories import move

    h = handler(tmp_path, service)
    moved = move(ARTHUR, MARGARET)
    died = death(ARTHUR.model_copy(update={"nino": None}), NEW_HOME, "2025-01-20", MARGARET)
    in_turn(h, (died, moved) if death_first else (moved, died))
    award = stored(h, "SP-100001" if service == "pensions" else "DLA-200001")
    stopped = award.status if service == "pensions" else {a.status for a in award.awards}
    assert stopped == ("STOPPED" if service == "pensions" else {"STOPPED"})
    assert h.store.outcomes()[died.envelope.event_id_text] == (
        "APPLIED" if service == "pensions" or not death_first else "NO_RECORD"
    )


def test_a_death_replayed_after_its_cancellation_is_not_kept(tmp_path: Path) -> None:
    """The baby's death was dead-lettered and replayed after its cancellation: not applied
    (superseded), and not kept either: the birth read after it leaves her on the claim."""
    from producers.submission import cancellation
    from tellusonce.settings import Settings

    born = event(EventType.BIRTH)
    h = claims(tmp_path, evans_claim(born))
    died = death(born.facts.child, born.facts.address, "2024-06-07")
    undone = cancellation(died, Settings(), "registered in error")
    assert in_turn(h, (undone, died, born)) == ["not_applicable", "not_applicable", "applied"]
    assert [c.given_names for c in stored(h, "HB-E").children] == ["Siân Elin"]


def test_a_refused_correction_of_a_kept_death_leaves_it_kept(tmp_path: Path) -> None:
    """Arthur's death (no NINO, at the new home, read before the move there) flagged
    Margaret's pension and was kept; she then moved away, so a correction of his date of death
    was refused for review (her record changed since). The refusal forgot the death, still in
    effect: once the move was read, Arthur's pension went on being paid."""
    from producers.submission import correction
    from tellusonce.settings import Settings
    from tests.factories import move

    h = handler(tmp_path, "pensions")
    arthur = ARTHUR.model_copy(update={"nino": None})
    died = death(arthur, NEW_HOME, "2025-01-20", MARGARET)
    away = Address(lines=("3 Oak Street", "Manchester"), postcode="M1 1AA")
    facts = {
        "registration": died.envelope.registration.model_dump(mode="json"),
        "deceased": arthur.model_dump(mode="json"),
        "usual_address": NEW_HOME.model_dump(mode="json"),
        "marital_status": "MARRIED",
        "date_of_death": "2025-01-19",
        "surviving_partner": MARGARET.model_dump(mode="json"),
        "informant": {"name": "A Relative", "relationship": "Relative"},
    }
    corrected = document(EventType.DEATH, **facts)
    del corrected["registered_at"]  # (the entry's: not corrected)
    fixed = correction(died, corrected, Settings(), "date misread")
    leaves = event(
        EventType.ADDRESS_CHANGE,
        registration={"district": "Leeds", "entry_number": 88413, "office": "LEEDS-CS-1"},
        registered_at="2025-02-10T11:00:00Z",
        effective_on="2025-02-03",
        people_moving=[MARGARET.model_dump(mode="json")],
        old_address=NEW_HOME.model_dump(mode="json"),
        new_address=away.model_dump(mode="json"),
    )
    assert in_turn(h, (died, leaves, fixed, move(ARTHUR, MARGARET))) == [
        "applied",
        "applied",
        "rejected",
        "applied",
    ]
    assert stored(h, "SP-100001").status == "STOPPED"


@pytest.mark.parametrize("named_partner", [False, True])
def test_a_partner_s_death_read_while_a_death_in_error_stood_is_applied_once_it_is_cancelled(
    tmp_path: Path, named_partner: bool
) -> None:
    """Arthur's death is registered in error: the claim ends, Margaret invited to claim. Her
    own death is then read (no claim had her: kept), and Arthur's cancelled: the claim was put
    back paying for the couple, her death never applied again (kept deaths were applied again
    only after a birth, marriage or move)."""
    from producers.submission import cancellation
    from tellusonce.settings import Settings

    h = handler(tmp_path, "housing_benefit")
    in_error = death(ARTHUR, HOME, "2026-03-11", survivor=MARGARET)
    hers = death(MARGARET, HOME, "2026-05-01", survivor=ARTHUR if named_partner else None)
    undone = cancellation(in_error, Settings(), "registered in error")
    assert in_turn(h, (in_error, hers, undone)) == ["applied", "no_record", "applied"]
    claim = stored(h, "HB-500001")
    assert (claim.status, claim.partner, [d.person.given_names for d in claim.died]) == (
        "ACTIVE",
        None,
        ["Margaret"],
    )
    assert "REASSESSMENT_DUE" in claim.flags
    assert h.store.outcomes()[hers.envelope.event_id_text] == "NO_RECORD"  # as confirmed then


HAROLD = Person(  # Margaret's husband in another story: no State Pension here
    given_names="Harold", family_name="Thompson", date_of_birth=date(1950, 1, 1),
    nino="JT111111A",
)  # fmt: skip


@pytest.mark.parametrize(
    ("husband", "his_outcome"), [(ARTHUR, "applied"), (HAROLD, "not_applicable")]
)
def test_a_cancellation_of_what_a_later_event_relied_on_is_referred_for_review(
    tmp_path: Path, husband: Person, his_outcome: str
) -> None:
    """Margaret's death registered in error stops her pension; her husband then dies, and she
    is not flagged as his widow (her pension had stopped); Margaret's death cancelled put her
    pension back as it was, married, with no bereavement review. A later event that read a
    record the cancelled one changed, and left it as it was, is now as good as a change since:
    REJECTED, for manual review, rather than a guess. So for a husband who drew no pension here
    (his death kept: the undo puts him on no record, so it is not applied again)."""
    from producers.submission import cancellation
    from tellusonce.settings import Settings

    h = handler(tmp_path, "pensions")
    in_error = death(MARGARET, HOME, "2026-03-01")
    his = death(husband, HOME, "2026-03-11", survivor=MARGARET)
    undone = cancellation(in_error, Settings(), "registered in error")
    assert in_turn(h, (in_error, his, undone)) == ["applied", his_outcome, "rejected"]
    assert stored(h, "SP-100002").status == "STOPPED"  # as it was: for a person to review
    (tmp_path / "again").mkdir()
    alone = handler(tmp_path / "again", "pensions")  # without his death: undone at once
    assert in_turn(alone, (in_error, undone)) == ["applied", "applied"]


def test_a_cancelled_move_that_a_later_move_relied_on_is_referred_for_review(
    tmp_path: Path,
) -> None:
    """Margaret moves to New Road; then Arthur and Margaret together (she was there already:
    nothing to change for her). Cancelling her first move put her pension's address back to
    the old home, though the second move still stood."""
    from producers.submission import cancellation
    from tellusonce.settings import Settings

    h = handler(tmp_path, "pensions")
    first, both = moving(MARGARET), moving(ARTHUR, MARGARET)
    undone = cancellation(first, Settings(), "registered in error")
    assert in_turn(h, (first, both, undone)) == ["applied", "applied", "rejected"]
    assert stored(h, "SP-100002").address == NEW_HOME


def test_cancelling_in_turn_what_each_later_event_read_undoes_each(tmp_path: Path) -> None:
    """Margaret's death and Arthur's both registered in error (his leaving her stopped pension
    as it was), then each cancelled, his first: what his death read counted after its own
    cancellation, and hers was referred for review though nothing in effect had relied on it."""
    from producers.submission import cancellation
    from tellusonce.settings import Settings

    h = handler(tmp_path, "pensions")
    hers = death(MARGARET, HOME, "2026-03-01")
    his = death(ARTHUR, HOME, "2026-03-11", survivor=MARGARET)
    undo_his, undo_hers = (cancellation(e, Settings(), "registered in error") for e in (his, hers))
    assert in_turn(h, (hers, his, undo_his, undo_hers)) == ["applied"] * 4
    assert (stored(h, "SP-100001").status, stored(h, "SP-100002").status) == (
        "IN_PAYMENT",
        "IN_PAYMENT",
    )


def test_cancelling_two_moves_latest_first_puts_back_the_first_address(tmp_path: Path) -> None:
    """Margaret moves twice; the second move is cancelled, then the first: the second's change,
    undone by its cancellation, is no change since the first (it was referred for review)."""
    from producers.submission import cancellation
    from tellusonce.settings import Settings

    h = handler(tmp_path, "pensions")
    first, second = moving(MARGARET), moving(MARGARET, old=NEW_HOME, new=AWAY)
    undo_second, undo_first = (cancellation(m, Settings(), "in error") for m in (second, first))
    assert in_turn(h, (first, second, undo_second, undo_first)) == ["applied"] * 4
    assert stored(h, "SP-100002").address == HOME


def test_a_cancellation_through_a_refused_correction_undoes_what_read_after(
    tmp_path: Path,
) -> None:
    """Arthur's death read Margaret's stopped pension; its correction was refused (his record
    changed since, by his move); the move and then the correction cancelled, which undid his
    death (through the refused correction, to what it superseded). His death's read of her
    pension no longer counted, but it was still found: her death's cancellation was refused."""
    from producers.submission import cancellation, correction
    from tellusonce.settings import Settings

    h = handler(tmp_path, "pensions")
    hers = death(MARGARET, HOME, "2026-03-01")
    his = death(ARTHUR, HOME, "2026-03-11", survivor=MARGARET)
    moved = moving(ARTHUR)
    fixed = document(
        EventType.DEATH,
        deceased=ARTHUR.model_dump(mode="json"),
        usual_address=HOME.model_dump(mode="json"),
        marital_status="MARRIED",
        surviving_partner=MARGARET.model_dump(mode="json"),
        date_of_death="2026-03-10",
        registered_at="2026-03-11T18:00:00Z",
        registration=his.envelope.registration.model_dump(),
    )
    fix = correction(his, fixed, Settings(), "date")
    undo_move = cancellation(moved, Settings(), "in error")
    undo_fix = cancellation(fix, Settings(), "in error")
    undo_hers = cancellation(hers, Settings(), "in error")
    events = (hers, his, moved, fix, undo_move, undo_fix, undo_hers)
    assert in_turn(h, events) == [*["applied"] * 3, "rejected", *["applied"] * 3]
    assert [stored(h, r).status for r in ("SP-100001", "SP-100002")] == ["IN_PAYMENT"] * 2
