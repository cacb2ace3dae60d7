"""The tracker: joins life events with services' confirmations so registrars can see the status.

It reads every life-event topic (to know which confirmations each event expects, from the
subscription matrix) and the confirmations topic, keeps one row per event and one per
(event, service) in its own store, and answers status by reference. Redelivered confirmations
are duplicates and change nothing.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    delete,
    func,
    insert,
    select,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, OperationalError

from consumers.store import Pending
from tellusonce.codec import Message
from tellusonce.database import connect, ping
from tellusonce.errors import StoreBusy
from tellusonce.events import Confirmation, EventType, LifeEvent, Outcome
from tellusonce.kafka import Received
from tellusonce.metrics import AWAITING, CONFIRMATION_SECONDS, OLDEST_AWAITING
from tellusonce.topics import TRACKER, Topics, subscribers, subscriptions

RECENT_EVENTS = 100_000  # publication times kept in memory for latency observations
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
    Column("registered_at", DateTime(timezone=True), nullable=False),
    Column("published_ms", BigInteger, nullable=False),
    Column("expected", Text, nullable=False),
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
    Column("processed_at", DateTime(timezone=True), nullable=False),
    Column("received_ms", BigInteger, nullable=False),
    PrimaryKeyConstraint("event_id", "service"),
)


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

    @property
    def confirmed(self) -> int:
        """How many services have confirmed."""
        return sum(s.outcome is not None for s in self.services)


class TrackerStore:
    """The tracker's own store of events and confirmations."""

    def __init__(self, url: str) -> None:
        self.engine = connect(url)
        try:
            metadata.create_all(self.engine)
        except OperationalError as exc:
            raise StoreBusy(f"tracker store not usable: {exc.orig}") from exc
        self._batch: Connection | None = None

    def usable(self) -> bool:
        """Whether the store answers a trivial query."""
        return ping(self.engine)

    @contextmanager
    def unit(self) -> Iterator[None]:
        """One transaction around a consumer batch; each message inside gets a savepoint."""
        try:
            with self.engine.begin() as conn:
                self._batch = conn
                try:
                    yield
                finally:
                    self._batch = None
        except OperationalError as exc:
            raise StoreBusy(f"tracker store busy: {type(exc.orig).__name__}") from exc

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        if self._batch is None:
            with self.engine.begin() as conn:
                yield conn
        else:
            with self._batch.begin_nested():
                yield self._batch

    def _insert(self, table: Any, row: dict[str, Any]) -> bool:
        try:
            with self._writing() as conn:
                conn.execute(insert(table).values(**row))
        except IntegrityError:
            return False
        except OperationalError as exc:
            raise StoreBusy(f"tracker store busy: {type(exc.orig).__name__}") from exc
        return True

    def add_event(self, event: LifeEvent[Any], published_ms: int) -> bool:
        """Record an event and the services expected to confirm it; False if known already."""
        env = event.envelope
        return self._insert(
            events,
            {
                "event_id": str(env.event_id),
                "reference": env.reference,
                "event_type": env.event_type.value,
                "action": env.action.value,
                "revision": env.revision,
                "supersedes": str(env.supersedes) if env.supersedes else None,
                "registered_at": env.registered_at,
                "published_ms": published_ms,
                "expected": json.dumps(subscribers(env.event_type)),
            },
        )

    def add_confirmation(self, confirmation: Confirmation, received_ms: int) -> bool:
        """Record a service's confirmation; False if it is a repeat of the one recorded.

        A newer, different answer from the same service (an event applied after a replay from the
        dead-letter topic, say) replaces a REJECTED one.
        """
        row = {
            "event_id": str(confirmation.event_id),
            "service": confirmation.service,
            "confirmation_id": str(confirmation.confirmation_id),
            "outcome": confirmation.outcome.value,
            "actions": json.dumps(confirmation.actions),
            "service_reference": confirmation.service_reference,
            "processed_at": confirmation.processed_at,
            "received_ms": received_ms,
        }
        if self._insert(confirmations, row):
            return True
        key = (confirmations.c.event_id == row["event_id"]) & (
            confirmations.c.service == confirmation.service
        )
        with self._writing() as conn:
            known = conn.execute(select(confirmations.c.outcome).where(key)).scalar()
            if known != Outcome.REJECTED or confirmation.outcome == Outcome.REJECTED:
                return False
            conn.execute(delete(confirmations).where(key))
        return self._insert(confirmations, row)

    def published_ms(self, event_id: str) -> int | None:
        """When an event was published, if the tracker has seen it."""
        with self.engine.connect() as conn:
            return conn.execute(
                select(events.c.published_ms).where(events.c.event_id == event_id)
            ).scalar()

    def status(self, reference: str) -> list[EventStatus]:
        """Every event under a reference, oldest first, with each expected service's answer."""
        titles = {name: s.title for name, s in subscriptions().items()}
        with self.engine.connect() as conn:
            found = conn.execute(
                select(events)
                .where(events.c.reference == reference.upper())
                .order_by(events.c.revision, events.c.published_ms)
            ).all()
            out = []
            for row in found:
                answers = {
                    c.service: c
                    for c in conn.execute(
                        select(confirmations).where(confirmations.c.event_id == row.event_id)
                    )
                }
                services = []
                for service in json.loads(row.expected):
                    c = answers.get(service)
                    services.append(
                        ServiceStatus(
                            service,
                            titles.get(service, service),
                            c.outcome if c else None,
                            tuple(json.loads(c.actions)) if c else (),
                            c.service_reference if c else None,
                            c.processed_at if c else None,
                        )
                    )
                out.append(
                    EventStatus(
                        row.event_id,
                        row.event_type,
                        row.action,
                        row.revision,
                        row.registered_at,
                        tuple(services),
                    )
                )
        return out

    def awaiting(self) -> tuple[int, float]:
        """Events some expected service has not confirmed, and the oldest one's age in seconds."""
        with self.engine.connect() as conn:
            counts: dict[str, int] = dict(
                conn.execute(
                    select(confirmations.c.event_id, func.count()).group_by(
                        confirmations.c.event_id
                    )
                ).all()
            )
            rows = conn.execute(
                select(events.c.event_id, events.c.expected, events.c.published_ms)
            ).all()
        waiting = [
            r.published_ms for r in rows if counts.get(r.event_id, 0) < len(json.loads(r.expected))
        ]
        oldest = (time.time() * 1000 - min(waiting)) / 1000 if waiting else 0.0
        return len(waiting), oldest


