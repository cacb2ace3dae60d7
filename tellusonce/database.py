"""SQLAlchemy engines for the stores (each service's, the tracker's, the registrar's ledger), and
statements run for a consumer batch's many rows at once."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from operator import itemgetter
from typing import Any, cast

from sqlalchemy import (
    Column,
    Connection,
    Date,
    DateTime,
    Dialect,
    Engine,
    Index,
    Inspector,
    MetaData,
    Table,
    bindparam,
    create_engine,
    event,
    insert,
    inspect,
    text,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import DBAPIError, SQLAlchemyError, StatementError
from sqlalchemy.schema import CreateColumn
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import CompoundSelect, Select, UpdateBase
from sqlalchemy.types import TupleType, TypeDecorator

# The sqlite3 module binds only int, float, str and bytearray without asking its adapters; for
# anything else it looks for one, and for a protocol's `__adapt__` through an AttributeError it
# formats and drops (about 1,200 instructions a value). NULLs and blobs, bound in every outbox
# and processed row, are given an adapter that takes them as they are: as sqlite3 binds them
# (0.5% of the consumers' instructions).
for _bound_as_is in (type(None), bytes, memoryview):
    sqlite3.register_adapter(_bound_as_is, lambda value: value)

# The texts of dates and times bound lately, by the value's identity (the value kept with its
# text, so that its id stays its own): a consumer binds one event's time in its processed row,
# its outbox row and its records, each a statement of its own (a processor each).
_TEXTS: dict[int, tuple[object, str]] = {}
_TEXTS_KEPT = 4096


class _SQLiteIsoformat(TypeDecorator[Any]):
    """A SQLite date or time type binding a value of exactly its Python type as the same text
    SQLAlchemy's own would, by the C `isoformat`, rather than SQLAlchemy's %-format of a dict
    of its fields: the consumers bind a date of birth in each look-up and times in each row,
    and the formats cost 1.5% of their instructions. Anything else is SQLAlchemy's to bind."""

    cache_ok = True
    exact: type
    text: Callable[..., str]  # of a value of type `exact`

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any]:
        general = super().bind_processor(dialect)
        assert general is not None
        exact, text, made = self.exact, type(self).text, _TEXTS

        def process(value: Any) -> Any:
            if value.__class__ is not exact:
                return general(value)
            known = made.get(id(value))
            if known is not None:
                return known[1]
            if len(made) >= _TEXTS_KEPT:
                made.clear()
            formatted = made[id(value)] = (value, text(value))
            return formatted[1]

        return process


class _SQLiteDate(_SQLiteIsoformat):
    impl = sqlite.DATE
    exact = date
    text = date.isoformat


class _SQLiteDateTime(_SQLiteIsoformat):
    """YYYY-MM-DD HH:MM:SS.ffffff, any offset from UTC left out, as SQLAlchemy's own leaves it."""

    impl = sqlite.DATETIME
    exact = datetime

    @staticmethod
    def text(value: datetime) -> str:
        return value.isoformat(" ", "microseconds")[:26]


DAY = Date().with_variant(_SQLiteDate(), "sqlite")
"""A column's type for a date: SQLAlchemy's Date, bound faster on SQLite (the same text)."""
INSTANT = DateTime(timezone=True).with_variant(_SQLiteDateTime(), "sqlite")
"""A column's type for a time with its offset: DateTime(timezone=True), bound faster on SQLite."""


def connect(url: str) -> Engine:
    """An engine for a store URL; SQLite gets WAL and a short busy timeout (locked = transient)."""
    # hide_parameters: a statement's error does not show the values bound to it (NINOs,
    # surnames and dates of birth: the stores' look-ups are by them)
    if not url.startswith("sqlite"):  # a server that stops answering: refused in 10 s, not
        # the system's two minutes (longer than a consumer may go between polls)
        timeout = {"connect_timeout": 10} if url.startswith("postgresql") else {}
        return create_engine(url, pool_pre_ping=True, hide_parameters=True, connect_args=timeout)
    engine = create_engine(url, connect_args={"timeout": 1.0}, hide_parameters=True)

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: object) -> None:
        # Let SQLAlchemy, not the sqlite3 module, begin transactions, so a batch's reads and
        # writes are one transaction (SQLAlchemy's documented recipe for pysqlite).
        dbapi_connection.isolation_level = None
        _write_ahead(dbapi_connection)

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        # on the driver's connection: through SQLAlchemy's execution, BEGIN took a third of an
        # empty transaction's time (consumers open a few per batch); its errors raised as
        # SQLAlchemy's, as that execution would (a BEGIN IMMEDIATE that found the store locked
        # is an OperationalError, which the stores treat as transient)
        statement = conn.get_execution_options().get(_BEGIN, "BEGIN")
        try:
            conn.connection.driver_connection.execute(statement)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise _as_sqlalchemys(exc, statement, None, engine.dialect) from exc

    return engine


