"""A consumer batch is one store transaction: what that means for services and the tracker."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event as sql_event
from sqlalchemy import select

from consumers import store as store_module
from consumers.applier import ServiceHandler
from consumers.seed import MARGARET
from consumers.store import Pending, outbox, processed, records
from consumers.tracker import TrackerHandler, TrackerStore
from tellusonce.codec import CONFIRMATION, Codec
from tellusonce.errors import RuleRejected, StoreBusy
from tellusonce.events import Confirmation, EventType, LifeEvent, Outcome
from tellusonce.identity import confirmation_id
from tellusonce.kafka import Received
from tellusonce.topics import Topics, subscribers
from tests.factories import NEW_HOME, corrected_death, event, move, with_deceased_nino
from tests.handlers import CODEC, handler, pension
from tests.messages import NOWHERE, answer, as_received, at


class FailingCodec(Codec):
    """Fails to encode the confirmation of one event: the handler has changed records by then."""

    def __init__(self, event: LifeEvent[Any]) -> None:
        super().__init__()
        self.failing = str(event.envelope.event_id)

    def encode_record(self, kind: str, record: Mapping[str, Any]) -> bytes:
        if kind == CONFIRMATION and record["event_id"] == self.failing:
            raise StoreBusy("simulated failure after the records were changed")
        return super().encode_record(kind, record)


def handled(h: ServiceHandler, event: LifeEvent[Any], outcome: str) -> Received:
    """Handle an event from its message, in a batch of its own, with the outcome expected; the
    message."""
    message = as_received(event, CODEC.encode(event))
    with h.batch([event]):
        assert h.handle(event, message) == outcome
    return message


def another_death() -> LifeEvent[Any]:
    """A death under another register entry (another event id) than the example's."""
    registration = {"district": "Leeds", "entry_number": 1043, "office": "LEEDS-RO-1"}
    return event(EventType.DEATH, registration=registration)


@pytest.fixture
def death() -> LifeEvent[Any]:
    return event(EventType.DEATH)


