"""SQLAlchemy engines for the stores (each service's, the tracker's, the registrar's ledger)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import SQLAlchemyError


def connect(url: str) -> Engine:
    """An engine for a store URL; SQLite gets WAL and a short busy timeout (locked = transient)."""
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"timeout": 1.0})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: object) -> None:
        # Let SQLAlchemy, not the sqlite3 module, begin transactions, so a batch's reads and
        # writes are one transaction (SQLAlchemy's documented recipe for pysqlite).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN")

    return engine


def ping(engine: Engine) -> bool:
    """Whether a store answers `SELECT 1`."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError:
        return False
    return True
