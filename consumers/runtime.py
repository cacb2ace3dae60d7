"""The consumer runtime: poll → decode → handle (dedupe, apply, confirm) → relay outbox → commit.

It owns Kafka, retries, dead letters, metrics and logs; handlers own their store, their rules and
what they read of a message.
Transient errors pause the partition and rewind it to the failing message, with capped
exponential backoff, while polling goes on (the consumer never leaves its group for being slow).
Permanent errors send the message to the handler's dead-letter topic. Offsets are stored only
for messages fully handled; stored offsets are committed in the background, on partition revoke
and at shutdown.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

import structlog

from consumers.store import Pending
from tellusonce.codec import Message
from tellusonce.errors import (
    BrokerUnavailable,
    MessageTooLarge,
    PermanentError,
    TransientError,
    UndecodableMessage,
    UnitFailed,
)
from tellusonce.events import Confirmation, Envelope, EventType
from tellusonce.headers import (
    DEAD_LETTER_BODY_DROPPED,
    DEAD_LETTER_PREFIX,
    dead_letter_headers,
)
from tellusonce.kafka import Outgoing, Publisher, Received, Subscriber
from tellusonce.metrics import (
    BATCH_SECONDS,
    BROKERS_REACHABLE,
    CONSUMER_LAG,
    DEAD_LETTERS,
    EVENTS_CONSUMED,
    LOOP_TURNED,
    OUTBOX_PENDING,
    PROCESSING_SECONDS,
)
from tellusonce.topics import Topics

BACKOFF_FIRST_SECONDS = 0.2
BACKOFF_MAX_SECONDS = 30.0
GAUGE_INTERVAL_SECONDS = 5.0
# a loop that has not turned for this long is stuck (/healthz 503): a batch waits at most about
# a publish's timeout (30 s) on each of a few things, and a store's busy wait a second
STUCK_AFTER_SECONDS = 300.0
BATCH = 500  # messages a poll takes at most: handled in one store transaction
RUNTIME_OUTCOMES = ("duplicate", "retried", "dead_lettered")  # what the runtime itself counts
DEAD_LETTER_ERRORS = ("UndecodableMessage", "UnknownSchema", "RuleRejected", "UnreadableRecord")
M = TypeVar("M", bound=Message | Envelope)  # what a handler decodes a message into


class Repeat(NamedTuple):
    """A message its handler knew, undecoded, as a repeat of one it handled."""

    event_id: str


class Handler(Protocol[M]):
    """What the runtime drives: a service applying events, or the tracker recording them."""

    name: str
    topics: list[str]
    dead_letter_topic: str | None
    outcomes: tuple[str, ...]  # the labels handle() returns (its counters start at 0)

    def decode(self, data: bytes) -> M:
        """What the handler reads of a message's bytes, or raise a PermanentError."""

    def handle(self, message: M, received: Received) -> str:
        """Apply one decoded message in one store transaction; return the outcome label."""

    def reject(self, message: M, error: PermanentError) -> None:
        """Record a decoded message the handler refused (a REJECTED confirmation, for services)."""

    def undecoded(self, received: Received, error: PermanentError) -> None:
        """Record a message that did not decode (a REJECTED confirmation, for services, if its
        envelope reads)."""

    def repeats(self, batch: Sequence[Received]) -> dict[int, str]:
        """The positions in a batch of messages that repeat, byte for byte, one the handler
        handled, with their event ids: counted and logged as duplicates without decoding."""

    def batch(self, messages: Sequence[M]) -> AbstractContextManager[None]:
        """The unit of work around one consumer batch's decoded messages (what it reads up front
        or its commit may raise TransientError)."""

    def outbox(self) -> list[Pending]:
        """Confirmations stored but not yet published (the oldest, a batch of them)."""

    def outbox_size(self) -> int:
        """How many confirmations are stored but not yet published."""

    def sent(self, row_ids: Sequence[int]) -> None:
        """Outbox rows Kafka acknowledged (the store may mark them sent with its next work)."""

    def close(self) -> None:
        """Write what the handler still keeps in memory to its store (at shutdown)."""

    def observe(self) -> None:
        """Refresh the handler's own gauges (called every few seconds)."""

    def usable(self) -> bool:
        """Whether the handler's store answers (for /readyz)."""


