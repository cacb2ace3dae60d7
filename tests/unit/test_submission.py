"""Submissions: every problem named by its field path, cross-field date rules, stable ids."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from typing import Any

import pytest

from producers.submission import cancellation, correction, parse
from tellusonce.errors import InvalidSubmission
from tellusonce.events import EventType
from tellusonce.fields import today_in_london
from tellusonce.identity import person_ref
from tellusonce.settings import Settings
from tests.factories import document, event


def problems(event_type: EventType, doc: Any) -> dict[str, str]:
    """The field → reason map of a rejected submission."""
    with pytest.raises(InvalidSubmission) as caught:
        parse(event_type, doc)
    return dict(caught.value.problems)


def with_deceased(**changes: Any) -> dict[str, Any]:
    doc = document(EventType.DEATH)
    doc["deceased"] = doc["deceased"] | changes
    return doc


class TestDeathValidation:
    """A death submission is refused, with each bad field named, when any rule is broken."""

    @pytest.mark.parametrize("event_type", list(EventType))
    def test_every_example_is_valid(self, event_type: EventType) -> None:
        """The examples a newcomer submits as-is pass validation."""
        _header, facts = parse(event_type, document(event_type))
        assert facts.occurred_on() <= today_in_london()

    @pytest.mark.parametrize(
        ("changes", "field", "why"),
        [
            ({"date_of_death": 0}, "date_of_death", "must be a date written YYYY-MM-DD"),
            ({"date_of_death": "0"}, "date_of_death", "must be a date written YYYY-MM-DD"),
            ({"registered_at": 1773397800}, "registered_at", "must be a date and time"),
            (
                {"registration": {"district": "Leeds", "entry_number": True, "office": "LDS"}},
                "registration.entry_number",
                "Input should be a valid integer",
            ),
            (
                {"registration": {"district": "Leeds", "entry_number": "1042", "office": "LDS"}},
                "registration.entry_number",
                "Input should be a valid integer",
            ),
            ({"marital_status": 1}, "marital_status", "Input should be"),
        ],
    )
    def test_values_of_another_type_are_not_read_as_the_fields(
        self, changes: dict[str, Any], field: str, why: str
    ) -> None:
        """A death dated 0 was published as a death on 1970-01-01, and entry number true as
        register entry 1 (a later submission of entry 1 was then refused as its twin)."""
        found = problems(EventType.DEATH, document(EventType.DEATH, **changes))
        assert found.keys() == {field}
        assert found[field].startswith(why)

    def test_malformed_nino_names_the_field(self) -> None:
        """A bad NINO is reported at deceased.nino."""
        assert "deceased.nino" in problems(EventType.DEATH, with_deceased(nino="QQ123456Z"))

    def test_death_before_birth_names_date_of_death(self) -> None:
        """A date of death before the date of birth is reported at date_of_death."""
        found = problems(EventType.DEATH, document(EventType.DEATH, date_of_death="1940-01-01"))
        assert found == {
            "date_of_death": "is before the date of birth",
            "surviving_partner.date_of_birth": "is after the death",  # born 1949
        }

    def test_age_over_130_is_refused(self) -> None:
        """Nobody dies older than 130."""
        doc = with_deceased(date_of_birth="1880-01-01")
        found = problems(EventType.DEATH, doc)
        assert found == {"deceased.date_of_birth": "is more than 130 years ago"}

    def test_future_death_is_refused(self) -> None:
        """A death cannot be registered before it happens."""
        tomorrow = (today_in_london() + timedelta(days=1)).isoformat()
        found = problems(EventType.DEATH, document(EventType.DEATH, date_of_death=tomorrow))
        assert "date_of_death" in found

    def test_registration_before_the_event_is_refused(self) -> None:
        """registered_at cannot precede the death it registers."""
        doc = document(EventType.DEATH, registered_at="2026-03-01T09:00:00Z")
        assert problems(EventType.DEATH, doc) == {
            "registered_at": "is before the event it registers"
        }

    def test_a_registration_time_later_today_is_in_the_future(self) -> None:
        """Only a later day was refused: 23:59 tonight, registered at 21:52, was published as
        the registration's time. A clock a minute fast is not refused."""
        from datetime import UTC, datetime

        def registered_in(ahead: timedelta) -> dict[str, Any]:
            at = (datetime.now(UTC) + ahead).isoformat().replace("+00:00", "Z")
            return document(EventType.DEATH, registered_at=at)

        found = problems(EventType.DEATH, registered_in(timedelta(minutes=11)))
        assert found == {"registered_at": "is in the future"}
        header, _ = parse(EventType.DEATH, registered_in(timedelta(minutes=1)))
        assert header.registered_at is not None

    @pytest.mark.parametrize("at", ["9999-12-31T23:59:59-23:00", "0001-01-01T00:00:00+23:00"])
    def test_registration_time_beyond_the_calendar_is_refused(self, at: str) -> None:
        """A time that no calendar date holds once in UTC is a clear 422, never a crash."""
        doc = document(EventType.DEATH, registered_at=at)
        assert problems(EventType.DEATH, doc) == {"registered_at": "is out of range"}

    def test_several_problems_are_all_reported(self) -> None:
        """A submission with many faults lists them all, not just the first."""
        doc = with_deceased(nino="bad", family_name="")
        doc["usual_address"] = {"lines": [], "postcode": "nowhere"}
        doc.pop("informant")
        found = problems(EventType.DEATH, doc)
        assert {
            "deceased.nino",
            "deceased.family_name",
            "usual_address.lines",
            "usual_address.postcode",
            "informant",
        } <= set(found)

    def test_unknown_fields_are_refused(self) -> None:
        """A misspelt field is an error, not silently dropped."""
        assert "date_of_deth" in problems(
            EventType.DEATH, document(EventType.DEATH, date_of_deth="x")
        )

    def test_a_non_object_document_is_refused(self) -> None:
        """A JSON list is not a submission."""
        assert problems(EventType.DEATH, []) == {"(document)": "must be a JSON object"}

    def test_errors_never_echo_personal_data(self) -> None:
        """The rejected NINO value does not appear in the error."""
        with pytest.raises(InvalidSubmission) as caught:
            parse(EventType.DEATH, with_deceased(nino="AA1234567"))
        assert "AA1234567" not in str(caught.value)