_BEGIN = "tellusonce_sqlite_begin"


def _write_ahead(dbapi_connection: sqlite3.Connection, within: float = 5.0) -> None:
    """Put a SQLite store in WAL mode (kept in the file: the first connection makes it so). On
    a fresh store that other processes open too, SQLite refuses the change at once ("database
    is locked": its busy timeout does not apply) while another connection reads: tried again."""
    deadline = time.monotonic() + within
    while True:
        try:
            dbapi_connection.execute("PRAGMA journal_mode=WAL").close()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _as_sqlalchemys(
    error: Exception, statement: str, params: Any, dialect: Dialect
) -> StatementError:
    """A driver's error in a statement run on the driver, as SQLAlchemy raises it when it runs
    the statement (a locked SQLite store: OperationalError, which the stores treat as transient)."""
    error_class = dialect.loaded_dbapi.Error
    return DBAPIError.instance(
        statement, params, error, error_class, hide_parameters=True, dialect=dialect
    )


def reason(error: DBAPIError) -> str:
    """Why a statement failed, in words that carry no personal data: SQLite's own message
    ("database is locked", "UNIQUE constraint failed: processed.event_id", never a value), or
    only the kind of error of other databases (PostgreSQL's detail names the values of a key)."""
    if type(error.orig).__module__ == "sqlite3":
        return str(error.orig)
    return type(error.orig).__name__


def writing(engine: Engine) -> Engine:
    """The same engine (and pool) whose SQLite transactions take the write lock as they begin
    (BEGIN IMMEDIATE, waiting up to the busy timeout for it): for transactions that read, then
    write, while other threads write too. Begun as usual, such a transaction asks for the lock at
    its first write, and SQLite refuses it at once ("database is locked", no busy wait) if another
    connection wrote since the transaction's reads began."""
    return engine.execution_options(**{_BEGIN: "BEGIN IMMEDIATE"})


class Connections:
    """A connection per thread, kept: a consumer's store opens a few transactions per batch, and
    one on a kept connection costs a quarter of one on a connection taken from the pool and given
    back each time. A connection SQLAlchemy invalidated (the database went away) is replaced; a
    transaction begun inside another on the same thread gets a connection of its own, as
    engine.begin() would give it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._local = threading.local()

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A transaction on this thread's connection: committed if the block ends normally,
        rolled back if it raises."""
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is not None and (conn.invalidated or conn.closed):
            conn.close()
            conn = None
        if conn is None:
            conn = self._local.conn = self.engine.connect()
        elif conn.in_transaction():
            with self.engine.begin() as other:
                yield other
            return
        with conn.begin():
            yield conn

    def close(self) -> None:
        """Give back this thread's kept connection, and close the engine's pooled ones (a store
        opened for a look and done with: a server's connections are not left open). From the
        thread that used the store, once no other uses it."""
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
        self.engine.dispose()


_ALONE = 0x7465_6C6C_7573  # "tellus": the advisory lock of alone()'s transactions


@contextmanager
def alone(engine: Engine) -> Iterator[Connection]:
    """A transaction no other process's alone() runs beside: SQLite's write lock taken as it
    begins, or PostgreSQL's advisory lock (a store's creation, upgrade or keys made again,
    which processes started together on the same store would otherwise each attempt)."""
    if engine.dialect.name != "postgresql":
        with writing(engine).begin() as conn:
            yield conn
        return
    # READ COMMITTED: what the lock's last holder committed is seen once it is held (at
    # REPEATABLE READ, a store's, the snapshot would be taken as the lock was asked for). Set
    # on the connection: an engine's own isolation level is not overridden by a derived one's.
    with engine.connect() as conn:
        conn.execution_options(isolation_level="READ COMMITTED")
        with conn.begin():
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ALONE})
            yield conn


