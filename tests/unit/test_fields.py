"""Validation of personal data fields: NINO, postcode and names, with valid and invalid vectors."""

from __future__ import annotations

import json
import time
import unicodedata
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from pydantic import TypeAdapter, ValidationError

from tellusonce import fields
from tellusonce.fields import (
    LONDON,
    SUBMITTED,
    BirthDate,
    Code,
    Instant,
    Name,
    Nino,
    PastDate,
    Postcode,
    Text,
    name_key,
    today_in_london,
)
from tests.strategies import names, ninos, postcodes

NINO = TypeAdapter(Nino)
POSTCODE = TypeAdapter(Postcode)
NAME = TypeAdapter(Name)
BIRTH_DATE = TypeAdapter(BirthDate)
PAST_DATE = TypeAdapter(PastDate)
INSTANT = TypeAdapter(Instant)


class TestNino:
    """National Insurance numbers per HMRC's format rules."""

    @pytest.mark.parametrize(
        ("given", "expected"),
        [
            ("AB123456C", "AB123456C"),
            ("ab 12 34 56 c", "AB123456C"),
            (" JT654321B ", "JT654321B"),
            ("JT\t654321\nB", "JT654321B"),
            (b"ab 123456c", "AB123456C"),  # bytes (accepted as text by pydantic) normalised too
        ],
    )
    def test_valid_ninos_are_normalised(self, given: str | bytes, expected: str) -> None:
        """Spaces and lower case are accepted and normalised away."""
        assert expected == NINO.validate_python(given)

    @pytest.mark.parametrize(
        "given",
        [
            "DA123456A",  # first letter D
            "FA123456A",  # first letter F
            "QQ123456C",  # Q is never used (the well-known example number is invalid on purpose)
            "AO123456A",  # second letter O
            "AV123456A",  # second letter V
            "AB123456E",  # suffix beyond D
            "AB12345C",  # five digits
            "AB1234567C",  # seven digits
            "A1123456C",  # digit in the prefix
            "",
        ],
    )
    def test_malformed_ninos_are_rejected(self, given: str) -> None:
        """Each broken rule is rejected with a message that does not echo the value."""
        with pytest.raises(ValidationError) as caught:
            NINO.validate_python(given)
        assert given.strip() == "" or given not in str(caught.value.errors(include_input=False))

    @pytest.mark.parametrize("prefix", ["BG", "GB", "KN", "NK", "NT", "TN", "ZZ"])
    def test_never_issued_prefixes_are_rejected(self, prefix: str) -> None:
        """Prefixes HMRC never issues are refused."""
        with pytest.raises(ValidationError, match="never issued"):
            NINO.validate_python(f"{prefix}123456A")

    @given(nino=ninos)
    def test_generated_valid_ninos_pass(self, nino: str) -> None:
        """Any NINO built from the allowed letters passes unchanged."""
        assert nino == NINO.validate_python(nino)


class TestPostcode:
    """UK postcodes, normalised to outward + space + inward."""

    @pytest.mark.parametrize(
        ("given", "expected"),
        [
            ("ls62ab", "LS6 2AB"),
            ("SW1A 1AA", "SW1A 1AA"),
            ("m1  2ab", "M1 2AB"),
            ("GIR0AA", "GIR 0AA"),
        ],
    )
    def test_valid_postcodes_are_normalised(self, given: str, expected: str) -> None:
        """Case and spacing do not matter."""
        assert expected == POSTCODE.validate_python(given)

    @pytest.mark.parametrize(
        "given",
        ["LS6", "12345", "LS6 2A", "L$6 2AB", "LS6 2ABC",
         "LS6 2CI", "LS6 2AK", "LS6 2OA", "QS6 2AB", "VA1 1AA", "XM1 1AA", "AI1 1AA", "LZ6 2AB"],
    )  # fmt: skip
    def test_malformed_postcodes_are_rejected(self, given: str) -> None:
        """Anything not shaped like a UK postcode, or (since 12-03) with letters Royal Mail
        never uses, is refused when submitted."""
        with pytest.raises(ValidationError, match="UK postcode"):
            POSTCODE.validate_python(given, context=SUBMITTED)

    @pytest.mark.parametrize("given", ["LS6 2CI", "QS6 2AB", "AI1 1AA"])
    def test_a_postcode_published_before_royal_mails_letters_were_checked_is_read(
        self, given: str
    ) -> None:
        """Decoded from the bus or read from a store (no context): events published before
        12-03 were dead-lettered, and their ledger entries could not be cancelled."""
        assert POSTCODE.validate_python(given) == given

    @given(postcode=postcodes)
    def test_generated_postcodes_round_trip(self, postcode: str) -> None:
        """A normalised postcode is a fixed point of normalisation."""
        assert postcode == POSTCODE.validate_python(postcode.replace(" ", "").lower())


