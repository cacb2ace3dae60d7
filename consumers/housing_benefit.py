"""Housing Benefit: what a local authority does with a claim when told of a life event.

Death of the claimant: the claim ends from the day after death; a surviving partner on the claim is
flagged to be invited to make a claim of their own. Death of the partner: the partner leaves the
claim and it is reassessed as a single person's claim from the day after death. Death of a child
on the claim: the child leaves it and the claim is reassessed. A claim already ended is
NOT_APPLICABLE.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from consumers.rules import Decision, Matches, Record, Service, day_after, is_person, no_record
from tellusonce.events import Address, DeathFacts, EventType, LifeEvent, Outcome, Person, PersonKey

PARTNER_TO_CLAIM = "PARTNER_INVITED_TO_CLAIM"
REASSESS = "REASSESSMENT_DUE"


class HousingBenefitClaim(Record):
    """A Housing Benefit claim and the household it is assessed on."""

    claimant: Person
    partner: Person | None = None
    children: tuple[Person, ...] = ()
    address: Address
    weekly_award_pence: int
    status: Literal["ACTIVE", "ENDED"] = "ACTIVE"
    ended_from: date | None = None
    reassess_from: date | None = None
    flags: tuple[str, ...] = ()

    def people(self) -> list[PersonKey]:
        household = [self.claimant, *([self.partner] if self.partner else []), *self.children]
        return [p.key(self.address.postcode) for p in household]


def on_death(event: LifeEvent[Any], matches: Matches) -> Decision:
    """End the claim (claimant died) or reassess it (partner or child died)."""
    facts: DeathFacts = event.facts
    claim = matches.get("deceased")
    if not isinstance(claim, HousingBenefitClaim):
        return no_record("Housing Benefit claim")
    if claim.status == "ENDED":
        return Decision(
            Outcome.NOT_APPLICABLE,
            (f"Claim already ended from {claim.ended_from}",),
            service_reference=claim.record_id,
        )
    key = facts.people()["deceased"]
    from_day = day_after(facts.date_of_death)
    if is_person(claim.claimant, key):
        changed = claim.model_copy(update={"status": "ENDED", "ended_from": from_day})
        actions = [f"Housing Benefit claim {claim.record_id} ended from {from_day}"]
        if claim.partner:
            changed = changed.model_copy(update={"flags": (*claim.flags, PARTNER_TO_CLAIM)})
            actions.append("Surviving partner flagged to be invited to make a new claim")
    elif claim.partner and is_person(claim.partner, key):
        changed = claim.model_copy(
            update={
                "partner": None,
                "reassess_from": from_day,
                "flags": (*claim.flags, REASSESS),
            }
        )
        actions = [f"Partner removed; claim reassessed as a single person from {from_day}"]
    else:
        children = tuple(c for c in claim.children if not is_person(c, key))
        changed = claim.model_copy(
            update={
                "children": children,
                "reassess_from": from_day,
                "flags": (*claim.flags, REASSESS),
            }
        )
        actions = [f"Child removed from the household; claim reassessed from {from_day}"]
    return Decision(Outcome.APPLIED, tuple(actions), (changed,), claim.record_id)


SERVICE = Service(
    name="housing_benefit",
    title="Housing Benefit",
    record_type=HousingBenefitClaim,
    rules={EventType.DEATH: on_death},
)
