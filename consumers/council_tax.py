"""Council Tax: what a local authority (here Leeds, postcode area LS) does when told of an event.

- Death of a resident: the deceased leaves the account from the day after death. The discount is
  re-evaluated on the adults left: one adult gets the 25% single person discount; none gets the
  Class F exemption (the liable person has died: nothing is charged while the estate is settled);
  two or more pay the full charge. No adult left otherwise (only children left by adults who
  moved) is not Class F: the account is charged, its liability to be reviewed.
- Marriage or civil partnership: if the couple's home afterwards is a property on an account
  (found by its address, whether or not either party is on it), the partner joins that account
  (and new family names are recorded), and the discount is re-evaluated (a single person
  discount ends); the partner leaves the account of their former home here, from the date of
  the union (closed if nobody is left, its discount re-evaluated otherwise). A home elsewhere:
  NOT_APPLICABLE.
- Address change: the movers' residency at the old property ends on the effective date (the
  account closes if nobody is left, otherwise its discount is re-evaluated). At the new address,
  if the property has an open account here (found by its address, written alike but for case,
  spacing and commas), the movers join it and its discount is re-evaluated (a single person
  discount ends when a second adult moves in); otherwise, if the address is in the authority's
  area, a new account is opened there (valuation band to be confirmed). A move is keyed by its
  first mover, so two moves of one person may be read in either order: a mover who came to an
  account by a later move (its opening, or joining it) does not leave it by an earlier one, and
  is not put on the account at the earlier move's new address (they have moved on since).
- A death and a union or a move before it come on different topics, and the death may be read
  first: an account keeps who died on it (`died`, and matches them while open). A party or
  mover who died since the event's day joins, then leaves from the day after the death (the
  discount re-evaluated twice, as read in order); one who left an account and died since
  leaves it from the event's day.
- Nobody in the event is on an account, and the new address has none: NO_RECORD.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date
from typing import Any, Literal

from consumers.money import pounds
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
    matched,
    no_record,
    unchanged,
    without,
)
from tellusonce.events import (
    Address,
    AddressChangeFacts,
    DeathFacts,
    EventType,
    Frozen,
    LifeEvent,
    MarriageFacts,
    Outcome,
    Person,
    PersonKey,
)
from tellusonce.fields import age_on

Discount = Literal["NONE", "SINGLE_PERSON", "CLASS_F", "NO_ADULT"]
SINGLE_PERSON_DISCOUNT_PERCENT = 25
AREA = ("LS",)
WHAT = "Council Tax account"


class MovedIn(Frozen):
    """A resident who joined an account by a move, and the move's day."""

    person: Person
    on: date


class CouncilTaxAccount(Record):
    """A property's Council Tax account and the adults counted on it."""

    PEOPLE_VERSION = 3  # 2: found at its property too (places), while it is open; 3: and
    # by the residents who died on it (a marriage or a move of theirs read after the death)

    property: Address
    residents: tuple[Person, ...]
    annual_charge_pence: int | None
    discount: Discount = "NONE"
    discount_from: date | None = None
    status: Literal["OPEN", "CLOSED"] = "OPEN"
    closed_from: date | None = None
    opened_from: date | None = None  # the move's day, for an account a move opened
    moved_in: tuple[MovedIn, ...] = ()  # residents who joined it by a move since it opened
    died: tuple[Died, ...] = ()  # residents who died (an earlier event read later: kept off)

    def people(self) -> list[PersonKey]:
        """Whom the account matches: its residents, and those who died on it, while it is
        open. A closed account (its residents kept as its history) matches nobody: they have
        left."""
        if self.status == "CLOSED":
            return []
        people = (*self.residents, *(d.person for d in self.died))
        return [p.key(self.property.postcode) for p in people]

    def places(self) -> list[str]:
        """Where the account is found by an address: its property, while it is open (nobody
        moving in joins a closed one)."""
        return [] if self.status == "CLOSED" else [self.property.place]

    def arrived(self, person: Person) -> date | None:
        """The day a resident came to the account by a move (joining it, or opening it), or
        None if not by a move, or not a resident."""
        joined = entries_of([m.person for m in self.moved_in], person) if self.moved_in else ()
        if joined:
            return max(self.moved_in[i].on for i in joined)
        if self.opened_from is not None and entries_of(self.residents, person):
            return self.opened_from
        return None

    def latest_arrival(self) -> date | None:
        """The day of the latest move that brought anyone to the account, if any did."""
        days = [m.on for m in self.moved_in] + ([self.opened_from] if self.opened_from else [])
        return max(days, default=None)

    def summary(self) -> str:
        if self.status == "CLOSED":
            return f"account closed from {self.closed_from}"
        return f"{counted(len(self.residents), 'resident')}, {DISCOUNT_WORDS[self.discount]}"

    def charge_pence(self) -> int | None:
        """The annual charge after the current discount (None until the band is known)."""
        if self.annual_charge_pence is None:
            return None
        if self.discount == "CLASS_F":
            return 0
        if self.discount == "SINGLE_PERSON":
            return self.annual_charge_pence * (100 - SINGLE_PERSON_DISCOUNT_PERCENT) // 100
        return self.annual_charge_pence


