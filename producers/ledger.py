"""The registrar's own record of what it published, so a reference can be corrected or cancelled.

A submission is recorded before it is published (write-ahead), unacknowledged until Kafka
acknowledges it: so one whose acknowledgement never came (it may have reached services) is known
to the next submission of its register entry, and two amendments of one reference made at once,
in any processes, cannot both pass the checks (they run under the ledger's write lock: SQLite's
own, taken as a write transaction begins; on other databases a row every writer locks first).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import (
    Boolean,
    Column,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    bindparam,
    select,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from tellusonce.codec import Codec
from tellusonce.database import INSTANT, BulkInsert, connect, create_or_upgrade, reason, writing
from tellusonce.errors import NotRecorded
from tellusonce.events import Action, LifeEvent
from tellusonce.identity import as_issued, event_id

log = structlog.get_logger("tellusonce.producer")
metadata = MetaData()
submissions = Table(
    "submissions", metadata,
    Column("event_id", String, primary_key=True),
    Column("reference", String, nullable=False, index=True),
    Column("event_type", String, nullable=False),
    Column("action", String, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("office", String, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("published_at", INSTANT, nullable=False),  # or recorded to publish
    Column("unacknowledged", Boolean, nullable=True),  # true until Kafka acknowledged it
)  # fmt: skip
_KNOWN = select(submissions.c.event_id).where(
    submissions.c.event_id.in_(bindparam("event_ids", expanding=True))
)
_ACKNOWLEDGED = (
    submissions.update()
    .where(submissions.c.event_id.in_(bindparam("event_ids", expanding=True)))
    .values(unacknowledged=None, published_at=bindparam("now"))
)
# The write lock of a ledger on a database other than SQLite (whose BEGIN IMMEDIATE is one):
# its one row, locked (SELECT ... FOR UPDATE) by each write transaction before anything else,
# so that one process's checks and record are not interleaved with another's. Without it two
# processes on PostgreSQL each saw a reference unamended and both published an amendment.
_locking = MetaData()  # made on those databases only
ledger_lock = Table("ledger_lock", _locking, Column("id", Integer, primary_key=True))
_LOCK = select(ledger_lock.c.id).where(ledger_lock.c.id == 1).with_for_update()
_INSERT = BulkInsert(submissions)
_WITHDRAW = submissions.delete().where(
    submissions.c.event_id == bindparam("event_id"), submissions.c.unacknowledged.is_(True)
)


class Ledger:
    """Every event this registrar published, as acknowledged by Kafka."""

    def __init__(self, url: str, codec: Codec) -> None:
        self.engine = connect(url)
        # record() reads, then writes, and the API's requests record at once: one at a time in
        # this process (queued here, rather than in SQLite's busy wait, which backs off and
        # starves some), and with SQLite's write lock from its start against other processes
        self._writer = writing(self.engine)
        self._one_writer = threading.Lock()
        self.codec = codec
        create_or_upgrade(self.engine, metadata)
        self._locked = self.engine.dialect.name != "sqlite"
        if self._locked:
            _lock_row(self.engine)

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        """A write transaction holding the ledger's write lock until it ends."""
        with self._one_writer, self._writer.begin() as conn:
            if self._locked:
                conn.execute(_LOCK)
            yield conn

    def reserve(
        self, event: LifeEvent[Any], payload: bytes, earlier: Callable[[], LifeEvent[Any] | None]
    ) -> tuple[LifeEvent[Any] | None, bool]:
        """Before publishing an event: under the ledger's write lock (no other process records
        meanwhile), ask `earlier` what was recorded under its id already (it raises
        SubmissionConflict if the event contradicts the ledger) and, if nothing, record it
        unacknowledged. Returns what was there and whether it is still unacknowledged (None,
        True: this one, recorded now)."""
        try:
            with self._writing() as conn:
                found = earlier()  # its reads see every commit: none can come until this ends
                if found is not None:
                    return found, _unacknowledged(conn, found.envelope.event_id_text)
                _INSERT.execute(conn, [_row(event, payload, unacknowledged=True)])
                return None, True
        except OperationalError as exc:
            log.error("ledger_write_failed", events=1, error=reason(exc))
            raise NotRecorded(
                f"the registrar's ledger could not record it: {reason(exc)}", published=False
            ) from exc

    def withdraw(self, event_id: str) -> None:
        """Forget an event recorded to publish that Kafka refused for good (larger than a
        topic takes): it was never published, and sent again it would be refused again. If the
        ledger cannot write now, the event stays recorded unpublished (refused again if sent
        again), and that is logged: the caller says why it was refused all the same."""
        try:
            with self._writing() as conn:
                conn.execute(_WITHDRAW, {"event_id": event_id})
        except OperationalError as exc:
            log.error("ledger_write_failed", events=1, error=reason(exc))

    def unacknowledged(self, event_id: str) -> bool:
        """Whether an event is recorded but Kafka has not acknowledged it (yet)."""
        with self.engine.connect() as conn:
            return _unacknowledged(conn, event_id)

    def record(self, published: Sequence[tuple[LifeEvent[Any], bytes]], again: bool = True) -> None:
        """Remember events Kafka acknowledged, in one transaction: recorded, or marked
        acknowledged if they were reserved (or resubmitted) already."""
        rows = {e.envelope.event_id_text: _row(e, payload) for e, payload in published}
        try:
            with self._writing() as conn:
                known = list(conn.execute(_KNOWN, {"event_ids": list(rows)}).scalars())
                if known:
                    conn.execute(_ACKNOWLEDGED, {"event_ids": known, "now": datetime.now(UTC)})
                for event_id in known:
                    del rows[event_id]
                if rows:
                    _INSERT.execute(conn, list(rows.values()))
        except IntegrityError:  # recorded meanwhile by a concurrent request: mark it, record
            if not again:  # the others
                raise
            self.record(published, again=False)
        except OperationalError as exc:  # published, not recorded: the caller must say so
            log.error("ledger_write_failed", events=len(rows), error=reason(exc))
            raise NotRecorded(f"the registrar's ledger could not record it: {reason(exc)}") from exc

    def latest(self, reference: str, office: str | None = None) -> LifeEvent[Any] | None:
        """The newest revision Kafka acknowledged under a reference (by this office, if named),
        or None: what a correction or cancellation is made from (one made again after Kafka did
        not acknowledge it is then the same event, published again) and what a status shows."""
        query = select(submissions.c.payload).where(
            submissions.c.reference == as_issued(reference),
            submissions.c.unacknowledged.is_(None),
        )
        if office is not None:
            query = query.where(submissions.c.office == office)
        with self.engine.connect() as conn:
            payload = conn.execute(query.order_by(submissions.c.revision.desc()).limit(1)).scalar()
        return None if payload is None else self._event(payload)

    def newest(self, event: LifeEvent[Any]) -> LifeEvent[Any] | None:
        """The newest revision recorded of an event's registration (see chain), acknowledged by
        Kafka or not, or None: what a new revision must follow."""
        query = (
            select(*_IDENTIFIED, submissions.c.payload)
            .where(*_registration(event))
            .order_by(submissions.c.revision.desc())
        )
        with self.engine.connect() as conn:
            mine = next((row for row in conn.execute(query) if _of(event, row)), None)
        return None if mine is None else self._event(mine.payload)

    def registrations(self, reference: str, acknowledged: bool = True) -> list[LifeEvent[Any]]:
        """The newest revision Kafka acknowledged (or recorded, acknowledged or not) of each
        registration under a reference (its office's entries of one event type): two
        registrations can share a reference (see chain)."""
        query = (
            select(submissions.c.office, submissions.c.event_type, submissions.c.payload)
            .where(submissions.c.reference == as_issued(reference))
            .order_by(submissions.c.revision.desc())
        )
        if acknowledged:
            query = query.where(submissions.c.unacknowledged.is_(None))
        newest: dict[tuple[str, str, tuple[str, int]], LifeEvent[Any]] = {}
        with self.engine.connect() as conn:
            for office, event_type, payload in conn.execute(query):
                event = self._event(payload)  # one registration: its office's register entry
                key = (office, event_type, event.envelope.registration.entry)
                newest.setdefault(key, event)
        return list(newest.values())

    def under(self, reference: str) -> list[tuple[LifeEvent[Any], bool]]:
        """Every event recorded under a reference, oldest revision first, each with whether
        Kafka acknowledged it."""
        query = (
            select(submissions.c.payload, submissions.c.unacknowledged)
            .where(submissions.c.reference == as_issued(reference))
            .order_by(submissions.c.revision)
        )
        with self.engine.connect() as conn:
            return [(self._event(payload), not waiting) for payload, waiting in conn.execute(query)]

    def chain(self, event: LifeEvent[Any]) -> list[str]:
        """The ids of the events of this one's registration (it, and the registration it amends
        or is amended by): under its reference, from its office, of its type. A reference is 50
        bits of an event id, so two registrations' can be the same (about 4% over ten million);
        their events are not each other's."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(*_IDENTIFIED).where(*_registration(event)))
            return [row.event_id for row in rows if _of(event, row)]

    def registered_at(self, event: LifeEvent[Any]) -> datetime:
        """When an event's registration was made (its revision 0's time; an amendment's own is
        when it was made): what a correction's dates are checked against."""
        if event.envelope.revision == 0:
            return event.envelope.registered_at
        query = select(*_IDENTIFIED, submissions.c.payload).where(
            *_registration(event), submissions.c.revision == 0
        )
        with self.engine.connect() as conn:
            mine = next((row for row in conn.execute(query) if _of(event, row)), None)
        registration = event if mine is None else self._event(mine.payload)  # (none: not here)
        return registration.envelope.registered_at

    def acknowledged(self, event_ids: Sequence[str]) -> list[LifeEvent[Any]]:
        """Those of these events Kafka acknowledged."""
        query = select(submissions.c.payload).where(
            submissions.c.event_id.in_(list(event_ids)), submissions.c.unacknowledged.is_(None)
        )
        with self.engine.connect() as conn:
            return [self._event(payload) for payload in conn.execute(query).scalars()]

    def find(self, event_id: str) -> LifeEvent[Any] | None:
        """A published event by id, or None."""
        with self.engine.connect() as conn:
            payload = conn.execute(
                select(submissions.c.payload).where(submissions.c.event_id == event_id)
            ).scalar()
        return None if payload is None else self._event(payload)

    def _event(self, payload: bytes) -> LifeEvent[Any]:
        event = self.codec.decode(payload)
        if not isinstance(event, LifeEvent):
            raise TypeError("the ledger holds only life events")
        return event


