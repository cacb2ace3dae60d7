"""Bulk statements store exactly what SQLAlchemy's own executemany stores."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Engine,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    create_engine,
    insert,
    inspect,
    select,
    tuple_,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import (
    DBAPIError,
    IntegrityError,
    OperationalError,
    PendingRollbackError,
    StatementError,
)

from tellusonce import database
from tellusonce.database import (
    DAY,
    INSTANT,
    Bulk,
    BulkInsert,
    Connections,
    Query,
    connect,
    create_or_upgrade,
    reason,
    writing,
)

metadata = MetaData()
things = Table(
    "things",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String, nullable=False, unique=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("born", Date),
    Column("payload", LargeBinary),
    Column("note", Text),
)
BULK = BulkInsert(things)  # one for every engine, as in the stores
BULK_UPDATE = Bulk(
    update(things)
    .where(things.c.name == bindparam("key"))
    .values(at=bindparam("new_at"), born=bindparam("new_born"), note=bindparam("new_note"))
)
ROWS: list[dict[str, Any]] = [
    {
        "name": "utc",
        "at": datetime(2026, 11, 22, 17, 1, 2, 345678, tzinfo=UTC),
        "born": date(1950, 1, 31),
        "payload": b"\xc3\x01\x00binary",
        "note": "Zoë",
    },
    {
        "name": "another on the same day",
        "at": datetime(2026, 11, 22, 18, 0, tzinfo=UTC),
        "born": date(1950, 1, 31),
        "payload": b"",
        "note": "",
    },
    {
        "name": "no microseconds, an early year, a non-UTC offset, nulls",
        "at": datetime(12, 3, 4, 5, 6, 7, tzinfo=timezone(timedelta(hours=-5))),
        "born": None,
        "payload": None,
        "note": None,
    },
]


def stored(engine: Engine, prefix: str) -> list[tuple[Any, ...]]:
    """The rows as the database holds them (no type processing) and as SQLAlchemy reads them."""
    with engine.connect() as conn:
        raw = conn.exec_driver_sql(
            "SELECT name, at, born, payload, note FROM things WHERE name LIKE ? ORDER BY id",
            (f"{prefix}%",),
        ).all()
        typed = conn.execute(
            select(things.c.name, things.c.at, things.c.born, things.c.payload, things.c.note)
            .where(things.c.name.startswith(prefix))
            .order_by(things.c.id)
        ).all()
    return [(tuple(r)[1:], tuple(t)[1:]) for r, t in zip(raw, typed, strict=True)]


@pytest.mark.parametrize("paramstyle", ["qmark", "named"])
def test_bulk_insert_stores_what_sqlalchemy_stores(tmp_path: Path, paramstyle: str) -> None:
    """Same rows through SQLAlchemy's executemany and through BulkInsert: the same stored
    values (dates and times formatted alike, bytes and nulls kept); named-parameter drivers
    take SQLAlchemy's path."""
    url = f"sqlite:///{tmp_path / 'things.db'}"
    engine = connect(url) if paramstyle == "qmark" else create_engine(url, paramstyle=paramstyle)
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(things), [r | {"name": f"sa {r['name']}"} for r in ROWS])
        BULK.execute(conn, [r | {"name": f"bulk {r['name']}"} for r in ROWS])
        BULK.execute(conn, [])
    ours, theirs = stored(engine, "bulk"), stored(engine, "sa")
    assert len(ours) == len(ROWS)
    assert ours == theirs
    assert ours[0][1][1:] == (ROWS[0]["born"], ROWS[0]["payload"], ROWS[0]["note"])


