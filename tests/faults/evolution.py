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
    return found


def _parsed(schema: Any) -> avro.schema.Schema:
    return avro.schema.parse(schema if isinstance(schema, str) else json.dumps(schema))
