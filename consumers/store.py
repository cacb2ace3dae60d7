"""A service's own store (SQLAlchemy Core; SQLite by default): records, processed events, outbox.

One transaction holds everything that makes processing effectively once: the rule's record
changes (with before/after images, so a cancellation can undo them), the processed-event row and
the confirmation in the outbox. A consumer's transaction spans its poll batch (one commit for
many events; see ServiceStore.unit). Locked or unreachable stores raise StoreBusy (transient).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

import orjson
from pydantic import ValidationError
from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    delete,
    func,
    literal,
    select,
    text,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import (
    IntegrityError,
    InterfaceError,
    InternalError,
    OperationalError,
    PendingRollbackError,
)

from consumers.people import Born, KnownPeople
from consumers.rules import Record, is_the_dead
from tellusonce.database import (
    DAY,
    INSTANT,
    Bulk,
    BulkInsert,
    Connections,
    Query,
    alone,
    connect,
    create_or_upgrade,
    ping,
    reason,
)
from tellusonce.errors import StoreBusy, UnitFailed, UnreadableRecord, invalid_fields
from tellusonce.events import PersonKey
from tellusonce.fields import NAME_KEY_VERSION

metadata = MetaData()
records = Table(
    "records",
    metadata,
    Column("record_id", String, primary_key=True),
    Column("data", Text, nullable=False),
    Column("updated_at", INSTANT, nullable=False),
)
record_people = Table(
    "record_people",
    metadata,
    Column("record_id", String, nullable=False, index=True),
    Column("nino", String, index=True),
    Column("surname", String, nullable=False),
    Column("date_of_birth", DAY, nullable=False),
    Column("postcode", String),
    Column("given_names", String),  # as matched (name_key): to tell twins' records apart
    # people are matched without a NINO by surname + date of birth (+ postcode)
    Index("ix_record_people_details", "surname", "date_of_birth"),
)
# The places (tellusonce.events.Address.place) a record is at, for a record type whose
# records are about a property (a Council Tax account): an event finds the record at an address
record_places = Table(
    "record_places",
    metadata,
    Column("record_id", String, nullable=False, index=True),
    Column("place", String, nullable=False, index=True),
)
# Deaths of people this service had no record of (NO_RECORD), with the message that told them:
# a marriage, move or birth dated before a death and read after it (another topic) may put the
# person on a record, and the death is then applied again (consumers/applier.py)
unmatched_deaths = Table(
    "unmatched_deaths",
    metadata,
    Column("event_id", String, primary_key=True),
    Column("nino", String, index=True),
    Column("surname", String, nullable=False),
    Column("date_of_birth", DAY, nullable=False),
    Column("given_names", String),  # as matched (name_key)
    Column("died_on", DAY, nullable=False),
    Column("message", LargeBinary, nullable=False),
    Column("kept_at", INSTANT, nullable=False),  # forgotten some days after (an hourly scan)
    Index("ix_unmatched_deaths_details", "surname", "date_of_birth"),
)
processed = Table(
    "processed",
    metadata,
    Column("event_id", String, primary_key=True),
    Column("outcome", String, nullable=False),
    Column("processed_at", INSTANT, nullable=False),
    # the message's digest (tellusonce.identity.message_digest): a redelivery of the same bytes
    # is known as a repeat without decoding it. None for rows of stores older than the column.
    Column("digest", BigInteger),
    # what a correction or cancellation superseded: where an amendment of one refused here
    # (REJECTED, nothing changed) finds the effects in place. None for registrations, and for
    # rows of stores older than the column.
    Column("supersedes", String),
    # amendments are few: only their rows are indexed
    Index(
        "ix_processed_supersedes",
        "supersedes",
        sqlite_where=text("supersedes IS NOT NULL"),
        postgresql_where=text("supersedes IS NOT NULL"),
    ),
)
# A correction or cancellation this service refused (dead-lettered: confirmed REJECTED, nothing
# applied, no processed row, so that a replay after a fix is applied): what it superseded. An
# amendment of it finds, through this, the effects it would have replaced; the events it and
# its own amendments supersede are known to be superseded (a chain O -> C1 -> X with C1 refused
# here: X undoes O's effects, and O or C1 replayed later is not applied).
refused = Table(
    "refused_amendments",
    metadata,
    Column("event_id", String, primary_key=True),
    Column("supersedes", String, nullable=False, index=True),
)
# what a store keeps about itself: "people_version", the record type's PEOPLE_VERSION and the
# NAME_KEY_VERSION its matching keys (and places) were made by; "deaths_version", the
# NAME_KEY_VERSION its unmatched deaths' keys were made by
store_meta = Table(
    "store_meta",
    metadata,
    Column("name", String, primary_key=True),
    Column("value", String, nullable=False),
)
changes = Table(
    "changes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String, nullable=False, index=True),
    # (indexed: an amendment asks whether a later event changed or read its records)
    Column("record_id", String, nullable=False, index=True),
    # before == after: the event read the record and left it as it was (Transaction.read)
    Column("before", Text),
    Column("after", Text, nullable=False),
)
outbox = Table(
    "outbox", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("confirmation_id", String, nullable=False),
    Column("event_id", String, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("headers", Text, nullable=False),
    Column("created_at", INSTANT, nullable=False),
    Column("sent_at", INSTANT, index=True),
    # the store (a process's) that wrote it: it relays its own rows at once, another's once
    # ORPHANED_AFTER has passed (that instance stopped before relaying them); instances sharing
    # a store published each other's rows as they were written, every confirmation twice.
    # None: rows of stores older than the column.
    Column("writer", String),
)  # fmt: skip


@dataclass(frozen=True)
class Pending:
    """A confirmation stored in the outbox and not yet acknowledged by Kafka."""

    confirmation_id: str
    event_id: str
    payload: bytes
    headers: list[tuple[str, bytes]]
    row_id: int | None = None


class UnmatchedDeath(NamedTuple):
    """A death of someone this service had no record of, as kept: the deceased's matching key
    and the message that told it."""

    event_id: str
    deceased: PersonKey  # (no postcode)
    died_on: date
    message: bytes

    def of(self, key: PersonKey) -> bool:
        """Whether the death is of this person (rules.is_the_dead)."""
        return is_the_dead(self.deceased, key)


def _death_index(key: PersonKey) -> list[tuple[object, ...]]:
    """Where a death is found in memory: by NINO, and by surname and date of birth."""
    details = ("born", key.surname, key.date_of_birth)
    return [("nino", key.nino), details] if key.nino else [details]


class AlreadyProcessed(Exception):
    """Another transaction (or instance) recorded this event first."""


# Statements built once: building a SQLAlchemy statement costs more than running it on SQLite.
_PROCESSED = select(processed.c.event_id).where(processed.c.event_id == bindparam("event_id"))
_PROCESSED_AMONG = Query(
    select(processed.c.event_id, processed.c.digest).where(
        processed.c.event_id.in_(bindparam("event_ids", expanding=True))
    )
)
# The matching keys of people, with their records' JSON (matched in memory: consumers/people.py)
_KEYS = select(
    record_people.c.record_id,
    record_people.c.nino,
    record_people.c.surname,
    record_people.c.date_of_birth,
    record_people.c.postcode,
    record_people.c.given_names,
    records.c.data,
).outerjoin(records, records.c.record_id == record_people.c.record_id)
_KEYS_OF_NINOS = Query(_KEYS.where(record_people.c.nino.in_(bindparam("ninos", expanding=True))))
# (surname IN ...: SQLite searches the index only for that, not for a row-value IN alone)
_KEYS_OF_DETAILS = Query(
    _KEYS.where(
        record_people.c.surname.in_(bindparam("surnames", expanding=True)),
        tuple_(record_people.c.surname, record_people.c.date_of_birth).in_(
            bindparam("details", expanding=True)
        ),
    )
)
_RECORDS_AT = Query(
    select(record_places.c.place, record_places.c.record_id, records.c.data)
    .outerjoin(records, records.c.record_id == record_places.c.record_id)
    .where(record_places.c.place.in_(bindparam("places", expanding=True)))
)
_DELETE_PLACES = Query(
    delete(record_places).where(record_places.c.record_id.in_(bindparam("ids", expanding=True)))
)
_INSERT_PLACES = BulkInsert(record_places)
_DEATHS = select(
    unmatched_deaths.c.event_id,
    unmatched_deaths.c.nino,
    unmatched_deaths.c.surname,
    unmatched_deaths.c.date_of_birth,
    unmatched_deaths.c.given_names,
    unmatched_deaths.c.died_on,
    unmatched_deaths.c.message,
)
# by NINO (a family name changed since), and by surname and date of birth (as _KEYS_OF_*)
_DEATHS_OF_NINOS = Query(
    _DEATHS.where(unmatched_deaths.c.nino.in_(bindparam("ninos", expanding=True)))
)
_DEATHS_OF_DETAILS = Query(
    _DEATHS.where(
        unmatched_deaths.c.surname.in_(bindparam("surnames", expanding=True)),
        tuple_(unmatched_deaths.c.surname, unmatched_deaths.c.date_of_birth).in_(
            bindparam("details", expanding=True)
        ),
    )
)
_REMEMBER_DEATHS = BulkInsert(unmatched_deaths)
_PRUNE_DEATHS = delete(unmatched_deaths).where(unmatched_deaths.c.kept_at < bindparam("before"))
PRUNE_EVERY = timedelta(hours=1)  # how often a store forgets the deaths kept too long
_KEY_DEATH = (
    update(unmatched_deaths)
    .where(unmatched_deaths.c.event_id == bindparam("id"))
    .values(
        nino=bindparam("nino"),
        surname=bindparam("surname"),
        date_of_birth=bindparam("date_of_birth"),
        given_names=bindparam("given_names"),
    )
)
_FORGET_DEATHS = Query(
    delete(unmatched_deaths).where(
        unmatched_deaths.c.event_id.in_(bindparam("ids", expanding=True))
    )
)
# On PostgreSQL a unit whose events name places takes this lock before it reads anything, so
# that its snapshot is taken once another instance's unit about places committed: at
# REPEATABLE READ two units that each found no account at a place opened one each (two new
# rows conflict in nothing). SQLite writes one transaction at a time, and refuses the write of
# a transaction whose reads another's commit outdated.
_LOCK_PLACES = text("LOCK TABLE record_places IN SHARE ROW EXCLUSIVE MODE")
_RAW = select(records.c.data).where(records.c.record_id == bindparam("id"))
_INSERT_RECORDS = BulkInsert(records)
_UPDATE_RECORD = Bulk(
    update(records)
    .where(records.c.record_id == bindparam("id"))
    .values(data=bindparam("data"), updated_at=bindparam("at"))
)
_DELETE_RECORDS = delete(records).where(records.c.record_id.in_(bindparam("ids", expanding=True)))
_DELETE_PEOPLE = delete(record_people).where(
    record_people.c.record_id.in_(bindparam("ids", expanding=True))
)
_INSERT_PEOPLE = BulkInsert(record_people)
_INSERT_CHANGES = BulkInsert(changes)
_CHANGES_OF = (
    select(changes.c.record_id, changes.c.before, changes.c.after)
    .where(changes.c.event_id == bindparam("event_id"))
    .order_by(changes.c.id)
)
_LAST_CHANGE = (
    select(func.max(changes.c.id))
    .where(changes.c.record_id == bindparam("record_id"))
    .where(changes.c.event_id == bindparam("event_id"))
    .scalar_subquery()
)
_LATER = (  # the events that changed or read a record after an event's last change of it
    select(changes.c.event_id)
    .distinct()
    .where(changes.c.record_id == bindparam("record_id"))
    .where(changes.c.event_id != bindparam("event_id"))
    .where(changes.c.id > _LAST_CHANGE)
)
_AMENDMENTS = union_all(  # of an event, processed (with their outcomes) or refused here
    select(processed.c.event_id, processed.c.outcome).where(
        processed.c.supersedes == bindparam("event_id")
    ),
    select(refused.c.event_id, literal("REJECTED")).where(
        refused.c.supersedes == bindparam("event_id")
    ),
)
_CLAIM = BulkInsert(processed)
# events an amendment processed, or refused, here supersedes: one statement (a batch asks it)
_SUPERSEDED_AMONG = Query(
    union_all(
        select(processed.c.supersedes).where(
            processed.c.supersedes.in_(bindparam("event_ids", expanding=True))
        ),
        select(refused.c.supersedes).where(
            refused.c.supersedes.in_(bindparam("event_ids", expanding=True))
        ),
    )
)
_PROCESSED_ROW = select(processed.c.outcome, processed.c.supersedes).where(
    processed.c.event_id == bindparam("event_id")
)
_REFUSED_AMONG = Query(
    select(refused.c.event_id).where(refused.c.event_id.in_(bindparam("event_ids", expanding=True)))
)
_REFUSED_ROW = select(refused.c.supersedes).where(refused.c.event_id == bindparam("event_id"))
_REFUSE = BulkInsert(refused)
_QUEUE = BulkInsert(outbox)
_PENDING = Query(
    select(
        outbox.c.id, outbox.c.confirmation_id, outbox.c.event_id, outbox.c.payload, outbox.c.headers
    )
    .where(outbox.c.sent_at.is_(None))
    .where(
        (outbox.c.writer == bindparam("writer"))
        | outbox.c.writer.is_(None)
        | (outbox.c.created_at < bindparam("orphaned"))
    )
    .order_by(outbox.c.id)
    .limit(bindparam("limit"))
)
PENDING_LIMIT = 1000  # outbox rows published at once
ORPHANED_AFTER = timedelta(seconds=10)  # another writer's unsent rows relayed after this
_COUNT_PENDING = select(func.count()).select_from(outbox).where(outbox.c.sent_at.is_(None))
_MARK_SENT = Query(
    update(outbox)
    .where(outbox.c.id.in_(bindparam("ids", expanding=True)))
    .values(sent_at=bindparam("at"))
)


class Lookup(NamedTuple):
    """Events asked about, and those of them processed with their messages' digests (None for
    rows stored before digests were)."""

    asked: set[str]
    processed: dict[str, int | None]


Image = tuple[str | None, Record | None]
"""A record's stored JSON and its model, both None if there is no such record."""
_ABSENT = object()


