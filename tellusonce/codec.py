"""Avro single-object encoding of life events and confirmations; the one module using fastavro.

Wire format (Avro specification, "Single-object encoding"): the two bytes C3 01, the 8-byte
little-endian CRC-64-AVRO fingerprint of the writer schema, then the Avro binary body. The reader
finds the writer schema by fingerprint among the schema files it ships (schemas/<kind>/vN.avsc)
and any extra schema directories it is given (a newer version deployed ahead of the code), and
resolves it to the version this code's models mirror (MODEL_VERSIONS), which it also writes.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form
from pydantic import BaseModel, ValidationError

from tellusonce.errors import UndecodableMessage, UnknownSchema, invalid_fields
from tellusonce.events import EVENT_MODELS, Confirmation, Envelope, LifeEvent

MAGIC = b"\xc3\x01"
HEADER_LENGTH = len(MAGIC) + 8
CONFIRMATION = "confirmation"
MODEL_VERSIONS = {"death": 1, "birth": 1, "marriage": 1, "address-change": 1, CONFIRMATION: 1}
_VERSION_FILE = re.compile(r"^v(\d+)\.avsc$")
T = TypeVar("T", bound=BaseModel)


def schema_dir() -> Path:
    """The shipped schemas: the repository's schemas/ or the copy inside an installed wheel."""
    package = Path(__file__).resolve().parent
    for candidate in (package.parent / "schemas", package / "_schemas"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("no schemas directory next to the tellusonce package")


@dataclass(frozen=True)
class WriterSchema:
    """One shipped schema file: its kind (death, confirmation ...), version and fingerprint."""

    kind: str
    version: int
    fingerprint: bytes
    parsed: Any
    reading: Any  # the same schema with uuid strings left as strings (the models parse them)
    envelope: Any  # a life event's first field, the envelope, as a schema of its own (reading)
    source: Path

    @classmethod
    def load(cls, path: Path) -> WriterSchema:
        """Parse a schema file and compute its CRC-64-AVRO fingerprint."""
        match = _VERSION_FILE.match(path.name)
        if not match:
            raise ValueError(f"{path}: schema files are named vN.avsc")
        schema = json.loads(path.read_text(encoding="utf-8"))
        parsed = fastavro.parse_schema(schema)
        canonical = to_parsing_canonical_form(parsed)
        digest = bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))  # already little-endian
        reading = fastavro.parse_schema(_without_uuid_conversion(schema))
        envelope = _leading_envelope(schema)
        kind, version = path.parent.name, int(match.group(1))
        return cls(kind, version, digest, parsed, reading, envelope, path)


def load_schemas(extra_directories: Sequence[Path] = ()) -> list[WriterSchema]:
    """The shipped schema files and those of extra directories (each <kind>/vN.avsc). A
    ValueError for an extra directory holding none (a path mistyped, or files not in the layout:
    the schemas an operator deployed would be missing), and for two files of one fingerprint
    that differ: Avro's canonical form, which the fingerprint is made of, leaves out logical
    types, so a version changing one alone (timestamp-micros to -millis) would be read as the
    other and every message of the kind dead-lettered."""
    schemas: list[WriterSchema] = []
    for root in (schema_dir(), *extra_directories):
        found = [WriterSchema.load(path) for path in sorted(root.glob("*/v*.avsc"))]
        if not found:
            raise ValueError(f"{root} holds no schema files (<kind>/vN.avsc, as schemas/ does)")
        schemas += found
    seen: dict[bytes, WriterSchema] = {}
    versions: dict[tuple[str, int], WriterSchema] = {}
    for schema in schemas:
        other = versions.setdefault((schema.kind, schema.version), schema)
        if other.fingerprint != schema.fingerprint:  # the later would replace the shipped
            # one as this code's writer: every reader without the directory refuses its messages
            raise ValueError(
                f"{other.source} and {schema.source} are both {schema.kind} v{schema.version} "
                f"and differ: a changed schema is a version of its own (v{schema.version + 1} "
                "or later)"
            )
        other = seen.setdefault(schema.fingerprint, schema)
        if other.parsed != schema.parsed:
            raise ValueError(
                f"{other.source} and {schema.source} have one fingerprint and differ in what "
                "fingerprints leave out (a logical type, a default, a doc): a change of a "
                "logical type needs a field of its own, of the others a copy of the file as is"
            )
    return schemas


Message = LifeEvent[Any] | Confirmation
Tracked = Envelope | Confirmation
"""What the tracker reads of a message: a life event's envelope, or a confirmation."""