class TestEvents:
    """Building events: deterministic ids, pseudonymous keys, late registration flags."""

    def test_resubmission_has_the_same_event_id_and_reference(self) -> None:
        """The same register entry gives the same event_id and reference every time."""
        first, second = event(EventType.DEATH), event(EventType.DEATH)
        assert first.envelope.event_id == second.envelope.event_id
        assert first.envelope.reference == second.envelope.reference

    def test_another_entry_has_another_event_id(self) -> None:
        """A different entry number is a different registration."""
        other = event(
            EventType.DEATH,
            registration={"district": "Leeds", "entry_number": 1043, "office": "LEEDS-RO-1"},
        )
        assert other.envelope.event_id != event(EventType.DEATH).envelope.event_id

    @pytest.mark.parametrize("district", ["LEEDS", "Leeds ", " leeds", "Leeds\t"])
    def test_the_district_in_another_case_or_spacing_is_the_same_entry(self, district: str) -> None:
        """One register entry is one event, however its district's name is typed."""
        again = event(
            EventType.DEATH,
            registration={"district": district, "entry_number": 1042, "office": "LEEDS-RO-1"},
        )
        assert again.envelope.event_id == event(EventType.DEATH).envelope.event_id

    def test_a_correction_may_type_the_district_otherwise(self) -> None:
        fixed = document(
            EventType.DEATH,
            registration={"district": "LEEDS ", "entry_number": 1042, "office": "LEEDS-RO-1"},
            date_of_death="2026-03-10",
        )
        corrected = correction(event(EventType.DEATH), fixed, Settings(), None)
        assert corrected.envelope.revision == 1

    def test_person_ref_is_a_keyed_pseudonym_not_the_nino(self) -> None:
        """person_ref is 64 hex characters, differs by secret, and contains no NINO."""
        built = event(EventType.DEATH)
        ref = built.envelope.person_ref
        assert re.fullmatch(r"[0-9a-f]{64}", ref)
        nino = built.facts.deceased.nino
        assert nino is not None
        assert ref not in {hashlib.sha256(n.encode()).hexdigest() for n in (nino, f"nino:{nino}")}
        assert person_ref(built.facts.deceased, b"another secret") != ref

    def test_death_registered_after_five_days_is_flagged_late(self) -> None:
        """Registered 2 days after death: on time; 30 days after: late."""
        assert not event(EventType.DEATH).envelope.late_registration
        late = event(EventType.DEATH, registered_at="2026-04-10T09:00:00Z")
        assert late.envelope.late_registration


