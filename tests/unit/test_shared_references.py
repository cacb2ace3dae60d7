"""Two registrations under one reference (a reference is 50 bits of an event id: about 4% over
ten million registrations): each family's status shows its own registration's events only."""

from __future__ import annotations

from pathlib import Path

import pytest

from consumers.tracker import TrackerHandler, TrackerStore
from producers import submission
from producers.submission import Registrar
from tellusonce.codec import Codec
from tellusonce.events import EventType
from tellusonce.kafka import Received
from tellusonce.settings import Settings
from tellusonce.topics import Topics
from tests.bench.instructions import Kept
from tests.factories import document

SHARED = "7QK2M-93XDA"


def test_a_status_shows_only_its_own_registrations_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(submission, "reference", lambda _event_id: SHARED)
    registrar = Registrar(Settings(data_dir=tmp_path), Kept(), Codec())  # type: ignore[arg-type]
    leeds = registrar.submit(EventType.DEATH, document(EventType.DEATH))
    york = registrar.submit(
        EventType.DEATH,
        document(
            EventType.DEATH,
            registration={"district": "York", "entry_number": 7, "office": "YORK-1"},
        ),
    )
    store = TrackerStore(f"sqlite:///{tmp_path / 'tracker.db'}")
    tracker = TrackerHandler(store, Topics(), Codec())
    published = [registrar.ledger.find(str(r.event_id)) for r in (leeds, york)]
    envelopes = [e.envelope for e in published if e is not None]
    with tracker.batch(envelopes):
        for envelope in envelopes:
            tracker.handle(envelope, Received("t", 0, 0, None, b"", [], 1))

    both = {str(leeds.event_id), str(york.event_id)}
    assert {s.event_id for s in store.status(SHARED)} == both  # the tracker knows both
    mine = registrar.ledger.latest(SHARED, "LEEDS-RO-1")
    assert mine is not None
    shown = store.status(SHARED, registrar.ledger.chain(mine))
    assert [s.event_id for s in shown] == [str(leeds.event_id)]