def create_or_upgrade(engine: Engine, metadata: MetaData) -> list[str]:
    """Create missing tables, and add the columns and indexes a newer version of a table has to
    one a store made by an older version kept (added columns are nullable: older rows have no
    value). Returns what was added, as "table.column" and "table.index". A store lacking
    something is made so in one transaction alone() (processes started together on a fresh
    store each found a table missing, and all but one were refused, "database is locked", or
    found it made meanwhile, "already exists"); one lacking nothing is only read, without the
    write lock (a `status` beside busy consumers)."""
    with engine.connect() as conn:
        found = inspect(conn)
        if all(found.has_table(t.name) for t in metadata.sorted_tables) and not any(
            _additions(found, metadata)
        ):
            return []
    added = []
    with alone(engine) as conn:
        metadata.create_all(conn)
        name = engine.dialect.identifier_preparer.format_table
        for table, item in list(_additions(inspect(conn), metadata)):
            if isinstance(item, Index):
                item.create(conn)
            elif not item.nullable:
                raise ValueError(f"{table.name}.{item.name}: only nullable columns are added")
            else:
                ddl = CreateColumn(item).compile(dialect=engine.dialect)
                conn.execute(text(f"ALTER TABLE {name(table)} ADD COLUMN {ddl}"))
            added.append(f"{table.name}.{item.name}")
    return added


def _additions(found: Inspector, metadata: MetaData) -> Iterator[tuple[Table, Column[Any] | Index]]:
    """The columns and indexes of the metadata's tables that the store's tables lack."""
    for table in metadata.sorted_tables:
        existing = {c["name"] for c in found.get_columns(table.name)}
        yield from ((table, c) for c in table.columns if c.name not in existing)
        indexed = {i["name"] for i in found.get_indexes(table.name)}
        yield from ((table, i) for i in table.indexes if i.name not in indexed)


def ping(engine: Engine) -> bool:
    """Whether a store answers `SELECT 1`."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError:
        return False
    return True


class Bulk:
    """An INSERT, UPDATE or DELETE run for many rows with one DB-API executemany.

    Each value is converted by its bound parameter's type's own bind processor, so what is
    stored is what SQLAlchemy stores; only SQLAlchemy's per-row parameter handling is skipped,
    which cost more than SQLite's work on the row itself. Drivers with named parameters get the
    usual SQLAlchemy executemany.
    """

    def __init__(self, statement: UpdateBase) -> None:
        self.statement = statement
        self._prepared: dict[tuple[str, str, tuple[str, ...]], _Prepared | None] = {}

    def execute(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run the statement for rows that all have the keys of the first."""
        if not rows:
            return
        names = tuple(rows[0])
        key = (conn.dialect.name, conn.dialect.paramstyle, names)
        if key not in self._prepared:
            self._prepared[key] = self._prepare(conn.dialect, names)
        prepared = self._prepared[key]
        if prepared is None:
            conn.execute(self._statement(names), list(rows))
            return
        sql, values, converters = prepared
        if converters:
            params = []
            for row in rows:
                converted = list(values(row))
                for i, convert in converters:
                    converted[i] = convert(converted[i])
                params.append(tuple(converted))
        else:
            params = [values(row) for row in rows]
        conn.exec_driver_sql(sql, params)

    def _statement(self, _names: tuple[str, ...]) -> UpdateBase:
        """The statement for rows with these keys."""
        return self.statement

    def _prepare(self, dialect: Dialect, names: tuple[str, ...]) -> _Prepared | None:
        compiled = self._statement(names).compile(dialect=dialect)
        order = list(compiled.positiontup or ())
        if not compiled.positional or len(order) < 2 or len(set(order)) < len(order):
            return None
        converters: list[tuple[int, Callable[[Any], Any]]] = []
        for i, name in enumerate(order):
            convert = compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
            if convert is not None:
                converters.append((i, convert))
        values = cast(Callable[[Mapping[str, Any]], tuple[Any, ...]], itemgetter(*order))
        return compiled.string, values, converters


class BulkInsert(Bulk):
    """INSERT of many rows of a table (the columns each row names) with one executemany."""

    def __init__(self, table: Table) -> None:
        super().__init__(insert(table))
        self.table = table

    def _statement(self, names: tuple[str, ...]) -> UpdateBase:
        return insert(self.table).values({n: bindparam(n) for n in names})


_Prepared = tuple[
    str, Callable[[Mapping[str, Any]], tuple[Any, ...]], list[tuple[int, Callable[[Any], Any]]]
]


