"""Deterministic identities: the confirmation id a service gives an event, and the family's
reference."""

from __future__ import annotations

import re
import uuid

from hypothesis import given
from hypothesis import strategies as st

from tellusonce.identity import confirmation_id, confirmation_id_text, message_digest, reference

services = st.from_regex(r"[a-z][a-z_]{1,40}", fullmatch=True)


@given(event_id=st.uuids(), service=services)
def test_confirmation_id_text_is_the_uuid5(event_id: uuid.UUID, service: str) -> None:
    """The text made without a UUID object is the standard library's UUIDv5, as text."""
    assert confirmation_id_text(event_id, service) == str(uuid.uuid5(event_id, service))
    assert confirmation_id(event_id, service) == uuid.UUID(confirmation_id_text(event_id, service))
    refused = confirmation_id_text(event_id, service, "rule failed")
    assert refused == str(confirmation_id(event_id, service, "rule failed"))
    assert refused != confirmation_id_text(event_id, service)
    assert refused != confirmation_id_text(event_id, service, "manual review")


def test_confirmation_id_text_of_a_known_vector() -> None:
    """A fixed vector (computed once by uuid.uuid5): ids already published must not change."""
    event_id = uuid.UUID("4cd11745-e47d-5b76-89c1-1419236ff539")
    assert confirmation_id_text(event_id, "pensions") == "b460d0fb-d5ea-5f79-bea6-f9ecdd87146c"


def test_a_message_digest_fits_a_signed_bigint_and_tells_bytes_apart() -> None:
    """Stored in a BIGINT column: within its range, the same for the same bytes, different for
    a byte changed or cut off."""
    message = bytes(range(256)) * 2
    digests = {message_digest(m) for m in (message, message[:-1], b"\x01" + message[1:])}
    assert len(digests) == 3
    # a fixed vector (computed once): services compare it with digests stored long before
    assert message_digest(message) == -1969141352915850738
    assert all(-(2**63) <= d < 2**63 for d in digests)


def test_every_character_of_a_reference_carries_its_own_bits() -> None:
    """50 bits, none of them the UUID's version (the same in every id): the last character took
    8 values of 32, so references shared one in 2^48, not 2^50."""
    ids = [uuid.uuid5(uuid.NAMESPACE_URL, str(n)) for n in range(3000)]
    characters = ["".join(reference(i, b"secret").split("-")) for i in ids]
    assert [len({c[k] for c in characters}) for k in range(10)] == [32] * 10


def test_a_reference_cannot_be_made_without_the_secret() -> None:
    """It was the event id's bits, and the event id is made of the register entry (public and
    numbered in sequence): anyone could work out the reference of every entry of a district."""
    entry = uuid.uuid5(uuid.NAMESPACE_URL, "death|leeds|1042")
    assert reference(entry, b"secret") == reference(entry, b"secret")  # a resubmission's
    assert reference(entry, b"secret") != reference(entry, b"another secret")
    assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{5}", reference(entry, b"s"))
