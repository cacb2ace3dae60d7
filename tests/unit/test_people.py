"""Matching a person in memory, as the store's rules say (consumers/people.py)."""

from __future__ import annotations

from datetime import date

from consumers.people import KnownPeople
from tellusonce.events import PersonKey

BORN = date(1946, 5, 1)
NINO = "QQ123456C"


def known(*rows: tuple[str, PersonKey]) -> KnownPeople:
    people = KnownPeople()
    people.read({NINO, "AB123456C"}, {("smith", BORN), ("jones", BORN)}, rows)
    return people


def test_by_nino_the_record_at_the_events_postcode_first_then_by_id() -> None:
    people = known(
        ("R2", PersonKey(NINO, "smith", BORN, "LS6 2AB")),
        ("R1", PersonKey(NINO, "smith", BORN, "YO1 7HH")),
        ("R0", PersonKey(NINO, "smith", BORN, None)),
    )
    assert people.match(PersonKey(NINO, "smith", BORN, "LS6 2AB")) == "R2"
    assert people.match(PersonKey(NINO, "smith", BORN, "YO1 7HH")) == "R1"
    assert people.match(PersonKey(NINO, "smith", BORN, "M1 1AA")) == "R1"  # unknown postcode last
    assert people.match(PersonKey(NINO, "smith", BORN, None)) == "R0"  # no postcode: by id


def test_by_details_only_keys_without_a_nino_when_the_person_has_one() -> None:
    people = known(
        ("R1", PersonKey("AB123456C", "smith", BORN, "LS6 2AB")),
        ("R2", PersonKey(None, "smith", BORN, "LS6 2AB")),
    )
    assert people.match(PersonKey(NINO, "smith", BORN, "LS6 2AB")) == "R2"
    assert people.match(PersonKey(None, "smith", BORN, "LS6 2AB")) == "R1"
    assert people.match(PersonKey(None, "smith", BORN, None)) is None
    assert people.match(PersonKey(None, "jones", BORN, "LS6 2AB")) is None


def test_keys_written_in_the_batch_replace_those_read() -> None:
    people = known(("R1", PersonKey(NINO, "smith", BORN, "LS6 2AB")))
    people.replace("R1", [PersonKey(NINO, "smith", BORN, "YO1 7HH")])
    people.replace("R9", [PersonKey("AB123456C", "jones", BORN, "YO1 7HH")])
    assert people.match(PersonKey(None, "smith", BORN, "LS6 2AB")) is None
    assert people.match(PersonKey(None, "smith", BORN, "YO1 7HH")) == "R1"
    assert people.match(PersonKey("AB123456C", "jones", BORN, None)) == "R9"
    people.replace("R1", [])
    assert people.match(PersonKey(NINO, "smith", BORN, "YO1 7HH")) is None


def test_only_ninos_and_surnames_with_dates_of_birth_read_up_front_are_known() -> None:
    people = known()
    assert people.knows(PersonKey(NINO, "smith", BORN, None))
    assert not people.knows(PersonKey("ZX123456A", "smith", BORN, None))
    assert not people.knows(PersonKey(None, "brown", BORN, None))
    assert not people.knows(PersonKey(None, "smith", date(1946, 5, 2), "LS6 2AB"))


def test_of_records_alike_but_for_given_names_the_one_named_is_matched() -> None:
    """Twins share a surname, a date of birth and a postcode: without a NINO the record with
    the lower id was matched, whichever twin an event named. The given names tell them apart
    where they single one out; where they do not (none given, or no record with them), the
    lower id is matched, as before."""
    people = known(
        ("R1", PersonKey("AB111111A", "hart", BORN, "LS6 2AB", "ethel")),
        ("R2", PersonKey("AB222222B", "hart", BORN, "LS6 2AB", "edna")),
    )
    assert people.match(PersonKey(None, "hart", BORN, "LS6 2AB", "edna")) == "R2"
    assert people.match(PersonKey(None, "hart", BORN, "LS6 2AB", "ethel")) == "R1"
    assert people.match(PersonKey(None, "hart", BORN, "LS6 2AB")) == "R1"
    assert people.match(PersonKey(None, "hart", BORN, "LS6 2AB", "enid")) == "R1"
    people.replace("R2", [PersonKey("AB222222B", "hart", BORN, "YO1 7HH", "edna")])
    assert people.match(PersonKey(None, "hart", BORN, "LS6 2AB", "edna")) == "R1"  # moved away