ADULT_AGE = 18


def adults(residents: tuple[Person, ...], on: date) -> int:
    """How many residents count as adults (18 or over) on a date."""
    return sum(age_on(r.date_of_birth, on) >= ADULT_AGE for r in residents)


def discount_for(adults: int, died: bool = False) -> Discount:
    """The discount an account gets for the number of adults counted on it: none left because
    the liable person died is Class F; none left otherwise (children left by adults who moved)
    is for the council to look into, charged meanwhile."""
    if adults == 0:
        return "CLASS_F" if died else "NO_ADULT"
    if adults == 1:
        return "SINGLE_PERSON"
    return "NONE"


DISCOUNT_WORDS = {
    "CLASS_F": "Class F exemption applied (no liable adult left; the estate is responsible)",
    "SINGLE_PERSON": f"{SINGLE_PERSON_DISCOUNT_PERCENT}% single person discount applied",
    "NONE": "no discount: two or more adults counted",
    "NO_ADULT": "no adult counted: who is liable is to be reviewed (charged meanwhile)",
}


def in_area(address: Address) -> bool:
    """Whether an address is in this authority's postcode area (the letters before the digits)."""
    area = re.match(r"[A-Z]+", address.postcode)
    return area is not None and area.group() in AREA


def with_residents(
    account: CouncilTaxAccount,
    residents: tuple[Person, ...],
    from_day: date,
    died: bool = False,
    dead: tuple[Died, ...] | None = None,
) -> tuple[CouncilTaxAccount, list[str]]:
    """The account with new residents (and who died on it, if `dead` says) and its discount
    re-evaluated, and what changed in words."""
    discount = discount_for(adults(residents, from_day), died)
    changed = account.model_copy(
        update={
            "residents": residents,
            "discount": discount,
            "discount_from": from_day if discount != account.discount else account.discount_from,
            # who moved in, of those still resident
            "moved_in": tuple(m for m in account.moved_in if entries_of(residents, m.person)),
            "died": account.died if dead is None else dead,
        }
    )
    if discount == account.discount:
        return changed, [f"Discount unchanged ({DISCOUNT_WORDS[discount]})"]
    actions = [f"{DISCOUNT_WORDS[discount]} from {from_day}"]
    charge = changed.charge_pence()
    if charge is not None:
        actions.append(f"Annual charge now {pounds(charge)}")
    return changed, actions


def open_accounts(matches: Matches, *roles: str) -> list[tuple[str, CouncilTaxAccount]]:
    """The open accounts the event's people matched (a store indexed before closed accounts
    stopped matching may still find a closed one: nothing more happens to it)."""
    return [
        (role, account)
        for role, account in matched(matches, CouncilTaxAccount, *roles)
        if account.status == "OPEN"
    ]


def on_death(event: LifeEvent[Any], matches: Matches) -> Decision:
    """Take the deceased off the account and re-evaluate the discount."""
    facts: DeathFacts = event.facts
    found = open_accounts(matches, "deceased")
    if not found:
        return no_record(WHAT)
    account = found[0][1]
    if not entries_of(account.residents, facts.deceased):  # found by who died on it
        return unchanged(f"Death already recorded on account {account.record_id}", account)
    changed, words = _dying(account, (Died(person=facts.deceased, on=facts.date_of_death),))
    return Decision(Outcome.APPLIED, tuple(words), (changed,), account.record_id)


def _dying(account: CouncilTaxAccount, died: Sequence[Died]) -> tuple[CouncilTaxAccount, list[str]]:
    """The account once these residents left it, each from the day after their death (the
    discount re-evaluated: Class F if no adult is left), and what changed in words."""
    words: list[str] = []
    for d in sorted(died, key=lambda d: d.on):
        leave_from = day_after(d.on)
        remaining = without(account.residents, d.person)
        known = died_on(account.died, d.person) == d.on  # (the death read first recorded it)
        dead = account.died if known else (*account.died, d)
        account, said = with_residents(account, remaining, leave_from, died=True, dead=dead)
        words += [f"Deceased removed from account {account.record_id} from {leave_from}", *said]
    return account, words


