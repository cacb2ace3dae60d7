"""The tracker: joins life events with services' confirmations so registrars can see the status.

It reads every life-event topic (to know which confirmations each event expects, from the
subscription matrix) and the confirmations topic, keeps one row per event and one per
(event, service) in its own store, and answers status by reference. Redelivered confirmations
are duplicates and change nothing.

Of a life event it validates and keeps the envelope only: it has no use for the facts (names,
dates of birth, NINOs). An event whose facts the services refuse (and dead-letter) is therefore
still shown under its reference, awaiting them.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    bindparam,
    case,
    func,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, OperationalError

from consumers.store import Pending
from tellusonce.codec import Codec, Tracked
from tellusonce.database import (
    INSTANT,
    Bulk,
    BulkInsert,
    Connections,
    Query,
    connect,
    create_or_upgrade,
    ping,
    reason,
)
from tellusonce.errors import StoreBusy, TransientError
from tellusonce.events import Confirmation, Envelope, EventType, Outcome
from tellusonce.kafka import Received
from tellusonce.metrics import AWAITING, CONFIRMATION_SECONDS, OLDEST_AWAITING, tracking
from tellusonce.topics import TRACKER, Topics, subscribers, subscriptions

metadata = MetaData()
events = Table(
    "events",
    metadata,
    Column("event_id", String, primary_key=True),
    Column("reference", String, nullable=False, index=True),
    Column("event_type", String, nullable=False),
    Column("action", String, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("supersedes", String),
    Column("registered_at", INSTANT, nullable=False),
    Column("published_ms", BigInteger, nullable=False),
    Column("expected", Text, nullable=False),
    # expected services that have not answered yet; > 0 while the event awaits confirmation
    Column("awaiting", Integer, nullable=False, index=True),
)
confirmations = Table(
    "confirmations",
    metadata,
    Column("event_id", String, nullable=False),
    Column("service", String, nullable=False),
    Column("confirmation_id", String, nullable=False),
    Column("outcome", String, nullable=False),
    Column("actions", Text, nullable=False),
    Column("service_reference", String),
    Column("processed_at", INSTANT, nullable=False),
    Column("received_ms", BigInteger, nullable=False),
    PrimaryKeyConstraint("event_id", "service"),
)


OVERDUE_SHOWN = 100  # events `tellusonce status --awaiting` lists, the oldest


@dataclass(frozen=True)
class ServiceStatus:
    """One service's answer to one event, or None fields while it is pending."""

    service: str
    title: str
    outcome: str | None
    actions: tuple[str, ...]
    service_reference: str | None
    processed_at: datetime | None


@dataclass(frozen=True)
class EventStatus:
    """One event of a reference (the registration, a correction or a cancellation)."""

    event_id: str
    event_type: str
    action: str
    revision: int
    registered_at: datetime
    services: tuple[ServiceStatus, ...]
    supersedes: str | None = None  # the event an amendment amends

    @property
    def confirmed(self) -> int:
        """How many services have answered (REJECTED included)."""
        return sum(s.outcome is not None for s in self.services)

    @property
    def rejected(self) -> int:
        """How many services have answered REJECTED (answered, but not done)."""
        return sum(s.outcome == Outcome.REJECTED.value for s in self.services)


def _answered(
    conn: Connection, event_id: str, expected: Sequence[str], titles: dict[str, str]
) -> tuple[ServiceStatus, ...]:
    """Each expected service's answer to an event (None while it has not answered), then any
    other subscribed service's that answered: one that joined since the event was recorded (its
    answer says what it did with the family's data; one the matrix does not name is not shown)."""
    answers = {
        c.service: c
        for c in conn.execute(select(confirmations).where(confirmations.c.event_id == event_id))
    }
    joined = sorted(s for s in answers.keys() - set(expected) if s in titles)
    services = []
    for service in [*expected, *joined]:
        c = answers.get(service)
        services.append(
            ServiceStatus(
                service,
                titles.get(service, service),
                c.outcome if c else None,
                tuple(orjson.loads(c.actions)) if c else (),
                c.service_reference if c else None,
                _in_utc(c.processed_at) if c else None,
            )
        )
    return tuple(services)


def _event_status(conn: Connection, row: Any, titles: dict[str, str]) -> EventStatus:
    """An events row with each expected service's answer."""
    return EventStatus(
        row.event_id,
        row.event_type,
        row.action,
        row.revision,
        _in_utc(row.registered_at),
        _answered(conn, row.event_id, orjson.loads(row.expected), titles),
        row.supersedes,
    )