SELECTED = select(things.c.name, things.c.at, things.c.born, things.c.payload, things.c.note)
QUERIES = {
    "names": Query(SELECTED.where(things.c.name.in_(bindparam("names", expanding=True)))),
    "name and born": Query(
        SELECTED.where(
            tuple_(things.c.name, things.c.born).in_(bindparam("pairs", expanding=True))
        ).order_by(things.c.id)
    ),
    "born, limited": Query(
        SELECTED.where(things.c.born == bindparam("born"))
        .order_by(things.c.id)
        .limit(bindparam("limit"))
    ),
}
QUERY_PARAMS: list[tuple[str, dict[str, Any], int]] = [  # query, parameters, rows found
    ("names", {"names": [r["name"] for r in ROWS]}, 3),
    ("names", {"names": [ROWS[1]["name"], "nobody"]}, 1),
    ("names", {"names": []}, 0),
    ("name and born", {"pairs": [(r["name"], r["born"]) for r in ROWS]}, 2),  # NULL: unequal
    ("name and born", {"pairs": [(ROWS[0]["name"], date(1950, 2, 1))]}, 0),
    ("born, limited", {"born": date(1950, 1, 31), "limit": 1}, 1),
]


@pytest.mark.parametrize("paramstyle", ["qmark", "named"])
@pytest.mark.parametrize(("query", "params", "found"), QUERY_PARAMS)
def test_a_query_reads_what_sqlalchemy_reads(
    tmp_path: Path, paramstyle: str, query: str, params: dict[str, Any], found: int
) -> None:
    """The same rows, values converted alike (dates, times with their offsets, bytes, nulls),
    through Query as through conn.execute, whatever the lengths of the lists, and again with
    the SQL made for lists of those lengths; named-parameter drivers take SQLAlchemy's path."""
    url = f"sqlite:///{tmp_path / 'things.db'}"
    engine = connect(url) if paramstyle == "qmark" else create_engine(url, paramstyle=paramstyle)
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(things), ROWS)
    with engine.begin() as conn:
        theirs = [tuple(r) for r in conn.execute(QUERIES[query].statement, params).all()]
        ours = QUERIES[query].rows(conn, params)
        assert ours == QUERIES[query].rows(conn, params)
    assert ours == theirs
    assert len(ours) == found


def test_a_query_keeps_a_bounded_number_of_sql_texts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One SQL text per combination of its lists' padded lengths, which a long-running consumer
    meets without end (people per batch): the oldest are forgotten, and made again when needed."""
    monkeypatch.setattr(database, "SQL_KEPT", 5)
    engine = connect(f"sqlite:///{tmp_path / 'things.db'}")
    metadata.create_all(engine)
    query = Query(SELECTED.where(things.c.name.in_(bindparam("names", expanding=True))))
    with engine.begin() as conn:
        for length in range(1, 300):  # 11 padded lengths: 1, 2, 4 ... 64, 128, 192, 256, 320
            assert query.rows(conn, {"names": ["nobody"] * length}) == []
        conn.execute(insert(things), ROWS)
        assert len(query.rows(conn, {"names": [ROWS[0]["name"]]})) == 1  # forgotten, made again
    (prepared,) = query._prepared.values()
    assert prepared is not None
    assert len(prepared._sql) == 5


def test_a_query_makes_its_sql_once_for_lists_of_lengths_near_each_other(tmp_path: Path) -> None:
    """A batch's ids, counted anew each batch (repeats skipped, the tracker's 2,000 messages),
    made SQLAlchemy render its IN list anew each time; lists padded with their last value
    (the same set) share one text per power of two, or multiple of 64, and find the same rows."""
    engine = connect(f"sqlite:///{tmp_path / 'things.db'}")
    metadata.create_all(engine)
    query = Query(SELECTED.where(things.c.name.in_(bindparam("names", expanding=True))))
    with engine.begin() as conn:
        conn.execute(insert(things), ROWS)
        named = [str(r["name"]) for r in ROWS]
        for length in range(449, 513):
            names = [*named, *(f"nobody {i}" for i in range(length - len(named)))]
            found = query.rows(conn, {"names": names})
            assert sorted(r[0] for r in found) == sorted(named)  # each row once
        assert len(query.rows(conn, {"names": named[:1] * 3})) == 1
    (prepared,) = query._prepared.values()
    assert prepared is not None
    assert sorted(prepared._sql) == [(4,), (512,)]


def test_a_query_updates_as_sqlalchemy_does(tmp_path: Path) -> None:
    engine = connect(f"sqlite:///{tmp_path / 'things.db'}")
    metadata.create_all(engine)
    mark = Query(
        update(things)
        .where(things.c.name.in_(bindparam("names", expanding=True)))
        .values(born=bindparam("born"))
    )
    with engine.begin() as conn:
        conn.execute(insert(things), ROWS)
        assert (
            mark.rows(conn, {"names": [ROWS[0]["name"], ROWS[2]["name"]], "born": date(2000, 1, 2)})
            == []
        )
    with engine.connect() as conn:
        born = dict(conn.execute(select(things.c.name, things.c.born)).all())
    assert born == {
        ROWS[0]["name"]: date(2000, 1, 2),
        ROWS[1]["name"]: ROWS[1]["born"],
        ROWS[2]["name"]: date(2000, 1, 2),
    }


def test_a_query_on_a_locked_store_raises_sqlalchemys_operational_error(tmp_path: Path) -> None:
    """The stores turn OperationalError into a transient StoreBusy: still SQLAlchemy's one."""
    url = f"sqlite:///{tmp_path / 'things.db'}"
    engine = connect(url)
    metadata.create_all(engine)
    touch = Query(
        update(things)
        .where(things.c.name.in_(bindparam("names", expanding=True)))
        .values(note=bindparam("note"))
    )
    other = create_engine(url, connect_args={"timeout": 0.05})
    with other.connect() as holder:
        holder.exec_driver_sql("BEGIN IMMEDIATE")  # another writer holds the lock
        with pytest.raises(OperationalError), engine.begin() as conn:
            touch.rows(conn, {"names": ["x"], "note": "locked"})
        holder.rollback()


