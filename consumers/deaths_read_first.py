"""Deaths read before earlier events of the same people: kept, and applied again after them.

Events of different types travel on different topics, so a service may read a death before a
birth, marriage or move dated earlier. A death that found no record here (a baby on no claim
yet, a partner from outside the area) is kept in the store (`unmatched_deaths`, with the
message it came in). An earlier event of theirs read after it, that changes records, is applied
as usual; then each kept death of its people, dated on or after its day, is applied again to
the records it left, and its changes are recorded as the death's (so a cancellation or a
correction of the death undoes them, and a correction of the earlier event is referred for
review: its records changed since). A death that changed something here is forgotten: the
records keep who died on them from then on (`rules.Died`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from sqlalchemy.exc import DBAPIError

from consumers.rules import Decision, Matches, Record, Rule
from consumers.store import Transaction
from tellusonce.codec import Codec
from tellusonce.errors import PermanentError, TransientError
from tellusonce.events import (
    Action,
    DeathFacts,
    EventType,
    LifeEvent,
    MarriageFacts,
    Outcome,
    PersonKey,
)

log = structlog.get_logger("tellusonce.consumer")

Matcher = Callable[[Transaction, LifeEvent[Any]], Matches]
Then = list[tuple[str, Record]]
"""Records a death applied again changed, each with the death's event id, in order."""


class DeathsReadFirst:
    """Keeps the deaths a service had no record of, and applies them again when due."""

    def __init__(
        self, rule: Rule, bringing: frozenset[EventType], codec: Codec, matches: Matcher
    ) -> None:
        self.rule = rule
        self.bringing = bringing  # the types of event that put people on records here
        self.codec = codec
        self.matches = matches

    def brought(self, event: LifeEvent[Any]) -> list[PersonKey]:
        """Whom an event may put on a record here: a birth's child (not its parents), a
        union's parties (by the names they have after it too: a death registered under a new
        family name), the movers; nobody, for a type of event that puts nobody on one."""
        if event.envelope.event_type not in self.bringing:
            return []
        keys = [k for role, k in event.facts.people().items() if not role.startswith("parent")]
        if isinstance(event.facts, MarriageFacts):
            keys += [
                s.after().key(s.address_before.postcode)
                for s in event.facts.parties
                if s.family_name_after
            ]
        return keys

    def kept(
        self,
        tx: Transaction,
        event: LifeEvent[Any],
        decision: Decision,
        message: bytes,
        unmatched: bool = True,
    ) -> None:
        """After a death or its amendment: keep a death whose deceased was on no record here
        (`unmatched`: as it was read; the surviving partner's may have been, their review
        flagged); an amendment's superseded death, and the chain it acted on, forgotten, unless
        the amendment was refused (REJECTED: what it superseded is still in effect)."""
        envelope = event.envelope
        if decision.outcome == Outcome.REJECTED:  # refused: changed nothing, kept nothing
            return  # (what it would have superseded is still in effect)
        if envelope.action != Action.REGISTERED and envelope.supersedes is not None:
            tx.forget_death(str(envelope.supersedes))
            tx.forget_death(tx.in_effect(str(envelope.supersedes)))
        if envelope.action != Action.CANCELLED and (
            unmatched or decision.outcome == Outcome.NO_RECORD
        ):
            key = event.facts.people()["deceased"]
            died = event.facts.date_of_death
            tx.remember_death(
                envelope.event_id_text, key, died, message or self.codec.encode(event)
            )

    def then(
        self, tx: Transaction, event: LifeEvent[Any], decision: Decision
    ) -> tuple[Decision, Then]:
        """After an event that is not a death: its decision, with what each kept death of its
        people dated on or after its day changes once its own changes are made (the actions
        said in its confirmation, the records put as the death's after its own)."""
        brought = self.brought(event) if decision.changed else []
        deaths = tx.deaths_since(brought, event.facts.occurred_on()) if brought else []
        if decision.restored:  # an amendment put people back on records: their deaths kept
            # meanwhile (read while the record was undone: a partner's, on an ended claim),
            # not those of what it amended (a cancelled death, kept as its deceased's)
            amended = {str(event.envelope.supersedes), tx.in_effect(str(event.envelope.supersedes))}
            deaths += [
                d
                for d in tx.deaths_on(decision.restored)
                if d.event_id not in amended and d not in deaths
            ]
        if not deaths:
            return decision, []
        actions, then, applied = list(decision.actions), [], []
        with tx.trying():  # each death tried on the records this event leaves, then undone
            for record in decision.changed:
                tx.put(record)
            for death in deaths:
                again = self._again(tx, death.event_id, death.message)
                if again is None or not again.changed:
                    continue
                for record in again.changed:
                    tx.put(record)
                    then.append((death.event_id, record))
                applied.append(death.event_id)
                said = "; ".join(again.actions)
                actions.append(f"Death of {death.died_on}, read before this event: {said}")
        for event_id in applied:  # matched now: its records know who died (rules.Died)
            tx.forget_death(event_id)
        return Decision(decision.outcome, tuple(actions), decision.changed,
                        decision.service_reference, decision.restored), then  # fmt: skip

    def deceased(self, message: bytes) -> PersonKey | None:
        """Whom a kept death's message says died (their matching key as this version makes
        it), or None if it no longer reads as a death."""
        try:
            told = self.codec.decode(message)
        except PermanentError:
            return None
        if not isinstance(told, LifeEvent) or not isinstance(told.facts, DeathFacts):
            return None
        return told.facts.people()["deceased"]

    def _again(self, tx: Transaction, event_id: str, message: bytes) -> Decision | None:
        """The death rule's decision on a kept death now, or None if it cannot be made (its
        message no longer decodes, or the rule refuses it): the event at hand goes on."""
        try:
            told = self.codec.decode(message)
            if not isinstance(told, LifeEvent):
                raise PermanentError("not a life event")
            matches: Matches = self.matches(tx, told)
            return self.rule(told, matches)
        except (TransientError, DBAPIError):  # the store, not the death: the event waits
            raise  # (retried with it, as any event whose store fails)
        except Exception as exc:  # (a kept death is not this event's to refuse)
            log.warning("kept_death_not_applied", kept_event_id=event_id, error=type(exc).__name__)
            return None