class Transaction:
    """What processing events may do inside one store transaction (a consumer batch's).

    Reads go to the database: which events were processed, and the records and matching keys of
    the people the batch names, up front, in a few queries. Everything an event changes is kept
    here until the transaction ends, then written in one statement per kind: records, matching
    keys, processed rows, change images, outbox rows. So an event that fails part-way is undone
    here (rollback_to) and leaves no trace, while the rest of its batch is kept.
    """

    def __init__(self, conn: Connection, record_type: type[Record], writer: str = "") -> None:
        self.conn = conn
        self.record_type = record_type
        self.writer = writer  # its outbox rows' (ServiceStore.writer)
        self._images: dict[str, Image] = {}  # records read or changed, as they are now
        self._unread: dict[str, str | None] = {}  # JSON of records read up front, not parsed yet
        self._people = KnownPeople()
        self._looked_up: set[str] = set()  # events whose processed rows were read up front
        self._seen: set[str] = set()  # ... those of them processed
        self._superseded: set[str] = set()  # ... those of them an amendment processed names
        # kept until flush(): changed records, with whether their row exists in the database
        self._stored: dict[str, bool] = {}
        self._changed_at: dict[str, datetime] = {}
        self._keys: dict[str, Sequence[PersonKey]] = {}  # records whose matching keys changed
        # records by place (Record.places), of the places read or asked about; those whose
        # places changed here, with their places now, kept until flush()
        self.with_places = self.places_of(record_type)
        self._at_place: dict[str, set[str]] = {}
        self._places_read: set[str] = set()
        self._placed: dict[str, Sequence[str]] = {}
        self._claims: dict[str, dict[str, Any]] = {}
        self._refused: dict[str, str] = {}  # amendments refused: what each superseded
        self._changes: list[dict[str, Any]] = []
        self._outbox: list[dict[str, Any]] = []
        self._undo: list[Callable[[], object]] = []
        # unmatched deaths (UnmatchedDeath) of the NINOs and surnames read, those remembered
        # here, and the event ids of those forgotten here, kept until flush()
        self._deaths: dict[str, UnmatchedDeath] = {}
        self._death_ids: dict[tuple[object, ...], set[str]] = {}  # by _death_index
        self._deaths_read: tuple[set[str], set[Born]] = (set(), set())
        self._remembered: dict[str, dict[str, Any]] = {}
        self._forgotten: set[str] = set()
        self.at = datetime.now(UTC)
        """The time of the event under way: its processed row's, its records' and its
        confirmation's (one time, bound as one text)."""

    @staticmethod
    def places_of(record_type: type[Record]) -> bool:
        """Whether records of a type are found at places (Record.places)."""
        return record_type.places is not Record.places

    def processed(self, event_id: str) -> bool:
        """Whether this event was already applied."""
        if event_id in self._seen or event_id in self._claims:
            return True
        if event_id in self._looked_up:
            return False
        return self.conn.execute(_PROCESSED, {"event_id": event_id}).first() is not None

    def look_up_processed(self, event_ids: Sequence[str], known: Lookup | None = None) -> None:
        """Read which of a batch's events were processed before, in one query; what `known`
        (read just before this transaction) answers is not asked again."""
        if known is not None:
            self._looked_up.update(known.asked)
            self._seen.update(known.processed)
        wanted = list({e for e in event_ids if e not in self._looked_up})
        if wanted:
            self._seen.update(self.processed_among(wanted))
            self._looked_up.update(wanted)
        asked = list(set(event_ids))
        if asked:
            found = _SUPERSEDED_AMONG.rows(self.conn, {"event_ids": asked})
            self._superseded.update(event_id for (event_id,) in found)

    def superseded(self, event_id: str) -> bool:
        """Whether a correction or cancellation of this event was processed, or refused, here
        already (it came first: this event was dead-lettered, and replayed after it)."""
        if event_id in self._superseded:
            return True
        if event_id in self._looked_up:
            return False
        return bool(_SUPERSEDED_AMONG.rows(self.conn, {"event_ids": [event_id]}))

    def refuse(self, event_id: str, supersedes: str) -> None:
        """Keep what an amendment refused here superseded (see `refused`)."""
        if event_id in self._refused:
            return
        self._refused[event_id] = supersedes
        self._undo.append(lambda: self._refused.pop(event_id))
        if supersedes not in self._superseded:
            self._superseded.add(supersedes)
            self._undo.append(lambda: self._superseded.discard(supersedes))

    def processed_among(self, event_ids: Sequence[str]) -> dict[str, int | None]:
        """Which of these events were processed, with the digest of the message each came in
        (None for rows stored before digests were), in one query."""
        return dict(_PROCESSED_AMONG.rows(self.conn, {"event_ids": event_ids}))

    def _by_keys(
        self,
        keys: Iterable[PersonKey],
        read: tuple[set[str], set[Born]],
        by_ninos: Query,
        by_details: Query,
    ) -> tuple[set[str], set[Born], list[tuple[Any, ...]]]:
        """The NINOs and the surnames with dates of birth of these people not read yet, and the
        rows of at most two queries for them: by the NINOs, and by the surnames and births."""
        keys = list(keys)
        ninos = {k.nino for k in keys if k.nino} - read[0]
        details = {(k.surname, k.date_of_birth) for k in keys} - read[1]
        rows: list[tuple[Any, ...]] = []
        if ninos:
            rows += by_ninos.rows(self.conn, {"ninos": list(ninos)})
        if details:
            surnames = list({surname for surname, _ in details})
            rows += by_details.rows(self.conn, {"surnames": surnames, "details": list(details)})
        return ninos, details, rows

    def look_up_people(self, keys: Iterable[PersonKey]) -> None:
        """Read the matching keys and records of people (a batch's), in at most two queries: by
        their NINOs, and by their surnames with dates of birth."""
        read = (self._people.ninos, self._people.details)
        ninos, details, rows = self._by_keys(keys, read, _KEYS_OF_NINOS, _KEYS_OF_DETAILS)
        people = []
        for record_id, nino, surname, born, postcode, given, data in rows:
            if record_id in self._keys:  # changed here: known already
                continue
            if record_id not in self._images:
                self._unread[record_id] = data
            people.append((record_id, PersonKey(nino, surname, born, postcode, given)))
        self._people.read(ninos, details, people)

    def look_up_deaths(self, keys: Iterable[PersonKey]) -> None:
        """Read the unmatched deaths of people (a batch's), in at most two queries: by their
        NINOs, and by their surnames with dates of birth."""
        ninos, details, rows = self._by_keys(
            keys, self._deaths_read, _DEATHS_OF_NINOS, _DEATHS_OF_DETAILS
        )
        for event_id, nino, surname, born, given, died_on, message in rows:
            if event_id not in self._deaths:
                deceased = PersonKey(nino, surname, born, None, given)
                self._know_death(UnmatchedDeath(event_id, deceased, died_on, message))
        self._deaths_read[0].update(ninos)
        self._deaths_read[1].update(details)

    def deaths_on(self, records: Iterable[Record]) -> list[UnmatchedDeath]:
        """The unmatched deaths of anyone on these records, whenever they died, earliest first."""
        keys = [key for record in records for key in record.people()]
        return self.deaths_since(keys, date.min) if keys else []

    def deaths_since(self, keys: Sequence[PersonKey], day: date) -> list[UnmatchedDeath]:
        """The unmatched deaths of these people on or after a day, earliest first."""
        self.look_up_deaths(keys)
        ids = {i for key in keys for k in _death_index(key) for i in self._death_ids.get(k, ())}
        found = [self._deaths[i] for i in ids - self._forgotten]
        return sorted(
            (d for d in found if d.died_on >= day and any(d.of(key) for key in keys)),
            key=lambda d: (d.died_on, d.event_id),
        )

    def _know_death(self, death: UnmatchedDeath) -> None:
        self._deaths[death.event_id] = death
        for k in _death_index(death.deceased):
            self._death_ids.setdefault(k, set()).add(death.event_id)

    def _unknow_death(self, event_id: str) -> None:
        death = self._deaths.pop(event_id, None)
        for k in _death_index(death.deceased) if death else ():
            self._death_ids[k].discard(event_id)

    def remember_death(self, event_id: str, key: PersonKey, died_on: date, message: bytes) -> None:
        """Keep a death nobody here had a record of, to be applied again after an earlier
        event (read after it) that puts the person on one."""
        row = {
            "event_id": event_id,
            **_death_key(key),
            "died_on": died_on,
            "message": message,
            "kept_at": self.at,
        }
        self._remembered[event_id] = row
        self._know_death(UnmatchedDeath(event_id, key._replace(postcode=None), died_on, message))

        def undo() -> None:
            self._remembered.pop(event_id)
            self._unknow_death(event_id)

        self._undo.append(undo)

    def forget_death(self, event_id: str) -> None:
        """No longer keep a death (corrected or cancelled)."""
        if event_id in self._forgotten:
            return
        self._forgotten.add(event_id)
        self._undo.append(lambda: self._forgotten.discard(event_id))

    @contextmanager
    def trying(self) -> Iterator[None]:
        """Changes made inside are seen by what follows inside, and undone at its end: a rule
        tried on the records another rule's decision would leave."""
        mark = len(self._undo)
        try:
            yield
        finally:
            self.rollback_to(mark)

    def look_up_places(self, places: Iterable[str]) -> None:
        """Read which records are at these places (a batch's), in one query."""
        wanted = list(set(places) - self._places_read)
        if not wanted:
            return
        for place, record_id, data in _RECORDS_AT.rows(self.conn, {"places": wanted}):
            if record_id in self._placed:  # changed here: known already
                continue
            if record_id not in self._images:
                self._unread[record_id] = data
            self._at_place.setdefault(place, set()).add(record_id)
        self._places_read.update(wanted)

    def at_place(self, place: str) -> list[Record]:
        """The records at a place (Address.place), by record id."""
        if place not in self._places_read:
            self.look_up_places([place])
        found = [self.get(record_id) for record_id in sorted(self._at_place.get(place, ()))]
        return [record for record in found if record is not None]

    def match(self, key: PersonKey) -> Record | None:
        """The record of a person: by NINO, else by surname + date of birth + postcode."""
        if not self._people.knows(key):
            self.look_up_people([key])
        record_id = self._people.match(key)
        return None if record_id is None else self.get(record_id)

    def get(self, record_id: str) -> Record | None:
        """One record by id."""
        if record_id not in self._images:
            if record_id in self._unread:
                data = self._unread.pop(record_id)
            else:
                data = self.conn.execute(_RAW, {"id": record_id}).scalar()
            self._images[record_id] = (data, None if data is None else self._read(record_id, data))
        return self._images[record_id][1]

    def image(self, record_id: str, data: str) -> Record:
        """A record's stored JSON image (a change's before or after) as its record."""
        return self._read(record_id, data)

    def _read(self, record_id: str, data: str) -> Record:
        """A stored JSON image as its record; UnreadableRecord naming the fields it lacks or
        that are not valid (never their values: personal data) if it is not one."""
        try:
            return self.record_type.model_validate_json(data)
        except ValidationError as exc:
            raise UnreadableRecord(
                f"stored record {record_id} cannot be read: {invalid_fields(exc)}"
            ) from None

    def raw(self, record_id: str) -> str | None:
        """A record's stored JSON image, or None."""
        self.get(record_id)
        return self._images[record_id][0]

    def put(self, record: Record, event_id: str | None = None) -> None:
        """Insert or replace a record, its matching keys, its places and (for an event) its
        change images."""
        record_id = record.record_id
        previous = self.get(record_id)
        before = self._images[record_id][0]
        after = record.model_dump_json()
        keys = record.people()
        self._change(record_id, (after, record), existed=previous is not None)
        if previous is None or previous.people() != keys:
            self._index(record_id, keys)
        if self.with_places:
            was, places = [] if previous is None else previous.places(), record.places()
            if was != places:
                self._place(record_id, was, places)
        if event_id is not None:
            self._changes.append(
                {"event_id": event_id, "record_id": record_id, "before": before, "after": after}
            )
            self._undo.append(self._changes.pop)

    def read(self, record_id: str, event_id: str) -> None:
        """An event read a record and left it as it was: its decision rests on the record as
        it is (a death not flagging a partner whose pension had stopped). Kept as a change
        whose images are the same, which an amendment of an earlier event finds (touched)."""
        image = self.raw(record_id)
        if image is not None:
            self._changes.append(
                {"event_id": event_id, "record_id": record_id, "before": image, "after": image}
            )
            self._undo.append(self._changes.pop)
            if self.conn.dialect.name != "sqlite":  # written back as it is: an amendment of it
                # another instance commits meanwhile (which could not see this read) then
                # conflicts with this unit at REPEATABLE READ, and one of them is tried again
                # (SQLite has one writer at a time)
                self._change(record_id, self._images[record_id], existed=True)

    def touched(self, record_id: str, event_id: str, ignoring: Iterable[str] = ()) -> bool:
        """Whether another event (not one of `ignoring`), still in effect, changed or read a
        record after this event last changed it (not one cancelled or corrected since: what it
        did was undone)."""
        mine = [
            i
            for i, c in enumerate(self._changes)
            if c["record_id"] == record_id and c["event_id"] == event_id
        ]
        after = mine[-1] + 1 if mine else 0  # rows in the store are all before this batch's
        later = {
            c["event_id"]
            for c in self._changes[after:]
            if c["record_id"] == record_id and c["event_id"] != event_id
        }
        if not mine:
            asked = {"record_id": record_id, "event_id": event_id}
            later.update(self.conn.execute(_LATER, asked).scalars())
        return any(not self._undone(other) for other in later - set(ignoring))

    def _undone(self, event_id: str) -> bool:
        """Whether a correction or cancellation of an event was applied here: one superseding
        it, or superseding an amendment of it refused here (REJECTED: acting, through
        in_effect, on what that superseded), and so on."""
        asked, seen = [event_id], set()
        while asked:
            superseded = asked.pop()
            if superseded in seen:
                continue
            seen.add(superseded)
            found = self.conn.execute(_AMENDMENTS, {"event_id": superseded})
            amendments: list[tuple[str, str]] = [(e, outcome) for e, outcome in found]
            amendments += [
                (c["event_id"], c["outcome"])
                for c in self._claims.values()
                if c["supersedes"] == superseded
            ]
            amendments += [(e, "REJECTED") for e, s in self._refused.items() if s == superseded]
            if any(outcome != "REJECTED" for _, outcome in amendments):
                return True
            asked += [amendment for amendment, _ in amendments]
        return False

    def restore(self, record_id: str, image: str | None) -> None:
        """Put a record back to a stored JSON image; None removes it (it did not exist)."""
        if image is None:
            existing = self.get(record_id)
            self._index(record_id, [])
            if self.with_places and existing is not None and existing.places():
                self._place(record_id, existing.places(), [])
            self._change(record_id, (None, None), existing is not None)
        else:
            self.put(self._read(record_id, image))

    def _change(self, record_id: str, image: Image, existed: bool) -> None:
        """Keep a record's new image (None: removed) to be written when the batch ends."""
        kept = [
            (d, d.get(record_id, _ABSENT)) for d in (self._images, self._stored, self._changed_at)
        ]
        self._undo.append(lambda: _put_back(record_id, kept))
        self._stored.setdefault(record_id, existed)
        self._images[record_id] = image
        self._changed_at[record_id] = self.at

    def _index(self, record_id: str, keys: Sequence[PersonKey]) -> None:
        """Keep a record's matching keys (none if it was removed) to be written at the end."""
        known, pending = self._people.keys_of(record_id), self._keys.get(record_id, _ABSENT)

        def undo() -> None:
            self._people.replace(record_id, known)
            _put_back(record_id, [(self._keys, pending)])

        self._undo.append(undo)
        self._people.replace(record_id, keys)
        self._keys[record_id] = keys

    def _place(self, record_id: str, before: Sequence[str], after: Sequence[str]) -> None:
        """Keep a record's places (none if it was removed) to be written at the end."""
        pending = self._placed.get(record_id, _ABSENT)

        def move(leaving: Sequence[str], coming: Sequence[str]) -> None:
            for place in leaving:
                self._at_place.get(place, set()).discard(record_id)
            for place in coming:
                self._at_place.setdefault(place, set()).add(record_id)

        def undo() -> None:
            move(after, before)
            _put_back(record_id, [(self._placed, pending)])

        self._undo.append(undo)
        move(before, after)
        self._placed[record_id] = after

    def in_effect(self, event_id: str) -> str:
        """The event whose effects here an amendment of `event_id` acts on: that event, or,
        where it was an amendment refused here (REJECTED: referred for manual review, or
        dead-lettered; nothing changed), what it superseded, and so on back."""
        seen = set()
        while event_id not in seen:
            seen.add(event_id)
            claimed = self._claims.get(event_id)
            if claimed is not None:
                outcome, supersedes = claimed["outcome"], claimed["supersedes"]
            else:
                row = self.conn.execute(_PROCESSED_ROW, {"event_id": event_id}).first()
                if row is not None:
                    outcome, supersedes = row
                else:  # refused here (a REJECTED of its own kind), or not seen
                    outcome = "REJECTED"
                    supersedes = (
                        self._refused.get(event_id)
                        or self.conn.execute(_REFUSED_ROW, {"event_id": event_id}).scalar()
                    )
            if outcome != "REJECTED" or supersedes is None:
                break
            event_id = supersedes
        return event_id

    def changes_of(self, event_id: str) -> list[tuple[str, str | None, str]]:
        """(record_id, before, after) JSON images of what an event changed, one per record
        (not those it only read)."""
        rows = [tuple(r) for r in self.conn.execute(_CHANGES_OF, {"event_id": event_id})]
        rows += [
            (c["record_id"], c["before"], c["after"])
            for c in self._changes
            if c["event_id"] == event_id
        ]
        merged: dict[str, tuple[str | None, str]] = {}
        for record_id, before, after in rows:
            if before == after and record_id not in merged:  # read, not changed
                continue
            first_before = merged[record_id][0] if record_id in merged else before
            merged[record_id] = (first_before, after)
        return [(record_id, before, after) for record_id, (before, after) in merged.items()]

    def claim(
        self,
        event_id: str,
        outcome: str,
        digest: int | None = None,
        supersedes: str | None = None,
    ) -> None:
        """Record the event as processed (with the digest of the message that carried it, and
        what it superseded), first; raise AlreadyProcessed if it already was."""
        if self.processed(event_id):
            raise AlreadyProcessed(event_id)
        self._claims[event_id] = {
            "event_id": event_id,
            "outcome": outcome,
            "processed_at": self.at,
            "digest": digest,
            "supersedes": supersedes,
        }
        self._undo.append(lambda: self._claims.pop(event_id))
        if supersedes is not None and supersedes not in self._superseded:
            self._superseded.add(supersedes)
            self._undo.append(lambda: self._superseded.discard(supersedes))

    def queue(self, confirmation: Pending) -> None:
        """Put a confirmation in the outbox, to be published after this transaction commits."""
        headers = [[k, v.decode()] for k, v in confirmation.headers]
        self._outbox.append(
            {
                "confirmation_id": confirmation.confirmation_id,
                "event_id": confirmation.event_id,
                "payload": confirmation.payload,
                "headers": orjson.dumps(headers).decode(),
                "created_at": self.at,
                "sent_at": None,
                "writer": self.writer,
            }
        )
        self._undo.append(self._outbox.pop)

    @property
    def queued(self) -> bool:
        """Whether confirmations were queued since the last flush."""
        return bool(self._outbox)

    def mark(self) -> int:
        """A point to roll back to, before an event (whose time begins now)."""
        self.at = datetime.now(UTC)
        return len(self._undo)

    def rollback_to(self, mark: int) -> None:
        """Undo what was kept since `mark` (an event that failed part-way)."""
        while len(self._undo) > mark:
            self._undo.pop()()

    def flush(self) -> None:
        """Write what is kept: records, matching keys, processed rows, changes, outbox rows."""
        inserted, updated, deleted = [], [], []
        for record_id, stored in self._stored.items():
            data, at = self._images[record_id][0], self._changed_at[record_id]
            if data is None:
                if stored:
                    deleted.append(record_id)
            elif stored:
                updated.append({"id": record_id, "data": data, "at": at})
            else:
                inserted.append({"record_id": record_id, "data": data, "updated_at": at})
        people = _key_rows(self._keys)
        if deleted:
            self.conn.execute(_DELETE_RECORDS, {"ids": deleted})
        if self._keys:
            self.conn.execute(_DELETE_PEOPLE, {"ids": list(self._keys)})
        if self._placed:
            _DELETE_PLACES.rows(self.conn, {"ids": list(self._placed)})
        for bulk, rows in (
            (_INSERT_RECORDS, inserted),
            (_UPDATE_RECORD, updated),
            (_INSERT_PEOPLE, people),
            (_INSERT_PLACES, _place_rows(self._placed)),
            (_CLAIM, list(self._claims.values())),
            (_REFUSE, self._new_refusals()),
            (_INSERT_CHANGES, self._changes),
            (_QUEUE, self._outbox),
            (_REMEMBER_DEATHS, [r for r in self._remembered.values()
                                if r["event_id"] not in self._forgotten]),
        ):  # fmt: skip
            bulk.execute(self.conn, rows)
        if self._forgotten:
            _FORGET_DEATHS.rows(self.conn, {"ids": list(self._forgotten)})
        self._seen.update(self._claims)
        for kept in (
            self._stored,
            self._changed_at,
            self._keys,
            self._placed,
            self._claims,
            self._refused,
        ):
            kept.clear()
        for event_id in self._forgotten:
            self._unknow_death(event_id)
        self._remembered.clear()
        self._forgotten.clear()
        self._changes.clear()
        self._outbox.clear()
        self._undo.clear()

    def _new_refusals(self) -> list[dict[str, str]]:
        """The refusals kept here that the store has not recorded (an amendment dead-lettered
        again after a replay is recorded once)."""
        if not self._refused:
            return []
        ids = list(self._refused)
        known = {event_id for (event_id,) in _REFUSED_AMONG.rows(self.conn, {"event_ids": ids})}
        return [
            {"event_id": event_id, "supersedes": supersedes}
            for event_id, supersedes in self._refused.items()
            if event_id not in known
        ]


