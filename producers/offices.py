"""Registration offices' API keys: created once, shown once, stored only as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime

from sqlalchemy import Column, DateTime, MetaData, String, Table, insert, select

from tellusonce.database import connect

metadata = MetaData()
api_keys = Table(
    "api_keys", metadata,
    Column("key_hash", String, primary_key=True),
    Column("office", String, nullable=False, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)  # fmt: skip
PREFIX = "tuo_"


def _hash(key: str) -> str:
    # Keys are 256 random bits: a fast hash is enough (no dictionary to guess from).
    return hashlib.sha256(key.encode()).hexdigest()


class Offices:
    """Which office an API key belongs to."""

    def __init__(self, url: str) -> None:
        self.engine = connect(url)
        metadata.create_all(self.engine)

    def create_key(self, office: str) -> str:
        """A new key for an office; only its hash is kept, so this is the one time it is seen."""
        key = PREFIX + secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            conn.execute(
                insert(api_keys).values(
                    key_hash=_hash(key), office=office, created_at=datetime.now(UTC)
                )
            )
        return key

    def office_of(self, key: str | None) -> str | None:
        """The office a presented key belongs to, or None."""
        if not key or not key.startswith(PREFIX):
            return None
        with self.engine.connect() as conn:
            return conn.execute(
                select(api_keys.c.office).where(api_keys.c.key_hash == _hash(key))
            ).scalar()
