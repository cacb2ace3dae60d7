"""The tracker's submission-to-confirmation latency: each confirmation observed once, whatever
order its event comes in and however often its batch is tried; what waits for an event that
never comes (or comes to another instance) is bounded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from consumers import tracker
from consumers.tracker import TrackerBatch, TrackerHandler, TrackerStore
from tellusonce.codec import Codec
from tellusonce.errors import StoreBusy
from tellusonce.events import Confirmation, EventType, LifeEvent, Outcome
from tellusonce.topics import Topics
from tests.factories import event
from tests.messages import answer, at


def death(entry: int) -> LifeEvent[Any]:
    registration = {"district": "Leeds", "entry_number": entry, "office": "LEEDS-RO-1"}
    return event(EventType.DEATH, registration=registration)


def confirmed(death: LifeEvent[Any], service: str = "disability") -> Confirmation:
    return answer(death, service, Outcome.APPLIED)


def observed(service: str = "disability") -> float:
    name = "tellusonce_submission_to_confirmation_seconds_count"
    return REGISTRY.get_sample_value(name, {"service": service}) or 0.0


@pytest.fixture
def handler(tmp_path: Path) -> TrackerHandler:
    return TrackerHandler(TrackerStore(f"sqlite:///{tmp_path / 'tracker.db'}"), Topics(), Codec())


def test_a_confirmation_before_its_event_is_observed_once_the_event_comes(
    handler: TrackerHandler,
) -> None:
    dead = death(1)
    env = dead.envelope
    before = observed()
    with handler.batch([confirmed(dead)]):
        handler.handle(confirmed(dead), at(5_000))
    assert observed() == before
    with handler.batch([env]):
        handler.handle(env, at(1_000))
    assert observed() == before + 1
    assert handler._early == {}


def test_an_answer_replacing_a_rejected_one_is_not_observed_again(
    handler: TrackerHandler,
) -> None:
    """Applied after a replay from the dead-letter topic, an hour on: a second observation of
    one (event, service), far out in the SLO histogram's tail."""
    dead = death(3)
    env = dead.envelope
    before = observed()
    for message, ms in [
        (env, 1_000),
        (answer(dead, "disability", Outcome.REJECTED), 2_000),
        (answer(dead, "disability", Outcome.APPLIED), 3_600_000),
    ]:
        with handler.batch([message]):
            assert handler.handle(message, at(ms)) == "recorded"
    assert observed() == before + 1
    (status,) = handler.store.status(env.reference)
    assert {s.service: s.outcome for s in status.services}["disability"] == "APPLIED"


