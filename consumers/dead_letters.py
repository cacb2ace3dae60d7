"""Operators' view of a service's dead-letter topic: list what failed and why; replay it.

Listing shows where each message came from and the error, never the message's content (it may
hold personal data). Replay publishes the original key, value and headers back to the origin
topic, where the service handles it through its normal, idempotent path. How far each partition
of the dead-letter topic was replayed is kept as a consumer group's committed offsets (the
group reads nothing): a replay sends only the letters not replayed yet, and a listing says which
were. A letter sent twice (a replay that failed part-way, tried again) is applied once.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from tellusonce.errors import BrokerUnavailable
from tellusonce.headers import DEAD_LETTER_BODY_DROPPED, DEAD_LETTER_PREFIX, EVENT_ID, header
from tellusonce.kafka import Admin, Outgoing, Publisher, Reader, Received, commit_offsets
from tellusonce.settings import Settings
from tellusonce.topics import Topics

# what a letter's own headers say it is, shown only in these forms (another producer's headers
# may hold anything)
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
    replayed: bool = False  # sent back to its origin by a replay (the mark is past it)

    def where(self) -> str:
        return f"{self.origin_topic} [{self.origin_partition}]@{self.origin_offset}"


def replay_group(settings: Settings, service: str) -> str:
    """The consumer group whose committed offsets mark how far each partition of a service's
    dead-letter topic was replayed."""
    return Topics(settings.topic_prefix).group(f"dlq-replayed.{service}")


def read(settings: Settings, service: str) -> list[DeadLetter]:
    """Every message on a service's dead-letter topic, oldest first per partition, each saying
    whether a replay sent it back."""
    topic = Topics(settings.topic_prefix).dead_letter(service)
    found = Reader(settings, topic).read_all()
    marks = Admin(settings).committed(replay_group(settings, service))
    letters = []
    for m in found:
        dropped = header(m.headers, DEAD_LETTER_BODY_DROPPED)
        letters.append(DeadLetter(
            offset=m.offset,
            partition=m.partition,
            origin_topic=header(m.headers, "dlq_origin_topic") or "?",
            origin_partition=_number(header(m.headers, "dlq_origin_partition")),
            origin_offset=_number(header(m.headers, "dlq_origin_offset")),
            error_class=header(m.headers, "dlq_error_class") or "?",
            error=header(m.headers, "dlq_error_message") or "",
            message=m,
            body_dropped=dropped,
            event_id=_shown(header(m.headers, "ce_id"), EVENT_ID),
            event_type=_shown(header(m.headers, "ce_type"), _EVENT_TYPE),
            # a letter kept without its message is passed by the mark, never sent
            replayed=m.offset < marks.get((topic, m.partition), 0) and dropped is None,
        ))  # fmt: skip
    return letters


def _number(value: str | None) -> int:
    """A header's number, or -1 if it has none (a letter another producer wrote, say)."""
    try:
        return int(value) if value is not None else -1
    except ValueError:
        return -1


def _shown(value: str | None, form: re.Pattern[str]) -> str | None:
    return value if value is not None and form.fullmatch(value) else None


def replay(
    settings: Settings,
    service: str,
    chosen: Sequence[DeadLetter],
    every: Sequence[DeadLetter],
    publisher: Publisher,
) -> int:
    """Publish a service's dead letters back to their origin topics, a dead-letter partition at
    a time, and move each partition's replay mark past its letters now replayed (of `every`
    letter of the topic: past a letter neither chosen nor replayed before, it stays).
    Returns how many were sent; BrokerUnavailable names the partition whose letters Kafka did
    not all acknowledge, the marks of the partitions before it kept."""
    sent = 0
    for partition in sorted({d.partition for d in chosen}):
        mine = [d for d in chosen if d.partition == partition]
        try:
            publisher.publish([
                Outgoing(
                    topic=letter.origin_topic,
                    key=letter.message.key,  # None for a message that had none
                    value=letter.message.value,
                    headers=[
                        (k, v) for k, v in letter.message.headers
                        if not k.startswith(DEAD_LETTER_PREFIX)
                    ],
                )
                for letter in mine
            ])  # fmt: skip
        except BrokerUnavailable as exc:
            raise BrokerUnavailable(
                f"{sent} of {len(chosen)} dead letters replayed; those of partition {partition} "
                f"were not all acknowledged ({exc}): replay again (a letter sent twice is "
                "applied once)"
            ) from exc
        sent += len(mine)
        mark = _mark(mine, [d for d in every if d.partition == partition])
        if mark is not None:
            topic = mine[0].message.topic
            commit_offsets(settings, replay_group(settings, service), {(topic, partition): mark})
    return sent


def _mark(sent: Sequence[DeadLetter], every: Sequence[DeadLetter]) -> int | None:
    """Where a partition's replay mark goes: past its letters settled from the first on
    (replayed, before or now, or kept without the message: nothing to replay); None if none."""
    done = {d.offset for d in sent}
    mark = None
    for letter in sorted(every, key=lambda d: d.offset):
        if not (letter.replayed or letter.offset in done or letter.body_dropped):
            break
        mark = letter.offset + 1
    return mark
