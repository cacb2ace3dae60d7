"""Life events and service confirmations: immutable pydantic models mirroring schemas/*/v1.avsc."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Generic, NamedTuple, TypeVar, overload
from unicodedata import normalize
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from tellusonce.fields import (
    BirthDate,
    Code,
    Instant,
    Name,
    Nino,
    PastDate,
    Postcode,
    ShownText,
    Text,
    age_on,
    name_key,
)

MINIMUM_AGE_TO_MARRY = 16
REFERENCE_PATTERN = r"^[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{5}$"
# CloudEvents' source: an absolute URI (urn:tellusonce:registrar, https://...), no spaces
SOURCE_PATTERN = r"^[A-Za-z][A-Za-z0-9+.-]*:[!-~]+$"
SERVICE_PATTERN = r"^[a-z][a-z_]{1,40}$"


class once:  # noqa: N801 (a decorator, named like property)
    """A property worked out on first access and kept on the instance, as
    functools.cached_property does, without the lock and second look that Python 3.11's takes
    on each first access: consumers ask for two or three ids as text per message (0.4% of
    their instructions)."""

    def __init__(self, compute: Callable[[Any], str]) -> None:
        self.compute = compute
        self.name = compute.__name__
        self.__doc__ = compute.__doc__

    @overload
    def __get__(self, instance: None, owner: type[Any] | None = None) -> once: ...
    @overload
    def __get__(self, instance: object, owner: type[Any] | None = None) -> str: ...
    def __get__(self, instance: object | None, owner: type[Any] | None = None) -> once | str:
        if instance is None:
            return self
        value = instance.__dict__[self.name] = self.compute(instance)
        return value


class Frozen(BaseModel):
    """Base of every model: immutable, unknown fields rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid", ignored_types=(once,))


class EventType(StrEnum):
    """The kinds of life event, one topic each."""

    DEATH = "death"
    BIRTH = "birth"
    MARRIAGE = "marriage"
    ADDRESS_CHANGE = "address-change"


class Action(StrEnum):
    """What a registration does: a register entry is corrected or cancelled, never overwritten."""

    REGISTERED = "REGISTERED"
    CORRECTED = "CORRECTED"
    CANCELLED = "CANCELLED"

    @property
    def noun(self) -> str:
        """The event in a word: registration, correction, cancellation."""
        return _NOUNS[self]


_NOUNS = {
    Action.REGISTERED: "registration",
    Action.CORRECTED: "correction",
    Action.CANCELLED: "cancellation",
}


class Outcome(StrEnum):
    """What a service did with an event."""

    APPLIED = "APPLIED"
    NO_RECORD = "NO_RECORD"
    NOT_APPLICABLE = "NOT_APPLICABLE"
    REJECTED = "REJECTED"


class MaritalStatus(StrEnum):
    """Marital or civil partnership status as recorded at registration."""

    SINGLE = "SINGLE"
    MARRIED = "MARRIED"
    CIVIL_PARTNERSHIP = "CIVIL_PARTNERSHIP"
    WIDOWED = "WIDOWED"
    DIVORCED = "DIVORCED"
    DISSOLVED = "DISSOLVED"


class UnionKind(StrEnum):
    """A marriage or a civil partnership."""

    MARRIAGE = "MARRIAGE"
    CIVIL_PARTNERSHIP = "CIVIL_PARTNERSHIP"


class PersonKey(NamedTuple):
    """What services match a person on: NINO, else surname + date of birth + postcode; and,
    to tell apart records of people alike in those (twins), given names."""

    nino: str | None
    surname: str
    date_of_birth: date
    postcode: str | None
    given: str | None = None  # given names as matched (name_key), if any


class Address(Frozen):
    """A UK postal address."""

    # fail_fast (each bounded list): stop at an invalid item. pydantic-core validates every item
    # before it refuses a list as too long: a million empty lines, a byte each on the wire, made
    # a million errors (1.7 GB for one message) before the length was refused
    lines: Annotated[tuple[Text, ...], Field(min_length=1, max_length=5, fail_fast=True)]
    postcode: Postcode

    def same_place(self, other: Address) -> bool:
        """Whether two addresses are one, written alike but for case, spacing and commas."""
        return self.postcode == other.postcode and _folded(self.lines) == _folded(other.lines)

    @once
    def place(self) -> str:
        """The address as records at it are found by: the same for two addresses that are the
        same place (same_place), and for no others (made once)."""
        return "\n".join((self.postcode, *_folded(self.lines)))


