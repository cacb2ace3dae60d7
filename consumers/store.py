"""A service's own store (SQLAlchemy Core; SQLite by default): records, processed events, outbox.

One transaction per event holds everything that makes processing effectively once: the rule's
record changes (with before/after images, so a cancellation can undo them), the processed-event
row, and the confirmation in the outbox. Locked or unreachable stores raise StoreBusy (transient).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import (
    Column,
    Date,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, OperationalError

from consumers.rules import Record
from tellusonce.database import connect, ping
from tellusonce.errors import StoreBusy
from tellusonce.events import PersonKey

metadata = MetaData()
records = Table(
    "records",
    metadata,
    Column("record_id", String, primary_key=True),
    Column("data", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
record_people = Table(
    "record_people",
    metadata,
    Column("record_id", String, nullable=False, index=True),
    Column("nino", String, index=True),
    Column("surname", String, nullable=False),
    Column("date_of_birth", Date, nullable=False),
    Column("postcode", String),
)
processed = Table(
    "processed",
    metadata,
    Column("event_id", String, primary_key=True),
    Column("outcome", String, nullable=False),
    Column("processed_at", DateTime(timezone=True), nullable=False),
)
changes = Table(
    "changes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String, nullable=False, index=True),
    Column("record_id", String, nullable=False),
    Column("before", Text),
    Column("after", Text, nullable=False),
)
outbox = Table(
    "outbox", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("confirmation_id", String, nullable=False, index=True),
    Column("event_id", String, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("headers", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True), index=True),
)  # fmt: skip


@dataclass(frozen=True)
class Pending:
    """A confirmation stored in the outbox and not yet acknowledged by Kafka."""

    confirmation_id: str
    event_id: str
    payload: bytes
    headers: list[tuple[str, bytes]]
    row_id: int | None = None


class AlreadyProcessed(Exception):
    """Another transaction (or instance) recorded this event first."""


class Transaction:
    """The operations one event's processing may do, inside one store transaction."""

    def __init__(self, conn: Connection, record_type: type[Record]) -> None:
        self.conn = conn
        self.record_type = record_type

    def processed(self, event_id: str) -> bool:
        """Whether this event was already applied."""
        row = self.conn.execute(
            select(processed.c.event_id).where(processed.c.event_id == event_id)
        )
        return row.first() is not None

    def match(self, key: PersonKey) -> Record | None:
        """The record of a person: by NINO, else by surname + date of birth + postcode."""
        ids: Sequence[str] = []
        if key.nino:  # several records of one person: the one at the event's address first
            ids = (
                self.conn.execute(
                    select(record_people.c.record_id)
                    .where(record_people.c.nino == key.nino)
                    .order_by(
                        (record_people.c.postcode == key.postcode).desc(), record_people.c.record_id
                    )
                )
                .scalars()
                .all()
            )
        if not ids:
            query = select(record_people.c.record_id).where(
                record_people.c.surname == key.surname,
                record_people.c.date_of_birth == key.date_of_birth,
                record_people.c.postcode == key.postcode,
            )
            if key.nino:  # a record with another NINO is another person
                query = query.where(record_people.c.nino.is_(None))
            ids = self.conn.execute(query).scalars().all()
        return self.get(ids[0]) if ids else None

    def get(self, record_id: str) -> Record | None:
        """One record by id."""
        data = self.raw(record_id)
        return None if data is None else self.record_type.model_validate_json(data)

    def put(self, record: Record, event_id: str | None = None) -> None:
        """Insert or replace a record, its matching keys and (for an event) its change images."""
        before = self.raw(record.record_id)
        after = record.model_dump_json()
        now = datetime.now(UTC)
        if before is None:
            self.conn.execute(
                insert(records).values(record_id=record.record_id, data=after, updated_at=now)
            )
        else:
            self.conn.execute(
                update(records)
                .where(records.c.record_id == record.record_id)
                .values(data=after, updated_at=now)
            )
        self.conn.execute(
            delete(record_people).where(record_people.c.record_id == record.record_id)
        )
        keys = record.people()
        if keys:
            self.conn.execute(
                insert(record_people),
                [
                    {
                        "record_id": record.record_id,
                        "nino": k.nino,
                        "surname": k.surname,
                        "date_of_birth": k.date_of_birth,
                        "postcode": k.postcode,
                    }
                    for k in keys
                ],
            )
        if event_id is not None:
            self.conn.execute(
                insert(changes).values(
                    event_id=event_id, record_id=record.record_id, before=before, after=after
                )
            )

    def changes_of(self, event_id: str) -> list[tuple[str, str | None, str]]:
        """(record_id, before, after) JSON images of what an event changed, one per record."""
        rows = self.conn.execute(
            select(changes.c.record_id, changes.c.before, changes.c.after)
            .where(changes.c.event_id == event_id)
            .order_by(changes.c.id)
        ).all()
        merged: dict[str, tuple[str | None, str]] = {}
        for record_id, before, after in rows:
            first_before = merged[record_id][0] if record_id in merged else before
            merged[record_id] = (first_before, after)
        return [(record_id, before, after) for record_id, (before, after) in merged.items()]

    def raw(self, record_id: str) -> str | None:
        """A record's stored JSON image, or None."""
        return self.conn.execute(
            select(records.c.data).where(records.c.record_id == record_id)
        ).scalar()

    def restore(self, record_id: str, image: str | None) -> None:
        """Put a record back to a stored JSON image; None removes it (it did not exist)."""
        if image is None:
            self.conn.execute(delete(records).where(records.c.record_id == record_id))
            self.conn.execute(delete(record_people).where(record_people.c.record_id == record_id))
        else:
            self.put(self.record_type.model_validate_json(image))

    def claim(self, event_id: str, outcome: str) -> None:
        """Record the event as processed, first; raise AlreadyProcessed if it already was."""
        try:
            self.conn.execute(
                insert(processed).values(
                    event_id=event_id, outcome=outcome, processed_at=datetime.now(UTC)
                )
            )
        except IntegrityError as exc:
            raise AlreadyProcessed(event_id) from exc

    def queue(self, confirmation: Pending) -> None:
        """Put a confirmation in the outbox, to be published after this transaction commits."""
        self.conn.execute(
            insert(outbox).values(
                confirmation_id=confirmation.confirmation_id,
                event_id=confirmation.event_id,
                payload=confirmation.payload,
                headers=json.dumps([[k, v.decode()] for k, v in confirmation.headers]),
                created_at=datetime.now(UTC),
            )
        )