def _deaths_since(
    accounts: Sequence[CouncilTaxAccount], people: Sequence[Person], day: date
) -> list[Died]:
    """Those of these people who died on or after `day`, as the accounts tell it: their
    deaths, on another topic, were read before this event."""
    died = [a.died for a in accounts]
    return [Died(person=p, on=on) for p in people if (on := died_since(died, p, day))]


def on_marriage(event: LifeEvent[Any], matches: Matches) -> Decision:
    """The partner joins the account of the couple's home and leaves the account of their
    own former home here; each account's discount is re-evaluated."""
    facts: MarriageFacts = event.facts
    found = open_accounts(matches, "party1", "party2")
    there = next((a for _, a in open_accounts(matches, "home")), None)  # found at the address
    if not found and there is None:
        return no_record(WHAT)
    home = there or next((a for _, a in found if a.property.same_place(facts.address_after)), None)
    if home is None:
        reason = "The couple's home after the marriage is not on an account here"
        return unchanged(reason, found[0][1])
    parties = [s.person for s in facts.parties]
    day = facts.married_on
    residents = home.residents
    for party, spouse in zip(parties, facts.parties, strict=True):
        residents = (*without(residents, party), spouse.after())
    died = _deaths_since([home, *(a for _, a in found)], [s.after() for s in facts.parties], day)
    changed: list[Record] = []
    actions: list[str] = []
    if set(residents) != set(home.residents) or died:
        updated, words = with_residents(home, residents, day)
        joined = len(residents) > len(home.residents)
        if died:  # a party's death read first: they joined, and left on dying
            updated, dying = _dying(updated, died)
            words += dying
        changed.append(updated)
        actions += [
            f"Partner joined account {home.record_id} from {day}"
            if joined
            else f"New family name recorded on account {home.record_id}",
            *words,
        ]
    for _, account in found:  # a party's account at their home before: they left it
        if account.record_id != home.record_id:
            left = _leaving(account, parties, day)
            if left is not None:
                changed.append(left[0])
                actions += left[1]
    if not changed:
        return unchanged("Both partners already on the account", home)
    return Decision(Outcome.APPLIED, tuple(actions), tuple(changed), home.record_id)


def _leaving(
    account: CouncilTaxAccount, people: Sequence[Person], day: date
) -> tuple[CouncilTaxAccount, list[str]] | None:
    """The account once these people left it on a day (closed if nobody is left), and what
    changed in words; None if none of them is on it."""
    died = _deaths_since([account], people, day)
    if died:  # they left before dying (the death read first): not its death, nor its discount
        back = (*account.residents, *(d.person for d in died))
        account = account.model_copy(
            update={
                "residents": back,
                "discount": discount_for(adults(back, day)),
                "died": tuple(d for d in account.died if died_on(died, d.person) is None),
            }
        )
    remaining = without(account.residents, *people)
    if remaining == account.residents:
        return None
    if not remaining:
        closed = account.model_copy(update={"status": "CLOSED", "closed_from": day})
        return closed, [f"Account {account.record_id} closed from {day}: nobody left"]
    updated, words = with_residents(account, remaining, day)
    return updated, [f"Residency at {account.record_id} ended from {day}", *words]


def on_address_change(event: LifeEvent[Any], matches: Matches) -> Decision:
    """End residency at the old property; join the account at the new one, or open one there
    if it has none and is in the area."""
    facts: AddressChangeFacts = event.facts
    found = [a for _, a in open_accounts(matches, *facts.people())]
    there = next((a for _, a in open_accounts(matches, "new_address")), None)
    first = found[0] if found else there  # the account the confirmation names
    if first is None:
        return no_record(WHAT)
    day = facts.effective_on
    later = _brought_later(found, facts.people_moving, day)
    moved_on = {i for _, i in later}
    movers = tuple(p for i, p in enumerate(facts.people_moving) if i not in moved_on)
    left = [
        change
        for account in found
        if there is None or account.record_id != there.record_id  # on it already: stays
        if (change := _leaving(account, _who_leave(facts.people_moving, account, later), day))
    ]
    arrived = None
    if there is not None and movers:
        arrived = _joining(there, movers, day)
    elif in_area(facts.new_address) and movers:
        arrived = _opening(event, movers, day)
    died = _deaths_since([*found, *([there] if there else [])], movers, day)
    if arrived is not None and died:  # a mover's death read first: arrived, and left on dying
        dying = _dying(arrived[0], died)
        arrived = dying[0], [*arrived[1], *dying[1]]
    changed = (*(record for record, _ in left), *([arrived[0]] if arrived else []))
    if not changed:
        if later:
            return unchanged(f"A later move, from {max(later.values())}, is recorded", first)
        return unchanged("Already on the account at the new address", first)
    moved_on_since = [
        f"{counted(len(moved_on), 'mover')} moved on since (a move from "
        f"{max(later.values())} is recorded): not added at the new address"
    ] if moved_on else []  # fmt: skip
    actions = (
        *(said for _, words in left for said in words),
        *moved_on_since,
        *(arrived[1] if arrived else ()),
    )
    return Decision(Outcome.APPLIED, actions, changed, first.record_id)