_IDENTIFIED = (submissions.c.event_id, submissions.c.action, submissions.c.revision)


def _of(event: LifeEvent[Any], row: Any) -> bool:
    """Whether a ledger row of an event's reference, office and type is of its registration:
    its id is the one its register entry makes for its action and revision (two entries of an
    office can share a reference: a correction of one read the other's revisions as its own,
    and a cancellation of one cancelled the other)."""
    env = event.envelope
    made = event_id(env.event_type, env.registration, Action(row.action), row.revision)
    return bool(str(made) == row.event_id)


def _registration(event: LifeEvent[Any]) -> tuple[Any, ...]:
    """The conditions that pick an event's registration's rows, and others' that share its
    reference (filter them with _of): its reference, office, type."""
    env = event.envelope
    return (
        submissions.c.reference == env.reference,
        submissions.c.office == env.registration.office,
        submissions.c.event_type == env.event_type.value,
    )


def _lock_row(engine: Engine) -> None:
    """The lock's table and row, made by whichever process starts first."""
    create_or_upgrade(engine, _locking)
    with contextlib.suppress(IntegrityError), engine.begin() as conn:  # another made it meanwhile
        if conn.execute(select(ledger_lock.c.id)).first() is None:
            conn.execute(ledger_lock.insert().values(id=1))


def _unacknowledged(conn: Connection, event_id: str) -> bool:
    query = select(submissions.c.unacknowledged).where(submissions.c.event_id == event_id)
    return bool(conn.execute(query).scalar())


def _row(event: LifeEvent[Any], payload: bytes, unacknowledged: bool = False) -> dict[str, Any]:
    env = event.envelope
    return {
        "event_id": env.event_id_text, "reference": env.reference,
        "event_type": env.event_type.value, "action": env.action.value,
        "revision": env.revision, "office": env.registration.office,
        "payload": payload, "published_at": datetime.now(UTC),
        "unacknowledged": unacknowledged or None,
    }  # fmt: skip