class TestAmendmentReasons:
    """Why an entry is corrected or cancelled: text of 1 to 200 characters, or a problem that
    names the field (never a server error, never the text itself)."""

    @pytest.mark.parametrize(
        ("reason", "problem"),
        [
            (5, "must be text"),
            ("   ", "must not be blank"),
            ("Registered the wrong man, " + "x" * 180, "must be at most 200 characters"),
        ],
    )
    def test_a_bad_correction_reason_names_the_field(self, reason: object, problem: str) -> None:
        with pytest.raises(InvalidSubmission) as caught:
            correction(event(EventType.DEATH), document(EventType.DEATH), Settings(), reason)
        assert caught.value.problems == [("correction_reason", problem)]
        assert "wrong man" not in str(caught.value)

    @pytest.mark.parametrize(
        ("reason", "problem"),
        [(None, "is required"), ([], "must be text"), ("", "must not be blank")],
    )
    def test_a_cancellation_needs_a_reason(self, reason: object, problem: str) -> None:
        with pytest.raises(InvalidSubmission) as caught:
            cancellation(event(EventType.DEATH), Settings(), reason)
        assert caught.value.problems == [("reason", problem)]

    def test_a_reason_is_kept_trimmed(self) -> None:
        fixed = document(EventType.DEATH, date_of_death="2026-03-10")
        corrected = correction(event(EventType.DEATH), fixed, Settings(), "  misread date  ")
        assert corrected.envelope.reason == "misread date"

    def test_a_correction_that_changes_nothing_is_refused(self) -> None:
        """It was published: a new revision each service undid and applied again."""
        with pytest.raises(InvalidSubmission) as refused:
            correction(event(EventType.DEATH), document(EventType.DEATH), Settings(), "no reason")
        assert dict(refused.value.problems) == {
            "(document)": "changes none of the registration's facts: nothing to correct"
        }

    def test_a_correction_is_checked_against_the_registration_it_corrects(self) -> None:
        """A date of death after the registration passed (registered_at left out: it was
        "now"), a registered_at sent was dropped unsaid, and the late flag was the
        registration's whatever the corrected date."""
        registered = event(EventType.DEATH)  # 2026-03-13, five days after the example's death
        assert registered.envelope.late_registration is False
        with pytest.raises(InvalidSubmission) as refused:
            correction(registered, _without_time(date_of_death="2026-04-01"), Settings(), None)
        assert dict(refused.value.problems) == {
            "date_of_death": "is after the registration (2026-03-13)"
        }
        moved = document(EventType.DEATH, registered_at="2026-03-14T09:00:00Z")
        with pytest.raises(InvalidSubmission) as refused:
            correction(registered, moved, Settings(), None)
        assert dict(refused.value.problems) == {
            "registered_at": "is when the entry was registered (2026-03-13T10:30:00Z): it is not "
            "corrected (leave it out)"
        }
        late = correction(registered, _without_time(date_of_death="2024-01-01"), Settings(), None)
        assert late.envelope.late_registration is True


