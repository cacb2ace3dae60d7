"""Validated field types for personal data: NINO, UK postcode, names, and Europe/London dates.

Errors say which rule failed, never echo the value (it is personal data). Checks against today's
date (not in the future, not more than 130 years ago), and those added since events were first
published (Royal Mail's letters in postcodes, no control characters in free text), are made of
what a registrar submits (validated with the SUBMITTED context), not of events decoded from the
bus or records read from a store: an event valid when registered stays valid when replayed a
year later, on a consumer whose clock is a minute behind the registrar's, by a newer version.
"""

from __future__ import annotations

import functools
import re
import time
import unicodedata
from datetime import UTC, date, datetime, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    StringConstraints,
    ValidationInfo,
)
from pydantic_core import PydanticCustomError

LONDON = ZoneInfo("Europe/London")
MAX_AGE_YEARS = 130
NAME_MAX = 100
CODE_MAX = 64

# HMRC: first letter not D F I Q U V; second not D F I O Q U V; some prefixes never issued.
_NINO = re.compile(r"^[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z][0-9]{6}[A-D]$")
NINO_NEVER_ISSUED = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})
_POSTCODE = re.compile(r"^(GIR ?0AA|[A-Z]{1,2}[0-9][A-Z0-9]? ?[0-9][A-Z]{2})$")
# and, of a postcode submitted, Royal Mail's letters: no area begins Q, V or X, nor has I, J or
# Z second; the inward code's letters are never C, I, K, M, O or V
_ROYAL_MAIL = re.compile(
    r"^(GIR ?0AA|[A-PR-UWYZ][A-HK-Y]?[0-9][A-Z0-9]? ?[0-9][ABD-HJLNP-UW-Z]{2})$"
)
# hyphens (Hebrew's maqaf and a non-breaking one too), apostrophes, full stops, spaces, Hebrew's
# geresh and gershayim, middle dots (Catalan's, and the katakana one between names)
_NAME_PUNCTUATION = frozenset(" '’-.‐\u2011\u05be\u05f3\u05f4\u00b7\u30fb")
_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
# \w: letters and digits of any script
_CODE = re.compile(rf"[^\W_][\w .'’&(),/-]{{0,{CODE_MAX - 1}}}")
_JOINERS = frozenset("\u200c\u200d")  # ZWNJ, ZWJ: spelling in Persian, Sinhala, Malayalam ...
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_ISO_INSTANT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}.*")
SUBMITTED = {"submitted": True}
"""The validation context of a registrar's submission: its dates are checked against today."""
_PLAIN_NAME = re.compile(r"[ '’.‐-]*[A-Za-z][A-Za-z '’.‐-]*")  # ASCII letters + the punctuation


class _Today:
    """Today's date in Europe/London, worked out once a day: every decoded event asks for it
    several times (each date of birth and event date is checked against it)."""

    def __init__(self) -> None:
        self._day = (0.0, 0.0, date.min)  # (from, until, date), replaced whole: thread-safe

    def __call__(self) -> date:
        now = time.time()
        since, until, today = self._day
        if not since <= now < until:
            today = datetime.fromtimestamp(now, LONDON).date()
            start = datetime(today.year, today.month, today.day, tzinfo=LONDON)
            # London midnight exists every day: the clocks change at 01:00 and 02:00
            self._day = (start.timestamp(), (start + timedelta(days=1)).timestamp(), today)
        return today


today_in_london = _Today()
"""Today's date where registrations are made."""


def _nino(value: str) -> str:
    value = "".join(value.split()).upper()
    if not _NINO.match(value):
        raise PydanticCustomError(
            "nino_format",
            "not a valid National Insurance number: expected two prefix letters "
            "(not D, F, I, Q, U or V; second not O), six digits and a suffix A-D, "
            "like AB 12 34 56 C",
        )
    if value[:2] in NINO_NEVER_ISSUED:
        raise PydanticCustomError(
            "nino_prefix", "not a valid National Insurance number: that prefix is never issued"
        )
    return value