def test_a_writing_transaction_that_read_first_is_not_refused_when_another_wrote_since(
    tmp_path: Path,
) -> None:
    """A transaction begun as usual reads, another connection writes, and its own write is
    refused at once: SQLite will not let a reader whose snapshot is stale start writing. Begun by
    `writing(engine)`, the transaction holds the write lock from the start: the other connection
    is the one kept waiting (and, past its busy timeout, refused), and the reads stay true."""
    url = f"sqlite:///{tmp_path / 'things.db'}"
    engine = connect(url)
    metadata.create_all(engine)
    other = create_engine(url, connect_args={"timeout": 0.05})

    def insert_elsewhere(name: str) -> None:
        with other.begin() as conn:
            conn.execute(insert(things).values(name=name, at=datetime.now(UTC)))

    with engine.connect() as conn, conn.begin():
        conn.execute(select(things.c.name)).all()
        insert_elsewhere("meanwhile")
        with pytest.raises(OperationalError, match="database is locked"):
            conn.execute(insert(things).values(name="after reading", at=datetime.now(UTC)))

    with writing(engine).connect() as conn, conn.begin():
        names = conn.execute(select(things.c.name)).scalars().all()
        with pytest.raises(OperationalError, match="database is locked"):
            insert_elsewhere("not meanwhile")
        conn.execute(insert(things).values(name="after reading", at=datetime.now(UTC)))
    with engine.connect() as conn:
        assert names == ["meanwhile"]
        assert conn.execute(select(things.c.name).order_by(things.c.id)).scalars().all() == [
            "meanwhile",
            "after reading",
        ]


def test_a_writing_transaction_that_cannot_begin_raises_sqlalchemys_operational_error(
    tmp_path: Path,
) -> None:
    """BEGIN IMMEDIATE waits for another writer up to the busy timeout, then fails as SQLAlchemy
    fails (the stores turn its OperationalError into a transient StoreBusy), not as the driver."""
    url = f"sqlite:///{tmp_path / 'things.db'}"
    engine = connect(url)
    metadata.create_all(engine)
    with create_engine(url).connect() as holder:
        holder.exec_driver_sql("BEGIN IMMEDIATE")
        with pytest.raises(OperationalError, match="database is locked"), writing(engine).begin():
            pass
        holder.rollback()
    with writing(engine).begin() as conn:  # and once the other writer is gone, it begins
        conn.execute(insert(things).values(name="now", at=datetime.now(UTC)))


