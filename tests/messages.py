"""Messages as a consumer receives them, and the answers services give."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from tellusonce.codec import Codec
from tellusonce.events import Confirmation, LifeEvent, Outcome
from tellusonce.headers import event_headers
from tellusonce.identity import confirmation_id
from tellusonce.kafka import Outgoing, Received
from tellusonce.topics import Topics
from tests.factories import deaths

NOWHERE = Received("t", 0, 0, None, b"", [], 0)
CODEC = Codec()


def encoded(stream: list[LifeEvent[Any]], topics: Topics) -> list[Outgoing]:
    """The exact messages our producer path sends for these events."""
    return [
        Outgoing(
            topics.events(e.envelope.event_type),
            e.envelope.person_ref.encode(),
            CODEC.encode(e),
            event_headers(e.envelope),
        )
        for e in stream
    ]


def received(messages: Sequence[Outgoing]) -> list[Received]:
    """Messages as one partition delivers them, in this order (offsets from 0)."""
    return [Received(m.topic, 0, i, m.key, m.value, m.headers, 0) for i, m in enumerate(messages)]


def as_received(event: LifeEvent[Any], value: bytes) -> Received:
    """A message as a service's consumer receives it: bytes and CloudEvents headers."""
    return Received("events", 0, 1, b"key", value, event_headers(event.envelope), 0)


def answer(event: LifeEvent[Any], service: str, outcome: Outcome) -> Confirmation:
    refusal = "test" if outcome == Outcome.REJECTED else None  # as a service makes its id
    return Confirmation(
        confirmation_id=confirmation_id(event.envelope.event_id, service, refusal),
        event_id=event.envelope.event_id,
        event_type=event.envelope.event_type,
        service=service,
        outcome=outcome,
        actions=("test",),
        processed_at=datetime.now(UTC),
    )


def at(ms: int) -> Received:
    return Received("t", 0, 0, None, b"", [], ms)


def death_messages(count: int, topic: str) -> list[Received]:
    """deaths(count) as a consumer receives them from `topic`, at offsets 0, 1, ..."""
    codec = Codec()
    return [
        as_received(d, codec.encode(d))._replace(topic=topic, offset=i)
        for i, d in enumerate(deaths(count))
    ]
