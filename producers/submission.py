"""Validate a registrar's submission, build its life event and publish it with acknowledgement."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

import structlog
from pydantic import BaseModel, ValidationError

from producers.documents import FIELD_NAME
from producers.ledger import Ledger
from tellusonce.codec import Codec
from tellusonce.errors import (
    BrokerUnavailable,
    InvalidSubmission,
    MessageTooLarge,
    SubmissionConflict,
    UnsafeSettings,
)
from tellusonce.events import (
    FACTS,
    REGISTRATION_PERIOD,
    Action,
    Envelope,
    EventType,
    Facts,
    Frozen,
    LifeEvent,
    Problem,
    Registration,
    life_event,
)
from tellusonce.fields import LONDON, SUBMITTED, Instant, hides_characters
from tellusonce.headers import event_headers
from tellusonce.identity import as_issued, event_id, person_ref, reference
from tellusonce.kafka import Outgoing, Publisher
from tellusonce.metrics import EVENTS_PUBLISHED
from tellusonce.settings import DEVELOPMENT_SECRET, Settings
from tellusonce.topics import Topics

log = structlog.get_logger("tellusonce.producer")


ModelT = TypeVar("ModelT", bound=BaseModel)


class Header(Frozen):
    """The part of a submission that says where and when the event was registered."""

    registration: Registration
    registered_at: Instant | None = None


@dataclass(frozen=True)
class Receipt:
    """What the registrar gets back once Kafka has acknowledged the event."""

    event_id: UUID
    reference: str
    event_type: EventType
    action: Action
    late_registration: bool


def problems_of(error: ValidationError) -> list[Problem]:
    """Each field's problem; not a list's being too short when that is only because an item in
    it is invalid (pydantic reports both: "Tuple should have at least 1 item after validation")."""
    errors = error.errors(include_url=False, include_input=False)
    within = {e["loc"][:i] for e in errors for i in range(len(e["loc"]))}
    return [
        Problem(".".join(str(part) for part in _said(e)) or "(document)", e["msg"])
        for e in errors
        if not (e["type"] == "too_short" and e["loc"] in within)
    ]


def _said(error: Any) -> tuple[Any, ...]:
    """Where an error is: a field the model does not take is named only if shaped as a name
    (its object else: the client's own text is not repeated back)."""
    loc: tuple[Any, ...] = error["loc"]
    if error["type"] == "extra_forbidden" and not FIELD_NAME.fullmatch(str(loc[-1])):
        return loc[:-1]
    return loc


def _not_text(node: object, path: str = "") -> list[Problem]:
    """Each string holding a lone surrogate ("\\ud800" in JSON: no character, and not text Avro
    carries), by its field: validated as JSON, it failed the whole part at a column of a JSON
    text the registrar never wrote."""
    if isinstance(node, str):
        return [] if _is_text(node) else [Problem(path or "(document)", NOT_TEXT)]
    if isinstance(node, Mapping):
        if any(isinstance(key, str) and not _is_text(key) for key in node):  # a field's name:
            return [Problem(path or "(document)", NOT_TEXT_NAME)]  # its object named instead
        items: Iterable[tuple[object, object]] = node.items()
    else:
        items = enumerate(node) if isinstance(node, list) else ()
    return [p for key, value in items for p in _not_text(value, f"{path}.{key}".lstrip("."))]


NOT_TEXT = "holds a character that is not text"
NOT_TEXT_NAME = "has a field whose name holds a character that is not text"


def _is_text(value: str) -> bool:
    try:
        value.encode()
    except UnicodeEncodeError:  # a lone surrogate ("\ud800"): valid JSON, not text Avro carries
        return False
    return True


def _kind_of(body: Mapping[str, Any], event_type: EventType) -> EventType | None:
    """The other kind of event a body is a submission of, if it holds every field that kind
    requires and lacks one this kind requires (a death sent to the birth endpoint)."""
    if _required(event_type) <= body.keys():
        return None
    return next((t for t in EventType if t != event_type and _required(t) <= body.keys()), None)


def _required(event_type: EventType) -> set[str]:
    return {name for name, f in FACTS[event_type].model_fields.items() if f.is_required()}


def _strictly(model: type[ModelT], part: Mapping[str, Any]) -> ModelT:
    """A part of a JSON document validated as JSON and strictly: true is not 1, "1042" is not
    1042 (pydantic's lax reading of Python objects takes both); dates checked against today."""
    return model.model_validate_json(json.dumps(part), strict=True, context=SUBMITTED)


def parse(
    event_type: EventType,
    document: object,
    correcting: str | None = None,
    registered: datetime | None = None,
) -> tuple[Header, Facts]:
    """Validate a submission document (the whole corrected submission, when `correcting` a
    reference `registered` then); raise InvalidSubmission listing every problem found."""
    if not isinstance(document, Mapping):
        raise InvalidSubmission([Problem("(document)", "must be a JSON object")])
    if not_text := _not_text(document):
        raise InvalidSubmission(not_text)
    body = {k: v for k, v in document.items() if k not in {"registration", "registered_at"}}
    head = {k: v for k, v in document.items() if k in {"registration", "registered_at"}}
    problems: list[Problem] = []
    header = facts = None
    try:
        header = _strictly(Header, head)
    except ValidationError as exc:
        problems += problems_of(exc)
    try:
        facts = _strictly(FACTS[event_type], body)
    except ValidationError as exc:
        problems += problems_of(exc)
    if facts is not None:
        problems += facts.problems()
    elif (kind := _kind_of(body, event_type)) is not None:
        what = f"is a {kind.value} registration, not a {event_type.value}"
        where = (
            f"a correction of {correcting} is a whole {event_type.value} submission"
            if correcting
            else f"submit it to /v1/events/{kind.value} (CLI: tellusonce submit {kind.value})"
        )
        problems.insert(0, Problem("(document)", f"{what}: {where}"))
    if header is not None:
        problems += _registration_dates(header, facts, registered)
    if problems or header is None or facts is None:
        raise InvalidSubmission(problems)
    return header, facts


CLOCKS_AHEAD = timedelta(minutes=5)
"""How far ahead of this machine's clock a registrar's registered_at may be (their clock
set a little fast), and not be said to be in the future."""


def _registration_dates(
    header: Header, facts: Facts | None, registered: datetime | None
) -> list[Problem]:
    """A registration's time against its event's date: the submission's own, or (a correction)
    the time its entry was `registered`, which the correction does not change."""
    problems = []
    if registered is not None:
        if header.registered_at is not None and header.registered_at != registered:
            when = registered.astimezone(UTC).isoformat().replace("+00:00", "Z")
            problems.append(
                Problem("registered_at", f"is when the entry was registered ({when}): it is "
                        "not corrected (leave it out)")
            )  # fmt: skip
        registered_on = registered.astimezone(LONDON).date()
        if facts is not None and registered_on < facts.occurred_on():
            problems.append(Problem(facts.OCCURRED, f"is after the registration ({registered_on})"))
    elif header.registered_at is not None:
        registered_on = header.registered_at.astimezone(LONDON).date()
        if header.registered_at > datetime.now(UTC) + CLOCKS_AHEAD:  # (not only a later day:
            problems.append(Problem("registered_at", "is in the future"))  # tonight too)
        elif facts is not None and registered_on < facts.occurred_on():
            problems.append(Problem("registered_at", "is before the event it registers"))
    return problems


NOT_SUBMITTED_HERE = Problem(
    "reference", "no registration with this reference was submitted from here"
)


def registration(event_type: EventType, document: object, settings: Settings) -> LifeEvent[Any]:
    """The event a submission makes, validated (InvalidSubmission), not published."""
    header, facts = parse(event_type, document)
    return build_event(event_type, header, facts, settings)


def build_event(
    event_type: EventType,
    header: Header,
    facts: Facts,
    settings: Settings,
    *,
    action: Action = Action.REGISTERED,
    amends: LifeEvent[Any] | None = None,
    reason: str | None = None,
    registered: datetime | None = None,
) -> LifeEvent[Any]:
    """The life event for validated facts; ids are deterministic in the register entry.

    A correction or cancellation (`amends` = the newest event of its reference) keeps the
    reference and key (person_ref) of what it amends, supersedes it and counts the revision
    up, so it travels on the same partition as the events it amends; its late flag is worked
    out again from its facts and the time its entry was `registered` (or kept, if not given).
    """
    now = datetime.now(UTC)
    secret = settings.pseudonym_secret.get_secret_value().encode()  # keys person_ref, reference
    if amends is None:
        registered_at = header.registered_at or now
        revision, supersedes = 0, None
        late = _late(event_type, facts, registered_at)
        key = person_ref(facts.subject(), secret)
    else:
        old = amends.envelope
        registered_at, revision, supersedes = now, old.revision + 1, old.event_id
        key = old.person_ref
        late = old.late_registration if registered is None else _late(event_type, facts, registered)
    this_id = event_id(event_type, header.registration, action, revision)
    envelope = Envelope(
        event_id=this_id,
        event_type=event_type,
        action=action,
        revision=revision,
        supersedes=supersedes,
        reference=amends.envelope.reference if amends else reference(this_id, secret),
        occurred_on=facts.occurred_on(),
        registered_at=registered_at.astimezone(UTC),
        late_registration=late,
        registration=header.registration,
        person_ref=key,
        source=settings.source,
        reason=reason,
    )
    return life_event(envelope, facts)


def _late(event_type: EventType, facts: Facts, registered_at: datetime) -> bool:
    """Whether an event was registered after the period the law gives for it."""
    period = REGISTRATION_PERIOD.get(event_type)
    return period is not None and (
        registered_at.astimezone(LONDON).date() - facts.occurred_on() > period
    )


REASON_MAX = 200  # characters: the envelope's free text


def _reason(value: object, field: str, *, required: bool) -> str | None:
    """Why an entry is corrected or cancelled: text of 1 to 200 characters (trimmed), or None
    where it may be left out; an InvalidSubmission naming the field otherwise (never echoing
    it: a reason may name someone)."""
    if value is None:
        if required:
            raise InvalidSubmission([Problem(field, "is required")])
        return None
    if not isinstance(value, str):
        raise InvalidSubmission([Problem(field, "must be text")])
    text = value.strip()
    if not text:
        raise InvalidSubmission([Problem(field, "must not be blank")])
    if not _is_text(text):
        raise InvalidSubmission([Problem(field, NOT_TEXT)])
    if hides_characters(text):  # as any free text submitted (fields.Text)
        reason = "contains a control or invisible formatting character"
        raise InvalidSubmission([Problem(field, reason)])
    if len(text) > REASON_MAX:
        raise InvalidSubmission([Problem(field, f"must be at most {REASON_MAX} characters")])
    return text


def correction(
    latest: LifeEvent[Any],
    document: object,
    settings: Settings,
    reason: object,
    reason_field: str = "correction_reason",
    registered: datetime | None = None,
) -> LifeEvent[Any]:
    """A correction of the newest event of a reference with a whole corrected submission,
    checked against the time its entry was `registered` (if not given: latest's, if it is the
    registration; else the document's own, as a registration's)."""
    if registered is None and latest.envelope.revision == 0:
        registered = latest.envelope.registered_at
    env = latest.envelope
    if env.action == Action.CANCELLED:
        raise SubmissionConflict([Problem("reference", "was cancelled; it cannot be corrected")])
    problems: list[tuple[str, str]] = []  # the reason's and the document's, said together
    why = None
    try:
        why = _reason(reason, reason_field, required=False)
    except InvalidSubmission as exc:
        problems += exc.problems
    try:
        header, facts = parse(env.event_type, document, env.reference, registered)
    except InvalidSubmission as exc:
        raise InvalidSubmission(problems + exc.problems) from exc
    if problems:
        raise InvalidSubmission(problems)
    if not header.registration.same_entry(env.registration):
        raise InvalidSubmission(
            [
                Problem(
                    "registration", "must be the register entry of the registration being corrected"
                )
            ]
        )
    if env.action == Action.REGISTERED and facts == latest.facts:
        # (the same correction again is answered with the one published: Registrar.earlier)
        raise InvalidSubmission(
            [Problem("(document)", "changes none of the registration's facts: nothing to correct")]
        )
    return build_event(
        env.event_type,
        header,
        facts,
        settings,
        action=Action.CORRECTED,
        amends=latest,
        reason=why,
        registered=registered,
    )


def cancellation(latest: LifeEvent[Any], settings: Settings, reason: object) -> LifeEvent[Any]:
    """A cancellation of a registration made in error; it carries the facts it cancels."""
    env = latest.envelope
    why = _reason(reason, "reason", required=True)
    if env.action == Action.CANCELLED:  # sent again: answered with the cancellation published
        if env.reason == why:
            return latest
        raise SubmissionConflict([Problem("reference", "is already cancelled, for another reason")])
    return build_event(
        env.event_type,
        Header(registration=env.registration),
        latest.facts,
        settings,
        action=Action.CANCELLED,
        amends=latest,
        reason=why,
    )


class Registrar:
    """Submits life events: one validated, acknowledged Kafka message per registration."""

    def __init__(self, settings: Settings, publisher: Publisher, codec: Codec) -> None:
        self.settings = settings
        self.publisher = publisher
        self.codec = codec
        self.topics = Topics(settings.topic_prefix)
        secret = settings.pseudonym_secret.get_secret_value()
        weak = "the published placeholder" if secret == DEVELOPMENT_SECRET else (
            f"shorter than {SECRET_MIN} characters" if len(secret) < SECRET_MIN else None
        )  # fmt: skip
        if weak and not _local(settings.bootstrap_servers):  # a NINO's key, made with a
            # published secret (or an empty one: an unset variable), is found again in an hour
            raise UnsafeSettings(
                f"the pseudonym secret is {weak} and Kafka is not on this machine: Kafka keys "
                "(person_ref) made with it can be reversed to the NINOs they stand for; set "
                "TELLUSONCE_PSEUDONYM_SECRET to a secret of your own (e.g. openssl rand -hex 32)"
            )
        settings.data_dir.mkdir(parents=True, exist_ok=True)  # refused, it makes no store
        self.ledger = Ledger(settings.store_url_for("registrar"), codec)
        for event_type in EventType:  # series from 0: increase() sees the first of each
            for status in ("acknowledged", "failed"):
                EVENTS_PUBLISHED.labels(event_type.value, status)

    def submit(self, event_type: EventType, document: object) -> Receipt:
        """Validate, build and publish; return only after Kafka acknowledged the event. A
        submission of a register entry published already is answered with that event."""
        return self.publish_new(registration(event_type, document, self.settings))

    def earlier(self, event: LifeEvent[Any], reason_field: str = "reason") -> LifeEvent[Any] | None:
        """The event this registrar published already under this one's id (its register entry,
        action and revision), or None; SubmissionConflict if this one contradicts what was
        published: another office's entry (whose reference is not given away), other facts, a
        registration cancelled since, or (a correction or cancellation) a reference amended
        since this was made from it. publish_once asks it under the ledger's write lock."""
        env = event.envelope
        found = self.ledger.find(env.event_id_text)
        if found is None:
            if env.supersedes is not None:
                self._still_newest(event)  # (the same correction too: cancelled meanwhile)
                superseded = self.ledger.find(str(env.supersedes))
                if superseded is not None and _same_correction(event, superseded):
                    _same_reason(event, superseded, reason_field)  # sent again: answered with
                    return superseded  # the correction published, not made a revision more
            return None
        if found.envelope.registration.office != env.registration.office:
            raise _conflict("this register entry was submitted by another office")
        ref = found.envelope.reference
        newest = self.ledger.newest(found)
        cancelled = (
            newest is not None
            and newest.envelope.action == Action.CANCELLED
            and newest.envelope.event_id != env.event_id  # not this cancellation, sent again
        )
        if found.facts != event.facts and cancelled and env.action == Action.REGISTERED:
            raise _conflict(f"the registration {ref} of this register entry was cancelled")
        if found.facts != event.facts:
            if self.ledger.unacknowledged(found.envelope.event_id_text):
                raise _conflict(
                    f"this register entry was submitted (reference {ref}) with other facts, which "
                    "Kafka has not acknowledged (they may have reached services): send that "
                    f"submission again once Kafka answers, then correct {ref}"
                )
            if env.action == Action.REGISTERED:
                raise _conflict(
                    f"this register entry was submitted already (reference {ref}) with other "
                    f"facts: correct {ref} instead"
                )
            raise _conflict(f"{ref} was corrected meanwhile with other facts", "reference")
        _same_reason(event, found, reason_field)
        if cancelled:
            raise _conflict(f"the registration {ref} of this register entry was cancelled")
        return found

    def _still_newest(self, amendment: LifeEvent[Any]) -> None:
        env = amendment.envelope
        newest = self.ledger.newest(amendment)
        if newest is not None and newest.envelope.event_id != env.supersedes:
            now = newest.envelope
            if self.ledger.unacknowledged(now.event_id_text):
                raise _conflict(
                    f"{env.reference} was {now.action.value.lower()} (revision {now.revision}), "
                    "which Kafka has not acknowledged yet: once it has (sent again, if it failed), "
                    "send this again if it is still wanted",
                    "reference",
                )
            raise _conflict(
                f"{env.reference} was {now.action.value.lower()} meanwhile (revision "
                f"{now.revision}): send this again if it is still wanted",
                "reference",
            )

    def correct(self, reference: str, document: object, reason: str | None = None) -> Receipt:
        """Publish a correction of a reference: the whole corrected submission."""
        return self.publish_new(self.correction_of(reference, document, reason))

    def correction_of(
        self, reference: str, document: object, reason: str | None = None
    ) -> LifeEvent[Any]:
        """The correction of a reference a submission makes, validated, not published."""
        latest = self.registration(reference, entry=entry_of(document), exactly=False)
        registered = self.ledger.registered_at(latest)
        return correction(latest, document, self.settings, reason, "reason", registered)

    def cancel(self, reference: str, reason: str) -> Receipt:
        """Publish the cancellation of a registration made in error."""
        return self.publish_new(self.cancellation_of(reference, reason))

    def cancellation_of(
        self, reference: str, reason: str, entry: tuple[str, int] | None = None
    ) -> LifeEvent[Any]:
        """The cancellation of a reference (of its register entry `entry`, if it names several
        registrations), validated, not published."""
        return cancellation(self.registration(reference, entry=entry), self.settings, reason)

    def acknowledged_already(self, event: LifeEvent[Any]) -> bool:
        """Whether Kafka acknowledged this very event to this registrar already (sent again,
        it is answered from the ledger: nothing to publish)."""
        event_id = event.envelope.event_id_text
        return self.ledger.find(event_id) is not None and not self.ledger.unacknowledged(event_id)

    def publish_new(self, event: LifeEvent[Any]) -> Receipt:
        """Publish an event once (publish_once): the receipt of what was published."""
        return receipt(self.publish_once(event)[0])

    def publish_once(
        self, event: LifeEvent[Any], reason_field: str = "reason"
    ) -> tuple[LifeEvent[Any], bool]:
        """Publish an event unless this registrar has: the event answered (this one, or the one
        recorded under its id) and whether it was published now. It is recorded first, checked
        against the ledger under its write lock (SubmissionConflict, nothing recorded), and
        acknowledged once Kafka did. One recorded but never acknowledged (the broker timed out,
        or the ledger failed after) is published again: it may not have reached services.
        One recorded now that Kafka refuses for good (MessageTooLarge) is withdrawn from the
        ledger, unpublished."""
        payload = self.codec.encode(event)
        found, unacknowledged = self.ledger.reserve(
            event, payload, lambda: self.earlier(event, reason_field)
        )
        if found is None:
            try:
                self._send([(event, payload)])  # encoded once, for the ledger and for Kafka
            except MessageTooLarge:  # recorded just now: never published
                self.ledger.withdraw(event.envelope.event_id_text)
                raise
            except BrokerUnavailable as exc:
                if not exc.went_out:  # refused, not lost: kept, a retry sent alone and refused
                    # as too large would have been kept too (it might have gone out before)
                    self.ledger.withdraw(event.envelope.event_id_text)  # and blocked its entry
                raise
            return event, True
        if unacknowledged:  # refused as too large, it stays: an earlier try may have gone out
            self.publish(found)
        return found, unacknowledged

    def registration(
        self,
        reference: str,
        office: str | None = None,
        entry: tuple[str, int] | None = None,
        exactly: bool = True,
    ) -> LifeEvent[Any]:
        """The newest acknowledged revision of the registration a reference names (of `office`,
        if given): of its register entry `entry` where the reference names several (two can
        share one: an amendment of one was made from the other's newest revision, and a
        cancellation cancelled the other family's registration). SubmissionConflict if it
        names several and `entry` none of them, or (`exactly`) one that is not `entry`;
        InvalidSubmission if it names none. (A correction's entry, not `exactly`, is checked
        with the rest of its document: correction.)"""
        found = [
            e
            for e in self.ledger.registrations(reference)
            if office is None or e.envelope.registration.office == office
        ]
        if len(found) > 1:
            named = [e for e in found if e.envelope.registration.entry == entry]
            if len(named) != 1:
                regs = [e.envelope.registration for e in found]
                entries = ", ".join(sorted(f"{r.district} {r.entry_number}" for r in regs))
                raise _conflict(
                    f"{as_issued(reference)} names {len(found)} registrations ({entries}): say "
                    "which by its register entry (a correction's `registration`; a "
                    "cancellation's `registration` {district, entry_number}, or --entry; "
                    "a status's ?district=&entry_number=)",
                    "reference",
                )
            found = named
        chosen = found[0] if found else self._latest(reference, office)
        named_entry = chosen.envelope.registration
        if exactly and entry is not None and named_entry.entry != entry:  # two identifiers
            raise _conflict(  # that disagree: which registration was meant is not ours to guess
                f"{as_issued(reference)} names register entry {named_entry.district} "
                f"{named_entry.entry_number}, not the one given",
                "registration",
            )
        return chosen

    def _latest(self, reference: str, office: str | None = None) -> LifeEvent[Any]:
        latest = self.ledger.latest(reference, office)
        recorded = [  # (another office's is not said to be there)
            e
            for e in self.ledger.registrations(reference, acknowledged=False)
            if office is None or e.envelope.registration.office == office
        ]
        if latest is None and recorded:
            raise _conflict(
                "Kafka has not acknowledged this registration: submit it again once Kafka "
                "answers, then correct or cancel it",
                "reference",
            )
        if latest is None:
            raise InvalidSubmission([NOT_SUBMITTED_HERE])
        return latest

    def publish(self, event: LifeEvent[Any]) -> Receipt:
        """Publish a built event and wait for the broker's acknowledgement."""
        return self.publish_many([event])[0]

    def publish_many(self, events: list[LifeEvent[Any]]) -> list[Receipt]:
        """Publish built events together; return once Kafka acknowledged every one."""
        return self._send([(e, self.codec.encode(e)) for e in events])

    def _send(self, encoded: list[tuple[LifeEvent[Any], bytes]]) -> list[Receipt]:
        """Publish events as encoded, and record them acknowledged once Kafka did."""
        events = [e for e, _ in encoded]
        messages = [
            Outgoing(
                topic=self.topics.events(e.envelope.event_type),
                key=e.envelope.person_ref.encode(),
                value=payload,
                headers=event_headers(e.envelope),
            )
            for e, payload in encoded
        ]
        try:
            self.publisher.publish(messages)
        except BrokerUnavailable:
            for e in events:
                EVENTS_PUBLISHED.labels(e.envelope.event_type.value, "failed").inc()
            log.warning("events_not_acknowledged", events=len(events))
            raise
        # counted and logged as Kafka acknowledged them, whether or not the ledger records them
        # (services apply them either way; a ledger's failure is answered and logged on its own)
        for event_type, n in Counter(e.envelope.event_type.value for e in events).items():
            EVENTS_PUBLISHED.labels(event_type, "acknowledged").inc(n)
        for event in events:
            env = event.envelope
            log.info(
                "event_published",
                event_id=env.event_id_text,
                event_type=env.event_type.value,
                action=env.action.value,
                late_registration=env.late_registration,
            )
        self.ledger.record(encoded)
        return [receipt(e) for e in events]


def entry_of(document: object) -> tuple[str, int] | None:
    """The register entry a document's `registration` names, as entries are compared, or None
    if it names none plainly (its own validation says why)."""
    registration = document.get("registration") if isinstance(document, Mapping) else None
    if not isinstance(registration, Mapping):
        return None
    try:
        return Registration.model_validate({"office": "X"} | dict(registration)).entry
    except ValidationError:
        return None


SECRET_MIN = 16  # characters of a pseudonym secret used away from this machine


def _local(bootstrap_servers: str) -> bool:
    """Whether every broker is on this machine (local use, where the placeholder secret is)."""
    hosts = [s.strip().rsplit(":", 1)[0].strip("[]") for s in bootstrap_servers.split(",")]
    return all(host in {"127.0.0.1", "localhost", "::1"} for host in hosts)


def _same_correction(event: LifeEvent[Any], superseded: LifeEvent[Any] | None) -> bool:
    """Whether a correction corrects a correction to the same facts: the same correction."""
    return (
        superseded is not None
        and event.envelope.action == Action.CORRECTED
        and superseded.envelope.action == Action.CORRECTED
        and superseded.facts == event.facts
    )


def _same_reason(event: LifeEvent[Any], sent: LifeEvent[Any], field: str) -> None:
    """An amendment sent again must give the reason it was sent with: the first was published
    (or may have been), and the other would be dropped without a word."""
    if event.envelope.reason != sent.envelope.reason:
        done = "sent" if sent.envelope.action == Action.CORRECTED else "cancelled"
        raise _conflict(
            f"{sent.envelope.reference} was {done} already with another reason: "
            "give that reason to send it again",
            field,
        )


def _conflict(reason: str, field: str = "registration") -> SubmissionConflict:
    return SubmissionConflict([Problem(field, reason)])


def receipt(event: LifeEvent[Any]) -> Receipt:
    """The receipt for a published event."""
    env = event.envelope
    return Receipt(env.event_id, env.reference, env.event_type, env.action, env.late_registration)