class TestServiceBatch:
    def test_the_confirmation_queued_reads_back_as_the_model(
        self, tmp_path: Path, death: LifeEvent[Any]
    ) -> None:
        """What a service queues (its Avro record and CloudEvents headers, made without the
        model) decodes to the Confirmation of its decision, with the headers naming it."""
        h = handler(tmp_path, "pensions")
        before = datetime.now(UTC)
        with h.batch([death]):
            assert h.handle(death, NOWHERE) == "applied"
        [queued] = h.store.pending()
        confirmation = Codec().decode(queued.payload)
        assert isinstance(confirmation, Confirmation)
        expected_id = confirmation_id(death.envelope.event_id, "pensions")
        assert confirmation.confirmation_id == expected_id
        assert (confirmation.event_id, confirmation.event_type, confirmation.service) == (
            death.envelope.event_id,
            EventType.DEATH,
            "pensions",
        )
        assert confirmation.outcome == Outcome.APPLIED
        assert confirmation.service_reference == pension(h).record_id
        assert any("stopped" in action for action in confirmation.actions)
        assert before <= confirmation.processed_at <= datetime.now(UTC)
        assert (queued.confirmation_id, queued.event_id) == (
            str(expected_id),
            str(death.envelope.event_id),
        )
        headers = dict(queued.headers)
        assert headers["ce_id"] == str(expected_id).encode()
        assert headers["ce_source"] == b"urn:tellusonce:service:pensions"
        assert headers["ce_type"] == b"uk.gov.tellusonce.confirmation.v1"
        assert datetime.fromisoformat(headers["ce_time"].decode()) == confirmation.processed_at

    def test_an_events_times_here_are_its_confirmations(
        self, tmp_path: Path, death: LifeEvent[Any]
    ) -> None:
        """What one event changed is stamped with one time: its processed row, its outbox row
        and the records it changed say when the confirmation says it was processed (two
        events of a batch, each its own)."""
        h = handler(tmp_path, "pensions")
        other = another_death()
        with h.batch([death, other]):
            assert h.handle(death, NOWHERE) == "applied"
            assert h.handle(other, NOWHERE) == "not_applicable"
        confirmed = {}
        for queued in h.store.pending():
            confirmation = Codec().decode(queued.payload)
            assert isinstance(confirmation, Confirmation)
            confirmed[queued.event_id] = confirmation.processed_at.replace(tzinfo=None)
        with h.store.engine.connect() as conn:
            processed_at = dict(
                conn.execute(select(processed.c.event_id, processed.c.processed_at)).all()
            )
            created_at = dict(conn.execute(select(outbox.c.event_id, outbox.c.created_at)).all())
            [updated_at] = conn.execute(
                select(records.c.updated_at).where(records.c.record_id == pension(h).record_id)
            ).scalars()
        assert processed_at == created_at == confirmed
        assert updated_at == confirmed[str(death.envelope.event_id)]
        assert len(set(confirmed.values())) == 2

    def test_an_event_and_its_correction_in_one_batch_apply_once(
        self, tmp_path: Path, death: LifeEvent[Any]
    ) -> None:
        """The correction reads the change images the original wrote earlier in the batch."""
        h = handler(tmp_path, "pensions")
        correction = corrected_death(death, "2026-03-04")
        with h.batch([death, death, correction]):
            outcomes = [h.handle(m, NOWHERE) for m in (death, death, correction)]
        assert outcomes == ["applied", "duplicate", "applied"]
        record = pension(h)
        assert (record.stopped_from, record.overpayment_pence) == (
            date(2026, 3, 5),
            23_000 * 11 // 7,
        )
        assert set(h.store.outcomes()) == {
            str(death.envelope.event_id),
            str(correction.envelope.event_id),
        }
        first, second = h.store.pending()
        assert h.outbox_size() == 2  # the gauge's count
        assert first.row_id is not None
        h.sent([first.row_id])
        assert h.store.pending() == [second]
        assert h.outbox_size() == 1

    def test_an_event_seen_in_an_earlier_batch_is_a_duplicate(
        self, tmp_path: Path, death: LifeEvent[Any]
    ) -> None:
        h = handler(tmp_path, "pensions")
        with h.batch([death]):
            assert h.handle(death, NOWHERE) == "applied"
        with h.batch([death]):
            assert h.handle(death, NOWHERE) == "duplicate"
        assert len(h.store.pending()) == 1

    def test_only_the_very_bytes_of_a_processed_event_are_a_repeat(
        self, tmp_path: Path, death: LifeEvent[Any]
    ) -> None:
        """A redelivery (same bytes, ce_id naming a processed event) is known undecoded; other
        bytes under that id (a poison message, a re-encoding), an event not processed, or a
        message without ce_id are decoded and judged as usual."""
        h = handler(tmp_path, "pensions")
        assert h.repeats([as_received(death, CODEC.encode(death))]) == {}
        first = handled(h, death, "applied")
        other = another_death()
        poison = as_received(death, CODEC.encode(death)[:-1] + b"\x00")
        batch = [
            as_received(other, CODEC.encode(other)),
            first,
            poison,
            first._replace(headers=[]),
            first._replace(offset=9),  # delivered again: the same bytes at a later offset
        ]
        assert h.repeats(batch) == {
            1: str(death.envelope.event_id),
            4: str(death.envelope.event_id),
        }

    def test_events_processed_before_digests_were_stored_are_decoded_as_before(
        self, tmp_path: Path, death: LifeEvent[Any]
    ) -> None:
        """A store made by the previous version (no digest column) is upgraded when opened; its
        processed events have no digest, so their redeliveries are decoded and found duplicate."""
        db = tmp_path / "pensions.db"
        with sqlite3.connect(db) as conn:
            conn.execute(
                "CREATE TABLE processed (event_id VARCHAR NOT NULL PRIMARY KEY, "
                "outcome VARCHAR NOT NULL, processed_at DATETIME NOT NULL)"
            )
            conn.execute(
                "INSERT INTO processed VALUES (?, 'APPLIED', '2026-11-01 10:00:00.000000')",
                (str(death.envelope.event_id),),
            )
        h = handler(tmp_path, "pensions")
        assert h.repeats([as_received(death, CODEC.encode(death))]) == {}
        handled(h, death, "duplicate")
        later = another_death()
        message = handled(h, later, "applied")
        assert h.repeats([message]) == {0: str(later.envelope.event_id)}

    def test_an_event_failing_after_changing_records_is_undone_and_the_batch_kept(
        self, tmp_path: Path, death: LifeEvent[Any]
    ) -> None:
        """The failing event leaves no trace; the events around it in the batch are applied."""
        h = handler(tmp_path, "pensions")
        before = pension(h)
        moved = move(MARGARET)  # her pension's address changes
        failing = ServiceHandler(h.service, h.store, FailingCodec(death), Topics())
        with failing.batch([moved, death]):
            assert failing.handle(moved, NOWHERE) == "applied"
            with pytest.raises(StoreBusy, match="simulated"):
                failing.handle(death, NOWHERE)
        assert before.stopped_from is None
        assert pension(h) == before
        (hers,) = [r for r in h.store.records() if r.record_id == "SP-100002"]
        assert hers.address == NEW_HOME
        assert set(h.store.outcomes()) == {str(moved.envelope.event_id)}
        assert [p.event_id for p in h.store.pending()] == [str(moved.envelope.event_id)]
        with h.batch([death]):  # once the fault is gone, the event is applied as if new
            assert h.handle(death, NOWHERE) == "applied"
        assert pension(h).stopped_from is not None

    def test_an_event_refused_before_changing_anything_leaves_the_batch_whole(
        self, tmp_path: Path, death: LifeEvent[Any]
    ) -> None:
        """A refused event is its own failure; the others of the batch are kept."""
        h = handler(tmp_path, "pensions")
        birth = event(EventType.BIRTH)  # State Pension is not entitled to births
        with h.batch([birth, death]):
            with pytest.raises(RuleRejected):
                h.handle(birth, NOWHERE)
            assert h.handle(death, NOWHERE) == "applied"
        assert list(h.store.outcomes().values()) == ["APPLIED"]