def test_a_duplicate_row_raises_sqlalchemys_integrity_error(tmp_path: Path) -> None:
    """The stores turn IntegrityError into a transient StoreBusy: it must still be SQLAlchemy's."""
    engine = connect(f"sqlite:///{tmp_path / 'things.db'}")
    metadata.create_all(engine)
    with engine.begin() as conn:
        BULK.execute(conn, ROWS[:1])
    with pytest.raises(IntegrityError), engine.begin() as conn:
        BULK.execute(conn, ROWS[:1])


@pytest.mark.parametrize("paramstyle", ["qmark", "named"])
def test_bulk_update_stores_what_sqlalchemy_stores(tmp_path: Path, paramstyle: str) -> None:
    """The same UPDATE for many rows through SQLAlchemy's executemany and through Bulk: the
    same stored values, each converted by its column's type; keys a statement does not name
    are ignored, as SQLAlchemy ignores them."""
    url = f"sqlite:///{tmp_path / 'things.db'}"
    engine = connect(url) if paramstyle == "qmark" else create_engine(url, paramstyle=paramstyle)
    metadata.create_all(engine)
    changes = [
        {"new_at": r["at"] + timedelta(days=1, microseconds=7), "new_born": r["born"] and
         r["born"] + timedelta(days=1), "new_note": f"{r['note']} changed", "unused": 1}
        for r in ROWS
    ]  # fmt: skip
    with engine.begin() as conn:
        for prefix in ("sa", "bulk"):
            conn.execute(insert(things), [r | {"name": f"{prefix} {r['name']}"} for r in ROWS])
        conn.execute(
            BULK_UPDATE.statement,
            [c | {"key": f"sa {r['name']}"} for c, r in zip(changes, ROWS, strict=True)],
        )
        BULK_UPDATE.execute(
            conn, [c | {"key": f"bulk {r['name']}"} for c, r in zip(changes, ROWS, strict=True)]
        )
    ours, theirs = stored(engine, "bulk"), stored(engine, "sa")
    assert ours == theirs
    assert [t[1][3] for t in ours] == [c["new_note"] for c in changes]
    assert ours[0][1][:2] == (changes[0]["new_at"].replace(tzinfo=None), changes[0]["new_born"])


def test_a_store_made_by_an_older_version_gets_the_new_columns_and_indexes(
    tmp_path: Path,
) -> None:
    """create_or_upgrade adds what a newer table has to an older one, keeping its rows (the new
    columns empty); a second run changes nothing; a new NOT NULL column is refused, not guessed."""
    engine = connect(f"sqlite:///{tmp_path / 'things.db'}")
    older = MetaData()
    Table("things", older, Column("id", Integer, primary_key=True), Column("name", String))
    assert create_or_upgrade(engine, older) == []
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO things (id, name) VALUES (1, 'kept')")
    newer = MetaData()
    Table(
        "things",
        newer,
        Column("id", Integer, primary_key=True),
        Column("name", String),
        Column("digest", BigInteger),
        Column("note", Text),
        Index("ix_things_name_note", "name", "note"),
    )
    assert create_or_upgrade(engine, newer) == [
        "things.digest",
        "things.note",
        "things.ix_things_name_note",
    ]
    assert create_or_upgrade(engine, newer) == []
    assert [i["column_names"] for i in inspect(engine).get_indexes("things")] == [["name", "note"]]
    with engine.begin() as conn:
        assert conn.exec_driver_sql("SELECT id, name, digest, note FROM things").all() == [
            (1, "kept", None, None)
        ]
        conn.exec_driver_sql("UPDATE things SET digest = ? WHERE id = 1", (-(2**63),))
    strict = MetaData()
    Table(
        "things",
        strict,
        Column("id", Integer, primary_key=True),
        Column("must", String, nullable=False),
    )
    with pytest.raises(ValueError, match=r"things\.must: only nullable columns are added"):
        create_or_upgrade(engine, strict)