AVRO_INT_MAX = 2**31 - 1  # (fastavro writes more; Java's readers refuse it)


def _folded(lines: tuple[str, ...]) -> list[str]:
    """Address lines as compared: one Unicode form (Môn typed as o and a combining circumflex
    is Môn), one apostrophe (a curly one, U+2019, is '), without case, commas or extra spaces."""
    return [" ".join(_one_form(line).casefold().split()) for line in lines]


def _one_form(line: str) -> str:
    return normalize("NFKC", line).replace("\u2019", "'").replace(",", " ")


class Person(Frozen):
    """Who someone is; a single name goes in family_name."""

    given_names: Name | None = None
    family_name: Name
    date_of_birth: BirthDate
    nino: Nino | None = None

    def key(self, postcode: str | None) -> PersonKey:
        """This person's matching key at an address."""
        given = name_key(self.given_names) if self.given_names else None
        return PersonKey(
            self.nino, name_key(self.family_name), self.date_of_birth, postcode, given or None
        )

    def same_as(self, other: Person) -> bool:
        """Whether two entries of a submission are one person: the same NINO, or (either
        without one) the same names and date of birth."""
        if self.nino and other.nino:
            return self.nino == other.nino
        return (
            name_key(self.family_name),
            name_key(self.given_names or ""),
            self.date_of_birth,
        ) == (name_key(other.family_name), name_key(other.given_names or ""), other.date_of_birth)


def _one_person_twice(people: dict[str, Person]) -> list[Problem]:
    """A problem for each entry that is a person named in an earlier entry (by role path)."""
    found, seen = [], list(people.items())
    for i, (field, person) in enumerate(seen):
        earlier = next((f for f, p in seen[:i] if p.same_as(person)), None)
        if earlier is not None:
            found.append(Problem(field, f"is the same person as {earlier}"))
    return found


def _born_after(people: dict[str, Person], day: date, what: str) -> list[Problem]:
    return [
        Problem(f"{field}.date_of_birth", f"is after {what}")
        for field, person in people.items()
        if person.date_of_birth > day
    ]


class Registration(Frozen):
    """Where the event was registered: the register entry that identifies it."""

    district: Code
    entry_number: Annotated[int, Field(ge=1, le=10_000_000)]
    office: Code

    @property
    def entry(self) -> tuple[str, int]:
        """The register entry: its district (the name without regard to case) and number, of
        which event ids are made."""
        return self.district.casefold(), self.entry_number

    def same_entry(self, other: Registration) -> bool:
        """Whether both name one register entry, by one office."""
        return (self.entry, self.office) == (other.entry, other.office)


class Envelope(Frozen):
    """What every life event carries besides its facts."""

    event_id: UUID
    event_type: EventType
    action: Action
    revision: Annotated[int, Field(ge=0, le=AVRO_INT_MAX)]  # an Avro int
    supersedes: UUID | None = None
    reference: Annotated[str, Field(pattern=REFERENCE_PATTERN)]
    occurred_on: date
    registered_at: Instant
    late_registration: bool = False
    registration: Registration
    person_ref: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    # checked as a URI where it is set (Settings.source), not here: events published with
    # another source stay readable
    source: Annotated[str, Field(min_length=1, max_length=200)]
    reason: Text | None = None

    @once
    def event_id_text(self) -> str:
        """The event id as text, made once: consumers key rows, logs and lookups by it."""
        return str(self.event_id)


class Problem(NamedTuple):
    """One thing wrong with a submission: where (a dotted field path) and why."""

    field: str
    reason: str