def _postcode(value: str, info: ValidationInfo) -> str:
    value = " ".join(value.split()).upper()
    if not (_ROYAL_MAIL if _submitted(info) else _POSTCODE).match(value):
        raise PydanticCustomError(
            "postcode_format", "not a valid UK postcode (expected e.g. LS6 2AB or SW1A 1AA)"
        )
    compact = value.replace(" ", "")
    return f"{compact[:-3]} {compact[-3:]}"


# NFC takes time that grows with the square of a run of combining marks (CPython sorts them by
# insertion): 160 KB of them in one name took 8.8 s, a 1 MB message minutes. Text that no
# normalisation could bring within its limit (composing shortens it at most threefold) is left
# as it is, for the length check to refuse.
_NORMALISED_AT_MOST = 4


def _normalise_name(value: object) -> object:
    if isinstance(value, str) and len(value) <= _NORMALISED_AT_MOST * NAME_MAX:
        return unicodedata.normalize("NFC", value.strip())
    return value


def _check_name(value: str) -> str:
    if _PLAIN_NAME.fullmatch(value):  # the common case, without a look at each character
        return value
    if invisible(value):
        raise PydanticCustomError(
            "name_characters", "contains a control or invisible formatting character"
        )
    for i, char in enumerate(value):
        if char in _JOINERS and _between_letters(value, i):
            continue
        if unicodedata.category(char)[0] not in "LM" and char not in _NAME_PUNCTUATION:
            raise PydanticCustomError(
                "name_characters",
                "contains a character names do not use (allowed: letters of any script, "
                "spaces, apostrophes, hyphens, full stops, middle dots)",
            )
    if not any(unicodedata.category(char)[0] == "L" for char in value):
        raise PydanticCustomError("name_letters", "must contain at least one letter")
    return value


def invisible(value: str) -> bool:
    """Whether text holds a control character (a NUL, a bell, a line break), an invisible
    format character (a right-to-left override), a lone surrogate or an unassigned code point;
    a zero-width joiner or non-joiner between letters is spelling, not hidden."""
    return any(
        unicodedata.category(char) in _INVISIBLE
        and not (char in _JOINERS and _between_letters(value, i))
        for i, char in enumerate(value)
    )


def hides_characters(value: str) -> bool:
    """Whether free text holds a control or invisible character. isprintable first: nothing of
    the categories Other or Separator but a space (one C call, the common case); what it refuses
    may be a no-break space, which text may hold."""
    return not value.isprintable() and invisible(value)


def _plain_text(value: str, info: ValidationInfo) -> str:
    if not _submitted(info) or not hides_characters(value):
        return value
    raise PydanticCustomError(
        "text_characters", "contains a control or invisible formatting character"
    )


def _code_text(value: object) -> object:
    """A name as register entries compare it: single-spaced, NFC, one apostrophe (King's Lynn
    and King\u2019s Lynn are one district: one register entry, one event id)."""
    if isinstance(value, str) and len(value) <= _NORMALISED_AT_MOST * CODE_MAX:
        return unicodedata.normalize("NFC", " ".join(value.split())).replace("\u2019", "'")
    return value


def _code(value: str) -> str:
    if not _CODE.fullmatch(value):
        raise PydanticCustomError(
            "code_format",
            "must be 1 to 64 letters, digits, spaces or . ' ’ & ( ) , / - and begin with a "
            "letter or digit",
        )
    return value


def _between_letters(value: str, i: int) -> bool:
    """Whether value[i] has a letter (or a letter's mark) on each side."""
    return 0 < i < len(value) - 1 and all(
        unicodedata.category(value[j])[0] in "LM" for j in (i - 1, i + 1)
    )


