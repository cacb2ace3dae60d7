"""Two registrations under one reference (a reference is 50 bits of an event id: about 4% over
ten million registrations): each family's status shows its own registration's events only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from consumers.tracker import TrackerStore
from producers import submission
from producers.submission import Registrar
from tellusonce.codec import Codec
from tellusonce.events import EventType
from tellusonce.settings import Settings
from tests.factories import document
from tests.handlers import SHARED, tracked
from tests.stand_ins import Kept


def test_a_status_shows_only_its_own_registrations_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(submission, "reference", lambda *_args: SHARED)
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
    tracked(store, registrar.ledger, [str(r.event_id) for r in (leeds, york)])

    both = {str(leeds.event_id), str(york.event_id)}
    assert {s.event_id for s in store.status(SHARED)} == both  # the tracker knows both
    mine = registrar.ledger.latest(SHARED, "LEEDS-RO-1")
    assert mine is not None
    shown = store.status(SHARED, registrar.ledger.chain(mine))
    assert [s.event_id for s in shown] == [str(leeds.event_id)]


def test_registrations_sharing_a_reference_are_amended_each_on_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A correction of one was refused as made from an old revision when the other had a newer
    one, and a cancellation of one made the other's resubmission a conflict: the newest under
    the reference was taken for each registration's own."""
    monkeypatch.setattr(submission, "reference", lambda *_args: SHARED)
    registrar = Registrar(Settings(data_dir=tmp_path), Kept(), Codec())  # type: ignore[arg-type]
    leeds = document(EventType.DEATH)
    york = document(
        EventType.DEATH, registration={"district": "York", "entry_number": 7, "office": "YORK-1"}
    )
    registrar.submit(EventType.DEATH, leeds)
    first_york = registrar.submit(EventType.DEATH, york)

    def newest(office: str) -> Any:
        found = registrar.ledger.latest(SHARED, office)
        assert found is not None
        return found

    settings = registrar.settings
    fixed = leeds | {"date_of_death": "2026-03-10"}
    registrar.publish_once(submission.correction(newest("LEEDS-RO-1"), fixed, settings, "typo"))
    registrar.publish_once(submission.cancellation(newest("YORK-1"), settings, "in error"))
    assert registrar.submit(EventType.DEATH, leeds).action.value == "REGISTERED"  # not refused
    assert newest("YORK-1").envelope.action.value == "CANCELLED"
    assert newest("YORK-1").envelope.supersedes == first_york.event_id


def test_one_office_s_two_registrations_sharing_a_reference_are_told_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Entries 1042 and 2 of one office under one reference: once 1042 was corrected, a
    correction of 2 was refused (made from 1042's newest revision), a cancellation meant for 2
    cancelled 1042 (the other family's death undone at every service), and 2's status showed
    1042's events."""
    from tellusonce.errors import SubmissionConflict

    monkeypatch.setattr(submission, "reference", lambda *_args: SHARED)
    registrar = Registrar(Settings(data_dir=tmp_path), Kept(), Codec())  # type: ignore[arg-type]

    def entry(number: int, **changes: Any) -> dict[str, Any]:
        registration = {"district": "Leeds", "entry_number": number, "office": "LEEDS-RO-1"}
        return document(EventType.DEATH, registration=registration, **changes)

    first = registrar.submit(EventType.DEATH, entry(1042))
    second = registrar.submit(EventType.DEATH, entry(2))
    registrar.correct(SHARED, entry(1042, date_of_death="2026-03-10"), "misread")
    corrected = registrar.correct(SHARED, entry(2, date_of_death="2026-03-09"), "misread")
    amended = registrar.ledger.find(str(corrected.event_id))
    assert amended is not None
    assert str(amended.envelope.supersedes) == str(second.event_id)  # 2's, not 1042's
    with pytest.raises(SubmissionConflict, match="names 2 registrations \\(Leeds 1042, Leeds 2\\)"):
        registrar.cancel(SHARED, "registered in error")  # which one?
    cancelled = registrar.publish_new(
        registrar.cancellation_of(SHARED, "registered in error", entry=("leeds", 2))
    )
    chain = registrar.ledger.chain(amended)
    assert str(cancelled.event_id) in chain
    assert str(first.event_id) not in chain  # 1042's events are not 2's
    registered_1042 = registrar.ledger.find(str(first.event_id))
    assert registered_1042 is not None
    newest_of_1042 = registrar.ledger.newest(registered_1042)
    assert newest_of_1042 is not None
    assert newest_of_1042.envelope.action.value == "CORRECTED"  # not cancelled
