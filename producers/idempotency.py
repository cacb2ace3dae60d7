"""Idempotency keys: the same key and body answers the original response; a new body is refused."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError

from tellusonce.database import INSTANT, connect, create_or_upgrade, reason
from tellusonce.errors import NotRecorded

log = structlog.get_logger("tellusonce.api")
metadata = MetaData()
responses = Table(
    "idempotency", metadata,
    Column("office", String, primary_key=True),
    Column("key", String, primary_key=True),
    Column("body_hash", String, nullable=False),
    Column("status", Integer, nullable=False),
    Column("response", Text, nullable=False),
    Column("created_at", INSTANT, nullable=False),
)  # fmt: skip


PENDING = 0  # the status of a key whose request is being (or was last) published, unanswered


@dataclass(frozen=True)
class Stored:
    """A response given before under an idempotency key, or (status PENDING) the request a key
    was first used for, whose publication has not been answered (a 503, say)."""

    body_hash: str
    status: int
    response: dict[str, Any]

    @property
    def pending(self) -> bool:
        return self.status == PENDING


def body_hash(path: str, body: bytes) -> str:
    """What a request is, for telling a retry from a different request under the same key."""
    return hashlib.sha256(path.encode() + b"\0" + body).hexdigest()


class IdempotencyKeys:
    """Responses by (office, Idempotency-Key): successful ones, and a key's request as it is
    published (so a retry after a 503 is still the only request that key may carry)."""

    def __init__(self, url: str) -> None:
        self.engine = connect(url)
        create_or_upgrade(self.engine, metadata)

    def get(self, office: str, key: str) -> Stored | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(responses).where(responses.c.office == office, responses.c.key == key)
            ).first()
        return None if row is None else Stored(row.body_hash, row.status, json.loads(row.response))

    def reserve(self, office: str, key: str, digest: str) -> Stored | None:
        """Tie a key to a request before it is published: another body under the key is then
        refused, even if this one's publication fails (its retry is still this request). None
        once reserved; what the key holds if another process reserved it first (its request's,
        or its answer). NotRecorded if the store cannot keep it (locked): nothing may be
        published without the key held, or another body could take it after a 503."""
        row = {"body_hash": digest, "status": PENDING, "response": "{}"}
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(responses).values(
                        office=office, key=key, created_at=datetime.now(UTC), **row
                    )
                )
        except IntegrityError:  # another process (another API instance) took it meanwhile
            return self.get(office, key)
        except OperationalError as exc:  # answered 503: said here, for the operator
            log.error("idempotency_key_not_reserved", error=reason(exc))
            raise NotRecorded(f"idempotency key not kept: {reason(exc)}", published=False) from exc
        return None

    def release(self, office: str, key: str, digest: str) -> None:
        """Free a key reserved for a request refused without publishing anything (a conflict,
        an invalid or too large event): the request the refusal asks for instead is a different
        body, and may take the key."""
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    delete(responses).where(
                        responses.c.office == office,
                        responses.c.key == key,
                        responses.c.status == PENDING,
                        responses.c.body_hash == digest,
                    )
                )
        except OperationalError as exc:
            log.warning("idempotency_key_not_released", error=reason(exc))

    def put(self, office: str, key: str, stored: Stored) -> None:
        """Keep a response over its key's pending request (this one's, by its body: never over
        another's); a concurrent twin that stored first wins (its response is the same). A
        store that cannot keep it (locked) is logged, not raised: the event is published and
        recorded in the ledger, so the same request again is answered from there (200)."""
        row = {
            "body_hash": stored.body_hash,
            "status": stored.status,
            "response": json.dumps(stored.response),
            "created_at": datetime.now(UTC),
        }
        mine = (responses.c.office == office, responses.c.key == key)
        try:
            with self.engine.begin() as conn:
                answered = update(responses).where(
                    *mine, responses.c.status == PENDING, responses.c.body_hash == stored.body_hash
                )
                if not conn.execute(answered.values(**row)).rowcount:
                    conn.execute(insert(responses).values(office=office, key=key, **row))
        except IntegrityError:
            return
        except OperationalError as exc:
            log.warning("idempotency_key_not_kept", error=reason(exc))
