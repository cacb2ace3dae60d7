"""The Avro single-object codec: round trips, the wire header, and every way bytes can be bad."""

from __future__ import annotations

import contextlib
import io
import json
import unicodedata
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tellusonce.codec import HEADER_LENGTH, MAGIC, MODEL_VERSIONS, Codec, schema_dir
from tellusonce.errors import UndecodableMessage, UnknownSchema
from tellusonce.events import Confirmation, EventType, LifeEvent, Outcome
from tellusonce.fields import shown
from tests.factories import event, with_deceased_nino
from tests.strategies import confirmations, life_events

CODEC = Codec()


class TestRoundTrip:
    """Every model survives encode → decode unchanged, through its schema."""

    @pytest.mark.parametrize("event_type", list(EventType))
    @given(data=st.data())
    def test_life_event_round_trips(self, event_type: EventType, data: st.DataObject) -> None:
        """A life event of each type decodes to an equal model."""
        event: LifeEvent[Any] = data.draw(life_events(event_type))
        assert CODEC.decode(CODEC.encode(event)) == event

    @given(confirmation=confirmations)
    def test_confirmation_round_trips(self, confirmation: Confirmation) -> None:
        """A confirmation decodes to an equal model."""
        assert CODEC.decode(CODEC.encode(confirmation)) == confirmation

    @given(confirmation=confirmations)
    def test_ids_as_text_are_the_uuids_and_change_nothing(self, confirmation: Confirmation) -> None:
        """The ids' text (made once, kept on the model) is the UUIDs' canonical form, and having
        made it leaves the model equal to a fresh copy, dumped and encoded the same."""
        decoded = CODEC.decode(CODEC.encode(confirmation))
        assert isinstance(decoded, Confirmation)
        fresh = decoded.model_copy()
        assert decoded.confirmation_id_text == str(confirmation.confirmation_id)
        assert decoded.event_id_text == str(confirmation.event_id)
        assert decoded == fresh == confirmation
        assert decoded.model_dump() == confirmation.model_dump()
        assert CODEC.encode(decoded) == CODEC.encode(confirmation)

    @given(data=st.data())
    def test_event_id_text_is_the_uuid(self, data: st.DataObject) -> None:
        """A decoded event's id text is its UUID's, and the event still equals the original."""
        event: LifeEvent[Any] = data.draw(life_events(EventType.DEATH))
        decoded = CODEC.decode(CODEC.encode(event))
        assert isinstance(decoded, LifeEvent)
        assert decoded.envelope.event_id_text == str(event.envelope.event_id)
        assert decoded == event


class TestEnvelopes:
    """What the tracker reads: a life event's envelope alone, validated; a whole confirmation."""

    @pytest.mark.parametrize("event_type", list(EventType))
    @given(data=st.data())
    def test_an_events_envelope_is_the_envelope_decode_gives(
        self, event_type: EventType, data: st.DataObject
    ) -> None:
        event: LifeEvent[Any] = data.draw(life_events(event_type))
        assert CODEC.decode_envelope(CODEC.encode(event)) == event.envelope

    @given(confirmation=confirmations)
    def test_a_confirmation_is_read_whole(self, confirmation: Confirmation) -> None:
        assert CODEC.decode_envelope(CODEC.encode(confirmation)) == confirmation

    def test_facts_are_not_read(self) -> None:
        """An event whose facts a service refuses (a NINO no one can have, or bytes cut short
        after the envelope) is still known by its envelope; an envelope cut short is refused."""
        refused = with_deceased_nino(event(EventType.DEATH), "QQ000000Z")
        data = CODEC.encode(refused)
        with pytest.raises(UndecodableMessage, match=r"facts\.deceased\.nino \(nino_format\)"):
            CODEC.decode(data)
        assert CODEC.decode_envelope(data) == refused.envelope
        with pytest.raises(UndecodableMessage, match="corrupt or truncated"):
            CODEC.decode(data[:-5])
        assert CODEC.decode_envelope(data[:-5]) == refused.envelope
        with pytest.raises(UndecodableMessage, match="corrupt or truncated"):
            CODEC.decode_envelope(data[: HEADER_LENGTH + 20])

    def test_an_invalid_envelope_names_its_field(self) -> None:
        valid = event(EventType.DEATH)
        envelope = valid.envelope.model_construct(
            **{**valid.envelope.__dict__, "reference": "not a reference"}
        )
        data = CODEC.encode(valid.model_construct(envelope=envelope, facts=valid.facts))
        with pytest.raises(
            UndecodableMessage,
            match=r"death message is invalid: envelope\.reference \(string_pattern_mismatch\)$",
        ):
            CODEC.decode_envelope(data)

    def test_an_envelope_of_another_event_type_than_its_schema_is_undecodable(self) -> None:
        """Another producer's death facts labelled a birth: expected from birth's services and
        judged by birth's rules."""
        record = event(EventType.DEATH).model_dump()
        record["envelope"]["event_type"] = EventType.BIRTH
        data = CODEC.encode_record("death", record)
        expected = "a death message whose envelope.event_type is birth"
        with pytest.raises(UndecodableMessage, match=expected):
            CODEC.decode(data)
        with pytest.raises(UndecodableMessage, match=expected):
            CODEC.decode_envelope(data)

    def test_an_action_this_code_does_not_know_is_undecodable(self, tmp_path: Path) -> None:
        """A newer schema's action (WITHDRAWN, say) was read as the enum's default, REGISTERED:
        applied as a new registration where the newer meant something else."""
        schema = json.loads((schema_dir() / "death" / "v1.avsc").read_text())
        envelope = schema["fields"][0]["type"]["fields"]
        action = next(f["type"] for f in envelope if f["name"] == "action")
        action["symbols"].append("WITHDRAWN")
        (tmp_path / "death").mkdir()
        (tmp_path / "death" / "v2.avsc").write_text(json.dumps(schema))
        newer = Codec([tmp_path], MODEL_VERSIONS | {"death": 2})
        record = event(EventType.DEATH).model_dump()
        record["envelope"]["action"] = "WITHDRAWN"
        data = newer.encode_record("death", record)
        released = Codec([tmp_path])
        with pytest.raises(UndecodableMessage, match="corrupt or truncated"):
            released.decode(data)
        with pytest.raises(UndecodableMessage):
            released.decode_envelope(data)