class TrackerHandler:
    """The tracker as a runtime handler."""

    dead_letter_topic: str | None = None

    def __init__(self, store: TrackerStore, topics: Topics) -> None:
        self.store = store
        self.name = TRACKER
        self.topics = [*(topics.events(t) for t in EventType), topics.confirmations]
        for service in subscriptions():  # series from 0, so rate() sees the first confirmation
            CONFIRMATION_SECONDS.labels(service)
        self._published: OrderedDict[str, int] = OrderedDict()
        self._early: dict[str, list[tuple[str, int]]] = {}

    def handle(self, message: Message, received: Received) -> str:
        """Record an event or a confirmation; observe confirmation latency once both are known.

        Publication times of recent events are kept in memory, so a confirmation costs one
        insert; a confirmation that arrives before its event (another topic, another partition)
        is observed when the event arrives.
        """
        if isinstance(message, Confirmation):
            if not self.store.add_confirmation(message, received.timestamp_ms):
                return "duplicate"
            event_id = str(message.event_id)
            published = self._published.get(event_id) or self.store.published_ms(event_id)
            if published is None:
                self._early.setdefault(event_id, []).append(
                    (message.service, received.timestamp_ms)
                )
            else:
                self._observe(message.service, received.timestamp_ms - published)
            return "recorded"
        if not self.store.add_event(message, received.timestamp_ms):
            return "duplicate"
        event_id = str(message.envelope.event_id)
        self._published[event_id] = received.timestamp_ms
        if len(self._published) > RECENT_EVENTS:
            self._published.popitem(last=False)
        for service, confirmed_ms in self._early.pop(event_id, []):
            self._observe(service, confirmed_ms - received.timestamp_ms)
        return "recorded"

    @staticmethod
    def _observe(service: str, milliseconds: int) -> None:
        CONFIRMATION_SECONDS.labels(service).observe(max(milliseconds, 0) / 1000)

    def reject(self, message: Message, error: Exception) -> None:
        """The tracker refuses nothing it can decode."""

    def batch(self) -> AbstractContextManager[None]:
        """One store transaction for a consumer batch."""
        return self.store.unit()

    def outbox(self) -> list[Pending]:
        return []

    def sent(self, row_ids: Sequence[int]) -> None:
        """The tracker publishes nothing."""

    def usable(self) -> bool:
        return self.store.usable()

    def observe(self) -> None:
        count, oldest = self.store.awaiting()
        AWAITING.set(count)
        OLDEST_AWAITING.set(oldest)