def test_a_transaction_that_fails_part_way_leaves_nothing(tmp_path: Path) -> None:
    """SQLite's driver would commit each statement by itself; connect() makes a transaction of
    engine.begin()'s block, so a failure after a write undoes the write, and another connection
    sees nothing of a transaction until it commits."""
    engine = connect(f"sqlite:///{tmp_path / 'things.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE things (name TEXT)")

    def fail_after_a_write() -> None:
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO things VALUES ('undone')")
            raise RuntimeError("the batch failed")

    with pytest.raises(RuntimeError):
        fail_after_a_write()
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO things VALUES ('kept')")
        with engine.connect() as other:
            assert other.exec_driver_sql("SELECT name FROM things").all() == []
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT name FROM things").all() == [("kept",)]


def test_connections_keeps_one_per_thread_and_nests_as_engine_begin_does(tmp_path: Path) -> None:
    """Transactions one after another on a thread share its kept connection; one begun inside
    another gets its own; another thread has its own; an invalidated one is replaced."""
    connections = Connections(connect(f"sqlite:///{tmp_path / 'things.db'}"))
    with connections.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE things (name TEXT)")
        kept = conn.connection.driver_connection
    with connections.begin() as conn:
        conn.exec_driver_sql("INSERT INTO things VALUES ('unseen until committed')")
        with connections.begin() as inner:
            assert inner.connection.driver_connection is not kept
            assert inner.exec_driver_sql("SELECT count(*) FROM things").scalar() == 0
        conn.exec_driver_sql("DELETE FROM things")
    with connections.begin() as conn:
        assert conn.connection.driver_connection is kept
        conn.exec_driver_sql("INSERT INTO things VALUES ('kept')")
    elsewhere: list[object] = []

    def on_another_thread() -> None:
        with connections.begin() as conn:
            elsewhere.append(conn.connection.driver_connection)

    thread = threading.Thread(target=on_another_thread)
    thread.start()
    thread.join()
    assert len(elsewhere) == 1
    assert elsewhere[0] is not kept

    def lose_the_database() -> None:
        with connections.begin() as conn:
            conn.invalidate()  # as SQLAlchemy does when the database went away

    with pytest.raises(PendingRollbackError):
        lose_the_database()
    with connections.begin() as conn:
        assert conn.connection.driver_connection is not kept
        assert conn.exec_driver_sql("SELECT name FROM things").all() == [("kept",)]


def test_a_failed_statement_does_not_show_the_values_bound_to_it(tmp_path: Path) -> None:
    """The stores look people up by NINO, surname and date of birth; SQLAlchemy's error text
    showed them ([parameters: ['JT123456A', ...]]), and it reached logs and stderr."""
    engine = connect(f"sqlite:///{tmp_path / 'things.db'}")
    metadata.create_all(engine)
    person = {**ROWS[0], "name": "QQ123456C", "note": "Zoë Personal"}
    with engine.begin() as conn:
        BULK.execute(conn, [person])
        conn.exec_driver_sql(
            "CREATE TRIGGER refuse BEFORE UPDATE ON things BEGIN SELECT RAISE(ABORT, 'no'); END"
        )
    on_the_cursor = Query(
        update(things)
        .where(things.c.name.in_(bindparam("names", expanding=True)))
        .values(note=bindparam("note"))
    )
    statements: list[Callable[[Connection], object]] = [
        lambda conn: on_the_cursor.rows(conn, {"names": [person["name"]], "note": "Zoë"}),
        lambda conn: conn.execute(
            update(things).where(things.c.name == person["name"]).values(note=person["note"])
        ),
        lambda conn: BULK.execute(conn, [person]),  # the name again: not unique
    ]
    for statement in statements:
        with pytest.raises(DBAPIError) as failed, engine.begin() as conn:
            statement(conn)
        assert "QQ123456C" not in str(failed.value), failed.value
        assert "Zoë" not in str(failed.value)
        assert reason(failed.value) in {"no", "UNIQUE constraint failed: things.name"}


