"""The services' handlers and the tracker on real (SQLite) stores, as tests use them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from consumers.applier import ServiceHandler
from consumers.seed import demo_records
from consumers.services import SERVICES
from consumers.store import ServiceStore
from consumers.tracker import TrackerHandler, TrackerStore
from producers.ledger import Ledger
from tellusonce.codec import Codec
from tellusonce.topics import Topics
from tests.messages import at

CODEC = Codec()


def handler(tmp_path: Path, service: str, seeded: bool = True) -> ServiceHandler:
    """A service's handler on its store in tmp_path, seeded with the demo's records (or, not
    `seeded`, on the store as it is: another instance of the service)."""
    store = ServiceStore(f"sqlite:///{tmp_path / service}.db", SERVICES[service].record_type)
    if seeded:
        with store.transaction() as tx:
            for record in demo_records(others=0)[service]:
                tx.put(record)
    return ServiceHandler(SERVICES[service], store, CODEC, Topics())


def pension(h: ServiceHandler) -> Any:
    return next(r for r in h.store.records() if r.record_id == "SP-100001")


SHARED = "7QK2M-93XDA"


def tracked(store: TrackerStore, ledger: Ledger, event_ids: list[str]) -> None:
    """Record in a tracker's store the events a ledger published, as the tracker would from
    the bus."""
    published = [ledger.find(event_id) for event_id in event_ids]
    envelopes = [e.envelope for e in published if e is not None]
    assert len(envelopes) == len(event_ids)
    tracker = TrackerHandler(store, Topics(), Codec())
    with tracker.batch(envelopes):
        for envelope in envelopes:
            tracker.handle(envelope, at(1))