def _titles() -> dict[str, str]:
    """Each subscribed service's title, by name."""
    return {name: s.title for name, s in subscriptions().items()}


_KNOWN_EVENTS = Query(
    select(events.c.event_id, events.c.published_ms, events.c.expected).where(
        events.c.event_id.in_(bindparam("event_ids", expanding=True))
    )
)
_KNOWN_ANSWERS = Query(
    select(
        confirmations.c.event_id,
        confirmations.c.service,
        confirmations.c.outcome,
        confirmations.c.confirmation_id,
        case(  # when, for an answer a newer one may replace (a time read costs: not the others)
            (confirmations.c.outcome == Outcome.REJECTED.value, confirmations.c.processed_at)
        ),
    ).where(confirmations.c.event_id.in_(bindparam("event_ids", expanding=True)))
)
_REPLACE_ANSWER = Bulk(
    update(confirmations)
    .where(
        confirmations.c.event_id == bindparam("key_event_id"),
        confirmations.c.service == bindparam("key_service"),
    )
    .values(
        {
            c: bindparam(c)
            for c in (
                "confirmation_id", "outcome", "actions", "service_reference", "processed_at",
                "received_ms",
            )
        }
    )
)  # fmt: skip
_INSERT_EVENTS = BulkInsert(events)
_INSERT_ANSWERS = BulkInsert(confirmations)
_ANSWERED = Bulk(
    update(events)
    .where(events.c.event_id == bindparam("key_event_id"))
    .values(awaiting=events.c.awaiting - bindparam("answered"))
)


class TrackerBatch:
    """What one consumer batch adds to the tracker's store, written in a few statements.

    What the store already knows of the batch's events and confirmations is read up front, so
    each message is decided in memory (new, a repeat, or an answer replacing a REJECTED one);
    the rows are written together when the batch ends.
    """

    def __init__(self, conn: Connection, event_ids: Sequence[str]) -> None:
        self.conn = conn
        ids = list(set(event_ids))
        self._published: dict[str, int] = {}
        self._expected: dict[str, Sequence[str]] = {}
        # each service's answer to each event: its outcome, confirmation id and processing time
        self._answers: dict[tuple[str, str], tuple[str, str, datetime]] = {}
        if ids:
            for event_id, published_ms, expected in _KNOWN_EVENTS.rows(conn, {"event_ids": ids}):
                self._published[event_id] = published_ms
                self._expected[event_id] = orjson.loads(expected)
            known = _KNOWN_ANSWERS.rows(conn, {"event_ids": ids})
            for event_id, service, outcome, confirmation_id, at in known:
                when = _in_utc(at) if at is not None else _NEVER
                self._answers[(event_id, service)] = (outcome, confirmation_id, when)
        self._new_events: dict[str, dict[str, Any]] = {}
        self._new_answers: dict[tuple[str, str], dict[str, Any]] = {}
        self._replaced: list[dict[str, Any]] = []

    def add_event(self, env: Envelope, published_ms: int) -> bool:
        """Record an event and the services expected to confirm it; False if known already."""
        event_id = env.event_id_text
        if event_id in self._published:
            return False
        expected = subscribers(env.event_type)
        self._published[event_id] = published_ms
        self._expected[event_id] = expected
        self._new_events[event_id] = {
            "event_id": event_id,
            "reference": env.reference,
            "event_type": env.event_type.value,
            "action": env.action.value,
            "revision": env.revision,
            "supersedes": str(env.supersedes) if env.supersedes else None,
            "registered_at": env.registered_at,
            "published_ms": published_ms,
            "expected": orjson.dumps(expected).decode(),
        }
        return True

    def add_confirmation(self, confirmation: Confirmation, received_ms: int) -> bool:
        """Record a service's confirmation; False if it is a repeat of the one recorded.

        A newer, different answer from the same service (an event applied after a replay from the
        dead-letter topic, say, or refused again for another reason) replaces a REJECTED one; an
        older one sent again (redelivered after it) does not.
        """
        key = (confirmation.event_id_text, confirmation.service)
        known = self._answers.get(key)
        if known is not None and (
            known[0] != _REJECTED
            or known[1] == confirmation.confirmation_id_text
            or confirmation.processed_at <= known[2]
        ):
            return False
        row = {
            "event_id": key[0],
            "service": key[1],
            "confirmation_id": confirmation.confirmation_id_text,
            "outcome": confirmation.outcome.value,
            "actions": orjson.dumps(confirmation.actions).decode(),
            "service_reference": confirmation.service_reference,
            "processed_at": confirmation.processed_at,
            "received_ms": received_ms,
        }
        self._answers[key] = (
            confirmation.outcome.value,
            confirmation.confirmation_id_text,
            confirmation.processed_at,
        )
        if known is None or key in self._new_answers:
            self._new_answers[key] = row
        else:
            self._replaced.append(row | {"key_event_id": key[0], "key_service": key[1]})
        return True

    def answered(self, event_id: str, service: str) -> bool:
        """Whether a service's answer about an event is recorded (before or in this batch)."""
        return (event_id, service) in self._answers

    def expects(self, event_id: str, service: str) -> bool:
        """Whether the matrix, as the tracker recorded the event, names this service for it (a
        service that joined later answers events recorded before without being awaited)."""
        return service in self._expected.get(event_id, ())

    def published_ms(self, event_id: str) -> int | None:
        """When an event was published, if the tracker has seen it (before or in this batch)."""
        return self._published.get(event_id)

    def write(self) -> None:
        """Write the batch's rows: new events with how many answers they await, new and
        replacing confirmations, and fewer awaited answers for events stored before."""
        answered: dict[str, set[str]] = {}
        for event_id, service in self._answers:
            answered.setdefault(event_id, set()).add(service)
        if self._new_events:
            rows = [
                row | {"awaiting": len(set(self._expected[e]) - answered.get(e, set()))}
                for e, row in self._new_events.items()
            ]
            _INSERT_EVENTS.execute(self.conn, rows)
        _INSERT_ANSWERS.execute(self.conn, list(self._new_answers.values()))
        _REPLACE_ANSWER.execute(self.conn, self._replaced)
        earlier: dict[str, int] = {}
        for event_id, service in self._new_answers:
            if event_id not in self._new_events and service in self._expected.get(event_id, ()):
                earlier[event_id] = earlier.get(event_id, 0) + 1
        if earlier:
            _ANSWERED.execute(
                self.conn, [{"key_event_id": e, "answered": n} for e, n in earlier.items()]
            )