class TestWireFormat:
    """Single-object encoding as the Avro specification defines it."""

    @given(confirmation=confirmations)
    def test_header_is_magic_and_writer_fingerprint(self, confirmation: Confirmation) -> None:
        """Bytes start with C3 01 and the little-endian CRC-64-AVRO of the writer schema."""
        data = CODEC.encode(confirmation)
        assert data[:2] == b"\xc3\x01"
        assert CODEC.writer_of(data).kind == "confirmation"
        assert data[2:HEADER_LENGTH] == CODEC.readers["confirmation"].fingerprint

    def test_fingerprint_matches_avro_specification_for_int(self) -> None:
        """fastavro's CRC-64-AVRO of "int" is the value Java's SchemaNormalization gives."""
        from fastavro.schema import fingerprint

        assert fingerprint('"int"', "CRC-64-AVRO") == "8f5c393f1ad57572"

    def test_every_shipped_schema_has_its_own_fingerprint(self) -> None:
        """No two schema files share a fingerprint (the reader could not tell them apart)."""
        files = sorted(schema_dir().glob("*/v*.avsc"))
        assert len(CODEC.writers) == len(files)


class TestBadBytes:
    """Bad input raises a specific permanent error and never anything else."""

    def test_missing_magic_is_undecodable(self) -> None:
        """Plain JSON is not single-object Avro."""
        with pytest.raises(UndecodableMessage, match="C3 01"):
            CODEC.decode(b'{"event_id": "x"}')

    def test_unknown_fingerprint_names_it(self) -> None:
        """A writer schema this code does not ship is UnknownSchema, with the fingerprint."""
        with pytest.raises(UnknownSchema, match="0102030405060708"):
            CODEC.decode(MAGIC + bytes.fromhex("0102030405060708") + b"\x00")

    @given(confirmation=confirmations, cut=st.integers(1, 20))
    def test_truncated_body_is_undecodable(self, confirmation: Confirmation, cut: int) -> None:
        """A body cut short fails to decode as corrupt, not with an arbitrary exception."""
        data = CODEC.encode(confirmation)
        with pytest.raises(UndecodableMessage):
            CODEC.decode(data[: max(HEADER_LENGTH, len(data) - cut)])

    @given(confirmation=confirmations)
    def test_trailing_bytes_are_undecodable(self, confirmation: Confirmation) -> None:
        """Bytes after the body mean the message is not what its header claims."""
        with pytest.raises(UndecodableMessage, match="after the Avro body"):
            CODEC.decode(CODEC.encode(confirmation) + b"\x00")

    @given(confirmation=confirmations)
    def test_a_uuid_field_that_is_not_a_uuid_names_the_field(
        self, confirmation: Confirmation
    ) -> None:
        """uuid strings are read as strings and checked by the model: a bad one is named."""
        record = confirmation.model_dump() | {"event_id": "not-a-uuid"}
        body = io.BytesIO()
        fastavro.schemaless_writer(body, CODEC.readers["confirmation"].parsed, record)
        data = MAGIC + CODEC.readers["confirmation"].fingerprint + body.getvalue()
        with pytest.raises(UndecodableMessage, match=r"event_id \(uuid_parsing\)"):
            CODEC.decode(data)

    @given(noise=st.binary(max_size=200))
    def test_random_bytes_after_a_valid_header_raise_only_permanent_errors(
        self, noise: bytes
    ) -> None:
        """Whatever follows a real header, decode raises UndecodableMessage or succeeds."""
        header = MAGIC + CODEC.readers["death"].fingerprint
        with contextlib.suppress(UndecodableMessage):
            assert isinstance(CODEC.decode(header + noise), LifeEvent)

    @given(data=st.data())
    def test_a_real_event_with_bytes_changed_raises_only_permanent_errors(
        self, data: st.DataObject
    ) -> None:
        """A corrupt byte or three in a real event: decoded, or UndecodableMessage, by both
        readers; never another exception, which would stop the consumer on that message."""
        event_type = data.draw(st.sampled_from(list(EventType)))
        encoded = bytearray(CODEC.encode(data.draw(life_events(event_type))))
        for _ in range(data.draw(st.integers(1, 3))):
            encoded[data.draw(st.integers(HEADER_LENGTH, len(encoded) - 1))] = data.draw(
                st.integers(0, 255)
            )
        for read in (CODEC.decode, CODEC.decode_envelope):
            with contextlib.suppress(UndecodableMessage):
                read(bytes(encoded))

    def test_a_time_past_the_calendar_is_undecodable(self) -> None:
        """A timestamp beyond the year 9999 (which one corrupt byte can make) is undecodable:
        fastavro raised OverflowError building it, which stopped the consumer."""
        record = event(EventType.DEATH).model_dump()
        record["envelope"]["registered_at"] = 2**62  # microseconds since 1970
        body = io.BytesIO()
        fastavro.schemaless_writer(body, CODEC.readers["death"].parsed, record)
        data = MAGIC + CODEC.readers["death"].fingerprint + body.getvalue()
        for read in (CODEC.decode, CODEC.decode_envelope):
            with pytest.raises(UndecodableMessage, match="OverflowError"):
                read(data)