class TestNames:
    """Names in any script and the punctuation real names use; nothing invisible."""

    @pytest.mark.parametrize(
        "given",
        [
            "O'Brien", "Smith-Jones", "Siân", "Nguyễn", "王秀英", "Mary Jane", "St. John", "Zoë",
            "علی\u200cرضا",  # Persian: a zero-width non-joiner between letters, as spelt
            "ශ්\u200dරී",  # Sinhala: a zero-width joiner after a sign, before a letter
            "ג\u05f3ורג\u05f3",  # Hebrew: George, with gereshes
            "בן\u05beגוריון",  # Hebrew: Ben-Gurion, with a maqaf (Hebrew's hyphen)
            "Marcel\u00b7lí",  # Catalan's middle dot
            "ジョン\u30fbスミス",  # Japanese: John Smith, the katakana middle dot between
            "Jean\u2011Paul",  # a non-breaking hyphen
        ],
    )  # fmt: skip
    def test_real_names_are_accepted(self, given: str) -> None:
        """Apostrophes, hyphens, accents, CJK, spaces and the joiners scripts spell with."""
        assert given == NAME.validate_python(given)

    @pytest.mark.parametrize(
        ("given", "why"),
        [
            ("Ann\u200bSmith", "invisible"),  # zero-width space
            ("Ann\u202eSmith", "invisible"),  # right-to-left override
            ("\u200cAnn", "invisible"),  # a joiner with nothing to join
            ("Ann \u200dSmith", "invisible"),
            ("Ann\x00", "invisible"),
            ("Ann\nSmith", "invisible"),
            ("R2D2", "letters of any script"),
            ("---", "at least one letter"),
            ("x" * 101, "at most 100"),
            ("", "at least 1 character"),
            ("   ", "at least 1 character"),  # blank once trimmed: too short, as an empty name
        ],
    )
    def test_bad_names_are_rejected_not_truncated(self, given: str, why: str) -> None:
        """Control, invisible and non-name characters and over-long names are refused."""
        with pytest.raises(ValidationError, match=why):
            NAME.validate_python(given)

    def test_length_is_checked_after_trimming_and_nfc(self) -> None:
        """Spaces around a name and combining accents do not count towards its length."""
        assert NAME.validate_python(f"  {'x' * 100}  ") == "x" * 100
        assert NAME.validate_python("A\u0301" + "x" * 99) == "\u00c1" + "x" * 99

    @given(name=names)
    def test_letters_of_any_script_are_names(self, name: str) -> None:
        """Any run of letters is a valid name (normalised to NFC, nothing else changed)."""
        assert NAME.validate_python(name) == unicodedata.normalize("NFC", name.strip())

    @pytest.mark.parametrize(
        ("one", "other"),
        [("O'Brien", "OBRIEN"), ("Siân", "sian"), ("Nguyễn", "Nguyen"), ("Müller", "MULLER"),
         ("Ελένη", "ΕΛΕΝΗ"), ("Ёлкин", "Елкин"), ("Jørgensen", "Jorgensen"), ("Łukasz", "Lukasz"),
         ("Đorđević", "Dordevic"), ("Æsa", "Aesa"), ("Cœur", "Coeur"), ("O\u02bcBrien", "OBrien"),
         ("Hawai\u02bbi", "Hawaii"), ("S\u01ffren", "Soren"), ("محمد", "مُحَمَّد"), ("محمد", "محـمد"),
         ("כהן", "כֹּהֵן")],
    )  # fmt: skip
    def test_matching_key_folds_case_accents_and_punctuation(self, one: str, other: str) -> None:
        """Strokes, ligatures and apostrophes written as modifier letters (U+02BC) too:
        Jørgensen, Łukasz and O'Brien so written, registered without a NINO, found no record
        under Jorgensen, Lukasz, OBrien; and Arabic's optional vowel marks and tatweel, and
        Hebrew's points: one person had two pseudonyms, written with them and without."""
        assert name_key(one) == name_key(other)

    @pytest.mark.parametrize(
        ("one", "other"),
        [("कमल", "कमला"),  # Kamal, Kamala: a vowel sign
         ("पटेल", "पाटील"),  # Patel, Patil
         ("ਸਿੰਘ", "ਸਿਘ"),  # Gurmukhi: Singh, and without its nasal sign
         ("کمال", "کمل")],  # Persian: not a mark at all, a letter
    )  # fmt: skip
    def test_marks_that_spell_are_not_folded(self, one: str, other: str) -> None:
        """In Devanagari and other scripts a mark is a vowel or a virama: dropped as an accent
        would be, Kamal and Kamala were one person (one pseudonym; twins not registrable)."""
        assert name_key(one) != name_key(other)


