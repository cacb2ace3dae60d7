"""A second version of the death schema (one more field in the facts), as schema evolution
tests write it."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import fastavro

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
