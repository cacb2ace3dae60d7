"""Schema evolution: a v2 writer (an added optional field) and v1 code, both ways, on the broker;
a breaking change is caught by the compatibility check."""

from __future__ import annotations

import io
import itertools
import json
import shutil
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from consumers.seed import seed
from consumers.services import SERVICES
from consumers.store import ServiceStore
from tellusonce.codec import MAGIC, MODEL_VERSIONS, Codec, WriterSchema, schema_dir
from tellusonce.events import EventType, Outcome
from tellusonce.kafka import Outgoing, Publisher
from tellusonce.settings import Settings
from tellusonce.topics import Topics
from tests.factories import event
from tests.faults.evolution import (
    NEW_FIELD,
    OPTIONAL,
    REQUIRED,
    evolve,
    incompatibilities,
    v2_bytes,
    write,
)
from tests.integration.conftest import Fleet, wait_for
from tests.messages import answer
from tests.strategies import life_events


@pytest.fixture(scope="module")
def v2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A schema directory with death v2 = v1 plus an optional field."""
    return evolve(tmp_path_factory.mktemp("v2"), OPTIONAL)


def full_compatible(old: Any, new: Any, records: list[dict[str, Any]]) -> bool:
    """FULL compatibility: by the schemas' resolution rules (tests.faults.evolution), and on
    real records too: new reads old data and old reads new data."""
    if incompatibilities(old, new):
        return False
    try:
        for record in records:
            fastavro.schemaless_reader(io.BytesIO(write(old, record)), old, new)
            newer = record  # a life event with the new field, as v2 writes it
            if "facts" in record:
                newer = {**record, "facts": {**record["facts"], NEW_FIELD: "R99"}}
            fastavro.schemaless_reader(io.BytesIO(write(new, newer)), new, old)
    except (fastavro.read.SchemaResolutionError, ValueError):
        return False
    return True


def breaking_pairs(root: Path) -> list[str]:
    """The pairs of versions of each kind of schema under `root` that are not FULL compatible."""
    found = []
    for kind_dir in sorted(root.iterdir()):
        versions = sorted(kind_dir.glob("v*.avsc"), key=lambda p: int(p.stem[1:]))
        for older, newer in itertools.combinations(versions, 2):
            if incompatibilities(older.read_text(), newer.read_text()):
                found.append(f"{kind_dir.name} {older.stem} -> {newer.stem}")
    return found


def released_with_v2(root: Path, schema: Any) -> tuple[Codec, WriterSchema]:
    """The released code's codec given death/v2.avsc = `schema`, and that v2 writer schema."""
    (root / "death").mkdir()
    (root / "death" / "v2.avsc").write_text(json.dumps(schema))
    released = Codec([root])
    return released, next(s for s in released.writers.values() if s.version == 2)


