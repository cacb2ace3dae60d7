"""What a service is: a record type and pure rules from (event, matched records) to a Decision."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, ClassVar, TypeVar

from tellusonce.events import (
    AddressChangeFacts,
    EventType,
    Frozen,
    LifeEvent,
    Outcome,
    Person,
    PersonKey,
)
from tellusonce.fields import name_key


class Record(Frozen):
    """A service's own record about one or more people (an award, an account, a claim)."""

    record_id: str
    # Raised when what people() gives changes for records already stored (who an ended claim
    # matches, say): a store keeping another version matches them again, once, as it opens.
    PEOPLE_VERSION: ClassVar[int] = 1

    def people(self) -> list[PersonKey]:
        """Everyone this record is about, as events will match them."""
        raise NotImplementedError

    def places(self) -> list[str]:
        """The places (Address.place) this record is at, as events will find it by an address:
        none, unless the record is about a property."""
        return []

    def summary(self) -> str:
        """The record's state in a few plain words (used when a change is undone)."""
        return "previous state"


@dataclass(frozen=True)
class Decision:
    """What a rule decided: the outcome, the actions in plain words, and the records it changed."""

    outcome: Outcome
    actions: tuple[str, ...]
    changed: tuple[Record, ...] = ()
    service_reference: str | None = None
    # an amendment's: the records it put back as they were before what it superseded
    restored: tuple[Record, ...] = ()


R = TypeVar("R", bound="Record")

Matches = Mapping[str, Record | None]
"""The record each person in the event matched, by role (deceased, partner, ...), or None; for a
service whose records are at places, also the record at each of the event's places, by its
role (Facts.places: new_address), or None."""

Rule = Callable[[LifeEvent[Any], Matches], Decision]


@dataclass(frozen=True)
class Service:
    """A subscribing public service: its name, its record type and a rule per event type."""

    name: str
    title: str
    record_type: type[Record]
    rules: Mapping[EventType, Rule] = field(default_factory=dict)
    # The types of event its rules put people on records by, or make them matched by (a
    # birth's child on a claim, a union's partner, a mover on an account; a mover's new
    # postcode, a union's family name): a death of someone it has no record of is then kept,
    # to be applied again after such an event dated before it and read after it
    # (consumers/deaths_read_first.py)
    brings_people: frozenset[EventType] = frozenset()


def is_person(person: Person, key: PersonKey) -> bool:
    """Whether someone on a record is the person an event names (NINO, else surname + birth)."""
    if person.nino and key.nino:
        return person.nino == key.nino
    return name_key(person.family_name) == key.surname and person.date_of_birth == key.date_of_birth


class Died(Frozen):
    """One of a record's people who died, and the day: kept, so that an event of theirs dated
    before the death and read after it (on another topic) does not bring them back."""

    person: Person
    on: date


def is_the_dead(dead: PersonKey, key: PersonKey) -> bool:
    """Whether someone an event names is a person who died: by NINO where both have one, else
    by surname, date of birth and given names, all known (a twin is not their twin; nobody
    living is taken for the dead on less: "Frank Edward" without a NINO is not "Frank")."""
    if dead.nino and key.nino:
        return dead.nino == key.nino
    return bool(key.given) and (dead.surname, dead.date_of_birth, dead.given) == (
        key.surname,
        key.date_of_birth,
        key.given,
    )


def died_on(died: Sequence[Died], person: Person) -> date | None:
    """The day this person died, if they are one of these (is_the_dead)."""
    key = person.key(None)
    return next((d.on for d in died if is_the_dead(d.person.key(None), key)), None)


def died_since(died: Iterable[Sequence[Died]], person: Person, day: date) -> date | None:
    """The day this person died on or after `day`, as any of these records' deaths tell it."""
    return min((on for d in died if (on := died_on(d, person)) and on >= day), default=None)


def entries_of(people: Sequence[Person], person: Person) -> set[int]:
    """Which of a record's people (by position) are the person an event names: by NINO, else
    surname + date of birth, as records are matched; of several so alike (twins share both, and
    a postcode), those with the person's given names too, if any has them."""
    key = person.key(None)
    alike = {i for i, p in enumerate(people) if is_person(p, key)}
    if len(alike) > 1:
        given = name_key(person.given_names or "")
        named = {i for i in alike if name_key(people[i].given_names or "") == given}
        return named or alike
    return alike


def entries_of_any(people: Sequence[Person], persons: Sequence[Person]) -> set[int]:
    """Which of a record's people are any of these (entries_of each)."""
    return set().union(*(entries_of(people, person) for person in persons))


def without(people: tuple[Person, ...], *leaving: Person) -> tuple[Person, ...]:
    """A record's people but those the event names as leaving (entries_of each)."""
    gone = entries_of_any(people, leaving)
    return tuple(p for i, p in enumerate(people) if i not in gone)


def no_record(what: str) -> Decision:
    """The decision when nobody in the event matches this service's records."""
    return Decision(Outcome.NO_RECORD, (f"No {what} found for this person",))


def counted(n: int, one: str, many: str | None = None) -> str:
    """A count in words a family reads: 1 resident, 2 residents, 0 children."""
    return f"{n} {one if n == 1 else many or one + 's'}"


def day_after(day: date) -> date:
    """The day after a date (benefits stop from the day after death)."""
    return date.fromordinal(day.toordinal() + 1)


def matched(matches: Matches, record_type: type[R], *roles: str) -> list[tuple[str, R]]:
    """The distinct records of one type matched by the given roles (all roles if none given)."""
    found: list[tuple[str, R]] = []
    for role in roles or tuple(matches):
        record = matches.get(role)
        if isinstance(record, record_type) and all(
            r.record_id != record.record_id for _, r in found
        ):
            found.append((role, record))
    return found


def unchanged(reason: str, record: Record | None = None) -> Decision:
    """The decision when the event changes nothing for this service, with the reason."""
    return Decision(
        Outcome.NOT_APPLICABLE, (reason,), service_reference=record.record_id if record else None
    )


def move_address(
    event: LifeEvent[Any], matches: Matches, record_type: type[R], what: str
) -> Decision:
    """Give every matched record (of a type with an `address` and its `address_from`) the
    movers' new address from the move's day, unless the record's address is from a later move:
    a move about several people is keyed by its first mover, so two moves about one person
    come on different partitions, and the later may be read first."""
    facts: AddressChangeFacts = event.facts
    found = [r for _, r in matched(matches, record_type)]
    if not found:
        return no_record(what)
    current = [r for r in found if _address_from(r) <= facts.effective_on]
    changed = [
        r.model_copy(update={"address": facts.new_address, "address_from": facts.effective_on})
        for r in current
        if getattr(r, "address", None) != facts.new_address
    ]
    if not changed:
        if current:
            return unchanged("Address already up to date", current[0])
        newest = max(found, key=_address_from)
        return unchanged(f"A later move, from {_address_from(newest)}, is recorded", newest)
    actions = tuple(f"{r.record_id}: address updated from {facts.effective_on}" for r in changed)
    return Decision(Outcome.APPLIED, actions, tuple(changed), found[0].record_id)


def _address_from(record: Record) -> date:
    """The day a record's address took effect (its opening's: before any move)."""
    return getattr(record, "address_from", None) or date.min