def _without_time(**changes: Any) -> dict[str, Any]:
    doc = document(EventType.DEATH, **changes)
    del doc["registered_at"]
    return doc


def _edit(event_type: EventType, path: str, value: Any) -> dict[str, Any]:
    """The example submission with the value at a dotted path (list items by index) replaced."""
    doc = document(event_type)
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    node: Any = doc
    for part in parents:
        node = node[part]
    node[last] = value
    return doc


ARTHUR = document(EventType.DEATH)["deceased"]
CHIDI = document(EventType.MARRIAGE)["parties"][0]["person"]
AISHA = document(EventType.ADDRESS_CHANGE)["people_moving"][0]


class TestPeopleInOneSubmission:
    """Submissions about impossible people were published: a marriage of one person to
    themselves or of a 13-year-old, a widow with the deceased's NINO, a move before the mover
    was born, one mover listed twice."""

    @pytest.mark.parametrize(
        ("event_type", "path", "value", "expected"),
        [
            (EventType.DEATH, "surviving_partner", ARTHUR | {"given_names": "Arthur"},
             {"surviving_partner": "is the same person as deceased"}),
            (EventType.DEATH, "surviving_partner.date_of_birth", "2026-03-12",
             {"surviving_partner.date_of_birth": "is after the death"}),
            (EventType.MARRIAGE, "parties.1.person", CHIDI,
             {"parties.1.person": "is the same person as parties.0.person"}),
            (EventType.MARRIAGE, "parties.1.person.nino", CHIDI["nino"],
             {"parties.1.person": "is the same person as parties.0.person"}),
            (EventType.MARRIAGE, "parties.1.person.date_of_birth", "2010-01-01",
             {"parties.1.person.date_of_birth": "makes them under 16 on the day of the union"}),
            (EventType.MARRIAGE, "parties.0.person.date_of_birth", "2007-09-10",
             {"parties.0.person.date_of_birth": "makes them under 16 on the day of the union"}),
            (EventType.BIRTH, "parents.1.nino", "CE445566B",
             {"parents.1": "is the same person as parents.0"}),
            (EventType.BIRTH, "child.nino", "CE445566B",
             {"parents.0": "is the same person as child"}),
            (EventType.ADDRESS_CHANGE, "people_moving", [AISHA, AISHA | {"nino": "jk112233a"}],
             {"people_moving.1": "is the same person as people_moving.0"}),
            (EventType.ADDRESS_CHANGE, "people_moving", [AISHA, AISHA | {"nino": None}],
             {"people_moving.1": "is the same person as people_moving.0"}),
            (EventType.ADDRESS_CHANGE, "effective_on", "1958-11-30",
             {"people_moving.0.date_of_birth": "is after the move"}),
            (EventType.ADDRESS_CHANGE, "new_address",
             {"lines": ["21 example street", "LEEDS,"], "postcode": "ls61aa"},
             {"new_address": "is the same as the old address"}),
        ],
    )  # fmt: skip
    def test_is_refused_naming_the_entry(
        self, event_type: EventType, path: str, value: Any, expected: dict[str, str]
    ) -> None:
        assert problems(event_type, _edit(event_type, path, value)) == expected

    @pytest.mark.parametrize(
        ("event_type", "path", "value", "kept", "expected"),
        [
            (EventType.MARRIAGE, "parties.0.person.date_of_birth", "2007-09-09",  # 16 that day
             lambda f: str(f.parties[0].person.date_of_birth), "2007-09-09"),
            (EventType.ADDRESS_CHANGE, "people_moving",
             [AISHA, AISHA | {"given_names": "Priya", "nino": None}],  # her twin
             lambda f: [p.given_names for p in f.people_moving], [AISHA["given_names"], "Priya"]),
            (EventType.BIRTH, "parents.1.nino", None,
             lambda f: [p.nino is None for p in f.parents], [False, True]),
        ],
    )  # fmt: skip
    def test_what_is_possible_is_accepted(
        self, event_type: EventType, path: str, value: Any, kept: Any, expected: Any
    ) -> None:
        """Accepted as given: not a person dropped or a date changed to pass."""
        _header, facts = parse(event_type, _edit(event_type, path, value))
        assert kept(facts) == expected