class TestCompatibility:
    """The check that guards every new schema version."""

    @hypothesis_settings(max_examples=25)
    @given(data=st.data())
    def test_added_optional_field_is_full_compatible(
        self, v2_dir: Path, data: st.DataObject
    ) -> None:
        """v1 ↔ v2 with an optional field: both directions read, for any valid death."""
        records = [data.draw(life_events(EventType.DEATH)).model_dump() for _ in range(3)]
        new = WriterSchema.load(v2_dir / "death" / "v2.avsc").parsed
        old = WriterSchema.load(schema_dir() / "death" / "v1.avsc").parsed
        assert full_compatible(old, new, records)

    def test_added_required_field_is_rejected(self, tmp_path: Path) -> None:
        """A field without a default breaks old data: the check says so."""
        new = WriterSchema.load(evolve(tmp_path, REQUIRED) / "death" / "v2.avsc").parsed
        old = WriterSchema.load(schema_dir() / "death" / "v1.avsc").parsed
        assert not full_compatible(old, new, [event(EventType.DEATH).model_dump()])

    @pytest.mark.parametrize(
        ("change", "breaks"),
        [
            ("an action added", "old code reading new data"),
            ("an action removed", "new code reading old data"),
            ("a union widened", "old code reading new data"),
            ("a number widened", "old code reading new data"),
        ],
    )
    def test_changes_no_sample_exercises_are_caught(self, change: str, breaks: str) -> None:
        """The check tried one record of each kind both ways: a new action, or a union that
        takes one more type, passed while the record did not use them (old code would have
        refused the first message that did)."""
        old = json.loads((schema_dir() / "death" / "v1.avsc").read_text())
        new = json.loads(json.dumps(old))
        envelope = {f["name"]: f for f in new["fields"][0]["type"]["fields"]}
        if change == "an action added":
            envelope["action"]["type"]["symbols"].append("WITHDRAWN")
        elif change == "an action removed":
            envelope["action"]["type"]["symbols"].remove("CANCELLED")
        elif change == "a union widened":
            envelope["reason"]["type"] = ["null", "string", "int"]
        else:
            envelope["revision"]["type"] = "long"
        (found,) = incompatibilities(old, new)
        assert found.startswith(breaks), found
        assert not full_compatible(old, new, [event(EventType.DEATH).model_dump()])

    @pytest.mark.parametrize(
        ("change", "found"),
        [
            (
                "a date left its number",
                "/facts/date_of_death changes its logical type: date to None",
            ),
            (
                "micros became millis",
                "/envelope/registered_at changes its logical type: timestamp-micros to "
                "timestamp-millis",
            ),
            (
                "a default not of its union's first type",
                "new schema: /envelope/x's default None is not of its union's first type, string",
            ),
        ],
    )
    def test_changes_of_meaning_alone_are_caught(self, change: str, found: str) -> None:
        """Avro's checker compares the types values are written as: a date read as its day
        number, or micros read as millis, passed it (every message of the pair then refused or
        misread), and so did a default the specification (and Java's parser) refuses."""
        old = json.loads((schema_dir() / "death" / "v1.avsc").read_text())
        new = json.loads(json.dumps(old))
        envelope = new["fields"][0]["type"]["fields"]
        if change == "a date left its number":
            facts = next(f for f in new["fields"] if f["name"] == "facts")["type"]["fields"]
            dated = next(f for f in facts if f["name"] == "date_of_death")
            dated["type"] = dated["type"]["type"]
        elif change == "micros became millis":
            dated = next(f for f in envelope if f["name"] == "registered_at")
            dated["type"]["logicalType"] = "timestamp-millis"
        else:
            envelope.append({"name": "x", "type": ["string", "null"], "default": None})
        assert incompatibilities(old, new) == [found]

    def test_every_shipped_version_is_full_compatible_with_every_other(
        self, tmp_path: Path
    ) -> None:
        """Every pair of versions of each kind in schemas/ (confirmations too: they were left
        out, and the check assumed a life event's facts) passes the check; a schema directory
        with a breaking second version does not."""
        assert breaking_pairs(schema_dir()) == []
        for kind_dir in schema_dir().iterdir():
            assert list(kind_dir.glob("v*.avsc")), kind_dir
        shutil.copytree(schema_dir(), tmp_path / "schemas")
        evolve(tmp_path / "released", REQUIRED)
        shutil.copy(tmp_path / "released" / "death" / "v2.avsc", tmp_path / "schemas" / "death")
        assert breaking_pairs(tmp_path / "schemas") == ["death v1 -> v2"]

    def test_a_confirmation_v2_is_checked_like_any_kind(self, tmp_path: Path) -> None:
        confirmation = json.loads((schema_dir() / "confirmation" / "v1.avsc").read_text())
        newer = json.loads(json.dumps(confirmation))
        newer["fields"].append(OPTIONAL)
        record = answer(event(EventType.DEATH), "pensions", Outcome.APPLIED).model_dump()
        assert full_compatible(confirmation, newer, [record])
        newer["fields"][-1] = REQUIRED
        assert not full_compatible(confirmation, newer, [record])

    def test_enums_have_no_default_that_would_misread_a_newer_symbol(self) -> None:
        """With a default, v1 code read a newer outcome (DEFERRED, say) as REJECTED and a newer
        marital status as SINGLE, silently; without one it refuses the message (dead-lettered,
        replayed once the code knows it), and the check calls such a change incompatible."""

        def enums(schema: Any) -> list[dict[str, Any]]:
            if isinstance(schema, dict):
                here = [schema] if schema.get("type") == "enum" else []
                return here + [e for v in schema.values() for e in enums(v)]
            if isinstance(schema, list):
                return [e for v in schema for e in enums(v)]
            return []

        for path in schema_dir().glob("*/v*.avsc"):
            for enum in enums(json.loads(path.read_text())):
                assert "default" not in enum, f"{path}: {enum['name']}"

    def test_the_shipped_fingerprints_are_avros(self) -> None:
        """CRC-64-AVRO of each schema's Parsing Canonical Form, as Java's
        SchemaNormalization.parsingFingerprint64 gives it (little-endian on the wire): a
        change in how the canonical form is made would make every message already on the bus
        an unknown schema."""
        assert {w.kind: w.fingerprint.hex() for w in Codec().writers.values()} == {
            "death": "3ca16137a2615f70",
            "birth": "681b5883fb932e88",
            "marriage": "2b849ae9cf91315b",
            "address-change": "c5c1f4d01da6b3f1",
            "confirmation": "5300638727fcb96f",
        }