class Facts(Frozen):
    """The body of a life event; each kind says who is in it and when it happened."""

    OCCURRED: ClassVar[str] = ""  # the field of the date the event happened

    def occurred_on(self) -> date:
        """The date the event happened."""
        raise NotImplementedError

    def subject(self) -> Person:
        """The person whose pseudonym keys the event (corrections use the same key)."""
        raise NotImplementedError

    def subjects(self) -> tuple[Person, ...]:
        """Everyone the registration is about (both parties of a marriage, everyone moving),
        the subject first: any of them may ask the family status page."""
        return (self.subject(),)

    def people(self) -> dict[str, PersonKey]:
        """The people in the event by role, as services match them."""
        raise NotImplementedError

    def places(self) -> dict[str, Address]:
        """The addresses in the event by role whose records services find by place (a
        property's account at the address people move to, or a couple's home), if any."""
        return {}

    def problems(self) -> list[Problem]:
        """Checks across fields that pydantic's per-field checks cannot make."""
        return []


class Informant(Frozen):
    """Who gave the information to the registrar."""

    name: Text
    relationship: Text


class DeathFacts(Facts):
    """A death: who died, when, and who survives them."""

    deceased: Person
    usual_address: Address
    marital_status: MaritalStatus
    date_of_death: PastDate
    surviving_partner: Person | None = None
    informant: Informant

    OCCURRED = "date_of_death"

    def occurred_on(self) -> date:
        return self.date_of_death

    def subject(self) -> Person:
        return self.deceased

    def people(self) -> dict[str, PersonKey]:
        postcode = self.usual_address.postcode
        roles = {"deceased": self.deceased.key(postcode)}
        if self.surviving_partner:
            roles["partner"] = self.surviving_partner.key(postcode)
        return roles

    def problems(self) -> list[Problem]:
        found = []
        if self.date_of_death < self.deceased.date_of_birth:
            found.append(Problem("date_of_death", "is before the date of birth"))
        if self.surviving_partner:
            people = {"deceased": self.deceased, "surviving_partner": self.surviving_partner}
            found += _one_person_twice(people)
            found += _born_after(
                {"surviving_partner": self.surviving_partner}, self.date_of_death, "the death"
            )
        if self.surviving_partner and self.marital_status not in {
            MaritalStatus.MARRIED,
            MaritalStatus.CIVIL_PARTNERSHIP,
        }:
            found.append(
                Problem("surviving_partner", "is only recorded for a married or civil partner")
            )
        return found


class BirthFacts(Facts):
    """A birth: the child, their parents and where the child lives."""

    child: Person
    parents: Annotated[tuple[Person, ...], Field(min_length=1, max_length=2, fail_fast=True)]
    address: Address

    OCCURRED = "child.date_of_birth"

    def occurred_on(self) -> date:
        return self.child.date_of_birth

    def subject(self) -> Person:
        return self.child

    def people(self) -> dict[str, PersonKey]:
        postcode = self.address.postcode
        roles = {"child": self.child.key(postcode)}
        roles.update({f"parent{i}": p.key(postcode) for i, p in enumerate(self.parents, start=1)})
        return roles

    def problems(self) -> list[Problem]:
        found = [
            Problem(f"parents.{i}.date_of_birth", "is not before the child's date of birth")
            for i, parent in enumerate(self.parents)
            if parent.date_of_birth >= self.child.date_of_birth
        ]
        people = {"child": self.child} | {f"parents.{i}": p for i, p in enumerate(self.parents)}
        return found + _one_person_twice(people)


class Spouse(Frozen):
    """One party to a marriage or civil partnership."""

    person: Person
    family_name_after: Name | None = None
    address_before: Address

    def after(self) -> Person:
        """The person as named after the union (their family name after it, if given)."""
        if self.family_name_after is None:
            return self.person
        return self.person.model_copy(update={"family_name": self.family_name_after})


