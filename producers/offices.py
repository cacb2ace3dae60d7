"""Registration offices' API keys: created once, shown once, stored only as SHA-256 hashes;
listed and revoked by the first characters of their hash (their id). And the districts an
office registers in: an office may submit only their register entries (another's would be
published first and the office's own refused as a conflict)."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import NamedTuple

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import Column, MetaData, String, Table, insert, select, update

from tellusonce.database import INSTANT, connect, create_or_upgrade
from tellusonce.fields import Code

metadata = MetaData()
api_keys = Table(
    "api_keys", metadata,
    Column("key_hash", String, primary_key=True),
    Column("office", String, nullable=False, index=True),
    Column("created_at", INSTANT, nullable=False),
    Column("revoked_at", INSTANT),
)  # fmt: skip
office_districts = Table(  # none for an office: it may register in any district
    "office_districts", metadata,
    Column("office", String, primary_key=True),
    Column("district", String, primary_key=True),  # folded, as register entries compare them
)  # fmt: skip
PREFIX = "tuo_"
ID_LENGTH = 12  # hex characters of a key's hash that name it
_KEY_ID = re.compile(f"[0-9a-f]{{{ID_LENGTH}}}")
_CODES: TypeAdapter[str] = TypeAdapter(Code)
_KEY = (api_keys.c.key_hash, api_keys.c.office, api_keys.c.created_at, api_keys.c.revoked_at)


class Key(NamedTuple):
    """What is known of a key without the key: its id, office and when it was made and revoked."""

    key_id: str
    office: str
    created_at: datetime
    revoked_at: datetime | None


def _hash(key: str) -> str:
    # Keys are 256 random bits: a fast hash is enough (no dictionary to guess from).
    return hashlib.sha256(key.encode()).hexdigest()


def _key(key_hash: str, office: str, created_at: datetime, revoked_at: datetime | None) -> Key:
    return Key(key_hash[:ID_LENGTH], office, created_at, revoked_at)


def _code(what: str, name: str) -> str:
    """An office's or a district's name as submissions give it (single-spaced), or ValueError
    saying why it cannot be one: a key for an office no submission can name is of no use."""
    try:
        return _CODES.validate_python(name)
    except ValidationError as exc:
        raise ValueError(f"{what} {name!r} {exc.errors()[0]['msg']}") from None


def office_name(name: str) -> str:
    """An office's name as submissions give it (ValueError if none can)."""
    return _code("office", name)


def key_id(key: str) -> str:
    """A key's id: the first characters of its hash, to list and revoke it by."""
    return _hash(key)[:ID_LENGTH]


class Offices:
    """Which office an API key belongs to."""

    def __init__(self, url: str) -> None:
        self.engine = connect(url)
        create_or_upgrade(self.engine, metadata)

    def create_key(self, office: str, districts: Iterable[str] = ()) -> str:
        """A new key for an office, which registers in these districts as well as any it was
        given before (none ever: any district); only the key's hash is kept, so this is the one
        time it is seen."""
        office = office_name(office)
        # as Registration.entry compares districts: the name as given (a Code), without case
        folded = {_code("district", d).casefold() for d in districts}
        folded -= self.districts(office) or set()
        key = PREFIX + secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            conn.execute(
                insert(api_keys).values(
                    key_hash=_hash(key), office=office, created_at=datetime.now(UTC)
                )
            )
            if folded:
                rows = [{"office": office, "district": d} for d in sorted(folded)]
                conn.execute(insert(office_districts), rows)
        return key

    def districts(self, office: str) -> set[str] | None:
        """The districts (folded) an office registers in, or None: any."""
        with self.engine.connect() as conn:
            found = conn.execute(
                select(office_districts.c.district).where(office_districts.c.office == office)
            ).scalars()
            return set(found) or None

    def office_of(self, key: str | None) -> str | None:
        """The office a presented key belongs to, or None (unknown or revoked)."""
        if not key or not key.startswith(PREFIX):
            return None
        with self.engine.connect() as conn:
            return conn.execute(
                select(api_keys.c.office).where(
                    api_keys.c.key_hash == _hash(key), api_keys.c.revoked_at.is_(None)
                )
            ).scalar()

    def listing(self) -> list[Key]:
        """Every key, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(*_KEY).order_by(api_keys.c.created_at))
            return [_key(*row) for row in rows]

    def revoke(self, wanted: str) -> Key | None:
        """Revoke the key of this id (a leaked one): it is refused from now on. The key
        revoked, or None if no key in use has this id."""
        if not _KEY_ID.fullmatch(wanted.lower()):  # hex only: `_` and `%` would be LIKE's
            return None
        in_use = (
            api_keys.c.key_hash.startswith(wanted.lower(), autoescape=True),
            api_keys.c.revoked_at.is_(None),
        )
        with self.engine.begin() as conn:
            found = conn.execute(select(*_KEY).where(*in_use)).all()
            if len(found) != 1:  # none, or (one in 2^48) more than one: revoke none
                return None
            now = datetime.now(UTC)
            this = api_keys.c.key_hash == found[0].key_hash
            conn.execute(update(api_keys).where(this).values(revoked_at=now))
        return _key(*found[0])._replace(revoked_at=now)