class TestBothWays:
    """Messages cross versions in both directions."""

    def test_v1_code_reads_v2_messages(self, v2_dir: Path) -> None:
        """Released code given the v2 schema file decodes v2 bytes into its v1 model."""
        death = event(EventType.DEATH)
        released = Codec([v2_dir])
        v2 = next(s for s in released.writers.values() if s.version == 2)
        assert released.decode(v2_bytes(v2, death)) == death

    def test_v2_code_reads_v1_messages(self, v2_dir: Path) -> None:
        """Code built on v2 reads v1 bytes with the new field at its default."""
        newer = Codec([v2_dir], MODEL_VERSIONS | {"death": 2})
        kind, record = newer.read_record(Codec().encode(event(EventType.DEATH)))
        assert (kind, record["facts"][NEW_FIELD]) == ("death", None)

    def test_v1_tracker_reads_the_envelope_of_v2_messages(self, tmp_path: Path) -> None:
        """The tracker reads a life event's envelope alone: one that gained an optional field
        in v2 is resolved to the v1 envelope it knows, and one of v1 read as itself."""
        schema = json.loads((schema_dir() / "death" / "v1.avsc").read_text())
        schema["fields"][0]["type"]["fields"].append(OPTIONAL)
        released, v2 = released_with_v2(tmp_path, schema)
        death = event(EventType.DEATH)
        record = death.model_dump()
        record["envelope"][NEW_FIELD] = "R99"
        data = MAGIC + v2.fingerprint + write(v2.parsed, record)
        assert released.decode_envelope(data) == death.envelope
        assert released.decode(data) == death
        assert released.decode_envelope(released.encode(death)) == death.envelope

    def test_v1_tracker_reads_the_envelope_wherever_v2_puts_it(self, tmp_path: Path) -> None:
        """Avro resolves fields by name, so a v2 may list the facts first: the tracker then
        reads the whole record for its envelope."""
        schema = json.loads((schema_dir() / "death" / "v1.avsc").read_text())
        schema["fields"].reverse()
        released, v2 = released_with_v2(tmp_path, schema)
        death = event(EventType.DEATH)
        data = MAGIC + v2.fingerprint + write(v2.parsed, death.model_dump())
        assert released.decode_envelope(data) == death.envelope

    def test_v2_messages_are_applied_by_v1_services_on_the_broker(
        self,
        settings: Settings,
        topics: Topics,
        v2_dir: Path,
    ) -> None:
        """A v2 writer publishes the hero death; the released services apply it."""
        configured = settings.model_copy(update={"schema_dirs": [v2_dir]})
        seed(configured)
        fleet = Fleet(configured)
        fleet.start("pensions")
        try:
            death = event(EventType.DEATH, configured)
            v2 = next(s for s in Codec(configured.schema_dirs).writers.values() if s.version == 2)
            Publisher(configured, "v2-writer").publish(
                [
                    Outgoing(
                        topics.events(EventType.DEATH),
                        death.envelope.person_ref.encode(),
                        v2_bytes(v2, death),
                        [],
                    )
                ]
            )
            store = ServiceStore(
                configured.store_url_for("pensions"), SERVICES["pensions"].record_type
            )
            wait_for(
                lambda: store.outcomes() == {str(death.envelope.event_id): "APPLIED"},
                "pensions to apply the v2 message",
            )
        finally:
            fleet.stop()