class ServiceStore:
    """One service's store."""

    def __init__(self, url: str, record_type: type[Record]) -> None:
        self.engine = connect(url)
        self.record_type = record_type
        self._batch: Transaction | None = None
        try:
            metadata.create_all(self.engine)
        except OperationalError as exc:
            raise StoreBusy(f"store not usable: {exc.orig}") from exc

    @contextmanager
    def unit(self) -> Iterator[None]:
        """One transaction around a consumer's whole batch: one commit (and fsync) for many
        events, each of which gets a savepoint of its own (see event_transaction)."""
        with self.transaction() as tx:
            self._batch = tx
            try:
                yield
            finally:
                self._batch = None

    @contextmanager
    def event_transaction(self) -> Iterator[Transaction]:
        """The work of one event: a savepoint inside the batch's unit, else a transaction."""
        if self._batch is None:
            with self.transaction() as tx:
                yield tx
            return
        try:
            with self._batch.conn.begin_nested():
                yield self._batch
        except OperationalError as exc:
            raise StoreBusy(f"store busy: {type(exc.orig).__name__}") from exc

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """One atomic unit of work; a locked or unreachable store raises StoreBusy."""
        try:
            with self.engine.begin() as conn:
                yield Transaction(conn, self.record_type)
        except OperationalError as exc:
            raise StoreBusy(f"store busy: {type(exc.orig).__name__}") from exc

    def usable(self) -> bool:
        """Whether the store answers a trivial query."""
        return ping(self.engine)

    def pending(self, limit: int = 1000) -> list[Pending]:
        """Confirmations waiting to be published, oldest first."""
        with self.transaction() as tx:
            rows = tx.conn.execute(
                select(
                    outbox.c.id,
                    outbox.c.confirmation_id,
                    outbox.c.event_id,
                    outbox.c.payload,
                    outbox.c.headers,
                )
                .where(outbox.c.sent_at.is_(None))
                .order_by(outbox.c.created_at)
                .limit(limit)
            ).all()
        return [
            Pending(
                r.confirmation_id,
                r.event_id,
                r.payload,
                [(k, v.encode()) for k, v in json.loads(r.headers)],
                r.id,
            )
            for r in rows
        ]

    def mark_sent(self, row_ids: Sequence[int]) -> None:
        """Mark confirmations as acknowledged by Kafka."""
        with self.transaction() as tx:
            tx.conn.execute(
                update(outbox).where(outbox.c.id.in_(row_ids)).values(sent_at=datetime.now(UTC))
            )

    def records(self) -> list[Record]:
        """Every record (for inspection and tests)."""
        with self.transaction() as tx:
            rows = tx.conn.execute(select(records.c.data).order_by(records.c.record_id)).scalars()
            return [self.record_type.model_validate_json(data) for data in rows]

    def outcomes(self) -> dict[str, str]:
        """Processed event ids and their outcomes (for inspection and tests)."""
        with self.transaction() as tx:
            return {r.event_id: r.outcome for r in tx.conn.execute(select(processed)).all()}
