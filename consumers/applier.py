"""A service as a runtime handler: match, apply its rule and queue a confirmation, exactly once."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from consumers.deaths_read_first import DeathsReadFirst, Then
from consumers.rules import Decision, Matches, Record, Rule, Service
from consumers.store import AlreadyProcessed, Lookup, Pending, ServiceStore, Transaction
from tellusonce.codec import CONFIRMATION, Codec, Message
from tellusonce.errors import PermanentError, RuleRejected
from tellusonce.events import Action, Envelope, EventType, LifeEvent, Outcome
from tellusonce.fields import shown
from tellusonce.headers import EVENT_ID, confirmation_headers, header
from tellusonce.identity import confirmation_id_text, message_digest
from tellusonce.kafka import Received
from tellusonce.topics import Topics, subscriptions

OUTCOMES = ("applied", "no_record", "not_applicable", "rejected", "duplicate")


class ServiceHandler:
    """Applies the life events a service is entitled to, each once, with a confirmation."""

    def __init__(self, service: Service, store: ServiceStore, codec: Codec, topics: Topics) -> None:
        self.service = service
        self.store = store
        self.codec = codec
        self.name = service.name
        self.entitled = subscriptions()[service.name].events
        self.topics = [topics.events(t) for t in self.entitled]
        self._carries = dict(zip(self.topics, self.entitled, strict=True))  # topic: its type
        self.dead_letter_topic: str | None = topics.dead_letter(service.name)
        self.outcomes: tuple[str, ...] = OUTCOMES
        self._known: Lookup | None = None  # what repeats() read, for the next batch()
        self._places = Transaction.places_of(service.record_type)  # records found at places
        death = service.rules.get(EventType.DEATH)
        self.deaths = (  # deaths it had no record of, kept (see DeathsReadFirst)
            DeathsReadFirst(death, service.brings_people, codec, _matches)
            if service.brings_people and death
            else None
        )
        if self.deaths is not None:  # kept under keys an earlier name_key() made: made again
            store.key_deaths_by(self.deaths.deceased)

    def decode(self, data: bytes) -> Message:
        """The whole event: the service matches and applies its facts."""
        return self.codec.decode(data)

    def handle(self, message: Message, received: Received) -> str:
        """Apply an event unless it was applied before; return the outcome label."""
        event = self._entitled_event(message)
        rule = self.service.rules.get(event.envelope.event_type)
        if rule is None:
            raise RuleRejected(f"{self.name} has no rule for {event.envelope.event_type} events")
        event_id = event.envelope.event_id_text
        then: Then = []
        keeping = self.deaths if event.envelope.event_type == EventType.DEATH else None
        try:
            with self.store.event_transaction() as tx:
                if tx.processed(event_id):
                    return "duplicate"
                unmatched = False
                if tx.superseded(event_id):  # replayed after what amended it: never kept
                    what = event.envelope.action.noun
                    why = f"Corrected or cancelled since (seen here first): {what} not applied"
                    decision = Decision(Outcome.NOT_APPLICABLE, (why,))
                else:
                    unmatched = (  # the deceased on no record here (a partner may be)
                        keeping is not None and tx.match(event.facts.people()["deceased"]) is None
                    )
                    if event.envelope.action != Action.REGISTERED:
                        decision = amend(tx, event, rule)
                    else:
                        matches = _matches(tx, event)
                        decision = _decide(rule, event, matches)
                        _read(tx, event, matches, decision)
                if self.deaths is not None:  # (a correction's records too: a birth corrected
                    decision, then = self.deaths.then(tx, event, decision)  # onto a claim)
                self._commit(tx, event.envelope, decision, message_digest(received.value))
                for death_id, record in then:  # deaths read before it, applied again
                    tx.put(record, death_id)
                if keeping is not None:
                    keeping.kept(tx, event, decision, received.value, unmatched)
        except AlreadyProcessed:
            return "duplicate"
        return decision.outcome.value.lower()

    def reject(self, message: Message, error: PermanentError) -> None:
        """Confirm REJECTED for an event this service refused (it is also dead-lettered).

        No processed row is written: a replay from the dead-letter topic after a fix is applied.
        What a refused amendment superseded is kept (Transaction.refuse): its own amendments, and
        replays of what it superseded, find the chain through it.
        """
        if isinstance(message, LifeEvent):
            self._refuse(message.envelope, error)

    def undecoded(self, received: Received, error: PermanentError) -> None:
        """Confirm REJECTED for an event whose facts did not decode (it is dead-lettered) but
        whose envelope reads, on its own type's topic: the registrar sees this service's
        refusal and why, where the event would otherwise await its answer for ever (and page
        operators as overdue). A message on another type's topic is not answered: its
        services read it on its own."""
        try:
            envelope = self.codec.decode_envelope(received.value)
        except PermanentError:
            return
        if isinstance(envelope, Envelope) and self._carries.get(received.topic) is (
            envelope.event_type
        ):
            self._refuse(envelope, error)

    def _refuse(self, envelope: Envelope, error: PermanentError) -> None:
        decision = Decision(Outcome.REJECTED, (shown(f"Rejected: {error}"),))  # as the tracker
        # takes a confirmation's text: a line break in a message would make it refuse ours
        with self.store.event_transaction() as tx:
            if not tx.processed(envelope.event_id_text):
                if envelope.supersedes is not None:
                    tx.refuse(envelope.event_id_text, str(envelope.supersedes))
                self._confirm(tx, envelope, decision)

    def repeats(self, batch: Sequence[Received]) -> dict[int, str]:
        """The messages of a batch that repeat, byte for byte, one this service processed, or
        one earlier in the batch (by their position, with their event id): redeliveries,
        skipped without being decoded.

        A message is looked up by the event id its ce_id header names and is a repeat only if
        its bytes' digest is the one stored with that event, or its bytes those of the batch's
        earlier message under that id: a header naming an event id proves nothing, so a
        different message under a known id is decoded and judged as usual. An earlier message
        of the batch is repeated only on its own topic and partition: held back with it by a
        transient error; refused as it was, the earlier one is dead-lettered once. (The same
        bytes on another topic, the first on the wrong one, are decoded: the first refused
        there would otherwise take the right one with it, applied nowhere.)
        """
        named = {}
        for position, received in enumerate(batch):
            event_id = header(received.headers, "ce_id")
            if event_id is not None and EVENT_ID.fullmatch(event_id):  # (a NUL in one, looked
                named[position] = event_id  # up, ended the process on PostgreSQL: its text)
        self._known = known = self.store.look_up(named.values())
        repeats: dict[int, str] = {}
        first: dict[tuple[str, str, int], int] = {}  # each id's first position in the batch,
        for position, event_id in named.items():  # on each topic and partition
            received = batch[position]
            value, digest = received.value, known.processed.get(event_id)
            earlier = first.setdefault((event_id, received.topic, received.partition), position)
            if (digest is not None and digest == message_digest(value)) or (
                earlier != position and batch[earlier].value == value
            ):
                repeats[position] = event_id
        return repeats

    def _commit(self, tx: Transaction, envelope: Envelope, decision: Decision, digest: int) -> None:
        event_id = envelope.event_id_text
        supersedes = str(envelope.supersedes) if envelope.supersedes else None
        tx.claim(event_id, decision.outcome.value, digest, supersedes)
        for record in decision.changed:
            tx.put(record, event_id)
        self._confirm(tx, envelope, decision)

    def _confirm(self, tx: Transaction, envelope: Envelope, decision: Decision) -> None:
        """Queue the confirmation of a decision, encoded straight from this service's values.

        The Avro record is built here rather than through a validated Confirmation model: a
        service writes one per event it handles, and validating what this code just made was a
        third of that work. Confirmation reads it back (unit tests decode what services queue).
        """
        refusal = "; ".join(decision.actions) if decision.outcome == Outcome.REJECTED else None
        confirmation = confirmation_id_text(envelope.event_id, self.name, refusal)
        processed_at = tx.at
        record = {
            "confirmation_id": confirmation,
            "event_id": envelope.event_id_text,
            "event_type": envelope.event_type.value,
            "service": self.name,
            "outcome": decision.outcome.value,
            "actions": decision.actions,
            "service_reference": decision.service_reference,
            "processed_at": processed_at,
        }
        tx.queue(
            Pending(
                confirmation,
                envelope.event_id_text,
                self.codec.encode_record(CONFIRMATION, record),
                confirmation_headers(confirmation, self.name, processed_at),
            )
        )

    def _entitled_event(self, message: Message) -> LifeEvent[Any]:
        if not isinstance(message, LifeEvent) or message.envelope.event_type not in self.entitled:
            raise RuleRejected(f"not a life event {self.name} is entitled to")
        return message

    def batch(self, messages: Sequence[Message]) -> AbstractContextManager[None]:
        """One store transaction for a consumer batch (which of its events were processed is
        known already if repeats() was asked about it)."""
        events = [m for m in messages if isinstance(m, LifeEvent)]
        people = [key for e in events for key in e.facts.people().values()]
        places = (
            [a.place for e in events for a in e.facts.places().values()] if self._places else []
        )
        known, self._known = self._known, None
        ids = [e.envelope.event_id_text for e in events]
        brought = [k for e in events for k in self.deaths.brought(e)] if self.deaths else []
        return self.store.unit(ids, people, known, places, deaths_of=brought)

    def outbox(self) -> list[Pending]:
        return self.store.pending()

    def outbox_size(self) -> int:
        return self.store.count_pending()

    def sent(self, row_ids: Sequence[int]) -> None:
        self.store.acknowledged(row_ids)

    def close(self) -> None:
        self.store.mark_sent()

    def observe(self) -> None:
        """Services have no gauges beyond the runtime's."""

    def usable(self) -> bool:
        return self.store.usable()