def _date_text(value: object) -> object:
    """A date given as text is written YYYY-MM-DD: pydantic also reads "0" and 0 as seconds
    since 1970 (a death on 1970-01-01), and "1946" as a timestamp. Read here, so that a strict
    validation (a submission's) takes it."""
    if isinstance(value, date) and not isinstance(value, datetime):  # decoded from Avro
        return value
    if isinstance(value, str) and _ISO_DATE.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise PydanticCustomError("date_calendar", "is not a day of the calendar") from None
    raise PydanticCustomError("date_format", "must be a date written YYYY-MM-DD, like 2026-03-11")


def _instant_text(value: object) -> object:
    """A time given as text is an ISO 8601 date and time (not seconds since 1970)."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and _ISO_INSTANT.fullmatch(value):
        try:  # RFC 3339 allows a lower-case z, which Python 3.11 does not read
            return datetime.fromisoformat(value[:-1] + "Z" if value.endswith("z") else value)
        except ValueError:
            pass
    raise PydanticCustomError(
        "datetime_format",
        "must be a date and time with its offset from UTC, like 2026-03-13T10:30:00Z",
    )


def _submitted(info: ValidationInfo) -> bool:
    context = info.context
    return isinstance(context, dict) and bool(context.get("submitted"))


def _not_in_future(value: date, info: ValidationInfo) -> date:
    if _submitted(info) and value > today_in_london():
        raise PydanticCustomError("date_future", "is in the future")
    return value


def _plausible_birth_date(value: date, info: ValidationInfo) -> date:
    """Not in the future and within the age limit (one validator: one call from pydantic-core)."""
    if not _submitted(info):
        return value
    today = today_in_london()
    if value > today:
        raise PydanticCustomError("date_future", "is in the future")
    if age_on(value, today) > MAX_AGE_YEARS:
        raise PydanticCustomError("date_too_old", f"is more than {MAX_AGE_YEARS} years ago")
    return value


def _within_calendar(value: datetime) -> datetime:
    try:
        value.astimezone(UTC).astimezone(LONDON)
    except OverflowError:
        raise PydanticCustomError("datetime_out_of_range", "is out of range") from None
    return value


# Each check is one call from pydantic-core (they run for every field of every decoded event).
Nino = Annotated[str, AfterValidator(_nino)]
"""A National Insurance number, normalised to upper case without spaces (AB123456C)."""

Postcode = Annotated[str, AfterValidator(_postcode)]
"""A UK postcode, normalised to outward code + space + inward code (LS6 2AB)."""

Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=NAME_MAX),  # first: checked in pydantic-core,
    BeforeValidator(_normalise_name),  # though after this (validators wrap what precedes them)
    AfterValidator(_check_name),
]
"""A personal name part in any script, 1 to 100 characters, never truncated."""

PastDate = Annotated[date, BeforeValidator(_date_text), AfterValidator(_not_in_future)]
"""A date (YYYY-MM-DD) that, when submitted, is not after today in Europe/London."""

BirthDate = Annotated[date, BeforeValidator(_date_text), AfterValidator(_plausible_birth_date)]
"""A date of birth (YYYY-MM-DD): when submitted, not in the future and at most 130 years ago."""

Instant = Annotated[AwareDatetime, BeforeValidator(_instant_text), AfterValidator(_within_calendar)]
"""A time with its UTC offset that has a date in UTC and in Europe/London (year 1 to 9999)."""

Text = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200, strip_whitespace=True),
    AfterValidator(_plain_text),
]
"""Free text of 1 to 200 characters (address lines, relationships, reasons), without control
or invisible characters."""

SHOWN_MAX = 1000  # characters of a text a service sends to be shown
# no control, format (a right-to-left override), private-use or unassigned character, nor a line
# or paragraph separator: in pydantic-core's own regex engine (the tracker reads every
# confirmation: a Python check of each text cost it 1.4 us a confirmation)
_SHOWN = r"^[^\p{Cc}\p{Cf}\p{Co}\p{Cn}\p{Zl}\p{Zp}]*$"


def shown(text: str) -> str:
    """Text made fit to be shown (ShownText): control and invisible characters as spaces,
    single-spaced, at most SHOWN_MAX characters."""
    text = " ".join(text.split())
    if not text.isprintable():
        text = "".join(" " if unicodedata.category(c) in _UNSHOWN else c for c in text)
    return text[:SHOWN_MAX]


_UNSHOWN = frozenset({"Cc", "Cf", "Co", "Cn", "Cs", "Zl", "Zp"})  # what _SHOWN refuses


ShownText = Annotated[str, StringConstraints(max_length=SHOWN_MAX, pattern=_SHOWN)]
"""Text a service sends to be shown to registrars and families (a confirmation's actions, its
record's reference), at most 1,000 characters, never a control or invisible character, from
whichever service sent it (a NUL, which PostgreSQL's text refuses; a terminal's escape codes)."""


Code = Annotated[str, BeforeValidator(_code_text), AfterValidator(_code)]
"""A registration district or an office code, single-spaced and trimmed: "Leeds " and "Leeds"
are one district (and, as event ids fold case, so is "LEEDS"); Welsh and other letters,
apostrophes and ampersands as district names have them (Ynys Môn, King's Lynn)."""


NAME_KEY_VERSION = 4
"""Raised when name_key() or the matching keys change: stores make their matching keys again
(2: marks kept outside the Latin, Greek and Cyrillic scripts; 3: given names kept too; 4:
stroked letters and ligatures folded, apostrophes written as modifier letters, Arabic's vowel
marks and tatweel and Hebrew's points dropped, and places in one Unicode form)."""
_ACCENTED_SCRIPTS = ("LATIN", "GREEK", "CYRILLIC")
_FOLDED = str.maketrans(
    {"ø": "o", "ł": "l", "đ": "d", "ħ": "h", "ŧ": "t", "ı": "i", "ð": "d", "þ": "th", "æ": "ae",
     "œ": "oe", "\u02bc": None, "\u02bb": None, "\u02bd": None, "\u0640": None}
    | {chr(c): None for c in (*range(0x064B, 0x0660), 0x0670, *range(0x0591, 0x05C8))}
)  # fmt: skip
"""Latin letters NFKD does not decompose (Jørgensen, Łukasz, Đorđević, Æsa: a stroke or a
ligature, not a combining accent), and apostrophes that Unicode counts as letters (U+02BC,
U+02BB, U+02BD: O'Brien, Hawai'i so written): folded as accents and punctuation are. Arabic's
optional vowel marks (harakat) and its tatweel (a stretch of the line, U+0640), and Hebrew's
points (niqqud, cantillation): written or not, one name (مُحَمَّد محمد, כֹּהֵן כהן). Applied after
NFKD (ǿ is ø with an acute)."""


@functools.lru_cache(maxsize=1 << 16)  # pure, and asked of the same names again and again
def name_key(family_name: str) -> str:
    """The form of a name used for matching: case and punctuation folded, and the accents,
    strokes and ligatures of Latin, Greek and Cyrillic letters (Siân, Sian; Jørgensen,
    Jorgensen). In other scripts a mark is spelling, not an
    accent (a Devanagari vowel sign or virama: कमल Kamal, कमला Kamala), and is kept."""
    kept: list[str] = []
    accented = False  # whether the letter before is one whose marks are accents
    folded = unicodedata.normalize("NFKD", family_name.casefold()).translate(_FOLDED)
    for char in folded:
        kind = unicodedata.category(char)[0]
        if kind == "L":
            kept.append(char)
            accented = unicodedata.name(char, "").startswith(_ACCENTED_SCRIPTS)
        elif kind == "M" and not accented:
            kept.append(char)
    return "".join(kept)


def age_on(born: date, on: date) -> int:
    """Whole years between a date of birth and a later date."""
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))
