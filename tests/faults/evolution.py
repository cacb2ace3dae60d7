"""A second version of the death schema (one more field in the facts), as schema evolution
tests write it."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import avro.schema
import fastavro
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from tellusonce.codec import MAGIC, WriterSchema, schema_dir
from tellusonce.events import LifeEvent

NEW_FIELD = "cause_of_death_code"


def evolve(tmp_path: Path, field: dict[str, Any]) -> Path:
    """A schema directory holding death/v2.avsc: v1 with one more field in the facts."""
    schema = json.loads((schema_dir() / "death" / "v1.avsc").read_text())
    facts = next(f for f in schema["fields"] if f["name"] == "facts")["type"]
    facts["fields"].append(field)
    (tmp_path / "death").mkdir(parents=True)
    (tmp_path / "death" / "v2.avsc").write_text(json.dumps(schema))
    return tmp_path


OPTIONAL = {"name": NEW_FIELD, "type": ["null", "string"], "default": None}


REQUIRED = {"name": NEW_FIELD, "type": "string"}  # no default: old data cannot be read


def write(schema: Any, record: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, schema, record)
    return out.getvalue()


def v2_bytes(schema: WriterSchema, death: LifeEvent[Any]) -> bytes:
    record = death.model_dump()
    record["facts"][NEW_FIELD] = "R99"
    return MAGIC + schema.fingerprint + write(schema.parsed, record)


def incompatibilities(old: Any, new: Any) -> list[str]:
    """Why schema `new` is not FULL compatible with `old` (none if it is), by Avro's rules of
    schema resolution as its own checker applies them (Java's SchemaCompatibility, ported):
    new code must read old data and old code new data, for every record either may write, not
    only for the records a test happens to try. Schemas as JSON (parsed, or text)."""
    older, newer = map(_parsed, (old, new))
    new_reads_old = (newer, older, "new code reading old data")
    old_reads_new = (older, newer, "old code reading new data")
    found = []
    for reader, writer, way in (new_reads_old, old_reads_new):
        result = ReaderWriterCompatibilityChecker().get_compatibility(reader, writer)
        if result.compatibility is not SchemaCompatibilityType.compatible:
            where = ", ".join(sorted(result.locations - {"/"})) or "/"
            found.append(f"{way} fails at {where}: {', '.join(sorted(result.messages))}")
    # what Avro's checker passes: it compares the types values are written as, not what they
    # mean (a date written as its day number read as an int), and leaves defaults to the parser
    old_json, new_json = map(_json, (old, new))
    found += _logical_changes(old_json, new_json, "")
    found += [f"new schema: {d}" for d in _defaults_not_of_their_union(new_json, "")]
    return found


def _json(schema: Any) -> Any:
    return json.loads(schema) if isinstance(schema, str) else schema


def _logical_changes(old: Any, new: Any, where: str) -> list[str]:
    """Fields of the same name whose logical types differ (a date now its day number, micros
    now millis): both ways read the value, as another thing."""
    old, new = ({"type": t} if isinstance(t, str) else t for t in (old, new))  # "int": no logic
    if isinstance(old, dict) and isinstance(new, dict):
        was, now = old.get("logicalType"), new.get("logicalType")
        if was != now:
            return [f"{where or '/'} changes its logical type: {was} to {now}"]
    return [c for o, n, at in _beneath(old, new, where) for c in _logical_changes(o, n, at)]


def _beneath(old: Any, new: Any, where: str) -> list[tuple[Any, Any, str]]:
    """The pairs of types one level down that both schemas have: a union's branches of one
    type, a record's fields of one name, an array's items, a type given as a schema."""
    if isinstance(old, list) and isinstance(new, list):
        branches = {_kind(b): b for b in old}
        return [(branches[_kind(b)], b, where) for b in new if _kind(b) in branches]
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return []
    if old.get("type") == new.get("type") == "record":
        fields = {f["name"]: f["type"] for f in old["fields"]}
        return [
            (fields[f["name"]], f["type"], f"{where}/{f['name']}")
            for f in new["fields"]
            if f["name"] in fields
        ]
    if old.get("type") == new.get("type") == "array":
        return [(old["items"], new["items"], where)]
    if isinstance(old["type"], (dict, list)) or isinstance(new["type"], (dict, list)):
        return [(old["type"], new["type"], where)]
    return []


def _kind(branch: Any) -> str:
    return branch if isinstance(branch, str) else str(branch.get("type"))


def _defaults_not_of_their_union(schema: Any, where: str) -> list[str]:
    """Fields whose default is not of their union's first type, as the specification requires
    (fastavro takes it; Java's parser refuses the schema)."""
    if isinstance(schema, list):
        return [d for b in schema for d in _defaults_not_of_their_union(b, where)]
    if not isinstance(schema, dict):
        return []
    found = []
    for field in schema.get("fields", []):
        here, kind = f"{where}/{field['name']}", field["type"]
        if (
            isinstance(kind, list)
            and "default" in field
            and (field["default"] is None) != (kind[0] == "null")
        ):
            found.append(
                f"{here}'s default {field['default']!r} is not of its union's first type, "
                f"{_kind(kind[0])}"
            )
        found += _defaults_not_of_their_union(kind, here)
    if "items" in schema:
        found += _defaults_not_of_their_union(schema["items"], where)
    if isinstance(schema.get("type"), (dict, list)):
        found += _defaults_not_of_their_union(schema["type"], where)
    return found


def _parsed(schema: Any) -> avro.schema.Schema:
    return avro.schema.parse(schema if isinstance(schema, str) else json.dumps(schema))
