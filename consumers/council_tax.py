"""Council Tax: what a local authority does with an account when told of a life event.

Death of a resident: the deceased leaves the account from the day after death. The discount is
then re-evaluated on the adults left: one adult gets the 25% single person discount; none gets the
Class F exemption (an unoccupied home whose liable person has died: nothing is charged while the
estate is settled); two or more keep the full charge. The new annual charge is stated in pence-exact
pounds. A death of someone not on the account is NO_RECORD.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from consumers.money import pounds
from consumers.rules import Decision, Matches, Record, Service, day_after, is_person, no_record
from tellusonce.events import Address, DeathFacts, EventType, LifeEvent, Outcome, Person, PersonKey

Discount = Literal["NONE", "SINGLE_PERSON", "CLASS_F"]
SINGLE_PERSON_DISCOUNT_PERCENT = 25


class CouncilTaxAccount(Record):
    """A property's Council Tax account and the adults counted on it."""

    property: Address
    residents: tuple[Person, ...]
    annual_charge_pence: int
    discount: Discount = "NONE"
    discount_from: date | None = None

    def people(self) -> list[PersonKey]:
        return [r.key(self.property.postcode) for r in self.residents]

    def charge_pence(self) -> int:
        """The annual charge after the current discount."""
        if self.discount == "CLASS_F":
            return 0
        if self.discount == "SINGLE_PERSON":
            return self.annual_charge_pence * (100 - SINGLE_PERSON_DISCOUNT_PERCENT) // 100
        return self.annual_charge_pence


def discount_for(adults: int) -> Discount:
    """The discount an account gets for the number of adults counted on it."""
    if adults == 0:
        return "CLASS_F"
    if adults == 1:
        return "SINGLE_PERSON"
    return "NONE"


DISCOUNT_WORDS = {
    "CLASS_F": "Class F exemption applied (no liable adult left; the estate is responsible)",
    "SINGLE_PERSON": f"{SINGLE_PERSON_DISCOUNT_PERCENT}% single person discount applied",
    "NONE": "no discount: two or more adults remain",
}


def on_death(event: LifeEvent[Any], matches: Matches) -> Decision:
    """Take the deceased off the account and re-evaluate the discount."""
    facts: DeathFacts = event.facts
    account = matches.get("deceased")
    if not isinstance(account, CouncilTaxAccount):
        return no_record("Council Tax account")
    key = facts.people()["deceased"]
    remaining = tuple(r for r in account.residents if not is_person(r, key))
    leave_from = day_after(facts.date_of_death)
    discount = discount_for(len(remaining))
    changed = account.model_copy(
        update={
            "residents": remaining,
            "discount": discount,
            "discount_from": leave_from if discount != account.discount else account.discount_from,
        }
    )
    actions = [f"Deceased removed from account {account.record_id} from {leave_from}"]
    if discount != account.discount:
        actions.append(f"{DISCOUNT_WORDS[discount]} from {leave_from}")
        actions.append(f"Annual charge now {pounds(changed.charge_pence())}")
    else:
        actions.append(f"Discount unchanged ({DISCOUNT_WORDS[discount]})")
    return Decision(Outcome.APPLIED, tuple(actions), (changed,), account.record_id)


SERVICE = Service(
    name="council_tax",
    title="Council Tax",
    record_type=CouncilTaxAccount,
    rules={EventType.DEATH: on_death},
)
