"""A submission's JSON, read strictly: what a registrar sends is what is published, or it is
refused saying why."""

from __future__ import annotations

import json
import re
from typing import Any


class NotJson(ValueError):
    """A document that is not one JSON object's worth of UTF-8 JSON; the message says why
    and where (never the content: it may be personal data)."""


def load(raw: bytes) -> object:
    """A JSON document from UTF-8 (a byte-order mark allowed, as editors on Windows write one).
    Refused: a key given twice in one object (json takes the last silently: a second
    date_of_death was published), NaN and Infinity (not JSON), numbers of more digits than
    Python reads, and nesting more than MAX_DEPTH deep."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise NotJson(f"is not UTF-8 (byte {exc.start + 1} is not a character)") from None
    try:
        document = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_not_json)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise NotJson(f"is not valid JSON: {exc.msg} ({where})") from None
    except NotJson:
        raise
    except ValueError:  # int() past sys.get_int_max_str_digits()
        raise NotJson("is not valid JSON: a number has too many digits") from None
    except RecursionError:
        raise NotJson(f"is nested more than {MAX_DEPTH} deep") from None
    if _deeper_than(document, MAX_DEPTH):  # what reads it next recurses too (a 500 at 500 deep)
        raise NotJson(f"is nested more than {MAX_DEPTH} deep")
    return document


MAX_DEPTH = 32  # a submission is 5 deep: objects and arrays within one another


def _deeper_than(document: object, limit: int) -> bool:
    """Whether arrays and objects are nested more than `limit` deep (walked without recursion)."""
    stack = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            value = list(value.values())
        if isinstance(value, list):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in value)
    return False


FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
"""A key an error may name: shaped as a field's name. Another (up to 16 KiB of anything a
client sent, a NINO say) is not repeated back."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            named = f'the key "{key}"' if FIELD_NAME.fullmatch(key) else "a key"
            raise NotJson(f"gives {named} twice in one object")
        seen.add(key)
    return dict(pairs)


def _not_json(constant: str) -> object:
    raise NotJson(f"is not valid JSON: {constant} is not a JSON number")