class Codec:
    """Encodes models with the schema version they mirror; decodes any known writer version."""

    def __init__(
        self,
        extra_directories: Sequence[Path] = (),
        reader_versions: Mapping[str, int] = MODEL_VERSIONS,
    ) -> None:
        schemas = load_schemas(extra_directories)
        self.writers = {s.fingerprint: s for s in schemas}
        by_version = {(s.kind, s.version): s for s in schemas}
        self.readers = {kind: by_version[(kind, v)] for kind, v in reader_versions.items()}

    def encode(self, message: Message) -> bytes:
        """Single-object encode an event or a confirmation with the schema its model mirrors."""
        return self.encode_record(kind_of(message), message.model_dump())

    def encode_record(self, kind: str, record: Mapping[str, Any]) -> bytes:
        """Single-object encode an Avro record of a kind (uuids as UUID or as text) with the
        schema this code's models mirror."""
        schema = self.readers[kind]
        out = io.BytesIO()
        out.write(MAGIC + schema.fingerprint)
        fastavro.schemaless_writer(out, schema.parsed, record)
        return out.getvalue()

    def decode(self, data: bytes) -> Message:
        """Decode bytes into this code's model of their kind, or raise a PermanentError."""
        kind, record = self.read_record(data)
        return _validate(kind, record)

    def decode_envelope(self, data: bytes) -> Tracked:
        """A life event's envelope alone, or a confirmation, or raise a PermanentError: for a
        reader that tracks events rather than applying them. Of a life event only the envelope,
        its first field, is read and validated: the facts (anyone's personal data) are not read
        at all, so bytes cut short or corrupted after the envelope are for the services to
        refuse. That read took 40% of reading the whole event (4 us, not 11)."""
        writer, reader = self._schemas(data)
        if writer.kind == CONFIRMATION:
            return _checked(Confirmation, writer.kind, self._read(data, writer, reader))
        if writer.envelope is None or reader.envelope is None:  # not led by an envelope
            envelope = self._read(data, writer, reader)["envelope"]
        else:
            envelope = _avro(
                data, writer.envelope, None if reader is writer else reader.envelope, whole=False
            )
        return _of_its_kind(writer.kind, _checked(Envelope, writer.kind, envelope, "envelope."))

    def read_record(self, data: bytes) -> tuple[str, dict[str, Any]]:
        """The kind and the Avro record of a message, resolved to this codec's reader schema."""
        writer, reader = self._schemas(data)
        return writer.kind, self._read(data, writer, reader)

    def _schemas(self, data: bytes) -> tuple[WriterSchema, WriterSchema]:
        """The schema a message was written with, and the one this code reads its kind with."""
        writer = self.writer_of(data)
        reader = self.readers.get(writer.kind)
        if reader is None:
            raise UnknownSchema(f"no reader for {writer.kind} messages in this code")
        return writer, reader

    @staticmethod
    def _read(data: bytes, writer: WriterSchema, reader: WriterSchema) -> dict[str, Any]:
        return _avro(data, writer.reading, None if reader is writer else reader.reading)

    def writer_of(self, data: bytes) -> WriterSchema:
        """The shipped writer schema named by a message's header."""
        if len(data) < HEADER_LENGTH or not data.startswith(MAGIC):
            raise UndecodableMessage("not Avro single-object encoding (no C3 01 header)")
        found = self.writers.get(data[len(MAGIC) : HEADER_LENGTH])
        if found is None:
            fp = data[len(MAGIC) : HEADER_LENGTH].hex()
            raise UnknownSchema(f"writer schema fingerprint {fp} is not among the shipped schemas")
        return found


def _avro(data: bytes, writer: Any, reader: Any, whole: bool = True) -> dict[str, Any]:
    """The Avro record after a message's header, resolved from the writer's schema to the
    reader's (None: the writer's); if `whole`, it must end where the message does."""
    body = io.BytesIO(data)
    body.seek(HEADER_LENGTH)
    try:
        record = fastavro.schemaless_reader(body, writer, reader)
    except Exception as exc:  # any failure to read these bytes: they are not a record
        # fastavro raises EOFError, ValueError, IndexError, UnicodeDecodeError, StopIteration,
        # OverflowError (a date or time past year 9999) ... as bad bytes lead it
        raise UndecodableMessage(f"corrupt or truncated Avro body ({type(exc).__name__})") from exc
    if whole and body.tell() != len(data):
        raise UndecodableMessage(f"{len(data) - body.tell()} bytes after the Avro body")
    return cast(dict[str, Any], record)


def _leading_envelope(schema: Any) -> Any:
    """A life event schema's first field, the envelope record, parsed as a schema of its own
    (in the event's namespace, so the same record of two versions resolves); None for a schema
    that does not start with one (a confirmation)."""
    fields = schema.get("fields") or [{}]
    first = fields[0]
    if first.get("name") != "envelope" or not isinstance(first.get("type"), dict):
        return None
    record = {"namespace": schema.get("namespace", "")} | first["type"]
    return fastavro.parse_schema(_without_uuid_conversion(record))


def _without_uuid_conversion(schema: Any) -> Any:
    """A copy of a schema whose `uuid` strings stay strings when read: fastavro would build a
    uuid.UUID in Python for each, and the models validate the string (faster, same check)."""
    if isinstance(schema, dict):
        if schema.get("logicalType") == "uuid":
            return {k: v for k, v in schema.items() if k != "logicalType"}
        return {k: _without_uuid_conversion(v) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_without_uuid_conversion(v) for v in schema]
    return schema


def kind_of(message: Message) -> str:
    """The schema kind of a model: its event type, or confirmation."""
    if isinstance(message, Confirmation):
        return CONFIRMATION
    return message.envelope.event_type.value


_MODELS_BY_KIND: dict[str, type[LifeEvent[Any]]] = {t.value: m for t, m in EVENT_MODELS.items()}


def _validate(kind: str, record: dict[str, Any]) -> Message:
    if kind == CONFIRMATION:
        return _checked(Confirmation, kind, record)
    event = _checked(_MODELS_BY_KIND[kind], kind, record)
    _of_its_kind(kind, event.envelope)
    return event


def _of_its_kind(kind: str, envelope: Envelope) -> Envelope:
    """An envelope whose event type is its schema's: a death's facts labelled a birth would be
    expected from birth's services and judged by birth's rules."""
    if envelope.event_type.value != kind:
        raise UndecodableMessage(
            f"a {kind} message whose envelope.event_type is {envelope.event_type.value}"
        )
    return envelope


def _checked(model: type[T], kind: str, record: dict[str, Any], within: str = "") -> T:
    """A record validated by a model; a PermanentError naming each invalid field (never its
    value: it may be personal data)."""
    try:
        return model.model_validate(record)
    except ValidationError as exc:
        where = invalid_fields(exc, within)
        raise UndecodableMessage(f"decoded {kind} message is invalid: {where}") from exc