@pytest.fixture
def tracking(tmp_path: Path) -> tuple[TrackerStore, TrackerHandler]:
    store = TrackerStore(f"sqlite:///{tmp_path / 'tracker.db'}")
    return store, TrackerHandler(store, Topics(), CODEC)


class TestOutbox:
    """What a batch queued is relayed without another transaction; what Kafka acknowledged is
    marked sent by the store's next work, or at close."""

    @staticmethod
    def transactions(h: ServiceHandler) -> list[int]:
        """A count of the transactions begun on the handler's store from now on."""
        begun = [0]

        def count(_conn: object) -> None:
            begun[0] += 1

        sql_event.listen(h.store.engine, "begin", count)
        return begun

    @staticmethod
    def unsent_in_database(tmp_path: Path) -> list[str]:
        with sqlite3.connect(tmp_path / "pensions.db") as db:
            rows = db.execute("SELECT event_id FROM outbox WHERE sent_at IS NULL ORDER BY id")
            return [r[0] for r in rows]

    @staticmethod
    def acknowledged(tmp_path: Path, death: LifeEvent[Any]) -> tuple[ServiceHandler, Pending]:
        """A service that handled a death and whose confirmation Kafka acknowledged."""
        h = handler(tmp_path, "pensions")
        handled(h, death, "applied")
        [first] = h.outbox()
        assert first.row_id is not None
        h.sent([first.row_id])
        return h, first

    def test_a_batch_relays_what_it_queued_without_reading_again(
        self, tmp_path: Path, death: LifeEvent[Any]
    ) -> None:
        h = handler(tmp_path, "pensions")
        handled(h, death, "applied")
        begun = self.transactions(h)
        [queued] = h.outbox()
        assert queued.event_id == str(death.envelope.event_id)
        assert begun == [0]

    def test_acknowledged_rows_are_marked_sent_by_the_next_batch(
        self, tmp_path: Path, death: LifeEvent[Any]
    ) -> None:
        h, first = self.acknowledged(tmp_path, death)
        assert h.outbox() == []
        assert self.unsent_in_database(tmp_path) == [first.event_id]  # not marked yet
        later = another_death()
        with h.batch([later]):  # (any outcome queues a confirmation)
            h.handle(later, as_received(later, CODEC.encode(later)))
        assert self.unsent_in_database(tmp_path) == [str(later.envelope.event_id)]
        assert [p.event_id for p in h.outbox()] == [str(later.envelope.event_id)]

    def test_close_marks_what_was_acknowledged(self, tmp_path: Path, death: LifeEvent[Any]) -> None:
        h = handler(tmp_path, "pensions")
        handled(h, death, "applied")
        h.sent([p.row_id for p in h.outbox() if p.row_id is not None])
        h.close()
        assert self.unsent_in_database(tmp_path) == []
        assert handler(tmp_path, "pensions").outbox() == []  # after a restart: nothing to send

    def test_acknowledged_rows_not_yet_marked_are_sent_again_after_a_crash(
        self, tmp_path: Path, death: LifeEvent[Any], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        _, first = self.acknowledged(tmp_path, death)  # the process dies here
        restarted = handler(tmp_path, "pensions")
        assert restarted.outbox() == []  # another writer's: it may be relaying them still
        monkeypatch.setattr(store_module, "ORPHANED_AFTER", timedelta(0))  # ... and later,
        assert restarted.outbox_size() == 1  # at the gauges' next turn
        assert restarted.outbox() == [first]  # published again: a duplicate the tracker ignores

    def test_a_failed_batch_leaves_acknowledged_rows_to_be_marked_later(
        self, tmp_path: Path, death: LifeEvent[Any]
    ) -> None:
        h, first = self.acknowledged(tmp_path, death)
        with pytest.raises(RuntimeError), h.batch([]):
            raise RuntimeError("the batch fails before it commits")
        assert self.unsent_in_database(tmp_path) == [first.event_id]
        assert h.outbox() == []
        assert self.unsent_in_database(tmp_path) == []  # reading the outbox marked it


class TestTrackerBatch:
    def test_awaiting_counts_answers_across_batches_and_orders(
        self, tracking: tuple[TrackerStore, TrackerHandler], death: LifeEvent[Any]
    ) -> None:
        """An answer before its event, answers with it and after it; repeats do not count."""
        store, tracker = tracking
        services = subscribers(EventType.DEATH)
        first, second, *rest = (answer(death, s, Outcome.APPLIED) for s in services)

        def handle(*messages: Any) -> list[str]:
            with tracker.batch(list(messages)):
                return [tracker.handle(m, at(1_000)) for m in messages]

        assert handle(first) == ["recorded"]
        assert store.awaiting()[0] == 0  # no event known yet: nothing awaited
        assert handle(death.envelope, second, first) == ["recorded", "recorded", "duplicate"]
        assert store.awaiting()[0] == 1
        assert handle(*rest[:-1]) == ["recorded"] * len(rest[:-1])
        assert store.awaiting()[0] == 1
        assert handle(rest[-1], rest[-1]) == ["recorded", "duplicate"]
        assert store.awaiting() == (0, 0.0)

    def test_an_event_its_services_refuse_is_known_and_awaits_them(
        self, tracking: tuple[TrackerStore, TrackerHandler]
    ) -> None:
        """The tracker validates an event's envelope, not its facts: an event with a NINO no
        one can have (dead-lettered by every service) shows under its reference as awaiting
        each service, rather than not at all."""
        store, tracker = tracking
        poisoned = with_deceased_nino(event(EventType.DEATH), "QQ000000Z")
        message = tracker.decode(CODEC.encode(poisoned))
        with tracker.batch([message]):
            assert tracker.handle(message, at(1)) == "recorded"
        [status] = store.status(poisoned.envelope.reference)
        assert status.event_id == poisoned.envelope.event_id_text
        assert tuple(s.service for s in status.services) == subscribers(EventType.DEATH)
        assert status.confirmed == 0
        assert store.awaiting()[0] == 1

    def test_a_rejection_for_another_reason_replaces_the_first(
        self, tracking: tuple[TrackerStore, TrackerHandler], death: LifeEvent[Any]
    ) -> None:
        """A correction dead-lettered ("rule failed"), replayed and then referred for manual
        review: the second REJECTED answer was taken for a repeat, and the status kept saying
        the rule had failed."""
        store, tracker = tracking
        service = subscribers(EventType.DEATH)[0]
        first = answer(death, service, Outcome.REJECTED)
        why = ("Not amended automatically: referred for manual review",)
        again = first.model_copy(
            update={
                "actions": why,
                "confirmation_id": confirmation_id(death.envelope.event_id, service, why[0]),
                "processed_at": first.processed_at + timedelta(minutes=5),
            }
        )
        with tracker.batch([death.envelope, first]):
            tracker.handle(death.envelope, at(1))
            tracker.handle(first, at(2))
        with tracker.batch([again, first]):
            assert tracker.handle(again, at(3)) == "recorded"
            assert tracker.handle(again, at(4)) == "duplicate"
        # the first sent again after it (redelivered) replaced it: a stale reason shown
        for batch in ([first], [first, again]):
            with tracker.batch(batch):
                assert [tracker.handle(m, at(5)) for m in batch] == ["duplicate"] * len(batch)
        [status] = store.status(death.envelope.reference)
        answered = {s.service: s.actions for s in status.services}
        assert answered[service] == why

    def test_only_a_rejection_is_replaced_by_a_later_answer(
        self, tracking: tuple[TrackerStore, TrackerHandler], death: LifeEvent[Any]
    ) -> None:
        """An event applied, then a later REJECTED of it from the same service (a replay the
        service refused, its effects in place): the status keeps what was applied."""
        store, tracker = tracking
        service = subscribers(EventType.DEATH)[0]
        applied = answer(death, service, Outcome.APPLIED)
        refused = answer(death, service, Outcome.REJECTED).model_copy(
            update={"processed_at": applied.processed_at + timedelta(minutes=5)}
        )
        assert refused.confirmation_id != applied.confirmation_id
        with tracker.batch([death.envelope, applied]):
            tracker.handle(death.envelope, at(1))
            assert tracker.handle(applied, at(2)) == "recorded"
        with tracker.batch([refused]):
            assert tracker.handle(refused, at(3)) == "duplicate"
        [status] = store.status(death.envelope.reference)
        assert {s.service: s.outcome for s in status.services}[service] == "APPLIED"

    def test_an_answer_replacing_rejected_does_not_count_twice(
        self, tracking: tuple[TrackerStore, TrackerHandler], death: LifeEvent[Any]
    ) -> None:
        store, tracker = tracking
        services = subscribers(EventType.DEATH)
        rejected = answer(death, services[0], Outcome.REJECTED)
        with tracker.batch([death.envelope, rejected]):
            tracker.handle(death.envelope, at(1))
            tracker.handle(rejected, at(2))
        applied = answer(death, services[0], Outcome.APPLIED)
        with tracker.batch([applied, rejected]):
            assert tracker.handle(applied, at(3)) == "recorded"
            assert tracker.handle(rejected, at(4)) == "duplicate"
        assert store.awaiting()[0] == 1
        [status] = store.status(death.envelope.reference)
        outcomes = {s.service: s.outcome for s in status.services}
        assert outcomes[services[0]] == "APPLIED"
        assert sum(o is not None for o in outcomes.values()) == 1