class Runtime(Generic[M]):
    """Runs one handler against Kafka until stopped."""

    def __init__(
        self,
        handler: Handler[M],
        subscriber: Subscriber,
        publisher: Publisher,
        topics: Topics,
        batch_size: int = BATCH,
    ) -> None:
        self.handler = handler
        self.subscriber = subscriber
        self.publisher = publisher
        self.topics = topics
        self.batch_size = batch_size
        self.log = structlog.get_logger("tellusonce.consumer").bind(service=handler.name)
        self._attempts: dict[tuple[str, int], int] = {}
        self._resume_at: dict[tuple[str, int], float] = {}
        self._outbox_dirty = True
        self._dead_letters_down = False  # within one batch
        # offsets dead-lettered whose batch has not committed yet, by partition: its retry
        # (the store busy at its commit, say) does not publish them again
        self._lettered: dict[tuple[str, int], set[int]] = {}
        self._next_gauges = 0.0
        self._turned = time.monotonic()
        self._brokers_up = True
        self._loop_turned = LOOP_TURNED.labels(handler.name)
        self._loop_turned.set_to_current_time()  # from its start: at 0, the stuck alert's
        # time() - 0 was true at each start until the first turn
        self._reachable = BROKERS_REACHABLE.labels(handler.name)
        self._reachable.set(1)  # until librdkafka's statistics say none answers
        self.joined = threading.Event()
        # per topic, once: the event type it carries (None: confirmations), and as a label
        self._carries = {t: self.topics.event_type_of(t) for t in handler.topics}
        self._event_types = {t: _label(carried) for t, carried in self._carries.items()}
        self._processing = PROCESSING_SECONDS.labels(handler.name)
        self._timings: list[float] = []  # each message's of the batch, observed at its end
        self._batches = BATCH_SECONDS.labels(handler.name)
        self._consumed: dict[tuple[str, str], Any] = {}  # counter children, made once each
        self._zero_counters()

    def run(self, stop: threading.Event) -> None:
        """Consume until `stop` is set, then drain: relay the outbox, commit, close."""
        self.subscriber.subscribe(self.handler.topics, on_revoke=self._revoked, on_lost=self._lost)
        self.log.info("consumer_started", topics=self.handler.topics)
        try:
            while not stop.is_set():
                self._resume_due()
                batch = self.subscriber.poll(self.batch_size, 0.2)
                if self.subscriber.assigned:
                    self.joined.set()
                self.process(batch)
                self.relay()
                self._gauges()
        finally:
            self.shutdown()

    def ready(self) -> bool:
        """Joined the group, a broker answers (librdkafka's last statistics) and the store is
        usable."""
        return self.joined.is_set() and self.subscriber.brokers_up and self.handler.usable()

    def _zero_counters(self) -> None:
        """Create every child counter the handler can count at 0, so rate() and increase() see
        its first increment (and no series of another handler's outcomes, flat at 0)."""
        name = self.handler.name
        for topic, event_type in self._event_types.items():
            for outcome in dict.fromkeys((*self.handler.outcomes, *RUNTIME_OUTCOMES)):
                EVENTS_CONSUMED.labels(name, event_type, outcome)
            if self.handler.dead_letter_topic:
                for error in DEAD_LETTER_ERRORS:
                    DEAD_LETTERS.labels(name, topic, error)
        OUTBOX_PENDING.labels(name)
        PROCESSING_SECONDS.labels(name)
        BATCH_SECONDS.labels(name)

    def process(self, batch: list[Received]) -> None:
        """Decode a batch, then handle it in order in one unit of work; store offsets once it
        committed. What the handler knows as repeats of messages it handled is not decoded.

        A transient failure holds back the rest of its partition; if the unit fails (its commit,
        say, or its transaction, ended by the database: UnitFailed), every partition of the
        batch is rewound to its first message in it. Each message
        is logged as it is handled; once the unit committed, the batch's outcomes are counted (in
        one increment per event type and outcome) and logged in one line. Each message's
        handling time is observed once the batch ends, with the others' (whatever its end).
        """
        try:
            self._process(batch)
        finally:
            self._processing.add(self._timings)
            self._timings.clear()

    def _process(self, batch: list[Received]) -> None:
        started = time.perf_counter()
        self._dead_letters_down = False
        held: set[tuple[str, int]] = set()
        done: list[Received] = []
        counts: Counter[tuple[str, str]] = Counter()  # (event type, outcome): counted per batch
        try:
            repeats = self.handler.repeats(batch)
            decoded = [
                (received, Repeat(repeats[i]) if i in repeats else self._decode(received))
                for i, received in enumerate(batch)
            ]
            messages = [m for _, m in decoded if not isinstance(m, (PermanentError, Repeat))]
            with self.handler.batch(messages):
                for received, message in decoded:
                    where = (received.topic, received.partition)
                    if where in held:
                        continue
                    event_type = self._event_type(received.topic)
                    try:
                        counts[event_type, self._handle(received, message)] += 1
                    except UnitFailed:  # the store's transaction is gone: the whole batch again
                        raise
                    except TransientError as exc:
                        held.add(where)
                        self._retry_later(received, exc)
                        continue
                    done.append(received)
        except TransientError as exc:  # nothing of this batch was applied
            first: dict[tuple[str, int], Received] = {}
            for received in batch:
                first.setdefault((received.topic, received.partition), received)
            for where, received in first.items():  # (one held already: from its first now)
                self._retry_later(received, exc, again=where in held)
            self._batches.observe(time.perf_counter() - started)  # a locked store's wait too
            return
        outcomes: Counter[str] = Counter()
        for (event_type, outcome), n in counts.items():
            self._count(event_type, outcome, n)
            outcomes[outcome] += n
        for received in done:
            where = (received.topic, received.partition)
            self._attempts.pop(where, None)
            if where in self._lettered:
                self._lettered[where].discard(received.offset)
        self.subscriber.store(done)
        if batch:
            elapsed = time.perf_counter() - started
            self._batches.observe(elapsed)
            self.log.info(
                "batch_handled",
                messages=len(batch),
                held_back=len(batch) - len(done),
                duration_ms=round(elapsed * 1000, 1),
                **outcomes,
            )

    def _decode(self, received: Received) -> M | PermanentError:
        try:
            message = self.handler.decode(received.value)
        except PermanentError as exc:
            return exc
        topic = received.topic
        carried = self._carries[topic] if topic in self._carries else self._carried(topic)
        if _event_type_of(message) is not carried:  # a death on the birth topic: applied by
            # birth's services, awaited by the tracker from death's, which never see it
            kind, where = _label(_event_type_of(message)), self._event_type(topic)
            return UndecodableMessage(f"a {kind} message on the {where} topic")
        return message

    def _carried(self, topic: str) -> EventType | None:
        """The event type a topic carries (None: confirmations), kept for the next message."""
        self._carries[topic] = carried = self.topics.event_type_of(topic)
        return carried

    def _handle(self, received: Received, message: M | PermanentError | Repeat) -> str:
        started = time.perf_counter()
        if isinstance(message, PermanentError):
            self._dead_letter(received, message, {})
            self.handler.undecoded(received, message)
            self._outbox_dirty = True
            return "dead_lettered"
        if isinstance(message, Repeat):
            outcome, ids = "duplicate", {"event_id": message.event_id}
        else:
            ids = _ids(message)
            try:
                outcome = self.handler.handle(message, received)
            except PermanentError as exc:
                self._dead_letter(received, exc, ids)
                self.handler.reject(message, exc)
                outcome = "dead_lettered"
        if outcome != "duplicate":
            self._outbox_dirty = True
        elapsed = time.perf_counter() - started
        self._timings.append(elapsed)
        self.log.info(
            "message_handled",
            topic=received.topic,
            partition=received.partition,
            offset=received.offset,
            outcome=outcome,
            duration_ms=int(elapsed * 100_000) / 100,  # to 0.01 ms (round() costs more, per line)
            **ids,
        )
        return outcome

    def _count(self, event_type: str, outcome: str, n: int = 1) -> None:
        child = self._consumed.get((event_type, outcome))
        if child is None:
            child = self._consumed[(event_type, outcome)] = EVENTS_CONSUMED.labels(
                self.handler.name, event_type, outcome
            )
        child.inc(n)

    def _event_type(self, topic: str) -> str:
        return self._event_types.get(topic) or _label(self.topics.event_type_of(topic))

    def _dead_letter(self, received: Received, error: PermanentError, ids: dict[str, str]) -> None:
        lettered = self._lettered.setdefault((received.topic, received.partition), set())
        if received.offset in lettered:  # its batch again: on the dead-letter topic already
            return
        self.log.warning(
            "message_dead_lettered",
            topic=received.topic,
            partition=received.partition,
            offset=received.offset,
            error_class=type(error).__name__,
            error=str(error),
            **ids,
        )
        topic = self.handler.dead_letter_topic
        if topic is None:
            return
        if self._dead_letters_down:  # a publish of this batch's timed out: hold this one at once
            raise BrokerUnavailable("the dead-letter topic did not acknowledge this batch's last")
        why = dead_letter_headers(
            received.topic, received.partition, received.offset, received.timestamp_ms, error
        )
        key, value = received.key, received.value  # a message without a key stays without
        # its own dlq_ headers dropped: read first, they would say where it came from and why
        own = [h for h in received.headers if not h[0].startswith(DEAD_LETTER_PREFIX)]
        try:
            self.publisher.publish([Outgoing(topic, key, value, own + why)])
        except BrokerUnavailable:  # each publish waits up to its timeout (30 s): one a batch
            self._dead_letters_down = True
            raise
        except MessageTooLarge:  # with our headers, more than Kafka takes: kept without its
            # body, key and headers, which stay on the origin topic (for its retention)
            dropped = (DEAD_LETTER_BODY_DROPPED, str(len(key or b"") + len(value)).encode())
            self.publisher.publish([Outgoing(topic, None, b"", [*why, dropped])])
        DEAD_LETTERS.labels(self.handler.name, received.topic, type(error).__name__).inc()
        lettered.add(received.offset)

    def _retry_later(self, received: Received, error: TransientError, again: bool = False) -> None:
        """Read a partition again from this message after a backoff; `again`: its retry is
        under way already (one attempt, counted and logged once), from this message now."""
        where = (received.topic, received.partition)
        if where not in self.subscriber.assigned:
            # taken away while its batch was handled (its revocation served inside poll): its
            # new owner reads it again from the last commit, and librdkafka refuses a seek here
            return
        if again:
            self.subscriber.rewind(received.topic, received.partition, received.offset)
            return
        attempt = self._attempts.get(where, 0) + 1
        self._attempts[where] = attempt
        delay = min(BACKOFF_FIRST_SECONDS * 2 ** (attempt - 1), BACKOFF_MAX_SECONDS)
        self.subscriber.rewind(received.topic, received.partition, received.offset)
        self._resume_at[where] = time.monotonic() + delay
        self._count(self._event_type(received.topic), "retried")
        self.log.warning(
            "partition_paused_for_retry",
            topic=received.topic,
            partition=received.partition,
            offset=received.offset,
            attempt=attempt,
            retry_in_seconds=delay,
            error_class=type(error).__name__,
            error=str(error),
        )

    def _resume_due(self) -> None:
        now = time.monotonic()
        for where, due in list(self._resume_at.items()):
            if due <= now:
                del self._resume_at[where]
                if where in self.subscriber.assigned:
                    self.subscriber.resume(*where)

    def relay(self) -> bool:
        """Publish the outbox's oldest confirmations (a page of them) and mark them sent once
        Kafka acknowledged them; True if it published some (more may wait: the next call looks,
        whether or not new messages came meanwhile)."""
        if not self._outbox_dirty:
            return False
        try:
            pending = self.handler.outbox()
            if pending:
                self.publisher.publish(
                    [
                        Outgoing(
                            self.topics.confirmations, p.event_id.encode(), p.payload, p.headers
                        )
                        for p in pending
                    ]
                )
                self.handler.sent([p.row_id for p in pending if p.row_id is not None])
            self._outbox_dirty = bool(pending)
            return bool(pending)
        except (TransientError, MessageTooLarge) as exc:  # the rows stay in the outbox (its
            # gauge and alert show them): tried again next loop; a confirmation the topic
            # refuses as too large ended the process, again at each restart
            self.log.warning("outbox_relay_failed", error_class=type(exc).__name__, error=str(exc))
            return False

    def _revoked(self, partitions: list[tuple[str, int]]) -> None:
        self._forget(partitions)
        self._commit()
        self.log.info("partitions_revoked", partitions=len(partitions))

    def _commit(self) -> None:
        """Commit stored offsets; one Kafka did not take is said (its messages come again, and
        are skipped as duplicates)."""
        if (why := self.subscriber.commit()) is not None:
            self.log.warning("offsets_not_committed", error=why)

    def _lost(self, partitions: list[tuple[str, int]]) -> None:
        """Taken away without a chance to commit (the session expired): the new owner has them
        from the last commit, and skips what was applied here as duplicates."""
        self._forget(partitions)
        self.log.warning("partitions_lost", partitions=len(partitions))

    def _forget(self, partitions: list[tuple[str, int]]) -> None:
        """Partitions no longer this instance's: no retry waits for them, and their lag is the
        new owner's to report (a series left here would count it twice, for ever)."""
        for topic, partition in partitions:
            self._resume_at.pop((topic, partition), None)
            self._attempts.pop((topic, partition), None)
            self._lettered.pop((topic, partition), None)
            with contextlib.suppress(KeyError):  # never reported here
                CONSUMER_LAG.remove(self.handler.name, topic, str(partition))

    def alive(self) -> bool:
        """Whether the loop turned lately (or has not started: start-up has its own checks)."""
        return time.monotonic() - self._turned < STUCK_AFTER_SECONDS

    def _gauges(self) -> None:
        now = time.monotonic()
        self._turned = now
        if now < self._next_gauges:
            return
        self._next_gauges = now + GAUGE_INTERVAL_SECONDS
        self._loop_turned.set_to_current_time()
        if self.subscriber.brokers_up != self._brokers_up:
            self._brokers_up = self.subscriber.brokers_up
            self._reachable.set(1 if self._brokers_up else 0)
            if self._brokers_up:
                self.log.info("brokers_reachable")
            else:
                self.log.warning("brokers_unreachable")
        for (topic, partition), lag in self.subscriber.lag().items():
            CONSUMER_LAG.labels(self.handler.name, topic, str(partition)).set(lag)
        try:
            pending = self.handler.outbox_size()
            OUTBOX_PENDING.labels(self.handler.name).set(pending)
            if pending:  # rows this instance did not queue (another instance of the service,
                # stopped before it relayed them) or could not publish: relayed from this turn
                self._outbox_dirty = True
            self.handler.observe()
        except TransientError as exc:  # the store busy or unreachable: the gauges wait for it
            self.log.warning("gauges_not_updated", error_class=type(exc).__name__, error=str(exc))

    def shutdown(self) -> None:
        """Relay what the outbox holds, mark it sent, commit stored offsets and leave the group."""
        self._outbox_dirty = True
        try:  # whatever the relay meets, the offsets are committed and the group left
            while self.relay():
                pass
            self.handler.close()
        except TransientError as exc:  # those rows are published again after a restart
            self.log.warning("outbox_not_marked", error_class=type(exc).__name__, error=str(exc))
        finally:
            try:
                self._commit()
            finally:
                self.subscriber.close()
                self.publisher.close()
        self.log.info("consumer_stopped")


def _event_type_of(message: Any) -> EventType | None:
    """The event type of a decoded message (None: a confirmation), by its class (isinstance of
    a pydantic model asks its metaclass; an enum's value is a Python property: per message, a
    check of its topic by either cost a consumer 1% of its work)."""
    kind = type(message)
    if kind is Confirmation:
        return None
    event_type: EventType = message.event_type if kind is Envelope else message.envelope.event_type
    return event_type


def _label(event_type: EventType | None) -> str:
    """A kind of message as labels and topics name it: its event type, or confirmation."""
    return event_type.value if event_type is not None else "confirmation"


def _ids(message: Message | Envelope) -> dict[str, str]:
    if isinstance(message, Confirmation):  # (hasattr on a pydantic model raises inside: slow)
        return {"event_id": message.event_id_text, "confirmation_id": message.confirmation_id_text}
    if isinstance(message, Envelope):
        return {"event_id": message.event_id_text}
    return {"event_id": message.envelope.event_id_text}
