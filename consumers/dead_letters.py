"""Operators' view of a service's dead-letter topic: list what failed and why; replay it.

Listing shows where each message came from and the error, never the message's content (it may
hold personal data). Replay publishes the original key, value and headers back to the origin
topic, where the service handles it through its normal, idempotent path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tellusonce.headers import DEAD_LETTER_BODY_DROPPED, header
from tellusonce.kafka import Outgoing, Publisher, Reader, Received
from tellusonce.settings import Settings
from tellusonce.topics import Topics

DLQ_PREFIX = "dlq_"
# what a letter's own headers say it is, shown only in these forms (another producer's headers
# may hold anything)
_EVENT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_EVENT_TYPE = re.compile(r"[a-z0-9.-]{1,100}")


@dataclass(frozen=True)
class DeadLetter:
    """One dead-lettered message and where it came from."""

    offset: int
    partition: int
    origin_topic: str
    origin_partition: int
    origin_offset: int
    error_class: str
    error: str
    message: Received
    body_dropped: str | None = None  # kept without the message: its size in bytes
    event_id: str | None = None  # the message's own CloudEvents id and type, if it had them
    event_type: str | None = None

    def where(self) -> str:
        return f"{self.origin_topic} [{self.origin_partition}]@{self.origin_offset}"


def read(settings: Settings, service: str) -> list[DeadLetter]:
    """Every message on a service's dead-letter topic, oldest first per partition."""
    topic = Topics(settings.topic_prefix).dead_letter(service)
    letters = []
    for m in Reader(settings, topic).read_all():
        letters.append(DeadLetter(
            offset=m.offset,
            partition=m.partition,
            origin_topic=header(m.headers, "dlq_origin_topic") or "?",
            origin_partition=int(header(m.headers, "dlq_origin_partition") or -1),
            origin_offset=int(header(m.headers, "dlq_origin_offset") or -1),
            error_class=header(m.headers, "dlq_error_class") or "?",
            error=header(m.headers, "dlq_error_message") or "",
            message=m,
            body_dropped=header(m.headers, DEAD_LETTER_BODY_DROPPED),
            event_id=_shown(header(m.headers, "ce_id"), _EVENT_ID),
            event_type=_shown(header(m.headers, "ce_type"), _EVENT_TYPE),
        ))  # fmt: skip
    return letters


def _shown(value: str | None, form: re.Pattern[str]) -> str | None:
    return value if value is not None and form.fullmatch(value) else None


def replay(settings: Settings, letters: list[DeadLetter], publisher: Publisher) -> int:
    """Publish dead letters back to their origin topics; return how many."""
    publisher.publish([
        Outgoing(
            topic=letter.origin_topic,
            key=letter.message.key or b"",
            value=letter.message.value,
            headers=[(k, v) for k, v in letter.message.headers if not k.startswith(DLQ_PREFIX)],
        )
        for letter in letters
    ])  # fmt: skip
    return len(letters)
