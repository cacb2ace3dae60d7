"""A service's own store (SQLAlchemy Core; SQLite by default): records, processed events, outbox.

One transaction holds everything that makes processing effectively once: the rule's record
changes (with before/after images, so a cancellation can undo them), the processed-event row and
the confirmation in the outbox. A consumer's transaction spans its poll batch (one commit for
many events; see ServiceStore.unit). Locked or unreachable stores raise StoreBusy (transient).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

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
    bindparam,
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


# Statements built once: building a SQLAlchemy statement costs more than running it on SQLite.
_PROCESSED = select(processed.c.event_id).where(processed.c.event_id == bindparam("event_id"))
_PROCESSED_AMONG = select(processed.c.event_id).where(
    processed.c.event_id.in_(bindparam("event_ids", expanding=True))
)
_MATCHED = select(records.c.record_id, records.c.data).join(
    record_people, record_people.c.record_id == records.c.record_id
)
# Several records of one person: the one at the event's address first.
_BY_NINO = _MATCHED.where(record_people.c.nino == bindparam("nino")).order_by(
    (record_people.c.postcode == bindparam("postcode")).desc(), records.c.record_id
)
_BY_DETAILS = _MATCHED.where(
    record_people.c.surname == bindparam("surname"),
    record_people.c.date_of_birth == bindparam("date_of_birth"),
    record_people.c.postcode == bindparam("postcode"),
).order_by(records.c.record_id)
_BY_DETAILS_WITHOUT_NINO = _BY_DETAILS.where(record_people.c.nino.is_(None))
_RAW = select(records.c.data).where(records.c.record_id == bindparam("id"))
_INSERT_RECORD = insert(records)
_UPDATE_RECORD = (
    update(records)
    .where(records.c.record_id == bindparam("id"))
    .values(data=bindparam("data"), updated_at=bindparam("at"))
)
_DELETE_RECORD = delete(records).where(records.c.record_id == bindparam("id"))
_DELETE_PEOPLE = delete(record_people).where(record_people.c.record_id == bindparam("id"))
_INSERT_PEOPLE = insert(record_people)
_INSERT_CHANGE = insert(changes)
_CHANGES_OF = (
    select(changes.c.record_id, changes.c.before, changes.c.after)
    .where(changes.c.event_id == bindparam("event_id"))
    .order_by(changes.c.id)
)
_CLAIM = insert(processed)
_QUEUE = insert(outbox)


class Transaction:
    """The operations processing an event may do, inside one store transaction (a batch's).

    Records are read and written at once (a record's image read here is kept, so the next event
    of the batch about the same person does not read it again). Processed rows, change images and
    outbox rows are only added, so they are written together, in one statement each, when the
    transaction ends (or before a read that needs them).
    """

    def __init__(self, conn: Connection, record_type: type[Record]) -> None:
        self.conn = conn
        self.record_type = record_type
        self._images: dict[str, tuple[str | None, Record | None]] = {}
        self._looked_up: set[str] = set()  # events whose processed rows were read up front
        self._seen: set[str] = set()  # ... those of them processed
        self._claims: dict[str, dict[str, Any]] = {}
        self._changes: list[dict[str, Any]] = []
        self._outbox: list[dict[str, Any]] = []
        self.writes = 0  # statements run that changed records

    def processed(self, event_id: str) -> bool:
        """Whether this event was already applied."""
        if event_id in self._seen or event_id in self._claims:
            return True
        if event_id in self._looked_up:
            return False
        return self.conn.execute(_PROCESSED, {"event_id": event_id}).first() is not None

    def look_up_processed(self, event_ids: Sequence[str]) -> None:
        """Read which of a batch's events were processed before, in one query."""
        wanted = list({e for e in event_ids if e not in self._looked_up})
        if wanted:
            found = self.conn.execute(_PROCESSED_AMONG, {"event_ids": wanted})
            self._seen.update(found.scalars())
            self._looked_up.update(wanted)

    def match(self, key: PersonKey) -> Record | None:
        """The record of a person: by NINO, else by surname + date of birth + postcode."""
        row = None
        if key.nino:
            row = self.conn.execute(_BY_NINO, {"nino": key.nino, "postcode": key.postcode}).first()
        if row is None:
            details = {
                "surname": key.surname,
                "date_of_birth": key.date_of_birth,
                "postcode": key.postcode,
            }
            # with a NINO, a record with another NINO is another person
            query = _BY_DETAILS_WITHOUT_NINO if key.nino else _BY_DETAILS
            row = self.conn.execute(query, details).first()
        return None if row is None else self._image(row.record_id, row.data)[1]

    def get(self, record_id: str) -> Record | None:
        """One record by id."""
        if record_id not in self._images:
            self._image(record_id, self.conn.execute(_RAW, {"id": record_id}).scalar())
        return self._images[record_id][1]

    def raw(self, record_id: str) -> str | None:
        """A record's stored JSON image, or None."""
        self.get(record_id)
        return self._images[record_id][0]

    def _image(self, record_id: str, data: str | None) -> tuple[str | None, Record | None]:
        known = self._images.get(record_id)
        if known is None or known[0] != data:
            record = None if data is None else self.record_type.model_validate_json(data)
            known = self._images[record_id] = (data, record)
        return known

    def put(self, record: Record, event_id: str | None = None) -> None:
        """Insert or replace a record, its matching keys and (for an event) its change images."""
        record_id = record.record_id
        previous = self.get(record_id)
        before = self._images[record_id][0]
        after = record.model_dump_json()
        now = datetime.now(UTC)
        keys = record.people()
        if previous is None:
            self.conn.execute(
                _INSERT_RECORD, {"record_id": record_id, "data": after, "updated_at": now}
            )
        else:
            self.conn.execute(_UPDATE_RECORD, {"id": record_id, "data": after, "at": now})
        self.writes += 1
        self._images[record_id] = (after, record)
        if previous is None or previous.people() != keys:
            self._index(record_id, keys, replace=previous is not None)
        if event_id is not None:
            self._changes.append(
                {"event_id": event_id, "record_id": record_id, "before": before, "after": after}
            )

    def _index(self, record_id: str, keys: Sequence[PersonKey], replace: bool) -> None:
        """The matching keys of a record (the people it is about)."""
        if replace:
            self.conn.execute(_DELETE_PEOPLE, {"id": record_id})
        if keys:
            self.conn.execute(
                _INSERT_PEOPLE,
                [
                    {
                        "record_id": record_id,
                        "nino": k.nino,
                        "surname": k.surname,
                        "date_of_birth": k.date_of_birth,
                        "postcode": k.postcode,
                    }
                    for k in keys
                ],
            )

    def changes_of(self, event_id: str) -> list[tuple[str, str | None, str]]:
        """(record_id, before, after) JSON images of what an event changed, one per record."""
        self.flush()
        rows = self.conn.execute(_CHANGES_OF, {"event_id": event_id}).all()
        merged: dict[str, tuple[str | None, str]] = {}
        for record_id, before, after in rows:
            first_before = merged[record_id][0] if record_id in merged else before
            merged[record_id] = (first_before, after)
        return [(record_id, before, after) for record_id, (before, after) in merged.items()]

    def restore(self, record_id: str, image: str | None) -> None:
        """Put a record back to a stored JSON image; None removes it (it did not exist)."""
        if image is None:
            self.conn.execute(_DELETE_RECORD, {"id": record_id})
            self.conn.execute(_DELETE_PEOPLE, {"id": record_id})
            self.writes += 1
            self._images[record_id] = (None, None)
        else:
            self.put(self.record_type.model_validate_json(image))

    def claim(self, event_id: str, outcome: str) -> None:
        """Record the event as processed, first; raise AlreadyProcessed if it already was."""
        if self.processed(event_id):
            raise AlreadyProcessed(event_id)
        self._claims[event_id] = {
            "event_id": event_id,
            "outcome": outcome,
            "processed_at": datetime.now(UTC),
        }

    def queue(self, confirmation: Pending) -> None:
        """Put a confirmation in the outbox, to be published after this transaction commits."""
        self._outbox.append(
            {
                "confirmation_id": confirmation.confirmation_id,
                "event_id": confirmation.event_id,
                "payload": confirmation.payload,
                "headers": json.dumps([[k, v.decode()] for k, v in confirmation.headers]),
                "created_at": datetime.now(UTC),
                "sent_at": None,
            }
        )

    def mark(self) -> tuple[int, int, int, int]:
        """Where the added rows and the writes stand (to drop an event's rows if it fails)."""
        return len(self._claims), len(self._changes), len(self._outbox), self.writes

    def drop_since(self, mark: tuple[int, int, int, int]) -> bool:
        """Forget the rows an event added since `mark`; False if it already changed records."""
        claims, changes_, outbox_, writes = mark
        for event_id in list(self._claims)[claims:]:
            del self._claims[event_id]
        del self._changes[changes_:]
        del self._outbox[outbox_:]
        return self.writes == writes

    def flush(self) -> None:
        """Write the added rows: processed events, change images, outbox confirmations."""
        try:
            if self._claims:
                self.conn.execute(_CLAIM, list(self._claims.values()))
        except IntegrityError as exc:  # another instance recorded one of them meanwhile
            raise AlreadyProcessed(", ".join(self._claims)) from exc
        self._seen.update(self._claims)
        self._claims.clear()
        for statement, rows in ((_INSERT_CHANGE, self._changes), (_QUEUE, self._outbox)):
            if rows:
                self.conn.execute(statement, rows)
                rows.clear()


class ServiceStore:
    """One service's store."""

    def __init__(self, url: str, record_type: type[Record]) -> None:
        self.engine = connect(url)
        self.record_type = record_type
        self._batch: Transaction | None = None
        self._broken: BaseException | None = None  # what failed an event of the batch half-way
        try:
            metadata.create_all(self.engine)
        except OperationalError as exc:
            raise StoreBusy(f"store not usable: {exc.orig}") from exc

    @contextmanager
    def unit(self, event_ids: Sequence[str] = ()) -> Iterator[None]:
        """One transaction around a consumer's whole batch: one commit (and fsync) for many
        events. Which of them were processed before is read once, up front.

        An event that fails before changing anything (a rule rejecting it, a duplicate) leaves
        no trace; one that fails after changing records fails the whole unit (StoreBusy), which
        is then retried from the batch's first message.
        """
        with self.transaction() as tx:
            tx.look_up_processed(event_ids)
            self._batch = tx
            self._broken = None
            try:
                yield
            finally:
                self._batch = None
            if self._broken is not None:
                raise StoreBusy(f"an event failed half-way: {self._broken}") from self._broken

    @contextmanager
    def event_transaction(self) -> Iterator[Transaction]:
        """The work of one event: inside the batch's unit, else a transaction of its own."""
        tx = self._batch
        if tx is None:
            with self.transaction() as tx:
                yield tx
            return
        mark = tx.mark()
        try:
            yield tx
        except BaseException as exc:
            if not tx.drop_since(mark):
                self._broken = exc
            raise

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """One atomic unit of work; a locked or unreachable store raises StoreBusy, and so does
        another instance having processed one of its events meanwhile."""
        try:
            with self.engine.begin() as conn:
                tx = Transaction(conn, self.record_type)
                yield tx
                tx.flush()
        except OperationalError as exc:
            raise StoreBusy(f"store busy: {type(exc.orig).__name__}") from exc
        except AlreadyProcessed as exc:
            raise StoreBusy(f"processed meanwhile by another instance: {exc}") from exc

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