def _matches(tx: Transaction, event: LifeEvent[Any]) -> Matches:
    """The record each person in the event matched; and, for records at places, the record at
    each of the event's places (the first by id, should there be several)."""
    found: dict[str, Record | None] = {
        role: tx.match(key) for role, key in event.facts.people().items()
    }
    if tx.with_places:
        for role, address in event.facts.places().items():
            there = tx.at_place(address.place)
            found[role] = there[0] if there else None
    return found


def amend(tx: Transaction, event: LifeEvent[Any], rule: Rule) -> Decision:
    """Undo what the superseded event did here, then (for a correction) apply the corrected facts.

    The undo restores each record the superseded event changed to its image from before that
    event, so a correction replaces the original's effect (an overpayment is recomputed, not added
    to) and a cancellation leaves the records as if the registration had never been made. If a
    record changed again since, or a later event still in effect read it and left it as it was
    (Transaction.read), nothing is undone automatically: REJECTED, for manual review. An
    amendment refused so changed nothing: one superseding it acts on what it superseded.
    A death kept (its deceased on no record here) that read a record is no such event if the
    undo puts its deceased back on the record: it is applied again then (DeathsReadFirst.then).
    """
    if event.envelope.supersedes is None:
        raise RuleRejected(f"a {event.envelope.action.value} event must name what it supersedes")
    superseded = tx.in_effect(str(event.envelope.supersedes))  # past amendments refused here
    images = tx.changes_of(superseded)
    returning = (tx.image(record_id, before) for record_id, before, _ in images if before)
    kept = {death.event_id for death in tx.deaths_on(returning)}  # applied again after the undo
    for record_id, _before, after in images:  # changed since, or read by an event whose
        # decision rests on it as it is (a partner's death, not flagged: their pension stopped)
        if tx.raw(record_id) != after or tx.touched(record_id, superseded, kept):
            return Decision(
                Outcome.REJECTED,
                (
                    f"Not amended automatically: {record_id} changed after the original event; "
                    "referred for manual review",
                ),
                service_reference=record_id,
            )
    undone: dict[str, str] = {}  # by record
    back: list[Record] = []  # the records put back (not those removed)
    for record_id, before, _after in images:
        tx.restore(record_id, before)
        restored = tx.get(record_id)
        back += [restored] if restored else []
        undone[record_id] = (
            f"{record_id} restored: {restored.summary()}"
            if restored
            else f"{record_id} removed (it was created by the original event)"
        )
    if event.envelope.action == Action.CANCELLED:
        if not undone:
            return Decision(
                Outcome.NOT_APPLICABLE, ("Registration cancelled: it had changed nothing here",)
            )
        return Decision(
            Outcome.APPLIED,
            ("Registration cancelled", *undone.values()),
            service_reference=images[0][0],
            restored=tuple(back),
        )
    matches = _matches(tx, event)
    corrected = _decide(rule, event, matches)
    _read(tx, event, matches, corrected)
    if not undone and not tx.processed(superseded):
        note = "Correction of a registration not seen here: applied as a new registration"
    else:
        note = "Correction: the previous decision was replaced"
    outcome = Outcome.APPLIED if undone or corrected.changed else corrected.outcome
    # what the corrected facts no longer change is said too (a partner the correction drops:
    # their review flag withdrawn without a word)
    again = {r.record_id for r in corrected.changed}
    left = [said for record_id, said in undone.items() if record_id not in again]
    return Decision(
        outcome,
        (note, *corrected.actions, *left),
        corrected.changed,
        corrected.service_reference or (images[0][0] if images else None),
        restored=tuple(back),
    )


def _read(tx: Transaction, event: LifeEvent[Any], matches: Matches, decision: Decision) -> None:
    """Keep which records the event matched and left as they were (see Transaction.read)."""
    changed = {r.record_id for r in decision.changed}
    for record in sorted({r.record_id for r in matches.values() if r is not None} - changed):
        tx.read(record, event.envelope.event_id_text)


def _decide(rule: Rule, event: LifeEvent[Any], matches: Matches) -> Decision:
    try:
        return rule(event, matches)
    except Exception as exc:  # a rule that fails on an event fails the same way every time
        raise RuleRejected(f"rule failed with {type(exc).__name__}") from exc
