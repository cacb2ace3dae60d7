"""The one exception tree of tellusonce; whether an error is transient decides retry or dead-letter.

    TellUsOnceError
    ├── InvalidSubmission        bad input from a registrar: nothing was published (exit 2)
    ├── UnsafeSettings           settings that would expose people's data: refused (exit 1)
    ├── BadSettings              settings Kafka's client refuses (exit 1)
    ├── TransientError           may succeed if tried again: retry with backoff
    │   ├── BrokerUnavailable    Kafka did not acknowledge in time
    │   └── StoreBusy            a service's store is locked or unreachable
    │       └── UnitFailed       its batch's transaction cannot go on: the whole batch again
    └── PermanentError           will fail the same way every time: dead-letter
        ├── UndecodableMessage   not single-object Avro, truncated, or invalid for the model
        ├── UnknownSchema        a writer schema fingerprint this code does not ship
        ├── RuleRejected         a service rule refused the event
        ├── UnreadableRecord     a service's own record its model cannot read
        └── MessageTooLarge      more bytes than Kafka takes in one message (to publish)

Messages never contain personal data: they name fields and reasons, not values.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


def invalid_fields(error: ValidationError, within: str = "") -> str:
    """Each invalid field of a pydantic error by its path and the kind of error, never its
    value (pydantic's own message shows the input)."""
    return ", ".join(
        within + ".".join(str(p) for p in e["loc"]) + f" ({e['type']})" for e in error.errors()
    )


class TellUsOnceError(Exception):
    """Root of every error tellusonce raises on purpose."""


class InvalidSubmission(TellUsOnceError):
    """A submission failed validation; `problems` lists (field path, reason) pairs."""

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(f"{field}: {reason}" for field, reason in problems))


class SubmissionConflict(InvalidSubmission):
    """A submission that contradicts what was published for its register entry already (other
    facts, another office, or a registration cancelled since)."""


class UnsafeSettings(TellUsOnceError):
    """Settings a process refuses to start with, as they would expose people's data."""


class BadSettings(TellUsOnceError):
    """Settings a library refuses as they are used (librdkafka's, given in
    TELLUSONCE_KAFKA_SECURITY): the process cannot work with them."""


class TransientError(TellUsOnceError):
    """An error that may go away if the same work is tried again later."""


class BrokerUnavailable(TransientError):
    """Kafka could not be reached or did not acknowledge a message in time: it may have gone
    out all the same, unless `went_out` is False (Kafka refused it)."""

    def __init__(self, message: str, went_out: bool = True) -> None:
        super().__init__(message)
        self.went_out = went_out


class NotRecorded(TransientError):
    """The registrar's ledger could not record a submission (locked, say): before it was
    published (`published` False: nothing was), or after Kafka acknowledged it (submitting it
    again records it, and services take the second publication as a repeat)."""

    def __init__(self, message: str, published: bool = True) -> None:
        super().__init__(message)
        self.published = published


class StoreBusy(TransientError):
    """A service's store is locked or cannot be reached right now."""


class UnitFailed(StoreBusy):
    """A consumer batch's store transaction that cannot go on: the database ended it (on
    PostgreSQL any error aborts a transaction, a dropped connection too). Nothing of the batch
    is kept, and the whole batch is tried again, not only the message that met the error."""


class PermanentError(TellUsOnceError):
    """An error that will recur on every retry: the message goes to the dead-letter topic."""


class UndecodableMessage(PermanentError):
    """The bytes are not a valid tellusonce message."""


class UnknownSchema(PermanentError):
    """The message names a writer schema (by fingerprint) that this code does not ship."""


class RuleRejected(PermanentError):
    """A service's business rule refused the event."""


class UnreadableRecord(PermanentError):
    """A service's own record (one the event is about) is not what its model reads: the event
    waits in the dead-letter topic until the record is mended, then is replayed."""


class MessageTooLarge(PermanentError):
    """A message to publish is larger than Kafka takes (the producer's or the topic's limit)."""