def test_each_time_bound_is_stored_as_its_own_text_however_many(tmp_path: Path) -> None:
    """Texts of times are kept by the time's identity for the next bind of it: times made and
    dropped one after another (their memory, and ids, used again), more than are kept, are
    each stored as themselves, as are dates and NULLs and blobs bound beside them."""
    meta = MetaData()
    table = Table("t", meta, Column("id", Integer, primary_key=True), Column("i", INSTANT),
                  Column("d", DAY), Column("b", LargeBinary))  # fmt: skip
    engine = connect(f"sqlite:///{tmp_path}/t.db")
    meta.create_all(engine)
    start = datetime(2026, 12, 7, 16, 0, tzinfo=UTC)
    count = 3 * database._TEXTS_KEPT
    with engine.begin() as conn:
        for n in range(count):
            at = start + timedelta(microseconds=n)  # a new object each time, the last dropped
            day = date(2000, 1, 1) + timedelta(days=n % 3000)
            blob = None if n % 2 else n.to_bytes(4, "big")
            conn.execute(insert(table), {"id": n, "i": at, "d": day, "b": blob})
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT id, i, d, b FROM t ORDER BY id").all()
    engine.dispose()
    assert len(rows) == count
    for n, stored, day, blob in rows:
        assert stored == (start + timedelta(microseconds=n)).isoformat(" ", "microseconds")[:26]
        assert day == (date(2000, 1, 1) + timedelta(days=n % 3000)).isoformat()
        assert blob == (None if n % 2 else n.to_bytes(4, "big"))


def test_day_and_instant_store_on_sqlite_the_text_sqlalchemys_own_types_store(
    tmp_path: Path,
) -> None:
    """DAY and INSTANT bind dates and datetimes by isoformat on SQLite, not SQLAlchemy's
    %-format: the same text (stores written before read the same), read back the same, and
    what is neither a date nor a datetime is refused as before."""
    ours, theirs = MetaData(), MetaData()
    for meta, day, instant in ((ours, DAY, INSTANT), (theirs, Date(), DateTime(timezone=True))):
        Table("t", meta, Column("id", Integer, primary_key=True), Column("d", day),
              Column("i", instant))  # fmt: skip
    values = [
        (date(1950, 1, 31), datetime(2026, 11, 22, 17, 1, 2, 345678, tzinfo=UTC)),
        (date(12, 3, 4), datetime(12, 3, 4, 5, 6, 7, tzinfo=timezone(timedelta(hours=-5)))),
        (date(9999, 12, 31), datetime(2026, 3, 29, 1, 0)),  # no offset
        (datetime(2026, 1, 2, 3, 4, 5), date(2026, 1, 2)),  # each where the other belongs
        (None, None),
    ]
    found = []
    for meta in (ours, theirs):
        engine = connect(f"sqlite:///{tmp_path}/{id(meta)}.db")
        meta.create_all(engine)
        table = meta.tables["t"]
        with engine.begin() as conn:
            for n, (d, i) in enumerate(values):
                conn.execute(insert(table), {"id": n, "d": d, "i": i})
            raw = conn.exec_driver_sql("SELECT d, i FROM t ORDER BY id").all()
            typed = conn.execute(select(table.c.d, table.c.i).order_by(table.c.id)).all()
            with pytest.raises(StatementError, match="only accepts Python date"):
                conn.execute(insert(table), {"id": 99, "d": "2026-01-02"})
        engine.dispose()
        found.append(([tuple(r) for r in raw], [tuple(r) for r in typed]))
    assert found[0] == found[1]
    dialect = connect(f"sqlite:///{tmp_path}/any.db").dialect  # the driver's own types ...
    for column_type in (DAY, INSTANT):  # ... do not take the place of these (a first try's did)
        bind = column_type.dialect_impl(dialect).bind_processor(dialect)
        assert bind is not None
        assert bind.__qualname__.startswith("_SQLite")
    assert found[0][0][0] == ("1950-01-31", "2026-11-22 17:01:02.345678")
    assert found[0][0][1] == ("0012-03-04", "0012-03-04 05:06:07.000000")