class TestSchemas:
    """The schema files are the contract and agree with each other."""

    def test_shared_named_types_are_identical_in_every_schema(self) -> None:
        """Envelope, Person, Address ... are defined the same way in every event schema."""
        seen: dict[str, Any] = {}
        for path in sorted(schema_dir().glob("*/v1.avsc")):
            for name, definition in _named_types(json.loads(path.read_text())).items():
                assert seen.setdefault(name, definition) == definition, f"{name} in {path}"
        assert {"Envelope", "Person", "Address", "Registration"} <= set(seen)


def _named_types(schema: Any, found: dict[str, Any] | None = None) -> dict[str, Any]:
    """Named types defined inside a schema, except the per-kind Event and Facts records."""
    found = {} if found is None else found
    if isinstance(schema, dict):
        name = schema.get("name")
        if schema.get("type") in ("record", "enum") and not str(name).endswith(("Event", "Facts")):
            found[name] = schema
        for value in schema.values():
            _named_types(value, found)
    elif isinstance(schema, list):
        for item in schema:
            _named_types(item, found)
    return found


def test_a_list_longer_than_its_field_takes_is_refused_at_its_first_invalid_item() -> None:
    """A million empty address lines (a byte each on the wire): pydantic validated every item
    first, one error each, 1.7 GB for one message, before the length was refused."""
    record = event(EventType.DEATH).model_dump()
    record["facts"]["usual_address"]["lines"] = [""] * 100_000
    with pytest.raises(UndecodableMessage) as refused:
        CODEC.decode(CODEC.encode_record("death", record))
    assert str(refused.value) == (
        "decoded death message is invalid: facts.usual_address.lines.0 (string_too_short), "
        "facts.usual_address.lines (too_short)"
    )  # its first item, and so none kept


