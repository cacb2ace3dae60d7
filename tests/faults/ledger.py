"""The ledger oracle: each event applied exactly once by each subscribed service, confirmed once."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from consumers.dead_letters import read as read_dead_letters
from consumers.services import SERVICES
from consumers.store import ServiceStore, changes
from consumers.tracker import TrackerStore, confirmations
from tellusonce.events import LifeEvent
from tellusonce.settings import Settings
from tellusonce.topics import TRACKER, subscribers


@dataclass
class Ledger:
    """What happened to a stream of events, per service."""

    submitted: int
    applied: dict[str, int]
    confirmations: int
    expected_confirmations: int
    dead_lettered: dict[str, int]
    duplicates_skipped: int
    missing: list[str]
    extra: list[str]
    applied_twice: list[str]

    def line(self, scenario: str) -> str:
        """One line of counts for the test's output."""
        applied = " ".join(f"{s}={n}" for s, n in self.applied.items())
        dead = sum(self.dead_lettered.values())
        return (
            f"[{scenario}] submitted {self.submitted} | applied {applied} | confirmations "
            f"{self.confirmations}/{self.expected_confirmations} | dead-lettered {dead} | "
            f"duplicates skipped {self.duplicates_skipped}"
        )

    @property
    def exact(self) -> bool:
        """Exactly once everywhere: nothing missing, nothing extra, nothing applied twice."""
        return not (self.missing or self.extra or self.applied_twice) and (
            self.confirmations == self.expected_confirmations
        )


def take(
    settings: Settings,
    events: list[LifeEvent[Any]],
    logs: Path | None = None,
    dead_letters: bool = False,
) -> Ledger:
    """Count what every store and the tracker hold for these events."""
    ids = {str(e.envelope.event_id): e.envelope.event_type for e in events}
    missing, extra, twice, applied = [], [], [], {}
    for name, service in SERVICES.items():
        store = ServiceStore(settings.store_url_for(name), service.record_type)
        try:  # taken every 50 ms: each store closed, or it would hold a server's connections
            processed = set(store.outcomes()) & set(ids)
            with store.engine.connect() as conn:
                rows = conn.execute(
                    select(changes.c.event_id, changes.c.record_id, func.count())
                    .where(changes.c.before.is_distinct_from(changes.c.after))  # not reads
                    .group_by(changes.c.event_id, changes.c.record_id)
                    .having(func.count() > 1)
                ).all()
        finally:
            store.close()
        wanted = {i for i, t in ids.items() if name in subscribers(t)}
        missing += [f"{name}:{i}" for i in sorted(wanted - processed)]
        extra += [f"{name}:{i}" for i in sorted(processed - wanted)]
        applied[name] = len(processed)
        twice += [f"{name}:{r.event_id}:{r.record_id}" for r in rows if r.event_id in ids]
    tracker = TrackerStore(settings.store_url_for(TRACKER))
    try:
        with tracker.engine.connect() as conn:
            asked = select(confirmations.c.event_id, confirmations.c.service)
            confirmed = conn.execute(asked).all()
    finally:
        tracker.close()
    # by event and service: a confirmation missing and another service's extra do not cancel out
    confirmed_here = {(c.event_id, c.service) for c in confirmed if c.event_id in ids}
    expected = {(i, s) for i, t in ids.items() for s in subscribers(t)}
    extra += [f"{s} confirmed {i}" for i, s in sorted(confirmed_here - expected)]
    return Ledger(
        submitted=len(events),
        applied=applied,
        confirmations=len(confirmed_here & expected),
        expected_confirmations=len(expected),
        dead_lettered={s: len(read_dead_letters(settings, s)) for s in SERVICES}
        if dead_letters
        else {},
        duplicates_skipped=duplicates_in_logs(logs) if logs else 0,
        missing=missing,
        extra=extra,
        applied_twice=twice,
    )


def duplicates_in_logs(logs: Path) -> int:
    """How many messages services skipped as already applied, from their JSON log lines."""
    return sum(batch.get("duplicate", 0) for log in logs.glob("*.log") for batch in batches(log))


def batches(log: Path) -> list[dict[str, Any]]:
    """The batch_handled lines of a consumer's JSON log. Only whole lines: a running consumer
    may be writing the last one."""
    lines = log.read_text(errors="replace").split("\n")[:-1] if log.exists() else []
    found = [json.loads(line) for line in lines if line.startswith("{")]
    return [line for line in found if line["event"] == "batch_handled"]