def test_a_batch_tried_again_observes_its_confirmations_once(
    handler: TrackerHandler, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store refused the first try (busy): nothing was recorded, nor observed."""
    dead = death(2)
    env = dead.envelope
    with handler.batch([env]):
        handler.handle(env, at(1_000))
    write, failures = TrackerBatch.write, [StoreBusy("locked")]

    def failing_once(batch: TrackerBatch) -> None:
        if failures:
            raise failures.pop()
        write(batch)

    monkeypatch.setattr(TrackerBatch, "write", failing_once)
    before = observed()
    with pytest.raises(StoreBusy), handler.batch([confirmed(dead)]):
        handler.handle(confirmed(dead), at(5_000))
    assert observed() == before
    with handler.batch([confirmed(dead)]):  # tried again
        handler.handle(confirmed(dead), at(5_000))
    assert observed() == before + 1


def test_confirmations_waiting_for_their_events_are_bounded(
    handler: TrackerHandler, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tracker, "EARLY_KEPT", 3)
    deaths = [death(entry) for entry in range(10, 15)]
    with handler.batch([confirmed(d) for d in deaths]):
        for dead in deaths:
            handler.handle(confirmed(dead), at(5_000))
    assert list(handler._early) == [d.envelope.event_id_text for d in deaths[-3:]]


def test_a_service_the_matrix_does_not_name_is_not_observed(handler: TrackerHandler) -> None:
    """Whoever can write to the confirmations topic may name any service: not a series each
    (nor a late answer of its)."""
    dead = death(20)
    env = dead.envelope
    before = observed("other")
    with handler.batch([env, confirmed(dead, "intruder_one")]):
        handler.handle(env, at(1_000))
        handler.handle(confirmed(dead, "intruder_one"), at(2_000))
    assert (observed("other"), observed("intruder_one")) == (before, 0.0)
    (status,) = handler.store.status(env.reference)
    assert "intruder_one" not in {s.service for s in status.services}


def test_a_service_that_joined_since_an_event_is_shown_and_not_observed(
    handler: TrackerHandler, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A service subscribed since the tracker recorded a death catches up on the topic's week:
    its answer was stored but not shown (the family's page said every service had answered),
    and its days-late confirmation was observed, firing the SLO alert on its first day."""
    dead = death(21)
    env = dead.envelope
    monkeypatch.setattr(tracker, "subscribers", lambda _type: ["pensions"])  # the matrix then
    with handler.batch([env]):
        handler.handle(env, at(1_000))
    monkeypatch.undo()
    before = observed()
    later = confirmed(dead, "disability")  # a week on: "disability" joined meanwhile
    with handler.batch([later]):
        handler.handle(later, at(604_800_000))
    assert observed() == before
    (status,) = handler.store.status(env.reference)
    assert [(s.service, s.outcome) for s in status.services] == [
        ("pensions", None),
        ("disability", "APPLIED"),
    ]


def test_what_the_tracker_cannot_read_is_dead_lettered_for_a_replay(
    handler: TrackerHandler,
) -> None:
    """A confirmation of a schema the tracker lacks yet (a service upgraded first) was stored
    past and kept nowhere, though logged "dead-lettered": no dead letter, no count, no alert,
    and its event awaited for ever."""
    from consumers.runtime import Runtime
    from tellusonce.codec import MAGIC
    from tellusonce.kafka import Received
    from tests.stand_ins import Kept

    kept = Kept()
    runtime = Runtime(handler, kept, kept, Topics())  # type: ignore[arg-type]
    good = Codec().encode(confirmed(death(1)))
    newer = MAGIC + b"\x11" * 8 + good[10:]  # a writer fingerprint this tracker does not ship
    topic = Topics().confirmations
    labels = {"service": "tracker", "topic": topic, "error": "UnknownSchema"}
    before = REGISTRY.get_sample_value("tellusonce_dead_letters_total", labels) or 0.0

    runtime.process([Received(topic, 0, 7, b"k", newer, [], 0)])

    (letter,) = kept.sent
    assert (letter.topic, letter.value) == ("life-events.dead-letter.tracker", newer)
    assert REGISTRY.get_sample_value("tellusonce_dead_letters_total", labels) == before + 1


def test_only_a_tracker_exports_the_awaiting_gauges(tmp_path: Path) -> None:
    """Every process (services, the registrar API) exported them at 0. In a process of its
    own: this one's tracker made them here already."""
    import subprocess
    import sys

    code = (
        "import sys; from prometheus_client import REGISTRY\n"
        "import producers.api, consumers.launch\n"
        "from consumers.tracker import TrackerHandler, TrackerStore\n"
        "from tellusonce.codec import Codec; from tellusonce.topics import Topics\n"
        "name = 'tellusonce_events_awaiting_confirmation'\n"
        "print(REGISTRY.get_sample_value(name))\n"
        "TrackerHandler(TrackerStore('sqlite:///' + sys.argv[1]), Topics(), Codec())\n"
        "TrackerHandler(TrackerStore('sqlite:///' + sys.argv[1]), Topics(), Codec())\n"
        "print(REGISTRY.get_sample_value(name))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "tracker.db")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split() == ["None", "0.0"]


def test_an_early_confirmation_in_a_batch_the_store_refused_is_observed_once(
    handler: TrackerHandler, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The confirmation came before its event, in a batch the store refused: it was kept as
    early all the same, observed when its event came from another partition, and observed
    again when its batch was tried again."""
    dead = death(8)
    answered = confirmed(dead)
    write, failures = TrackerBatch.write, [StoreBusy("locked")]

    def refused_once(batch: TrackerBatch) -> None:
        if failures:
            raise failures.pop()
        write(batch)

    monkeypatch.setattr(TrackerBatch, "write", refused_once)
    before = observed()
    with pytest.raises(StoreBusy), handler.batch([answered]):
        handler.handle(answered, at(5_000))
    with handler.batch([dead.envelope]):
        handler.handle(dead.envelope, at(1_000))
    with handler.batch([answered]):  # tried again
        assert handler.handle(answered, at(5_000)) == "recorded"
    assert observed() == before + 1


def test_an_event_held_back_in_its_batch_keeps_its_early_confirmation(
    handler: TrackerHandler,
) -> None:
    """The event's partition was held back for a retry (its dead-letter topic down), the event
    itself not handled: its early confirmation was forgotten all the same, and its latency
    never observed once it was recorded."""
    from consumers.runtime import Runtime
    from tellusonce.kafka import Received
    from tests.stand_ins import Outage

    class Rewinding(Outage):
        def rewind(self, _topic: str, _partition: int, _offset: int) -> None:
            """Read again from there (the runtime is given the batch again below)."""

    topics, codec = Topics(), Codec()
    subscriber, dead_letters = Rewinding(), Outage()
    runtime = Runtime(handler, subscriber, dead_letters, topics)  # type: ignore[arg-type]
    dead = death(7)
    on_its_topic = topics.events(EventType.DEATH)
    subscriber.assigned = {(on_its_topic, 0), (topics.confirmations, 0)}
    before = observed()
    answered = codec.encode(confirmed(dead))
    runtime.process([Received(topics.confirmations, 0, 0, b"k", answered, [], 5_000)])
    partition = [
        Received(on_its_topic, 0, 0, b"k", b"\x00not avro", [], 900),  # its letter not sent
        Received(on_its_topic, 0, 1, b"k", codec.encode(dead), [], 1_000),
    ]
    runtime.process(partition)  # held back at the first
    dead_letters.up = True
    runtime._resume_at.clear()
    runtime.process(partition)
    assert observed() == before + 1
