"""What a service is: a record type and pure rules from (event, matched records) to a Decision."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from tellusonce.events import EventType, Frozen, LifeEvent, Outcome, Person, PersonKey
from tellusonce.fields import name_key


class Record(Frozen):
    """A service's own record about one or more people (an award, an account, a claim)."""

    record_id: str

    def people(self) -> list[PersonKey]:
        """Everyone this record is about, as events will match them."""
        raise NotImplementedError


@dataclass(frozen=True)
class Decision:
    """What a rule decided: the outcome, the actions in plain words, and the records it changed."""

    outcome: Outcome
    actions: tuple[str, ...]
    changed: tuple[Record, ...] = ()
    service_reference: str | None = None


Matches = Mapping[str, Record | None]
"""The record each person in the event matched, by role (deceased, partner, ...), or None."""

Rule = Callable[[LifeEvent[Any], Matches], Decision]


@dataclass(frozen=True)
class Service:
    """A subscribing public service: its name, its record type and a rule per event type."""

    name: str
    title: str
    record_type: type[Record]
    rules: Mapping[EventType, Rule] = field(default_factory=dict)


def is_person(person: Person, key: PersonKey) -> bool:
    """Whether someone on a record is the person an event names (NINO, else surname + birth)."""
    if person.nino and key.nino:
        return person.nino == key.nino
    return name_key(person.family_name) == key.surname and person.date_of_birth == key.date_of_birth


def no_record(what: str) -> Decision:
    """The decision when nobody in the event matches this service's records."""
    return Decision(Outcome.NO_RECORD, (f"No {what} found for this person",))


def day_after(day: date) -> date:
    """The day after a date (benefits stop from the day after death)."""
    return date.fromordinal(day.toordinal() + 1)
