"""A reproducible stream of valid life events about the seeded crowd (and some strangers), and
amendments of some of them (corrections and cancellations) later in the stream."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime
from typing import Any

from consumers.seed import crowd
from producers.submission import Header, build_event, cancellation
from tellusonce.events import (
    Action,
    Address,
    AddressChangeFacts,
    BirthFacts,
    DeathFacts,
    EventType,
    Facts,
    Informant,
    LifeEvent,
    MaritalStatus,
    MarriageFacts,
    Person,
    Registration,
    Spouse,
    UnionKind,
)
from tellusonce.settings import Settings

CROWD_SIZE = 300
Crowd = list[tuple[Person, Address]]
KINDS = [EventType.DEATH, EventType.BIRTH, EventType.MARRIAGE, EventType.ADDRESS_CHANGE]


def _facts(kind: EventType, i: int, rng: random.Random, people: Crowd) -> Facts:
    person, address = people[rng.randrange(len(people))]
    if kind == EventType.DEATH:
        return DeathFacts(
            deceased=person,
            usual_address=address,
            marital_status=MaritalStatus.SINGLE,
            date_of_death=date(2026, 1, 10),
            informant=Informant(name="A relative", relationship="Relative"),
        )
    if kind == EventType.BIRTH:
        child = Person(
            given_names="Baby", family_name=person.family_name, date_of_birth=date(2025, 5, 1)
        )
        return BirthFacts(child=child, parents=(person,), address=address)
    if kind == EventType.MARRIAGE:
        other, other_address = people[rng.randrange(len(people))]
        return MarriageFacts(
            kind=UnionKind.MARRIAGE,
            married_on=date(2025, 7, 1),
            parties=(
                Spouse(person=person, address_before=address),
                Spouse(person=other, address_before=other_address),
            ),
            address_after=address,
        )
    new = address.model_copy(update={"lines": (f"{i} New Road", "Leeds"), "postcode": "LS7 3BB"})
    return AddressChangeFacts(
        people_moving=(person,), old_address=address, new_address=new, effective_on=date(2025, 8, 1)
    )


def events(
    count: int, settings: Settings, seed: int = 1, district: str = "Fault", amended: float = 0
) -> list[LifeEvent[Any]]:
    """`count` valid events, cycling through the four kinds, each its own register entry; and
    with `amended`, that share of them amended at a random later point of the stream (after
    the event, on its topic and key, as a registrar's amendment is): a death corrected (its date
    of death a day later), any other event cancelled."""
    rng = random.Random(seed)  # noqa: S311 (test data)
    people = crowd(CROWD_SIZE)
    built = []
    for i in range(count):
        kind = KINDS[i % len(KINDS)]
        header = Header(
            registration=Registration(district=district, entry_number=i + 1, office="FAULT-1"),
            registered_at=datetime(2026, 1, 12, 10, tzinfo=UTC),
        )
        built.append(build_event(kind, header, _facts(kind, i, rng, people), settings))
    later: dict[int, list[LifeEvent[Any]]] = {}
    for i in sorted(rng.sample(range(count), int(count * amended))):
        later.setdefault(rng.randrange(i, count), []).append(_amendment(built[i], settings))
    return [e for i, event in enumerate(built) for e in (event, *later.get(i, ()))]


def _amendment(event: LifeEvent[Any], settings: Settings) -> LifeEvent[Any]:
    env = event.envelope
    if env.event_type != EventType.DEATH:
        return cancellation(event, settings, "registered in error")
    corrected = event.facts.model_copy(update={"date_of_death": date(2026, 1, 11)})
    return build_event(
        env.event_type,
        Header(registration=env.registration),
        corrected,
        settings,
        action=Action.CORRECTED,
        amends=event,
        reason="date of death misread",
    )
