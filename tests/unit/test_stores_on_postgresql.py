"""A service's store on PostgreSQL, where READ COMMITTED is the default and any error ends the
transaction it met: two instances' batches about one record, and a connection dropped mid-batch
(a throwaway server: tests/postgres.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from consumers.applier import ServiceHandler
from consumers.runtime import Runtime
from consumers.seed import MARGARET, demo_records
from consumers.services import SERVICES
from consumers.store import ServiceStore, Transaction
from producers.submission import correction
from tellusonce.errors import StoreBusy
from tellusonce.events import EventType
from tellusonce.settings import Settings
from tellusonce.topics import Topics
from tests.factories import NEW_HOME, deaths, document, event, move
from tests.handlers import CODEC
from tests.integration.conftest import wait_for
from tests.messages import NOWHERE, as_received
from tests.postgres import USER, Server
from tests.stand_ins import Kept


@pytest.fixture
def url(postgres: Server) -> str:
    """State Pension's store on PostgreSQL, seeded with the demo's records."""
    url = postgres.fresh().format(service="pensions")
    seeded = ServiceStore(url, SERVICES["pensions"].record_type)
    with seeded.transaction() as tx:
        for record in demo_records(others=0)["pensions"]:
            tx.put(record)
    seeded.close()
    return url


def instance(url: str) -> ServiceHandler:
    """One instance of the service (its own engine: another process)."""
    store = ServiceStore(url, SERVICES["pensions"].record_type)
    return ServiceHandler(SERVICES["pensions"], store, CODEC, Topics())


def test_a_record_two_instances_change_at_once_keeps_both_changes(url: str) -> None:
    """Arthur's death changes Margaret's pension (widowed, flagged for review) and her own move
    its address; keyed by each one's pseudonym, they reach two instances. A's batch read her
    record; B's committed the move; A's commit overwrote it at READ COMMITTED, the move lost
    though confirmed APPLIED. Now A's commit fails (StoreBusy) and its batch, tried again, keeps
    both."""
    a, b = instance(url), instance(url)
    death, moved = event(EventType.DEATH), move(MARGARET)

    def while_b_moves_her() -> None:
        with a.batch([death]):
            assert a.handle(death, as_received(death, CODEC.encode(death))) == "applied"
            with b.batch([moved]):
                assert b.handle(moved, as_received(moved, CODEC.encode(moved))) == "applied"

    try:
        with pytest.raises(StoreBusy):
            while_b_moves_her()
        with a.batch([death]):  # delivered again
            assert a.handle(death, as_received(death, CODEC.encode(death))) == "applied"
        margaret = next(r for r in a.store.records() if r.record_id == "SP-100002")
        outcomes = a.store.outcomes()
    finally:
        for handler in (a, b):
            handler.store.close()
    assert margaret.address == NEW_HOME  # the move kept
    assert margaret.marital_status == "WIDOWED"  # and the death applied
    assert sorted(outcomes.values()) == ["APPLIED", "APPLIED"]


def test_an_amendment_and_an_event_reading_its_record_at_once_are_not_both_kept(
    url: str,
) -> None:
    """Margaret's death registered in error stopped her pension. Arthur's death, on instance A,
    reads it (stopped: no widow's flag) while instance B cancels her death and reinstates it:
    B could not see A's read, A's read was of the pension B undid, and both committed (her
    pension reinstated, married, no review). A's read now conflicts with B's change, and A's
    batch, tried again, sees her pension reinstated: she is his widow."""
    from producers.submission import cancellation

    a, b = instance(url), instance(url)
    in_error = event(
        EventType.DEATH,
        deceased=MARGARET.model_dump(mode="json"),
        surviving_partner=None,
        marital_status="SINGLE",
        registration={"district": "Leeds", "entry_number": 71, "office": "L"},
    )
    his = event(EventType.DEATH)  # Arthur's, Margaret his surviving partner
    undone = cancellation(in_error, Settings(), "registered in error")

    def handled(h: ServiceHandler, e: Any) -> str:
        return h.handle(e, as_received(e, CODEC.encode(e)))

    def while_b_cancels_hers() -> None:
        with a.batch([his]):
            assert handled(a, his) == "applied"
            with b.batch([undone]):
                assert handled(b, undone) == "applied"

    try:
        with b.batch([in_error]):
            assert handled(b, in_error) == "applied"
        with pytest.raises(StoreBusy):
            while_b_cancels_hers()
        with a.batch([his]):  # delivered again
            assert handled(a, his) == "applied"
        margaret = next(r for r in a.store.records() if r.record_id == "SP-100002")
    finally:
        for handler in (a, b):
            handler.store.close()
    assert (margaret.status, margaret.marital_status) == ("IN_PAYMENT", "WIDOWED")


def corrected(death: Any) -> Any:
    """A correction of one of `deaths()`, its date of death changed."""
    entry = death.envelope.registration.model_dump()
    fixed = document(EventType.DEATH, date_of_death="2026-03-04", registration=entry)
    return correction(death, fixed, Settings(), None)


class Rewinding(Kept):
    def __init__(self) -> None:
        super().__init__()
        self.rewound: list[tuple[int, int]] = []

    def rewind(self, _topic: str, partition: int, offset: int) -> None:
        self.rewound.append((partition, offset))


def test_a_connection_dropped_mid_batch_has_the_whole_batch_tried_again(
    url: str, postgres: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store's connection ends as the first correction of a batch reads (a server restart,
    a failover): that message's partition was held and the batch went on in a transaction the
    database had ended, which raised PendingRollbackError out of the consumer. Now nothing of
    the batch is kept and each partition is read again from its first message."""
    handler = instance(url)
    kept = Rewinding()
    runtime: Runtime[Any] = Runtime(handler, kept, kept, Topics())  # type: ignore[arg-type]
    topic = handler.topics[0]
    kept.assigned |= {(topic, 0), (topic, 1)}

    def at(message: Any, partition: int, offset: int) -> Any:
        return as_received(message, CODEC.encode(message))._replace(
            topic=topic, partition=partition, offset=offset
        )

    first, second = deaths(2)
    runtime.process([at(first, 0, 0), at(second, 1, 0)])
    admin = create_engine(
        f"postgresql+psycopg://{USER}@127.0.0.1:{postgres.port}/postgres",
        isolation_level="AUTOCOMMIT",
    )
    reads = Transaction.in_effect
    dropped: list[int] = []

    def in_effect_after_a_drop(tx: Transaction, event_id: str) -> str:
        if not dropped:
            dropped.append(tx.conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
            with admin.connect() as conn:
                conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": dropped[0]})
        return reads(tx, event_id)

    monkeypatch.setattr(Transaction, "in_effect", in_effect_after_a_drop)
    batch = [at(corrected(first), 0, 1), at(corrected(second), 1, 1)]
    try:
        runtime.process(batch)  # raised PendingRollbackError
        assert dropped
        assert sorted(kept.rewound) == [(0, 1), (1, 1)]
        assert len(handler.store.outcomes()) == 2  # the deaths only
        runtime._resume_at.clear()
        runtime.process(batch)  # read again
        assert len(handler.store.outcomes()) == 4
    finally:
        handler.store.close()
        admin.dispose()


def test_a_ce_id_header_holding_a_nul_is_dead_lettered_not_the_end_of_the_service(
    url: str,
) -> None:
    """Looked up as an event id, it ended the process (PostgreSQL's text refuses a NUL), again
    at each restart: the partition stopped for good."""
    kept, service = Kept(), instance(url)
    runtime = Runtime(service, kept, kept, Topics())  # type: ignore[arg-type]
    poison = as_received(event(EventType.DEATH), b"garbage")._replace(
        topic=Topics().events(EventType.DEATH), headers=[("ce_id", b"x\x00y")]
    )
    try:
        runtime.process([poison])  # raised DataError
    finally:
        service.store.close()
    assert [m.topic for m in kept.sent] == [Topics().dead_letter("pensions")]


def started_meanwhile(
    postgres: Server, url: str, unit: Callable[[], None], done: list[str]
) -> threading.Thread:
    """Another instance's `unit` run in a thread, returned once it waits for a lock on this
    store's database (the unit under way holds it) or, where nothing makes it wait, is done."""
    admin = create_engine(
        f"postgresql+psycopg://{USER}@127.0.0.1:{postgres.port}/postgres",
        isolation_level="AUTOCOMMIT",
    )
    waiting = text(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = :db"
    )
    database = url.rsplit("/", 1)[1]
    other = threading.Thread(target=unit)
    other.start()
    try:
        with admin.connect() as conn:
            wait_for(
                lambda: done or conn.execute(waiting, {"db": database}).scalar_one(),
                "the other instance's unit waiting for this one's, or done",
                10,
            )
    finally:
        admin.dispose()
    return other


def test_two_instances_moving_people_into_one_property_open_one_account(
    postgres: Server,
) -> None:
    """Margaret and another Leeds resident move into one empty property, their moves on two
    instances at once: each unit found no account there and opened one (REPEATABLE READ sees
    no conflict between two new rows). B's unit now waits for A's and then joins its account."""
    url = postgres.fresh().format(service="council_tax")
    record_type = SERVICES["council_tax"].record_type
    seeded = ServiceStore(url, record_type)
    records = demo_records(others=3)["council_tax"]
    with seeded.transaction() as tx:
        for record in records:
            tx.put(record)
    seeded.close()
    neighbour = next(
        r for r in records if r.property.postcode.startswith("LS") and r.record_id != "CT-300001"
    )
    a, b = (
        ServiceHandler(SERVICES["council_tax"], ServiceStore(url, record_type), CODEC, Topics())
        for _ in "ab"
    )
    hers = move(MARGARET)
    theirs = event(
        EventType.ADDRESS_CHANGE,
        people_moving=[neighbour.residents[0].model_dump(mode="json")],
        old_address=neighbour.property.model_dump(mode="json"),
        new_address=NEW_HOME.model_dump(mode="json"),
        registration={"district": "Leeds", "entry_number": 2, "office": "L"},
    )
    outcomes: list[str] = []

    def on_b() -> None:
        with b.batch([theirs]):
            outcomes.append(b.handle(theirs, NOWHERE))

    try:
        with a.batch([hers]):
            assert a.handle(hers, NOWHERE) == "applied"
            other = started_meanwhile(postgres, url, on_b, outcomes)
        other.join(30)
        at_new_home = [
            (r.status, sorted(p.family_name for p in r.residents))
            for r in a.store.records()
            if r.property.same_place(NEW_HOME)
        ]
    finally:
        for handler in (a, b):
            handler.store.close()
    assert outcomes == ["applied"]
    assert at_new_home == [
        ("OPEN", sorted([MARGARET.family_name, neighbour.residents[0].family_name]))
    ]


def test_two_tracker_instances_recording_an_event_and_its_last_answer_await_nothing(
    postgres: Server,
) -> None:
    """One instance records an event (reading that a service had not answered it) while the
    other records that service's answer (finding the event unknown): both committed, and the
    event awaited the answer for ever (an overdue alert, though 4/4 had answered). The second
    unit now waits for the first, and reads what it committed."""
    from consumers.tracker import TrackerHandler, TrackerStore
    from tellusonce.codec import Codec
    from tellusonce.events import Outcome
    from tellusonce.topics import subscribers
    from tests.messages import answer, at

    url = postgres.fresh().format(service="tracker")
    a, b = (TrackerHandler(TrackerStore(url), Topics(), Codec()) for _ in "ab")
    dead = event(EventType.DEATH)
    answers = [answer(dead, s, Outcome.APPLIED) for s in subscribers(EventType.DEATH)]
    done: list[str] = []

    def last_answer() -> None:
        with b.batch(answers[-1:]):
            done.append(b.handle(answers[-1], at(3_000)))

    try:
        with b.batch(answers[:-1]):
            for answered in answers[:-1]:
                b.handle(answered, at(2_000))
        with a.batch([dead.envelope]):
            assert a.handle(dead.envelope, at(1_000)) == "recorded"
            other = started_meanwhile(postgres, url, last_answer, done)
        other.join(30)
        awaiting, _oldest = a.store.awaiting()
    finally:
        for handler in (a, b):
            handler.store.close()
    assert done == ["recorded"]
    assert awaiting == 0


def test_a_death_read_before_the_birth_is_kept_and_applied_after_it(postgres: Server) -> None:
    """A baby's death read first (no claim had her: kept, with its message, by NINO-less
    surname and birth), then her birth in a batch of its own: she is added, then taken off."""
    from tests.unit.test_read_order import death, evans_claim

    url = postgres.fresh().format(service="housing_benefit")
    h = ServiceHandler(
        SERVICES["housing_benefit"],
        ServiceStore(url, SERVICES["housing_benefit"].record_type),
        CODEC,
        Topics(),
    )
    born = event(EventType.BIRTH)
    try:
        with h.store.transaction() as tx:
            tx.put(evans_claim(born))
        died = death(born.facts.child, born.facts.address, "2024-06-07")
        with h.batch([died]):
            assert h.handle(died, NOWHERE) == "no_record"
        with h.batch([born]):
            assert h.handle(born, NOWHERE) == "applied"
        (claim,) = h.store.records()
    finally:
        h.store.close()
    assert (claim.children, claim.reassess_from) == ((), date(2024, 6, 8))  # type: ignore[attr-defined]
