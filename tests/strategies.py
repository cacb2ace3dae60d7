"""Hypothesis strategies for valid life events and confirmations."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from hypothesis import strategies as st

from tellusonce.events import (
    Action,
    Address,
    AddressChangeFacts,
    BirthFacts,
    Confirmation,
    DeathFacts,
    Envelope,
    EventType,
    Informant,
    LifeEvent,
    MaritalStatus,
    MarriageFacts,
    Outcome,
    Person,
    Registration,
    Spouse,
    UnionKind,
    life_event,
)
from tellusonce.fields import NINO_NEVER_ISSUED, today_in_london
from tellusonce.identity import reference

PREFIX_FIRST = "ABCEGHJKLMNOPRSTWXYZ"
PREFIX_SECOND = "ABCEGHJKLMNPRSTWXYZ"

names = st.text(
    alphabet=st.characters(categories=["Lu", "Ll", "Lo"]), min_size=1, max_size=40
).filter(lambda s: s == s.strip())
past_dates = st.dates(min_value=date(1900, 1, 1), max_value=today_in_london())
ninos = st.builds(
    lambda a, b, digits, suffix: f"{a}{b}{digits:06d}{suffix}",
    st.sampled_from(PREFIX_FIRST),
    st.sampled_from(PREFIX_SECOND),
    st.integers(0, 999_999),
    st.sampled_from("ABCD"),
).filter(lambda n: n[:2] not in NINO_NEVER_ISSUED)
postcodes = st.builds(
    lambda area, district, sector, unit: f"{area}{district} {sector}{unit}",
    st.sampled_from(["LS", "M", "CF", "EH", "B", "SW", "G", "BT"]),
    st.integers(1, 99),
    st.integers(0, 9),
    st.sampled_from(["AB", "XY", "ZZ", "HT", "NW"]),
)
texts = (
    st.text(alphabet=st.characters(categories=["L", "N", "Zs"]), min_size=1, max_size=60)
    .map(str.strip)
    .filter(bool)
)
people = st.builds(
    Person,
    given_names=st.none() | names,
    family_name=names,
    date_of_birth=past_dates,
    nino=st.none() | ninos,
)
addresses = st.builds(
    Address, lines=st.lists(texts, min_size=1, max_size=5).map(tuple), postcode=postcodes
)
instants = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)

FACTS_STRATEGIES: dict[EventType, st.SearchStrategy[Any]] = {
    EventType.DEATH: st.builds(
        DeathFacts,
        deceased=people,
        usual_address=addresses,
        marital_status=st.sampled_from(MaritalStatus),
        date_of_death=past_dates,
        surviving_partner=st.none() | people,
        informant=st.builds(Informant, name=texts, relationship=texts),
    ),
    EventType.BIRTH: st.builds(
        BirthFacts,
        child=people,
        parents=st.lists(people, min_size=1, max_size=2).map(tuple),
        address=addresses,
    ),
    EventType.MARRIAGE: st.builds(
        MarriageFacts,
        kind=st.sampled_from(UnionKind),
        married_on=past_dates,
        parties=st.lists(
            st.builds(
                Spouse, person=people, family_name_after=st.none() | names, address_before=addresses
            ),
            min_size=2,
            max_size=2,
        ).map(tuple),
        address_after=addresses,
    ),
    EventType.ADDRESS_CHANGE: st.builds(
        AddressChangeFacts,
        people_moving=st.lists(people, min_size=1, max_size=10).map(tuple),
        old_address=addresses,
        new_address=addresses,
        effective_on=past_dates,
    ),
}


@st.composite
def life_events(draw: st.DrawFn, event_type: EventType) -> LifeEvent[Any]:
    """Any valid life event of one type."""
    event_id = draw(st.uuids())
    envelope = Envelope(
        event_id=event_id,
        event_type=event_type,
        action=draw(st.sampled_from(Action)),
        revision=draw(st.integers(0, 1000)),
        supersedes=draw(st.none() | st.uuids()),
        reference=reference(event_id, b"test secret"),
        occurred_on=draw(past_dates),
        registered_at=draw(instants),
        late_registration=draw(st.booleans()),
        registration=Registration(
            district=draw(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9 ]{0,20}", fullmatch=True)),
            entry_number=draw(st.integers(1, 10_000_000)),
            office=draw(
                st.from_regex(r"[A-Z0-9-]{1,12}", fullmatch=True).filter(lambda s: s[0] != "-")
            ),
        ),
        person_ref=draw(st.binary(min_size=32, max_size=32)).hex(),
        source=draw(st.from_regex(r"[a-z][a-z0-9+.-]{0,10}:[!-~]{1,40}", fullmatch=True)),
        reason=draw(st.none() | texts),
    )
    return life_event(envelope, draw(FACTS_STRATEGIES[event_type]))


confirmations = st.builds(
    Confirmation,
    confirmation_id=st.uuids(),
    event_id=st.uuids(),
    event_type=st.sampled_from(EventType),
    service=st.sampled_from(["pensions", "disability", "council_tax", "housing_benefit"]),
    outcome=st.sampled_from(Outcome),
    actions=st.lists(  # shown to people: no control or invisible character (fields.ShownText)
        st.text(st.characters(categories=["L", "M", "N", "P", "S", "Zs"]), max_size=80),
        max_size=5,
    ).map(tuple),
    service_reference=st.none() | texts,
    processed_at=instants,
)