def _who_leave(
    movers: Sequence[Person], account: CouncilTaxAccount, later: dict[tuple[str, int], date]
) -> list[Person]:
    """The movers who leave an account: all but those a later move brought to it."""
    return [m for i, m in enumerate(movers) if (account.record_id, i) not in later]


def _brought_later(
    accounts: Sequence[CouncilTaxAccount], movers: Sequence[Person], day: date
) -> dict[tuple[str, int], date]:
    """(account, mover's position): the day of a move later than `day` that brought the mover
    to the account (opening or joining it), where one did: the mover lives there now."""
    later = {}
    for account in accounts:
        if (account.latest_arrival() or date.min) > day:
            for i, mover in enumerate(movers):
                arrived = account.arrived(mover)
                if arrived is not None and arrived > day:
                    later[account.record_id, i] = arrived
    return later


def _opening(
    event: LifeEvent[Any], movers: tuple[Person, ...], day: date
) -> tuple[CouncilTaxAccount, list[str]]:
    """A new account at the movers' new address, and what it is in words."""
    facts: AddressChangeFacts = event.facts
    new = CouncilTaxAccount(
        record_id=f"CT-N{event.envelope.event_id.hex.upper()}",
        property=facts.new_address,
        residents=movers,
        annual_charge_pence=None,
        discount=discount_for(adults(movers, day)),
        discount_from=day,
        opened_from=day,
    )
    opened = f"New account {new.record_id} opened at the new address from {day}"
    return new, [f"{opened} (valuation band to be confirmed)"]


def _joining(
    account: CouncilTaxAccount, movers: tuple[Person, ...], day: date
) -> tuple[CouncilTaxAccount, list[str]] | None:
    """The account at the new address once the movers joined it on the move's day (its
    discount re-evaluated), and what changed in words; None if nothing did. A mover on it
    already (their move away not recorded here: a move back read first) is recorded as moving
    in on this day, so the move away, read after, is known as the earlier one."""
    on_it = [_on_account(account, m) for m in movers]
    new = [m for m, there in zip(movers, on_it, strict=True) if not there]
    back = [
        m
        for m, there in zip(movers, on_it, strict=True)
        if there and (account.arrived(m) or date.min) < day
    ]
    if not new and not back:
        return None
    joined, words = (
        with_residents(account, (*account.residents, *new), day) if new else (account, [])
    )
    arrivals = tuple(MovedIn(person=p, on=day) for p in (*new, *back))
    earlier = tuple(m for m in joined.moved_in if not entries_of_any([m.person], back))
    joined = joined.model_copy(update={"moved_in": (*earlier, *arrivals)})
    said = []
    if new:
        who = counted(len(new), "mover")
        said.append(f"{who} joined account {account.record_id} at the new address from {day}")
    if back:
        who = counted(len(back), "mover")
        said.append(f"{who} already on account {account.record_id}: moved in again from {day}")
    return joined, [*said, *words]


def _on_account(account: CouncilTaxAccount, person: Person) -> bool:
    """Whether a person is a resident already: the same NINO, else the same names and date of
    birth (a twin moving into their twin's home is not already there)."""
    return any(resident.same_as(person) for resident in account.residents)


SERVICE = Service(
    name="council_tax",
    title="Council Tax",
    record_type=CouncilTaxAccount,
    brings_people=frozenset({EventType.MARRIAGE, EventType.ADDRESS_CHANGE}),
    rules={
        EventType.DEATH: on_death,
        EventType.MARRIAGE: on_marriage,
        EventType.ADDRESS_CHANGE: on_address_change,
    },
)
