"""Poison messages and floods of resubmissions: dead-lettered or deduplicated, never a crash."""

from __future__ import annotations

import random
import threading
import uuid
from typing import Any

import pytest
from prometheus_client import REGISTRY

from consumers.services import SERVICES
from producers.submission import Registrar
from tellusonce.codec import MAGIC, Codec
from tellusonce.errors import NotRecorded
from tellusonce.events import Action, EventType, LifeEvent
from tellusonce.headers import event_headers
from tellusonce.kafka import Outgoing, Publisher
from tellusonce.settings import Settings
from tellusonce.topics import Topics, subscribers
from tests.factories import document, with_deceased_nino
from tests.faults.conftest import exactly_once, publish_in_chunks, report, settle
from tests.faults.stream import events
from tests.integration.conftest import Fleet, wait_for
from tests.metrics import consumed

CODEC = Codec()


def poison(kind: str, valid: LifeEvent[Any]) -> bytes:
    """Five kinds of bad message, made from a valid event."""
    good = CODEC.encode(valid)
    if kind == "random bytes":
        return random.Random(len(good)).randbytes(60)  # noqa: S311 (test data)
    if kind == "unknown schema":
        return MAGIC + bytes(8) + good[10:]
    if kind == "truncated":
        return good[: len(good) // 2]
    if kind == "invalid for the model":  # valid Avro, but a NINO no person can have
        return CODEC.encode(with_deceased_nino(valid, "QQ000000Z"))
    # "rule rejection": a correction that names nothing to correct
    envelope = valid.envelope.model_copy(
        update={"event_id": uuid.uuid4(), "action": Action.CORRECTED, "revision": 1}
    )
    return CODEC.encode(valid.model_copy(update={"envelope": envelope}))


POISONS = ["random bytes", "unknown schema", "truncated", "invalid for the model", "rule rejection"]


def test_one_percent_poison_is_dead_lettered_and_every_valid_event_applied(
    settings: Settings,
    topics: Topics,
    fleet: Fleet,
    registrar: Registrar,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """5 poison messages (1%), one of each kind, among 500 deaths: each dead-lettered by each
    subscriber, every valid death applied, no consumer stops."""
    from consumers.seed import seed
    from tests.faults.stream import CROWD_SIZE

    seed(settings, others=CROWD_SIZE)
    stream = [e for e in events(2000, settings) if e.envelope.event_type == EventType.DEATH]
    publisher = Publisher(settings, "poisoner")
    bad = []
    for i, chunk_end in enumerate(publish_in_chunks(registrar, stream, size=100)):
        kind = POISONS[i % len(POISONS)]
        victim = stream[chunk_end - 1]
        bad.append(
            Outgoing(
                topics.events(EventType.DEATH),
                victim.envelope.person_ref.encode(),
                poison(kind, victim),
                event_headers(victim.envelope),
            )
        )
        publisher.publish(bad[-1:])

    ledger = settle(settings, stream, dead_letters=True)
    death_subscribers = subscribers(EventType.DEATH)
    counts: dict[str, int] = {}

    def all_dead_lettered() -> dict[str, int] | None:
        counts.update({s: len(_dead(settings, s)) for s in death_subscribers})
        return counts if set(counts.values()) == {len(bad)} else None

    try:
        wait_for(all_dead_lettered, "every poison message on every dead-letter topic", 60)
    finally:
        print("dead letters per service:", counts)
    ledger = settle(settings, stream, dead_letters=True)
    report(capsys, ledger.line("1% poison"))
    assert all(thread.is_alive() for thread, _stop in fleet.threads.values())
    for service in death_subscribers:
        letters = _dead(settings, service)
        assert sorted(d.error_class for d in letters) == sorted(
            [
                "UndecodableMessage",
                "UnknownSchema",
                "UndecodableMessage",
                "UndecodableMessage",
                "RuleRejected",
            ]
        )
        assert {d.message.value for d in letters} == {m.value for m in bad}  # unchanged bytes
    rejected = CODEC.decode(bad[POISONS.index("rule rejection")].value)
    assert isinstance(rejected, LifeEvent)
    wait_for(
        lambda: (
            _outcomes(settings, str(rejected.envelope.event_id))
            == dict.fromkeys(death_subscribers, "REJECTED")
        ),
        "REJECTED confirmations",
    )


def _outcomes(settings: Settings, event_id: str) -> dict[str, str]:
    from sqlalchemy import select

    from consumers.tracker import TrackerStore, confirmations
    from tellusonce.topics import TRACKER

    store = TrackerStore(settings.store_url_for(TRACKER))
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(confirmations.c.service, confirmations.c.outcome).where(
                confirmations.c.event_id == event_id
            )
        ).all()
    return dict(rows)  # type: ignore[arg-type]


def _dead(settings: Settings, service: str) -> list[Any]:
    from consumers.dead_letters import read

    return read(settings, service)


def test_same_registration_500_times_in_a_row_and_50_at_once(
    settings: Settings,
    topics: Topics,
    fleet: Fleet,
    registrar: Registrar,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """550 submissions of one death: one event_id, applied once and confirmed once per service.
    A registrar answers a registration it published from its ledger; those submitted at once
    by separate registrars may each publish it, and the bus's own redeliveries are the same
    event again: each service skips every repeat."""
    duplicates = {s: consumed(s, "duplicate") for s in SERVICES}
    published = _published()
    receipts = [registrar.submit(EventType.DEATH, document(EventType.DEATH)) for _ in range(500)]

    def submit_once() -> None:
        """As a registrar told its submission was not recorded (50 writers at once waited more
        than the ledger's second for its lock): submitted again, as NotRecorded says."""
        own = Registrar(settings, Publisher(settings, "concurrent"), CODEC)
        receipts.append(wait_for(lambda: _recorded(own), "the submission recorded", 30))

    threads = [threading.Thread(target=submit_once) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    from tests.factories import event

    death = event(EventType.DEATH, settings)
    for _ in range(500):  # redelivered, as after a producer's retry or a replay
        registrar.publish(death)

    assert len(receipts) == 550
    assert len({r.event_id for r in receipts}) == 1
    repeats = int(_published() - published) - 1
    assert 500 <= repeats <= 550
    wait_for(
        lambda: all(consumed(s, "duplicate") - duplicates[s] == repeats for s in SERVICES),
        f"{repeats} duplicates skipped by every service",
    )
    ledger = settle(settings, [death])
    ledger.duplicates_skipped = repeats * len(SERVICES)  # counted by the metric wait above
    report(capsys, ledger.line("550 resubmissions, 500 redeliveries"))
    # no replay: the fleet's stores were seeded with fewer people than the replay seeds
    exactly_once(settings, [death], replay=False)


def _published() -> float:
    labels = {"event_type": "death", "status": "acknowledged"}
    return REGISTRY.get_sample_value("tellusonce_events_published_total", labels) or 0.0


def _recorded(registrar: Registrar) -> Any:
    """A death's receipt, or None if the registrar's ledger could not record it this time."""
    try:
        return registrar.submit(EventType.DEATH, document(EventType.DEATH))
    except NotRecorded:
        return None