class TestDates:
    """Dates of birth against today in Europe/London."""

    def test_a_birth_date_today_is_accepted(self) -> None:
        today = today_in_london()
        assert BIRTH_DATE.validate_python(today, context=SUBMITTED) == today

    @pytest.mark.parametrize(
        ("days_ago", "why"), [(-1, "is in the future"), (131 * 366, "is more than 130 years ago")]
    )
    def test_implausible_birth_dates_are_rejected(self, days_ago: int, why: str) -> None:
        with pytest.raises(ValidationError, match=why):
            BIRTH_DATE.validate_python(
                today_in_london() - timedelta(days=days_ago), context=SUBMITTED
            )

    @pytest.mark.parametrize("days_ago", [-1, 131 * 366])
    def test_dates_decoded_or_read_from_a_store_are_not_checked_against_today(
        self, days_ago: int
    ) -> None:
        """A death registered today, decoded on a consumer whose clock is behind, is not in the
        future; nor is a person registered at 130 too old when the event is replayed, or their
        record read, a year later (a consumer exited, printing the record's date of birth)."""
        day = today_in_london() - timedelta(days=days_ago)
        assert BIRTH_DATE.validate_python(day) == day
        assert PAST_DATE.validate_python(day) == day

    @pytest.mark.parametrize("given", [0, "0", -0.0, 1773397800, "1946", "11/03/2026", True])
    def test_a_date_is_written_yyyy_mm_dd(self, given: object) -> None:
        """0 and "0" were read as seconds since 1970: a death on 1970-01-01, published."""
        with pytest.raises(ValidationError, match="must be a date written YYYY-MM-DD"):
            PAST_DATE.validate_python(given, context=SUBMITTED)
        with pytest.raises(ValidationError, match="must be a date written YYYY-MM-DD"):
            PAST_DATE.validate_json(json.dumps(given), strict=True, context=SUBMITTED)

    def test_a_date_written_yyyy_mm_dd_is_a_day_of_the_calendar(self) -> None:
        assert PAST_DATE.validate_json('"2024-02-29"', strict=True) == date(2024, 2, 29)
        with pytest.raises(ValidationError, match="is not a day of the calendar"):
            PAST_DATE.validate_json('"2026-02-29"', strict=True)

    @pytest.mark.parametrize("given", [1773397800, "1773397800", "2026-03-13", True])
    def test_a_time_is_an_iso_date_and_time(self, given: object) -> None:
        with pytest.raises(ValidationError, match="must be a date and time with its offset"):
            INSTANT.validate_json(json.dumps(given), strict=True)
        expected = datetime(2026, 3, 13, 10, 30, tzinfo=UTC)
        assert INSTANT.validate_json('"2026-03-13T10:30:00Z"', strict=True) == expected

    @pytest.mark.parametrize("day", [date(2026, 3, 28), date(2026, 10, 24), date(2026, 7, 1)])
    def test_today_turns_at_london_midnight(
        self, day: date, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Today is worked out once a day, and changes at midnight in London (also on the nights
        the clocks change), not at midnight UTC."""
        midnight = datetime(day.year, day.month, day.day, tzinfo=LONDON) + timedelta(days=1)
        today = fields._Today()
        for at, expected in [
            (midnight - timedelta(hours=3), day),
            (midnight - timedelta(microseconds=1), day),
            (midnight, day + timedelta(days=1)),
            (midnight + timedelta(hours=23, minutes=59), day + timedelta(days=1)),
            (midnight - timedelta(hours=1), day),  # the clock set back
        ]:
            monkeypatch.setattr(time, "time", at.timestamp)
            assert today() == expected, at


TEXT = TypeAdapter(Text)
CODE = TypeAdapter(Code)


class TestText:
    """Address lines, relationships, informants' names and reasons: a NUL, a bell or a
    right-to-left override were published in them."""

    @pytest.mark.parametrize(
        "given",
        ["Margaret\u0000 Thompson", "Margaret\u202e Thompson", "14 Elm Road\n\u0007",
         "\u0000", "zero\u200bwidth", "line\u2028break"],
    )  # fmt: skip
    def test_control_and_invisible_characters_are_refused(self, given: str) -> None:
        with pytest.raises(ValidationError, match="control or invisible formatting character"):
            TEXT.validate_python(given, context=SUBMITTED)

    def test_text_published_before_control_characters_were_refused_is_read(self) -> None:
        assert TEXT.validate_python("14 Elm Road\tFlat 2") == "14 Elm Road\tFlat 2"

    @pytest.mark.parametrize(
        "given", ["Flat 2, 14 Elm Road", "7 Heol y Nant", "Stryd\u00a0Fawr", "خیابان علی\u200cرضا"]
    )
    def test_text_of_any_script_is_kept(self, given: str) -> None:
        assert TEXT.validate_python(f" {given} ") == given


class TestCodes:
    @pytest.mark.parametrize(
        "given",
        ["Leeds", "LEEDS-RO-1", "Ynys Môn", "King's Lynn", "Bath & North East Somerset",
         "St. Helens", "Kingston upon Hull, City of", "Rhondda Cynon Taf (RCT)"],
    )  # fmt: skip
    def test_districts_as_they_are_named_are_codes(self, given: str) -> None:
        """Ynys Môn and King's Lynn were refused, quoting a regular expression."""
        assert CODE.validate_python(given) == given

    @pytest.mark.parametrize("given", ["", "-Leeds", "Leeds\u0000", "x" * 65, "Leeds<b>", "_L"])
    def test_what_is_not_a_code_is_refused_in_words(self, given: str) -> None:
        with pytest.raises(ValidationError) as refused:
            CODE.validate_python(given)
        (error,) = refused.value.errors()
        assert error["msg"].startswith("must be 1 to 64 letters, digits, spaces or")


def test_one_district_written_with_either_apostrophe_is_one_code() -> None:
    """King's Lynn, written with a typographic apostrophe, made a second event id for one
    register entry."""
    assert CODE.validate_python("King\u2019s  Lynn") == CODE.validate_python("King's Lynn")
    assert CODE.validate_python("Ynys Mo\u0302n") == "Ynys M\u00f4n"  # NFC


def test_a_time_ending_in_a_lower_case_z_is_utc() -> None:
    expected = datetime(2026, 3, 13, 10, 30, tzinfo=UTC)
    assert INSTANT.validate_json('"2026-03-13T10:30:00z"', strict=True) == expected


@pytest.mark.parametrize(
    ("one", "other"),
    [("1 Heol y Môn", unicodedata.normalize("NFD", "1 Heol y Môn")),
     ("2 King’s Road", "2 King's Road")],
)  # fmt: skip
def test_an_address_written_in_another_unicode_form_is_the_same_place(one: str, other: str) -> None:
    """Môn typed with a combining circumflex, or King's with a curly apostrophe, was another
    place: the account or claim at it not found by a move or a death written so."""
    from tellusonce.events import Address

    first = Address(lines=(one, "Cardiff"), postcode="CF10 3AT")
    second = Address(lines=(other, "Cardiff"), postcode="CF10 3AT")
    assert first.same_place(second)
    assert first.place == second.place