def _place_rows(places: Mapping[str, Sequence[str]]) -> list[dict[str, Any]]:
    """record_places rows of records' places."""
    return [
        {"record_id": record_id, "place": place}
        for record_id, of_record in places.items()
        for place in of_record
    ]


def _death_key(key: PersonKey) -> dict[str, Any]:
    """An unmatched_deaths row's matching key."""
    return {
        "nino": key.nino,
        "surname": key.surname,
        "date_of_birth": key.date_of_birth,
        "given_names": key.given,
    }


def _mark(conn: Connection, name: str, value: str) -> None:
    """Set one of store_meta's values."""
    conn.execute(delete(store_meta).where(store_meta.c.name == name))
    conn.execute(store_meta.insert().values(name=name, value=value))


def _key_rows(keys: Mapping[str, Sequence[PersonKey]]) -> list[dict[str, Any]]:
    """record_people rows of records' matching keys."""
    return [
        {
            "record_id": record_id,
            "nino": k.nino,
            "surname": k.surname,
            "date_of_birth": k.date_of_birth,
            "postcode": k.postcode,
            "given_names": k.given,
        }
        for record_id, of_record in keys.items()
        for k in of_record
    ]


def _pending(tx: Transaction) -> list[Pending]:
    asked = {"limit": PENDING_LIMIT, "writer": tx.writer, "orphaned": tx.at - ORPHANED_AFTER}
    rows = _PENDING.rows(tx.conn, asked)
    return [
        Pending(confirmation_id, event_id, payload, _headers(headers), row_id)
        for row_id, confirmation_id, event_id, payload, headers in rows
    ]