# On PostgreSQL (READ COMMITTED) the tracker's units take turns, each reading once the one
# before committed: an instance recording an event read that a service had not answered yet,
# while another recorded that answer, finding the event unknown; both committed (they wrote
# different tables), and the event awaited that answer for ever. SQLite writes one transaction
# at a time, and refuses the write of a transaction whose reads another's commit outdated.
_ONE_UNIT_AT_A_TIME = text("LOCK TABLE events IN SHARE ROW EXCLUSIVE MODE")


class TrackerStore:
    """The tracker's own store of events and confirmations."""

    def __init__(self, url: str) -> None:
        self.engine = connect(url)
        self.connections = Connections(self.engine)
        self._serialised = self.engine.dialect.name == "postgresql"  # see _ONE_UNIT_AT_A_TIME
        try:
            create_or_upgrade(self.engine, metadata)
        except OperationalError as exc:
            raise StoreBusy(f"tracker store not usable: {reason(exc)}") from exc

    def close(self) -> None:
        """Close this store's connections (a store opened for a look: a status, a count)."""
        self.connections.close()

    def usable(self) -> bool:
        """Whether the store answers a trivial query."""
        return ping(self.engine)

    @contextmanager
    def unit(self, event_ids: Sequence[str]) -> Iterator[TrackerBatch]:
        """One transaction for a consumer batch about these events (on PostgreSQL, one at a
        time: _ONE_UNIT_AT_A_TIME). A row another instance wrote meanwhile fails the batch as
        transient: on retry it is known, and skipped."""
        try:
            with self.connections.begin() as conn:
                if self._serialised:
                    conn.execute(_ONE_UNIT_AT_A_TIME)
                batch = TrackerBatch(conn, event_ids)
                yield batch
                batch.write()
        except IntegrityError as exc:
            raise StoreBusy("tracker store: rows written by another instance meanwhile") from exc
        except OperationalError as exc:
            raise StoreBusy(f"tracker store busy: {type(exc.orig).__name__}") from exc

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        """A connection to read with; the store locked or unreachable raises StoreBusy."""
        try:
            with self.engine.connect() as conn:
                yield conn
        except OperationalError as exc:
            raise StoreBusy(f"tracker store busy: {type(exc.orig).__name__}") from exc

    def status(self, reference: str, event_ids: Collection[str] | None = None) -> list[EventStatus]:
        """Every event under a reference (of these, if given: one registration's, as two can
        share a reference), oldest first, with each expected service's answer."""
        titles = _titles()
        query = select(events).where(events.c.reference == reference.upper())
        if event_ids is not None:
            query = query.where(events.c.event_id.in_(list(event_ids)))
        with self._reading() as conn:
            found = conn.execute(query.order_by(events.c.revision, events.c.published_ms)).all()
            return [_event_status(conn, row, titles) for row in found]

    def unrecorded(self, envelopes: Sequence[Envelope]) -> list[EventStatus]:
        """Events published that the tracker has not recorded (just published, or dead-lettered
        by it while the services applied them: a schema it did not ship yet), each with what
        the services entitled to it answered so far, if anything."""
        titles = _titles()
        with self._reading() as conn:
            return [
                EventStatus(
                    env.event_id_text,
                    env.event_type.value,
                    env.action.value,
                    env.revision,
                    env.registered_at,
                    _answered(conn, env.event_id_text, subscribers(env.event_type), titles),
                    str(env.supersedes) if env.supersedes else None,
                )
                for env in envelopes
            ]

    def overdue(
        self, older_than: float, limit: int = OVERDUE_SHOWN
    ) -> list[tuple[str, EventStatus]]:
        """Events some expected service has not answered, published over `older_than` seconds
        ago, oldest first (up to `limit`), each with its reference: which the overdue alert
        is about."""
        before = int(time.time() * 1000 - older_than * 1000)
        query = (
            select(events)
            .where(events.c.awaiting > 0, events.c.published_ms < before)
            .order_by(events.c.published_ms)
            .limit(limit)
        )
        titles = _titles()
        with self._reading() as conn:
            return [(row.reference, _event_status(conn, row, titles))
                    for row in conn.execute(query).all()]  # fmt: skip

    def reference_of(self, event_id: str) -> str | None:
        """The reference of an event the tracker recorded (None: not recorded)."""
        with self._reading() as conn:
            found: str | None = conn.execute(
                select(events.c.reference).where(events.c.event_id == event_id)
            ).scalar()
        return found

    def awaiting(self) -> tuple[int, float]:
        """Events some expected service has not confirmed, and the oldest one's age in seconds."""
        with self._reading() as conn:
            count, oldest = conn.execute(
                select(func.count(), func.min(events.c.published_ms)).where(events.c.awaiting > 0)
            ).one()
        return count, (time.time() * 1000 - oldest) / 1000 if oldest is not None else 0.0


