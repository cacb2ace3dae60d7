"""Deterministic identities: event ids, family references, confirmation ids, pseudonyms,
message digests."""

from __future__ import annotations

import hashlib
import hmac
from uuid import UUID, uuid5

from tellusonce.events import Action, EventType, Person, Registration
from tellusonce.fields import name_key

NAMESPACE = UUID("6f1c3a52-6a4e-5b8e-9d0e-7e2f1c0b4a11")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def event_id(
    event_type: EventType, registration: Registration, action: Action, revision: int
) -> UUID:
    """UUIDv5 of the register entry and its action: a resubmission has the same id."""
    district, number = registration.entry
    name = "|".join((event_type.value, district, str(number), action.value, str(revision)))
    return uuid5(NAMESPACE, name)


_NOT_WRITTEN = str.maketrans({"O": "0", "I": "1", "L": "1", " ": None, "-": None,
                               "\u2010": None, "\u2011": None, "\u2012": None,
                               "\u2013": None, "\u2014": None, "\u2212": None})  # fmt: skip


def as_issued(typed: str) -> str:
    """A reference as a person typed it, written as references are issued (7QK2M-93XDA):
    Crockford's reading of base32, where O is 0 and I and L are 1, without case, spaces or
    the dash (a hyphen, an en dash from a letter, or none); other text comes back upper-cased,
    to match nothing."""
    compact = typed.strip().upper().translate(_NOT_WRITTEN)
    if len(compact) == 10 and all(c in _CROCKFORD for c in compact):
        return f"{compact[:5]}-{compact[5:]}"
    return typed.strip().upper()


def reference(original_event_id: UUID, secret: bytes) -> str:
    """A short reference for the family, e.g. 7QK2M-93XDA: Crockford base32 of 50 bits of an
    HMAC of the registration's event id, keyed by the pseudonym secret. The event id is made of
    the register entry (public, and numbered in sequence), so a reference made of it alone could
    be worked out for every entry of a district, leaving a family's date of birth as the only
    thing between anyone and their status page; keyed, the same registration still has the same
    reference, and nobody without the secret can make one."""
    digest = hmac.new(secret, b"reference\0" + original_event_id.bytes, hashlib.sha256).digest()
    bits = int.from_bytes(digest[:7]) >> 6
    chars = "".join(_CROCKFORD[(bits >> shift) & 31] for shift in range(45, -1, -5))
    return f"{chars[:5]}-{chars[5:]}"


def confirmation_id(event_id: UUID, service: str, refusal: str | None = None) -> UUID:
    """The one confirmation id a service gives an event, however often it is redelivered:
    UUIDv5 of the service's name in the event id's namespace. A REJECTED answer has an id of
    its own, made with its reason (`refusal`): the answer given once the event is replayed
    (applied, or refused for another reason) is another CloudEvent, which the same source and
    id would mark a duplicate to a consumer deduplicating by them, as the specification
    allows."""
    return uuid5(event_id, _name(service, refusal))


def confirmation_id_text(event_id: UUID, service: str, refusal: str | None = None) -> str:
    """confirmation_id as text, made without building a UUID object (a service makes one per
    event it handles, and uuid5 then str cost twice this). RFC 9562 section 5.5: the first 16
    bytes of SHA-1(namespace + name), version 5, variant 10."""
    name = _name(service, refusal).encode()
    digest = bytearray(hashlib.sha1(event_id.bytes + name, usedforsecurity=False).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _name(service: str, refusal: str | None) -> str:
    return service if refusal is None else f"{service}:rejected:{refusal}"


def message_digest(value: bytes) -> int:
    """A message's bytes in 64 bits (BLAKE2b, as a signed integer: a database BIGINT): what a
    service stores with an event it processed, so that a redelivery of the very same bytes is
    known as a repeat without being decoded."""
    return int.from_bytes(hashlib.blake2b(value, digest_size=8).digest(), signed=True)


def person_ref(person: Person, secret: bytes) -> str:
    """HMAC-SHA256 pseudonym of the NINO, or of name and date of birth when there is none."""
    if person.nino:
        material = f"nino:{person.nino}"
    else:
        given = name_key(person.given_names or "")
        material = f"name:{name_key(person.family_name)}|{given}|{person.date_of_birth}"
    return hmac.new(secret, material.encode(), hashlib.sha256).hexdigest()