def _mark_sent(tx: Transaction, row_ids: Sequence[int]) -> None:
    if row_ids:
        _MARK_SENT.rows(tx.conn, {"ids": list(row_ids), "at": datetime.now(UTC)})


def _headers(stored: str) -> list[tuple[str, bytes]]:
    """Kafka headers from their JSON in the outbox."""
    return [(k, v.encode()) for k, v in orjson.loads(stored)]


def _put_back(key: str, kept: Sequence[tuple[dict[str, Any], object]]) -> None:
    """Restore dictionary entries as they were (absent ones removed)."""
    for mapping, value in kept:
        if value is _ABSENT:
            mapping.pop(key, None)
        else:
            mapping[key] = value


# a store locked, unreachable or gone (a dropped connection), or a transaction the database
# ended after one of those (PostgreSQL's "current transaction is aborted"): try again later
_UNREACHABLE = (OperationalError, InterfaceError, InternalError, PendingRollbackError)


def _why(error: Exception) -> str:
    """The kind of a database error, never its message (it may name a key's values)."""
    return type(getattr(error, "orig", None) or error).__name__


class ServiceStore:
    """One service's store."""

    def __init__(
        self, url: str, record_type: type[Record], keep_deaths: timedelta = timedelta(days=35)
    ) -> None:
        self.engine = connect(url)
        self.keep_deaths = keep_deaths  # unmatched deaths (consumers/deaths_read_first.py)
        self._pruned: datetime | None = None
        # A unit reads its records when its batch begins and writes them when it ends: on a
        # database whose transactions are READ COMMITTED (PostgreSQL's default), a record
        # another instance of the service changed meanwhile was overwritten, that change lost
        # though confirmed. At REPEATABLE READ the unit's write fails instead (a serialization
        # failure: StoreBusy) and its batch is tried again. SQLite writes one at a time.
        self._whole_unit = self.engine.dialect.name != "sqlite"
        self._places_locked = (  # see _LOCK_PLACES
            self.engine.dialect.name == "postgresql" and Transaction.places_of(record_type)
        )
        if self._whole_unit:
            self.engine = self.engine.execution_options(isolation_level="REPEATABLE READ")
        self.connections = Connections(self.engine)
        self.record_type = record_type
        self.writer = uuid.uuid4().hex  # of its outbox rows (see outbox.writer)
        self._batch: Transaction | None = None
        # The outbox as the last unit left it (None: unknown, read it), and rows Kafka has
        # acknowledged that the next transaction touching the outbox marks sent: a consumer
        # batch's outbox work rides in its own transaction rather than two more.
        self._unsent: list[Pending] | None = None
        self._more_unsent = False  # the outbox held more than _unsent when it was read
        self._acknowledged: list[int] = []
        self._deaths_to_key: Callable[[bytes], PersonKey | None] | None = None  # key_deaths_by
        try:
            create_or_upgrade(self.engine, metadata)
            self._match_again()
        except OperationalError as exc:
            raise StoreBusy(f"store not usable: {reason(exc)}") from exc

    def _match_again(self) -> None:
        """Make the matching keys of every stored record again if they were made by another
        version of the record type's people() or of name_key() (once; a record that cannot be
        read keeps its keys, and is dead-lettered when an event needs it)."""

        def remake(conn: Connection) -> None:
            remade: dict[str, list[PersonKey]] = {}
            placed: dict[str, list[str]] = {}
            for record_id, data in conn.execute(select(records.c.record_id, records.c.data)):
                try:
                    record = self.record_type.model_validate_json(data)
                except ValidationError:
                    continue
                remade[record_id], placed[record_id] = record.people(), record.places()
            ids = list(remade)
            for start in range(0, len(ids), 500):
                conn.execute(_DELETE_PEOPLE, {"ids": ids[start : start + 500]})
                _DELETE_PLACES.rows(conn, {"ids": ids[start : start + 500]})
            _INSERT_PEOPLE.execute(conn, _key_rows(remade))
            _INSERT_PLACES.execute(conn, _place_rows(placed))

        self._made_by("people_version", f"{self.record_type.PEOPLE_VERSION}.{NAME_KEY_VERSION}",
                      remake)  # fmt: skip

    def key_deaths_by(self, deceased: Callable[[bytes], PersonKey | None]) -> None:
        """Make the matching keys of the kept deaths again, before this store's next
        transaction, if another version of name_key() made them: from each death's message,
        `deceased` reading the deceased's key in it (None: it no longer reads; that death keeps
        its keys, and is forgotten in time). Left as they were, a death kept under a surname or
        given names written the old way would never be found by the earlier event it waits
        for. Not at once: a store locked as the process starts would end it (StoreBusy); a
        transaction waits, and is tried again."""
        self._deaths_to_key = deceased

    def _key_deaths_again(self, deceased: Callable[[bytes], PersonKey | None]) -> None:

        def remake(conn: Connection) -> None:
            kept = select(unmatched_deaths.c.event_id, unmatched_deaths.c.message)
            for event_id, message in conn.execute(kept).all():
                if (key := deceased(message)) is not None:
                    conn.execute(_KEY_DEATH, {"id": event_id, **_death_key(key)})

        try:
            self._made_by("deaths_version", str(NAME_KEY_VERSION), remake)
        except OperationalError as exc:
            raise StoreBusy(f"store not usable: {reason(exc)}") from exc

    def _made_by(self, name: str, version: str, remake: Callable[[Connection], None]) -> None:
        """Run `remake` once, unless store_meta's `name` says this version made what it makes
        (then set to it)."""
        made = select(store_meta.c.value).where(store_meta.c.name == name)
        with self.engine.connect() as conn:  # as a rule it did: no write lock asked for
            if conn.execute(made).scalar() == version:
                return
        with alone(self.engine) as conn:  # made again by one process, the others wait
            if conn.execute(made).scalar() == version:
                return
            remake(conn)
            _mark(conn, name, version)

    def look_up(self, event_ids: Iterable[str]) -> Lookup:
        """Which of these events were processed, with the digest of the message each came in."""
        asked = set(event_ids)
        if not asked:
            return Lookup(asked, {})
        with self.transaction() as tx:
            return Lookup(asked, tx.processed_among(list(asked)))

    @contextmanager
    def unit(
        self,
        event_ids: Sequence[str] = (),
        people: Iterable[PersonKey] = (),
        known: Lookup | None = None,
        places: Iterable[str] = (),
        deaths_of: Sequence[PersonKey] = (),
    ) -> Iterator[None]:
        """One transaction around a consumer's whole batch: one commit (and fsync) for many
        events. Which of them were processed before (unless `known` says), and the records of
        the people they name (and, for records at places, of the places they name), are read
        up front. An event that fails is undone (see
        event_transaction); the others are kept.

        `known` may be read before the transaction: an event processed stays processed, and one
        another instance processes meanwhile fails this unit's commit (StoreBusy, retried).
        """
        places, people = list(places), list(people)
        with self._outbox_transaction(lock_places=bool(places)) as tx:
            tx.look_up_processed(event_ids, known)
            tx.look_up_people(people)
            if deaths_of:
                self._prune_deaths(tx)
                tx.look_up_deaths(deaths_of)
            if tx.with_places:
                tx.look_up_places(places)
            self._batch = tx
            try:
                yield
            finally:
                self._batch = None
            queued = tx.queued
            tx.flush()
            unsent = _pending(tx) if queued else None
        self._keep_unsent(unsent)

    def _prune_deaths(self, tx: Transaction) -> None:
        """Forget the unmatched deaths kept longer than keep_deaths (at most once an hour)."""
        if self._pruned is None or tx.at - self._pruned >= PRUNE_EVERY:
            tx.conn.execute(_PRUNE_DEATHS, {"before": tx.at - self.keep_deaths})
            self._pruned = tx.at

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
        except _UNREACHABLE as exc:
            tx.rollback_to(mark)
            if self._whole_unit:  # the database ended the transaction (SQLite keeps it)
                raise UnitFailed(f"store busy: {_why(exc)}") from exc
            raise StoreBusy(f"store busy: {_why(exc)}") from exc
        except BaseException:
            tx.rollback_to(mark)
            raise

    @contextmanager
    def transaction(self, lock_places: bool = False) -> Iterator[Transaction]:
        """One atomic unit of work; a locked or unreachable store raises StoreBusy, and so does
        another instance having processed one of its events meanwhile. With `lock_places`
        (events naming places, for records at places), one such transaction at a time on
        PostgreSQL (_LOCK_PLACES)."""
        if self._deaths_to_key is not None:  # (once: see key_deaths_by)
            self._key_deaths_again(self._deaths_to_key)
            self._deaths_to_key = None
        self._unsent = None  # this transaction may queue confirmations
        try:
            with self.connections.begin() as conn:
                if lock_places and self._places_locked:
                    conn.execute(_LOCK_PLACES)
                tx = Transaction(conn, self.record_type, self.writer)
                yield tx
                tx.flush()
        except _UNREACHABLE as exc:
            raise StoreBusy(f"store busy: {_why(exc)}") from exc
        except IntegrityError as exc:  # another instance processed one of the events meanwhile
            raise StoreBusy(f"written meanwhile by another instance: {reason(exc)}") from exc

    def usable(self) -> bool:
        """Whether the store answers a trivial query."""
        return ping(self.engine)

    def close(self) -> None:
        """Close this store's connections (a store opened for a look: seeding, a count)."""
        self.connections.close()

    def pending(self) -> list[Pending]:
        """Confirmations waiting to be published, oldest first (up to PENDING_LIMIT): as the
        last unit of work read them before it committed, or read now."""
        if self._unsent is None:
            with self._outbox_transaction() as tx:
                self._keep_unsent(_pending(tx))
        return list(self._unsent or ())

    def _keep_unsent(self, unsent: list[Pending] | None) -> None:
        self._unsent = unsent
        self._more_unsent = unsent is not None and len(unsent) >= PENDING_LIMIT

    def count_pending(self) -> int:
        """How many confirmations wait to be published."""
        with self._outbox_transaction() as tx:
            return int(tx.conn.execute(_COUNT_PENDING).scalar_one())

    def acknowledged(self, row_ids: Sequence[int]) -> None:
        """Kafka acknowledged these outbox rows: they are no longer pending here, and the next
        transaction that reads the outbox (a consumer's next batch, at the latest) marks them
        sent. Rows acknowledged but not yet marked when the process dies are published again
        after a restart (a duplicate the tracker ignores), as with any at-least-once relay."""
        self._acknowledged.extend(row_ids)
        if self._unsent is not None:
            done = set(row_ids)
            self._unsent = [p for p in self._unsent if p.row_id not in done]
            if not self._unsent and self._more_unsent:  # the next page: read the outbox again
                self._unsent = None

    def mark_sent(self, row_ids: Sequence[int] = ()) -> None:
        """Mark outbox rows sent now, with every row acknowledged before."""
        self.acknowledged(row_ids)
        if self._acknowledged:
            with self._outbox_transaction():
                pass

    @contextmanager
    def _outbox_transaction(self, lock_places: bool = False) -> Iterator[Transaction]:
        """A transaction that first marks the acknowledged rows sent."""
        acknowledged = list(self._acknowledged)  # (the list itself would count what came since)
        with self.transaction(lock_places) as tx:
            _mark_sent(tx, acknowledged)
            yield tx
        self._acknowledged = self._acknowledged[len(acknowledged) :]

    def holds_records(self) -> bool:
        """Whether the store holds any record."""
        with self.transaction() as tx:
            return tx.conn.execute(select(records.c.record_id).limit(1)).first() is not None

    def records(self) -> list[Record]:
        """Every record (for inspection and tests)."""
        with self.transaction() as tx:
            rows = tx.conn.execute(select(records.c.data).order_by(records.c.record_id)).scalars()
            return [self.record_type.model_validate_json(data) for data in rows]

    def outcomes(self) -> dict[str, str]:
        """Processed event ids and their outcomes (for inspection and tests)."""
        with self.transaction() as tx:
            return {r.event_id: r.outcome for r in tx.conn.execute(select(processed)).all()}