class MarriageFacts(Facts):
    """A marriage or civil partnership of two people."""

    kind: UnionKind
    married_on: PastDate
    parties: Annotated[tuple[Spouse, ...], Field(min_length=2, max_length=2, fail_fast=True)]
    address_after: Address

    OCCURRED = "married_on"

    def occurred_on(self) -> date:
        return self.married_on

    def subject(self) -> Person:
        return self.parties[0].person

    def subjects(self) -> tuple[Person, ...]:
        return tuple(party.person for party in self.parties)

    def people(self) -> dict[str, PersonKey]:
        return {
            f"party{i}": s.person.key(s.address_before.postcode)
            for i, s in enumerate(self.parties, start=1)
        }

    def places(self) -> dict[str, Address]:
        return {"home": self.address_after}

    def problems(self) -> list[Problem]:
        """Each party born before the union and 16 or over on its day (no part of the UK
        allows younger; England, Wales and Northern Ireland have asked 18 since 2023, which a
        registration does not say where it was made), and two people, not one."""
        found = []
        for i, party in enumerate(self.parties):
            born, where = party.person.date_of_birth, f"parties.{i}.person.date_of_birth"
            if born > self.married_on:
                found.append(Problem(where, "is after the date of the union"))
            elif age_on(born, self.married_on) < MINIMUM_AGE_TO_MARRY:
                young = f"makes them under {MINIMUM_AGE_TO_MARRY} on the day of the union"
                found.append(Problem(where, young))
        people = {f"parties.{i}.person": s.person for i, s in enumerate(self.parties)}
        return found + _one_person_twice(people)


class AddressChangeFacts(Facts):
    """People moving together from one address to another."""

    people_moving: Annotated[tuple[Person, ...], Field(min_length=1, max_length=10, fail_fast=True)]
    old_address: Address
    new_address: Address
    effective_on: PastDate

    OCCURRED = "effective_on"

    def occurred_on(self) -> date:
        return self.effective_on

    def subject(self) -> Person:
        return self.people_moving[0]

    def subjects(self) -> tuple[Person, ...]:
        return tuple(self.people_moving)

    def people(self) -> dict[str, PersonKey]:
        postcode = self.old_address.postcode
        return {f"mover{i}": p.key(postcode) for i, p in enumerate(self.people_moving, start=1)}

    def places(self) -> dict[str, Address]:
        return {"new_address": self.new_address}

    def problems(self) -> list[Problem]:
        found = []
        if self.old_address.same_place(self.new_address):
            found.append(Problem("new_address", "is the same as the old address"))
        people = {f"people_moving.{i}": p for i, p in enumerate(self.people_moving)}
        found += _born_after(people, self.effective_on, "the move")
        return found + _one_person_twice(people)


FactsT = TypeVar("FactsT", bound=Facts)


class LifeEvent(Frozen, Generic[FactsT]):
    """A life event on the bus: the envelope and the facts of one kind of event."""

    envelope: Envelope
    facts: FactsT


def life_event(envelope: Envelope, facts: Facts) -> LifeEvent[Any]:
    """The life event of an envelope and facts, typed by the envelope's event type."""
    return EVENT_MODELS[envelope.event_type](envelope=envelope, facts=facts)


FACTS: dict[EventType, type[Facts]] = {
    EventType.DEATH: DeathFacts,
    EventType.BIRTH: BirthFacts,
    EventType.MARRIAGE: MarriageFacts,
    EventType.ADDRESS_CHANGE: AddressChangeFacts,
}

EVENT_MODELS: dict[EventType, type[LifeEvent[Any]]] = {
    event_type: LifeEvent[facts]  # type: ignore[valid-type]
    for event_type, facts in FACTS.items()
}

# How long the law gives to register each kind of event (England and Wales) before it is late.
REGISTRATION_PERIOD = {
    EventType.DEATH: timedelta(days=5),
    EventType.BIRTH: timedelta(days=42),
}


class Confirmation(Frozen):
    """What one service did with one event."""

    confirmation_id: UUID
    event_id: UUID
    event_type: EventType
    service: Annotated[str, Field(pattern=SERVICE_PATTERN)]
    outcome: Outcome
    actions: Annotated[tuple[ShownText, ...], Field(max_length=50, fail_fast=True)]
    service_reference: Annotated[ShownText, Field(min_length=1, max_length=100)] | None = None
    processed_at: AwareDatetime

    @once
    def event_id_text(self) -> str:
        """The confirmed event's id as text, made once (see Envelope.event_id_text)."""
        return str(self.event_id)

    @once
    def confirmation_id_text(self) -> str:
        """This confirmation's id as text, made once."""
        return str(self.confirmation_id)