def test_an_invalid_item_of_a_list_is_its_only_problem() -> None:
    """pydantic also said "people_moving: Tuple should have at least 1 item after validation,
    not 0", which the registrar had not done."""
    doc = _edit(EventType.ADDRESS_CHANGE, "people_moving.0.family_name", True)
    assert problems(EventType.ADDRESS_CHANGE, doc) == {
        "people_moving.0.family_name": "Input should be a valid string"
    }
    assert problems(EventType.ADDRESS_CHANGE, _edit(EventType.ADDRESS_CHANGE, "people_moving", []))[
        "people_moving"
    ].startswith("Tuple should have at least 1 item")


def test_a_registration_of_another_kind_says_which_it_is() -> None:
    """A death sent as a birth was nine problems: three fields required, six not permitted."""
    with pytest.raises(InvalidSubmission) as refused:
        parse(EventType.BIRTH, document(EventType.DEATH))
    first, *rest = refused.value.problems
    assert first == (
        "(document)",
        "is a death registration, not a birth: submit it to /v1/events/death "
        "(CLI: tellusonce submit death)",
    )
    assert ("child", "Field required") in rest


def test_a_lone_surrogate_is_named_by_its_field() -> None:
    """Validated as JSON, it failed the whole part "at line 1 column 168" of a text the
    registrar never wrote."""
    assert problems(EventType.DEATH, _edit(EventType.DEATH, "deceased.family_name", "T\ud800")) == {
        "deceased.family_name": "holds a character that is not text"
    }


def test_twins_whose_names_differ_by_a_vowel_sign_are_two_people() -> None:
    """Kamal and Kamala Sharma in Devanagari, twins moving house (children: no NINO): their
    names' matching keys dropped the vowel sign, and they were refused as one person."""
    born = "2015-06-01"
    twins = [
        {"given_names": given, "family_name": "शर्मा", "date_of_birth": born}
        for given in ("कमल", "कमला")
    ]
    doc = document(EventType.ADDRESS_CHANGE, people_moving=twins)
    _, facts = parse(EventType.ADDRESS_CHANGE, doc)
    assert [p.given_names for p in facts.people_moving] == ["कमल", "कमला"]


def test_a_lone_surrogate_in_a_field_name_names_its_object() -> None:
    """It was refused as "Invalid JSON: unexpected end of hex escape at line 1 column 136", of
    a JSON text the registrar never wrote."""
    doc = document(EventType.DEATH)
    doc["deceased"]["\ud800x"] = "y"
    assert problems(EventType.DEATH, doc) == {
        "deceased": "has a field whose name holds a character that is not text"
    }


def test_a_reason_with_a_control_character_is_refused_naming_it() -> None:
    """It passed the reason's checks and failed the envelope's: a 500 or exit 1 printing it."""
    with pytest.raises(InvalidSubmission) as refused:
        cancellation(event(EventType.DEATH), Settings(), "Entered\tin error")
    assert dict(refused.value.problems) == {
        "reason": "contains a control or invisible formatting character"
    }


def test_a_field_the_submission_does_not_take_is_named_if_shaped_as_a_name() -> None:
    """Any text a client sent as a field's name (a name and a NINO, say) was said back."""
    doc = document(EventType.DEATH)
    doc["deceased"] |= {"nino_typo": "x", "Arthur Smith AB654321C": "x"}
    with pytest.raises(InvalidSubmission) as refused:
        parse(EventType.DEATH, doc)
    fields = [p.field for p in refused.value.problems]
    assert fields == ["deceased.nino_typo", "deceased"]