@pytest.mark.parametrize("where", ["name", "district"])
def test_a_long_run_of_combining_marks_is_refused_without_normalising_it(
    where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NFC sorts a run of combining marks in time that grows with its square: 160 KB of them
    in a name or a district took 8.8 s to refuse (a 1 MB message minutes, past Kafka's poll
    interval). Text longer than normalisation could bring within the limit is not normalised."""
    marks = "a" + "\u0301" * 20_000 + "\u0316" * 20_000
    record = event(EventType.DEATH).model_dump()
    if where == "name":
        record["facts"]["deceased"]["family_name"] = marks
    else:
        record["envelope"]["registration"]["district"] = marks
    normalised: list[int] = []
    normalize = unicodedata.normalize

    def counted(form: Any, text: str) -> str:
        normalised.append(len(text))
        return normalize(form, text)

    monkeypatch.setattr(unicodedata, "normalize", counted)
    with pytest.raises(UndecodableMessage):
        CODEC.decode(CODEC.encode_record("death", record))
    assert max(normalised) < 1_000


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("service_reference", "DLA\x00-1"),  # PostgreSQL's text refuses a NUL
        ("actions", ("Done\x1b[2J",)),  # a terminal's escape code, printed by `status`
        ("service_reference", "R" * 101),
        ("actions", ("done",) * 51),
    ],
)
def test_a_confirmation_with_text_unfit_to_show_is_undecodable(field: str, value: Any) -> None:
    """A service (any service, in any language) whose confirmation held a NUL ended the tracker
    on PostgreSQL, again at each restart: it is dead-lettered, as any invalid message."""
    from tests.messages import answer

    fit = answer(event(EventType.DEATH), "pensions", Outcome.APPLIED)
    data = Codec().encode(fit.model_copy(update={field: value}))
    with pytest.raises(UndecodableMessage, match=field):
        Codec().decode(data)
    assert Codec().decode(Codec().encode(fit)) == fit


def test_a_refusal_said_over_lines_is_shown_on_one() -> None:
    assert shown("Rejected: no rule\n\tfor\x00 this") == "Rejected: no rule for  this"
    assert len(shown("x" * 5000)) == 1000


def test_an_extra_schema_directory_without_schemas_is_refused(tmp_path: Path) -> None:
    """A directory mistyped, or its files not in the layout, was ignored: the deployed schema
    missing, its messages dead-lettered as of an unknown schema, the replay failing again."""
    from pydantic import ValidationError

    from tellusonce.settings import Settings

    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "v2.avsc").write_text("{}")
    for wrong in (tmp_path / "nowhere", tmp_path / "flat"):
        with pytest.raises(ValidationError, match="holds no schema files"):
            Settings(schema_dirs=[wrong])


def test_a_version_changing_a_logical_type_alone_is_refused(tmp_path: Path) -> None:
    """Its fingerprint is v1's (the canonical form leaves logical types out): v1's messages were
    read with it, every death dead-lettered ("corrupt or truncated Avro body")."""
    from pydantic import ValidationError

    from tellusonce.settings import Settings

    v1 = json.loads((schema_dir() / "death" / "v1.avsc").read_text(encoding="utf-8"))
    text = json.dumps(v1).replace('"timestamp-micros"', '"timestamp-millis"')
    assert text != json.dumps(v1)
    (tmp_path / "death").mkdir()
    (tmp_path / "death" / "v2.avsc").write_text(text)
    with pytest.raises(ValidationError, match="have one fingerprint and differ"):
        Settings(schema_dirs=[tmp_path])
    (tmp_path / "death" / "v2.avsc").write_text(json.dumps(v1))  # a copy of v1: the same
    assert Settings(schema_dirs=[tmp_path]).schema_dirs == [tmp_path]


def test_a_revision_past_an_avro_int_is_refused_as_the_event_is_built() -> None:
    """The schema's revision is an Avro int; the model took any number from 0, and fastavro
    wrote 2**31 without a word, which readers in other languages refuse."""
    from pydantic import ValidationError

    envelope = event(EventType.DEATH).envelope
    with pytest.raises(ValidationError, match="revision"):
        envelope.model_validate(envelope.model_dump() | {"revision": 2**31})


def test_an_extra_schema_of_a_shipped_version_that_differs_is_refused(tmp_path: Path) -> None:
    """A changed death schema deployed as v1 replaced the shipped v1 as this code's writer:
    its messages, of another fingerprint, were refused by every reader without the directory
    (UnknownSchema: every death dead-lettered)."""
    from pydantic import ValidationError

    from tellusonce.settings import Settings

    v1 = json.loads((schema_dir() / "death" / "v1.avsc").read_text(encoding="utf-8"))
    (tmp_path / "death").mkdir()
    (tmp_path / "death" / "v1.avsc").write_text(json.dumps(v1))  # the same, deployed again
    assert Codec([tmp_path]).readers["death"].fingerprint == Codec().readers["death"].fingerprint
    optional = {"name": "x", "type": ["null", "string"], "default": None}
    changed = v1 | {"fields": [*v1["fields"], optional]}
    (tmp_path / "death" / "v1.avsc").write_text(json.dumps(changed))
    with pytest.raises(ValidationError, match=r"both death v1 and differ: .* \(v2 or later\)"):
        Settings(schema_dirs=[tmp_path])
