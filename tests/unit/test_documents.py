"""A submission's JSON read strictly (producers.documents): each refusal says why and where."""

from __future__ import annotations

import json

import pytest

from producers import documents
from producers.documents import NotJson

DEATH = '{"date_of_death": "2026-03-11", "entry_number": 1042}'


def test_a_document_is_read_as_json() -> None:
    assert documents.load(DEATH.encode()) == json.loads(DEATH)


def test_a_byte_order_mark_is_allowed() -> None:
    """Editors on Windows save one; the CLI refused such a file, the API took it."""
    assert documents.load(b"\xef\xbb\xbf" + DEATH.encode()) == json.loads(DEATH)


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (
            b'{"date_of_death": "2026-03-11", "date_of_death": "2026-03-05"}',
            'gives the key "date_of_death" twice in one object',
        ),  # the last was taken: a death published on another day than the first written
        (
            b'{"deceased": {"nino": "AB123456C", "nino": "AB654321C"}}',
            'gives the key "nino" twice in one object',
        ),
        (
            b'{"Arthur Smith AB654321C": 1, "Arthur Smith AB654321C": 2}',
            "gives a key twice in one object",
        ),  # a key shaped as no field's name is not said back (it held a name and a NINO)
        (b'{"entry_number": NaN}', "is not valid JSON: NaN is not a JSON number"),
        (b'{"entry_number": -Infinity}', "is not valid JSON: -Infinity is not a JSON number"),
        (b'{"entry_number": ' + b"9" * 5000 + b"}", "is not valid JSON: a number has too many"),
        ('{"name": "Arthér"}'.encode("latin-1"), "is not UTF-8 (byte 15 is not a character)"),
        (b'{"a": 1,}', "is not valid JSON: Expecting property name enclosed in double quotes"),
        (b"[" * 15_000, "is nested more than 32 deep"),
        (b'{"registration": ' + b"[" * 500 + b"]" * 500 + b"}", "is nested more than 32 deep"),
        (b"", "is not valid JSON: Expecting value (line 1, column 1)"),
    ],
)
def test_what_is_not_one_json_document_is_refused_saying_why(raw: bytes, why: str) -> None:
    with pytest.raises(NotJson) as refused:
        documents.load(raw)
    assert str(refused.value).startswith(why)
    assert "AB654321C" not in str(refused.value)
    assert "Arth" not in str(refused.value)
