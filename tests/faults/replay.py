"""The replay oracle: what each service's store holds after a fault run is what a run without
faults makes of the same events in the same order.

The ledger (ledger.py) counts: each event processed once by each entitled service, confirmed
once. It cannot see a record left unwritten, written twice over (an overpayment added twice)
or an outcome confirmed that the store does not hold. Here each service's events are handled
again, in the order its store handled them (its confirmations' outbox order), by the handler
in this process on a store freshly seeded as the run's was, Kafka left out; then its records,
each event's outcome and each confirmation the tracker stored (outcome, actions, reference)
must be the fault-free run's. The order is the run's own because events about the same person
reach a service on different partitions (a marriage names two people), so their order, and what
it decides, may differ from one run to the next.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from consumers.launch import build_handler
from consumers.rules import Record
from consumers.runtime import Runtime
from consumers.seed import seed
from consumers.services import SERVICES
from consumers.store import ServiceStore, outbox, processed, records
from consumers.tracker import TrackerStore, confirmations
from tellusonce.codec import Codec
from tellusonce.events import Confirmation, LifeEvent
from tellusonce.settings import Settings
from tellusonce.topics import TRACKER, Topics
from tests.faults.stream import CROWD_SIZE
from tests.messages import encoded, received
from tests.stand_ins import Kept

CODEC = Codec()
BATCH = 100
SHOWN = 5  # differences named per service and kind


def differences(settings: Settings, events: list[LifeEvent[Any]]) -> list[str]:
    """Where the run's stores and confirmations differ from a fault-free run of the same events
    in the same order (nothing if they agree), as "service: what" lines."""
    by_id = {e.envelope.event_id_text: e for e in events}
    found: list[str] = []
    with tempfile.TemporaryDirectory(prefix="tellusonce-replay-") as root:
        again = settings.model_copy(update={"data_dir": Path(root), "store_url": None})  # SQLite
        seed(again, others=CROWD_SIZE)
        tracked = _confirmed(settings, set(by_id))
        for name, service in SERVICES.items():
            order, outcomes, held = _state(settings, name, service.record_type)
            handled = [by_id[e] for e in order if e in by_id]
            answers, trouble = _replay(name, again, handled)
            _, fresh_outcomes, fresh_held = _state(again, name, service.record_type)
            found += [f"{name}: {what}" for what in trouble]
            found += _compare(name, "outcome of event", outcomes, fresh_outcomes)
            found += _compare(name, "record", held, fresh_held)
            mine = {e: c for (e, s), c in tracked.items() if s == name}
            found += _compare(name, "confirmation of event", mine, answers)
            said = {e: json.loads(c)[0] for e, c in mine.items()}
            found += _compare(name, "outcome stored and confirmed of event", outcomes, said)
    return found


def _state(
    settings: Settings, name: str, record_type: type[Record]
) -> tuple[list[str], dict[str, str], dict[str, str]]:
    """A service store's processed events in the order they were handled (their confirmations'
    outbox rows, numbered as each batch queued them: a clock plays no part), their outcomes,
    and its records' data by id. Events refused as REJECTED (dead-lettered, no processed row)
    are not replayed: the scenarios that replay send only events every service processes."""
    store = ServiceStore(settings.store_url_for(name), record_type)
    try:
        with store.engine.connect() as conn:
            queued = func.max(outbox.c.id)
            rows = conn.execute(
                select(processed.c.event_id, processed.c.outcome)
                .join(outbox, outbox.c.event_id == processed.c.event_id)
                .group_by(processed.c.event_id, processed.c.outcome)
                .order_by(queued)
            ).all()
            found = conn.execute(select(records.c.record_id, records.c.data))
            held = {r.record_id: r.data for r in found}
    finally:
        store.close()
    return [r.event_id for r in rows], {r.event_id: r.outcome for r in rows}, held


def _replay(
    name: str, settings: Settings, handled: list[LifeEvent[Any]]
) -> tuple[dict[str, str], list[str]]:
    """Handle events in this order on the store `settings` names; the confirmations made, as
    the tracker keeps them, by event id, and what went wrong in the replay itself (an event
    dead-lettered or retried: a fault-free run has neither)."""
    topics = Topics(settings.topic_prefix)
    kept = _Replaying()
    handler = build_handler(name, settings, CODEC)
    runtime: Runtime[Any] = Runtime(handler, kept, kept, topics)  # type: ignore[arg-type]
    messages = received(encoded(handled, topics))
    kept.assigned.update((m.topic, 0) for m in messages)  # a retry rewinds (is seen), not skips
    trouble = []
    try:
        for start in range(0, len(messages), BATCH):
            runtime.process(messages[start : start + BATCH])
            if kept.rewound:
                trouble.append(f"the replay's batch from {start} was to be retried")
                break
            while runtime.relay():
                pass
        handler.close()
    finally:
        handler.store.close()  # type: ignore[attr-defined]
    answers = {}
    for sent in kept.sent:
        if sent.topic != topics.confirmations:
            trouble.append(f"the replay sent a message to {sent.topic} (dead-lettered)")
            continue
        confirmation = CODEC.decode(sent.value)
        assert isinstance(confirmation, Confirmation)
        answers[confirmation.event_id_text] = _answer(
            confirmation.outcome.value, list(confirmation.actions), confirmation.service_reference
        )
    return answers, trouble


class _Replaying(Kept):
    """Kept, with the partition rewinds a transient error asks for noted."""

    def __init__(self) -> None:
        super().__init__()
        self.rewound: list[int] = []

    def rewind(self, _topic: str, _partition: int, offset: int) -> None:
        self.rewound.append(offset)


def _confirmed(settings: Settings, ids: set[str]) -> dict[tuple[str, str], str]:
    """The tracker's confirmations of these events, by (event id, service)."""
    tracker = TrackerStore(settings.store_url_for(TRACKER))
    c = confirmations.c
    try:
        with tracker.engine.connect() as conn:
            rows = conn.execute(
                select(c.event_id, c.service, c.outcome, c.actions, c.service_reference)
            ).all()
    finally:
        tracker.close()
    return {
        (r.event_id, r.service): _answer(r.outcome, json.loads(r.actions), r.service_reference)
        for r in rows
        if r.event_id in ids
    }


def _answer(outcome: str, actions: list[str], reference: str | None) -> str:
    return json.dumps([outcome, actions, reference])


def _compare(name: str, what: str, run: dict[str, str], fresh: dict[str, str]) -> list[str]:
    differing = sorted(k for k in run.keys() | fresh.keys() if run.get(k) != fresh.get(k))
    return [
        f"{name}: {what} {k}: after the faults {run.get(k)!r}, without them {fresh.get(k)!r}"
        for k in differing[:SHOWN]
    ] + ([f"{name}: and {len(differing) - SHOWN} more of {what}"] if len(differing) > SHOWN else [])