class Query:
    """A statement with IN lists (expanding bind parameters) run on a DB-API cursor, for
    drivers with positional parameters (SQLite's): its SQL for each length of its lists is
    made once, and each value and result column is converted by its type's own processor, so
    what is read is what SQLAlchemy reads. Through conn.execute, re-rendering the statement
    for its lists and building a result object took about 70% of a consumer's look-up (a dozen
    people by NINO: 183 us, 42 us on the cursor). Other drivers, and empty lists, get
    conn.execute."""

    def __init__(self, statement: Select[Any] | CompoundSelect[Any] | UpdateBase) -> None:
        self.statement = statement
        self._prepared: dict[tuple[str, str], _Query | None] = {}

    def rows(self, conn: Connection, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Run the statement; its result rows (none for an UPDATE or DELETE)."""
        key = (conn.dialect.name, conn.dialect.paramstyle)
        if key not in self._prepared:
            self._prepared[key] = _Query.prepare(self.statement, conn.dialect)
        prepared = self._prepared[key]
        if prepared is None or not prepared.runs(params):
            result = conn.execute(self.statement, params)
            return [tuple(r) for r in result.all()] if result.returns_rows else []
        return prepared.run(conn, params)


SQL_KEPT = 256  # SQL texts kept per query, one per combination of its lists' lengths


class _Query:
    def __init__(self, compiled: SQLCompiler, dialect: Dialect, columns: list[Any]) -> None:
        self.compiled = compiled
        self.dialect = dialect
        self.order = list(compiled.positiontup or ())
        self.expanding = [n for n in self.order if compiled.binds[n].expanding]
        self.defaults = compiled.params
        self.convert = {n: _converters(compiled.binds[n].type, dialect) for n in self.order}
        self.results = [
            (i, process)
            for i, column in enumerate(columns)
            if (process := column.type.dialect_impl(dialect).result_processor(dialect, None))
        ]
        self._sql: dict[tuple[int, ...], str] = {}

    @classmethod
    def prepare(
        cls, statement: Select[Any] | CompoundSelect[Any] | UpdateBase, dialect: Dialect
    ) -> _Query | None:
        compiled = statement.compile(dialect=dialect)
        if not compiled.positional:
            return None
        columns = list(getattr(statement, "selected_columns", ()))
        return cls(compiled, dialect, columns)

    def runs(self, params: Mapping[str, Any]) -> bool:
        """Whether these parameters are run here: every list has values."""
        return all(params[n] for n in self.expanding)

    def _values(self, params: Mapping[str, Any]) -> list[Any]:
        """The statement's parameter values in order, each converted by its type."""
        values: list[Any] = []
        for name in self.order:
            value, convert = params[name], self.convert[name]
            if name not in self.expanding:
                values.append(convert[0](value) if convert[0] else value)
            elif len(convert) == 1:
                values.extend(convert[0](v) if convert[0] else v for v in value)
            else:  # a tuple per item: (surname, date of birth)
                for item in value:
                    values.extend(c(v) if c else v for c, v in zip(convert, item, strict=True))
        return values

    def _sql_for(self, params: Mapping[str, Any], lists: Mapping[str, Sequence[Any]]) -> str:
        """The SQL for lists of these lengths, made once."""
        lengths = tuple(len(v) for v in lists.values())
        sql = self._sql.get(lengths)
        if sql is None:
            if len(self._sql) >= SQL_KEPT:  # forget the oldest: lists' lengths vary without end
                del self._sql[next(iter(self._sql))]
            expanded = self.compiled.construct_expanded_state({**params, **lists})
            sql = self._sql[lengths] = expanded.statement
        return sql

    def run(self, conn: Connection, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        lists = {n: _padded(params[n]) for n in self.expanding}
        sql = self._sql_for(params, lists)
        values = self._values({**self.defaults, **params, **lists})
        cursor = conn.connection.cursor()
        try:
            cursor.execute(sql, values)
            found = cursor.fetchall() if cursor.description else []
        except self.dialect.loaded_dbapi.Error as exc:
            raise _as_sqlalchemys(exc, sql, values, self.dialect) from exc
        finally:
            cursor.close()
        if not self.results:
            return cast(list[tuple[Any, ...]], found)
        rows = []
        for row in found:
            converted = list(row)
            for i, process in self.results:
                converted[i] = process(converted[i])
            rows.append(tuple(converted))
        return rows


def _padded(values: Sequence[Any]) -> Sequence[Any]:
    """An IN list made as long as the next power of two (up to 64), or multiple of 64, by
    repeating its last value: the same set, so the same rows. Its SQL is then made once per
    such length rather than once per count of ids a batch names: SQLAlchemy rendered a batch's
    500 parameters anew (0.7 ms) for each batch with a count of its own, as repeats make."""
    n = len(values)
    size = 1 << (n - 1).bit_length() if n <= 64 else -(-n // 64) * 64
    return values if size == n else [*values, *[values[-1]] * (size - n)]


def _converters(type_: Any, dialect: Dialect) -> list[Callable[[Any], Any] | None]:
    """The bind processors of a parameter's type (of each of a tuple's types)."""
    types = type_.types if isinstance(type_, TupleType) else [type_]
    return [t.dialect_impl(dialect).bind_processor(dialect) for t in types]
