"""Kafka headers: CloudEvents binary binding for events and confirmations, and dead-letter origin.

Headers never carry personal data: ids, types, times, topic coordinates and error classes only.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from tellusonce.events import Envelope

SPEC_VERSION = b"1.0"
CONTENT_TYPE = b"application/avro"


def _cloudevent(id_: str, source: str, type_: str, time: datetime) -> list[tuple[str, bytes]]:
    return [
        ("ce_specversion", SPEC_VERSION),
        ("ce_id", id_.encode()),
        ("ce_source", source.encode()),
        ("ce_type", type_.encode()),
        ("ce_time", time.astimezone(UTC).isoformat().encode()),
        ("content-type", CONTENT_TYPE),
    ]


def event_headers(envelope: Envelope) -> list[tuple[str, bytes]]:
    """CloudEvents headers of a life event, e.g. ce_type uk.gov.tellusonce.death.registered.v1."""
    type_ = f"uk.gov.tellusonce.{envelope.event_type.value}.{envelope.action.value.lower()}.v1"
    return _cloudevent(envelope.event_id_text, envelope.source, type_, envelope.registered_at)


def confirmation_headers(
    confirmation_id: str, service: str, processed_at: datetime
) -> list[tuple[str, bytes]]:
    """CloudEvents headers of a service's confirmation."""
    return _cloudevent(
        confirmation_id,
        f"urn:tellusonce:service:{service}",
        "uk.gov.tellusonce.confirmation.v1",
        processed_at,
    )


DEAD_LETTER_PREFIX = "dlq_"
"""What every dead-letter header's name begins with: a message's own such headers are dropped
before it is dead-lettered (they would be read as the dead letter's), and before it is
replayed."""

DEAD_LETTER_BODY_DROPPED = "dlq_body_dropped"
"""On a dead letter kept without the message (too large for Kafka with the headers added): the
size of its key and value, which are still on the origin topic (for that topic's retention)."""


def dead_letter_headers(
    topic: str, partition: int, offset: int, timestamp_ms: int, error: Exception
) -> list[tuple[str, bytes]]:
    """Where a dead letter came from and why it failed (messages name fields, never values)."""
    return [
        ("dlq_origin_topic", topic.encode()),
        ("dlq_origin_partition", str(partition).encode()),
        ("dlq_origin_offset", str(offset).encode()),
        ("dlq_origin_timestamp_ms", str(timestamp_ms).encode()),
        ("dlq_error_class", type(error).__name__.encode()),
        ("dlq_error_message", str(error)[:1000].encode()),
    ]


EVENT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
"""An event id as text, as our producers write it in ce_id (a header is another producer's word:
one that is not this is no id)."""


def header(headers: list[tuple[str, bytes]], name: str) -> str | None:
    """The first value of a header, decoded, or None. Bytes that are not UTF-8 come back as
    U+FFFD: a header is another producer's word, and a bad one must not stop a consumer."""
    for key, value in headers:
        if key == name:
            return value.decode(errors="replace") if value is not None else None
    return None
