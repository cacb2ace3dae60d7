"""Housing Benefit: what a local authority does with a claim when told of a life event.

- Death of the claimant: the claim ends from the day after death; a surviving partner on the claim
  is flagged to be invited to make a claim of their own. Death of the partner: the partner leaves
  the claim, reassessed as a single person's from the day after death. Death of a child: the child
  leaves the household and the claim is reassessed.
- Birth to a claimant or partner: the child joins the household from the date of birth and the
  claim is reassessed (parents living apart, each with a claim: the claim at the child's
  address, else the first found). Already on the claim: NOT_APPLICABLE.
- Marriage or civil partnership of a claimant: the partner joins the claim, which is reassessed as
  a couple's from the date of the union; each takes the family name they have after it. Already
  the partner: each takes the family name they have after it (not reassessed), else
  NOT_APPLICABLE. Both claimants: a couple has one claim, the one at their home
  after the union (else the first found); the other ends from the date of the union.
- Address change of the claimant: the claim at the old address ends on the effective date and a
  new claim is needed for the new home (each active claim of the movers, if they hold several).
  A move is keyed by its first mover, so two moves of one claimant (or a move and the
  claimant's death) may be read in either order: a claim a move from another address, or a
  death at another usual address, ends (the claimant left its address before, on a day not
  known here) is flagged for its end date to be confirmed, and still matches the claimant; the
  move from its address, read later, ends it from that move's day instead.
  A partner or child moving without the claimant leaves the household: the claim goes on,
  reassessed from the effective date. A claim already at the new address: NOT_APPLICABLE.
- A death and a union or a birth before it come on different topics, and the death may be read
  first: a claim keeps who of its household died (`died`), and one its claimant's death ended
  still matches them. The union, read after, makes that claim the couple's (the widow on it,
  invited to claim; her own claim ended from the union), and adds nobody who has died since;
  the birth puts the child on it.
- The event is for the active claim of whoever in it holds one (one party's claim may have ended
  while the other's goes on). An ended claim matches nobody (its household is its history, as
  a closed council tax account's): nobody on an active claim is NO_RECORD.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from consumers.rules import (
    Decision,
    Died,
    Matches,
    Record,
    Service,
    counted,
    day_after,
    died_on,
    died_since,
    entries_of,
    entries_of_any,
    is_person,
    matched,
    no_record,
    unchanged,
)
from tellusonce.events import (
    Address,
    AddressChangeFacts,
    BirthFacts,
    DeathFacts,
    EventType,
    LifeEvent,
    MarriageFacts,
    Outcome,
    Person,
    PersonKey,
    Spouse,
)

PARTNER_TO_CLAIM = "PARTNER_INVITED_TO_CLAIM"
REASSESS = "REASSESSMENT_DUE"
NEW_CLAIM = "NEW_CLAIM_NEEDED"
END_TO_CONFIRM = "END_DATE_TO_CONFIRM"  # ended by a move from elsewhere: left before, unknown day
WHAT = "Housing Benefit claim"


class HousingBenefitClaim(Record):
    """A Housing Benefit claim and the household it is assessed on."""

    PEOPLE_VERSION = 3  # 2: an ended claim matches nobody; 3: but its claimant's, if died

    claimant: Person
    partner: Person | None = None
    children: tuple[Person, ...] = ()
    address: Address
    weekly_award_pence: int
    status: Literal["ACTIVE", "ENDED"] = "ACTIVE"
    ended_from: date | None = None
    reassess_from: date | None = None
    flags: tuple[str, ...] = ()
    died: tuple[Died, ...] = ()  # who of the household died (death read first: kept off)

    def people(self) -> list[PersonKey]:
        if self.status == "ENDED" and END_TO_CONFIRM not in self.flags:  # a person's new
            # claim, not this one, is theirs now (one to confirm awaits its move), but a
            # claimant who died has none: a union read after the death finds theirs
            died = died_on(self.died, self.claimant) is not None
            return [self.claimant.key(self.address.postcode)] if died else []
        return [p.key(self.address.postcode) for p in self.household()]

    def household(self) -> tuple[Person, ...]:
        """The claimant, the partner if any, then the children."""
        return (self.claimant, *([self.partner] if self.partner else []), *self.children)

    def children_but(self, gone: set[int]) -> tuple[Person, ...]:
        """The children but those at these positions of the household."""
        first = 2 if self.partner else 1
        return tuple(c for i, c in enumerate(self.children, first) if i not in gone)

    def summary(self) -> str:
        if self.status == "ENDED":
            return f"claim ended from {self.ended_from}"
        partner = " and partner" if self.partner else ""
        children = counted(len(self.children), "child", "children")
        return f"claim active for the claimant{partner} and {children}"

    def reassessed(self, from_day: date, **changes: Any) -> HousingBenefitClaim:
        """This claim with a household change, flagged for reassessment from a date."""
        flags = self.flags if REASSESS in self.flags else (*self.flags, REASSESS)
        return self.model_copy(update={**changes, "reassess_from": from_day, "flags": flags})


def active_claims(
    matches: Matches, *roles: str, as_of: date | None = None
) -> list[HousingBenefitClaim] | Decision:
    """The active claims matched by these roles (any role's: one party's claim may have ended
    while the other's goes on), and, as of an event's day, those its claimant's death ended
    since (read first: active on that day); or the decision when there is none."""
    found = matched(matches, HousingBenefitClaim, *roles)
    if not found:
        return no_record(WHAT)
    active = [
        claim
        for _, claim in found
        if claim.status == "ACTIVE"
        or (as_of is not None and died_since([claim.died], claim.claimant, as_of))
    ]
    if not active:
        claim = found[0][1]
        return unchanged(f"Claim already ended from {claim.ended_from}", claim)
    return active


def active_claim(matches: Matches, *roles: str) -> HousingBenefitClaim | Decision:
    """The first active claim matched by these roles, or the decision when there is none."""
    claims = active_claims(matches, *roles)
    return claims if isinstance(claims, Decision) else claims[0]


def on_death(event: LifeEvent[Any], matches: Matches) -> Decision:
    """End the claim (claimant died) or reassess it (partner or child died)."""
    facts: DeathFacts = event.facts
    claim = active_claim(matches, "deceased")
    if isinstance(claim, Decision):
        return claim
    from_day = day_after(facts.date_of_death)
    died = entries_of(claim.household(), facts.deceased)  # 0: the claimant, then the partner
    deaths = (
        *claim.died,
        *(Died(person=claim.household()[i], on=facts.date_of_death) for i in sorted(died)),
    )
    if 0 in died:
        elsewhere = not claim.address.same_place(facts.usual_address)
        flags = (
            *claim.flags,
            *([PARTNER_TO_CLAIM] if claim.partner else []),
            *([END_TO_CONFIRM] if elsewhere else []),
        )
        changed = claim.model_copy(
            update={"status": "ENDED", "ended_from": from_day, "flags": flags, "died": deaths}
        )
        actions = [f"Housing Benefit claim {claim.record_id} ended from {from_day}"]
        if claim.partner:
            actions.append("Surviving partner flagged to be invited to make a new claim")
        if elsewhere:
            actions.append(
                "The deceased's usual address is not the claim's: they left it earlier, on a "
                "day not known here; its end date is to be confirmed"
            )
    elif claim.partner and 1 in died:
        changed = claim.reassessed(from_day, partner=None, died=deaths)
        actions = [f"Partner removed; claim reassessed as a single person from {from_day}"]
    else:
        children = claim.children_but(died)
        changed = claim.reassessed(from_day, children=children, died=deaths)
        actions = [f"Child removed from the household; claim reassessed from {from_day}"]
    return Decision(Outcome.APPLIED, tuple(actions), (changed,), claim.record_id)


def on_birth(event: LifeEvent[Any], matches: Matches) -> Decision:
    """Add the child to a parent's claim and reassess it: the claim at the child's address, if
    one is (parents living apart may each hold one), else the first found; a claim ended by
    its claimant's death since the birth (read first) too."""
    facts: BirthFacts = event.facts
    born = facts.child.date_of_birth
    claims = active_claims(matches, "parent1", "parent2", "child", as_of=born)
    if isinstance(claims, Decision):
        return claims
    claim = min(claims, key=lambda c: not c.address.same_place(facts.address))
    if any(c.same_as(facts.child) for c in claim.children):  # by given names too: twins
        return unchanged("Child already on the claim", claim)
    changed = claim.reassessed(born, children=(*claim.children, facts.child))
    actions = (f"Child added to the household of claim {claim.record_id}; reassessed from {born}",)
    return Decision(Outcome.APPLIED, actions, (changed,), claim.record_id)


def on_marriage(event: LifeEvent[Any], matches: Matches) -> Decision:
    """Add the new partner to the claim and reassess it as a couple's; a claim the partner held
    ends (one claim for the couple: the one at their home, else the first found). A party's
    death on another topic may be read first: a claim it ended is the couple's still."""
    facts: MarriageFacts = event.facts
    day = facts.married_on
    claims = active_claims(matches, "party1", "party2", as_of=day)
    if isinstance(claims, Decision):
        return claims
    keys = facts.people()
    held = [  # (claim, the party holding it as claimant), the couple's home's first
        (c, role)
        for c in sorted(claims, key=lambda c: not c.address.same_place(facts.address_after))
        for role in [next((r for r, key in keys.items() if is_person(c.claimant, key)), None)]
        if role is not None
    ]
    if not held:
        return unchanged(
            "Neither party is the claimant; the household is reviewed separately", claims[0]
        )
    claim, claimant_role = held[0]
    named = facts.parties[int(claimant_role[-1]) - 1].family_name_after
    claimant = claim.claimant  # as the claim knows them (a NINO the event may not give)
    if named is not None:
        claimant = claimant.model_copy(update={"family_name": named})
    other = facts.parties[2 - int(claimant_role[-1])]
    names = (other.person, other.after())
    changed: list[HousingBenefitClaim] = []
    actions: list[str] = []
    on_it = any(claim.partner and is_person(claim.partner, p.key(None)) for p in names)
    if on_it and claim.partner:  # a couple on one claim already: by the names after the union
        partner = claim.partner
        if other.family_name_after is not None:
            partner = partner.model_copy(update={"family_name": other.family_name_after})
        renamed = claim.model_copy(update={"claimant": claimant, "partner": partner})
        if renamed != claim:  # (else NOT_APPLICABLE, below)
            changed.append(renamed)
            actions.append(f"Family names after the union recorded on claim {claim.record_id}")
    elif not any(died_on(claim.died, p) for p in names):  # (or was on it, and died)
        deaths = [c.died for c in claims]
        died = next((on for p in names if (on := died_since(deaths, p, day))), None)
        couple, said = _joined(claim, claimant, other, day, died)
        changed.append(couple)
        actions += said
    for own, role in held[1:]:  # the partner's own claim: the couple's claim is the other
        if role == claimant_role:
            continue
        # ended by its claimant's death (read first): ended by the union, before it
        flags = tuple(f for f in own.flags if f not in (END_TO_CONFIRM, PARTNER_TO_CLAIM))
        changed.append(
            own.model_copy(update={"status": "ENDED", "ended_from": day, "flags": flags})
        )
        actions.append(
            f"{WHAT} {own.record_id} ended from {day}: its claimant is the partner on "
            f"claim {claim.record_id}"
        )
    if not changed:
        return unchanged("Partner already on the claim", claim)
    return Decision(Outcome.APPLIED, tuple(actions), tuple(changed), claim.record_id)


def _joined(
    claim: HousingBenefitClaim, claimant: Person, other: Spouse, day: date, died: date | None
) -> tuple[HousingBenefitClaim, list[str]]:
    """The couple's claim once the partner joined it on the day of the union, and what changed
    in words: a claim its claimant's death ended since (read first) is the widow's to be invited
    from; a partner who died since (read first) joined and left, and is not on it."""
    if claim.status == "ENDED":
        couple = claim.reassessed(day, partner=other.after(), claimant=claimant)
        if PARTNER_TO_CLAIM not in couple.flags:
            couple = couple.model_copy(update={"flags": (*couple.flags, PARTNER_TO_CLAIM)})
        return couple, [
            f"Partner added to claim {claim.record_id}, ended from {claim.ended_from} by the "
            f"claimant's death; reassessed as a couple from {day}",
            "Surviving partner flagged to be invited to make a new claim",
        ]
    if died is not None:  # reassessed from the death, as the death read after would have
        since = day_after(died)
        return claim.reassessed(since, claimant=claimant), [
            f"Partner joined claim {claim.record_id} from {day} and died on {died}; "
            f"reassessed from {since}"
        ]
    return claim.reassessed(day, partner=other.after(), claimant=claimant), [
        f"Partner added to claim {claim.record_id}; reassessed as a couple from {day}"
    ]


def on_address_change(event: LifeEvent[Any], matches: Matches) -> Decision:
    """End each claim of a claimant who moved, at the old address (a new claim is needed for the
    new one); a partner or child who moved without the claimant leaves the household."""
    facts: AddressChangeFacts = event.facts
    day = facts.effective_on
    ended_later = [  # by a later move of the claimant, read first: ended from this one's day
        c
        for _, c in matched(matches, HousingBenefitClaim)
        if END_TO_CONFIRM in c.flags
        and c.address.same_place(facts.old_address)
        and c.ended_from is not None
        and day < c.ended_from
        and 0 in entries_of_any(c.household(), facts.people_moving)
    ]
    if ended_later:
        return _ended_earlier(ended_later, day)
    claims = active_claims(matches)
    if isinstance(claims, Decision):
        return claims
    changed: list[HousingBenefitClaim] = []
    actions: list[str] = []
    for c in claims:
        if c.address.same_place(facts.new_address):
            continue
        moved = entries_of_any(c.household(), facts.people_moving)
        if 0 in moved:
            elsewhere = not c.address.same_place(facts.old_address)
            flags = (*c.flags, NEW_CLAIM, *([END_TO_CONFIRM] if elsewhere else []))
            ended = {"status": "ENDED", "ended_from": day, "flags": flags}
            changed.append(c.model_copy(update=ended))
            actions.append(f"{WHAT} {c.record_id} ended at the old address from {day}")
            if elsewhere:
                actions.append(
                    "The claim's address is not the one moved from: the claimant left it "
                    "earlier, on a day not known here; its end date is to be confirmed"
                )
            continue
        partner_left = c.partner is not None and 1 in moved
        children = c.children_but(moved)
        left = ["Partner"] if partner_left else []
        if len(children) < len(c.children):
            left.append(counted(len(c.children) - len(children), "child", "children"))
        changed.append(
            c.reassessed(day, partner=None if partner_left else c.partner, children=children)
        )
        who = " and ".join(left)
        actions.append(
            f"{who[0].upper()}{who[1:]} left the household of claim {c.record_id}; "
            f"reassessed from {day}"
        )
    if not changed:
        return unchanged("Claim already at the new address", claims[0])
    if any(c.status == "ENDED" for c in changed):
        actions.append("A new claim is needed for the new address")
    return Decision(Outcome.APPLIED, tuple(actions), tuple(changed), changed[0].record_id)


def _ended_earlier(claims: list[HousingBenefitClaim], day: date) -> Decision:
    """Claims a later move or death ended, away from their address, ended from the day of the
    move from their address instead, as that move read first would have ended them (a new
    claim needed; a partner who moved too is not invited to claim for the home left)."""
    gone = (END_TO_CONFIRM, PARTNER_TO_CLAIM, NEW_CLAIM)
    changed = tuple(
        c.model_copy(
            update={
                "ended_from": day,
                "flags": (*(f for f in c.flags if f not in gone), NEW_CLAIM),
            }
        )
        for c in claims
    )
    actions = tuple(
        f"{WHAT} {c.record_id} ended from {day}, the day of the move from its address "
        f"(a later move or death had ended it from {c.ended_from})"
        for c in claims
    )
    return Decision(Outcome.APPLIED, actions, changed, changed[0].record_id)


SERVICE = Service(
    name="housing_benefit",
    title="Housing Benefit",
    record_type=HousingBenefitClaim,
    brings_people=frozenset({EventType.BIRTH, EventType.MARRIAGE}),
    rules={
        EventType.DEATH: on_death,
        EventType.BIRTH: on_birth,
        EventType.MARRIAGE: on_marriage,
        EventType.ADDRESS_CHANGE: on_address_change,
    },
)