EARLY_KEPT = 10_000  # events whose confirmations came first, kept for their latency


class TrackerHandler:
    """The tracker as a runtime handler."""

    def __init__(self, store: TrackerStore, topics: Topics, codec: Codec) -> None:
        self.store = store
        self.codec = codec
        self.name = TRACKER
        # what it cannot read (a confirmation of a schema it does not have yet, say) is kept
        # there to be replayed once it can: its offset is committed past, as a service's is
        self.dead_letter_topic: str | None = topics.dead_letter(TRACKER)
        self.outcomes: tuple[str, ...] = ("recorded", "duplicate")
        tracking()
        self.topics = [*(topics.events(t) for t in EventType), topics.confirmations]
        # series from 0, so rate() sees the first confirmation; children made once
        self._latency = {
            service: CONFIRMATION_SECONDS.labels(service) for service in (*subscriptions(), "other")
        }
        # confirmations seen before their event: event id -> service -> when confirmed (ms);
        # at most EARLY_KEPT events, the oldest forgotten (their event may come to another
        # instance of the tracker, or never)
        self._early: dict[str, dict[str, int]] = {}
        self._batch: TrackerBatch | None = None
        # this batch's, kept once it committed (a batch the store refused is handled again):
        self._observed: list[tuple[str, int]] = []  # latencies, observed then
        self._batch_early: dict[str, dict[str, int]] = {}  # early confirmations, kept then
        self._recorded: list[str] = []  # events recorded, whose early ones are forgotten then
        self._oldest_since: float | None = None  # when the oldest awaiting event was published

    def decode(self, data: bytes) -> Tracked:
        """A life event's envelope (what the status shows: the tracker has no use for anyone's
        personal data, and does not validate it), or a confirmation."""
        return self.codec.decode_envelope(data)

    def handle(self, message: Tracked, received: Received) -> str:
        """Record an event or a confirmation; observe confirmation latency once both are known,
        for a service's first answer (not one replacing a REJECTED answer after a replay).

        A confirmation that arrives before its event (another topic, another partition) is
        observed when the event arrives.
        """
        batch = self._batch
        if batch is None:
            raise RuntimeError("the tracker handles messages inside batch()")
        if isinstance(message, Confirmation):
            event_id = message.event_id_text
            replacing = batch.answered(event_id, message.service)
            if not batch.add_confirmation(message, received.timestamp_ms):
                return "duplicate"
            if replacing:  # an answer after a REJECTED one (a replay): its latency was observed
                return "recorded"
            published = batch.published_ms(event_id)
            if published is None:
                self._batch_early.setdefault(event_id, {})[message.service] = received.timestamp_ms
            elif batch.expects(event_id, message.service):  # (a joiner's backlog is not late)
                self._observed.append((message.service, received.timestamp_ms - published))
            return "recorded"
        event_id = message.event_id_text
        if not batch.add_event(message, received.timestamp_ms):
            return "duplicate"
        self._recorded.append(event_id)
        early = self._early.get(event_id, {}) | self._batch_early.get(event_id, {})
        for service, confirmed_ms in early.items():
            if batch.expects(event_id, service):
                self._observed.append((service, confirmed_ms - received.timestamp_ms))
        return "recorded"

    def _observe(self) -> None:
        """Once the batch committed (a batch tried again would observe them again): observe
        its latencies, forget the early confirmations of the events it recorded, and keep its
        own early ones, of events not recorded yet."""
        recorded = set(self._recorded)
        for event_id in recorded:
            self._early.pop(event_id, None)
        for event_id, answers in self._batch_early.items():
            if event_id not in recorded:
                self._early.setdefault(event_id, {}).update(answers)
        while len(self._early) > EARLY_KEPT:
            del self._early[next(iter(self._early))]
        seconds: dict[str, list[float]] = {}
        for service, milliseconds in self._observed:
            # a service the matrix does not name (whoever can write to the topic may name any)
            # is one series, not one each
            named = service if service in self._latency else "other"
            seconds.setdefault(named, []).append(max(milliseconds, 0) / 1000)
        for service, values in seconds.items():
            self._latency[service].add(values)

    def reject(self, message: Tracked, error: Exception) -> None:
        """The tracker refuses nothing it can decode."""

    def undecoded(self, received: Received, error: Exception) -> None:
        """The tracker answers nothing."""

    def repeats(self, _batch: Sequence[Received]) -> dict[int, str]:
        """The tracker decodes every message (a repeat is known once decoded)."""
        return {}

    @contextmanager
    def batch(self, messages: Sequence[Tracked]) -> Iterator[None]:
        """One store transaction for a consumer batch."""
        event_ids = [m.event_id_text for m in messages]
        self._observed, self._batch_early, self._recorded = [], {}, []
        with self.store.unit(event_ids) as batch:
            self._batch = batch
            try:
                yield
            finally:
                self._batch = None
        self._observe()

    def outbox(self) -> list[Pending]:
        return []

    def outbox_size(self) -> int:
        return 0

    def sent(self, row_ids: Sequence[int]) -> None:
        """The tracker publishes nothing."""

    def close(self) -> None:
        """The tracker keeps nothing in memory for its store."""

    def usable(self) -> bool:
        return self.store.usable()

    def observe(self) -> None:
        """The awaiting gauges. While the store cannot be read (busy), the oldest's age goes
        on growing from when it was last read, not frozen below the overdue alert's threshold."""
        try:
            count, oldest = self.store.awaiting()
        except TransientError:
            if self._oldest_since is not None:
                OLDEST_AWAITING.set(time.time() - self._oldest_since)
            raise
        self._oldest_since = time.time() - oldest if count else None
        AWAITING.set(count)
        OLDEST_AWAITING.set(oldest)


_NEVER = datetime.min.replace(tzinfo=UTC)  # the time of an answer nothing replaces
_REJECTED = Outcome.REJECTED.value  # once: an enum's value is a Python property


def _in_utc(stored: datetime) -> datetime:
    """A time the store kept, in UTC (SQLite keeps no offset, and gives it back without one;
    PostgreSQL gives it in the server's time zone: 11:30+01:00 was printed "11:30 UTC")."""
    return stored.astimezone(UTC) if stored.tzinfo else stored.replace(tzinfo=UTC)
