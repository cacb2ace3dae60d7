"""The runtime counts a service's byte-for-byte repeats as duplicates without decoding them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from consumers.runtime import Runtime
from tellusonce.codec import Codec, Message
from tellusonce.events import EventType
from tellusonce.kafka import Received
from tellusonce.topics import Topics
from tests.factories import event
from tests.handlers import handler
from tests.messages import as_received
from tests.metrics import consumed
from tests.stand_ins import Kept


class CountingCodec(Codec):
    """A codec that counts what it decodes."""

    def __init__(self) -> None:
        super().__init__()
        self.decoded = 0

    def decode(self, data: bytes) -> Message:
        self.decoded += 1
        return super().decode(data)


def pensions_with_a_death(
    tmp_path: Path,
) -> tuple[Runtime[Any], CountingCodec, Kept, Received]:
    """A pensions runtime whose codec counts what it decodes, and a death message for it."""
    death = event(EventType.DEATH)
    codec = CountingCodec()
    service = handler(tmp_path, "pensions")
    service.codec = codec
    kept = Kept()
    runtime: Runtime[Any] = Runtime(service, kept, kept, Topics())  # type: ignore[arg-type]
    message = as_received(death, codec.encode(death))._replace(topic=service.topics[0])
    return runtime, codec, kept, message


def test_a_redelivered_message_is_a_duplicate_without_being_decoded(tmp_path: Path) -> None:
    """The second delivery of a processed death is counted as a duplicate, queues nothing and
    is not decoded; a changed body under the same id is decoded (and dead-lettered)."""
    runtime, codec, kept, message = pensions_with_a_death(tmp_path)
    before = consumed("pensions", "duplicate")

    runtime.process([message])
    runtime.relay()
    runtime.process([message._replace(offset=2)])
    runtime.relay()

    assert codec.decoded == 1
    assert consumed("pensions", "duplicate") == before + 1
    assert len(kept.sent) == 1  # the one confirmation, not a second
    broken = message._replace(offset=3, value=message.value[:-2])
    runtime.process([broken])
    assert codec.decoded == 2
    assert [m.value for m in kept.sent[1:]] == [broken.value]  # to the dead-letter topic


def test_a_repeat_in_the_same_batch_is_a_duplicate_without_being_decoded(tmp_path: Path) -> None:
    """A repeat in the batch of the message it repeats (a resubmission soon after, a backlog)
    was decoded and judged, the store not yet knowing the first: now skipped as a repeat of it,
    undecoded. A changed body under the same id in the batch is still decoded (and refused)."""
    runtime, codec, kept, message = pensions_with_a_death(tmp_path)
    service = runtime.handler
    broken = message._replace(offset=3, value=message.value[:-2])
    before = consumed("pensions", "duplicate")

    runtime.process([message, message._replace(offset=2), broken])
    runtime.relay()

    assert codec.decoded == 2  # the first and the changed body
    assert consumed("pensions", "duplicate") == before + 1
    assert len(service.store.outcomes()) == 1  # the death, applied once
    dead = [m.value for m in kept.sent if m.topic == service.dead_letter_topic]
    assert dead == [broken.value]
    assert len(kept.sent) == 2  # and one confirmation


def test_a_ce_id_header_that_is_not_text_does_not_stop_the_consumer(tmp_path: Path) -> None:
    """A header is another producer's word (one might write the id as 16 raw bytes): the
    message is judged by its body, and applied, rather than the consumer stopping on it."""
    death = event(EventType.DEATH)
    service = handler(tmp_path, "pensions")
    kept = Kept()
    runtime = Runtime(service, kept, kept, Topics())  # type: ignore[arg-type]
    message = as_received(death, Codec().encode(death))._replace(
        topic=service.topics[0], headers=[("ce_id", death.envelope.event_id.bytes)]
    )
    runtime.process([message])
    runtime.relay()
    assert service.store.outcomes() == {death.envelope.event_id_text: "APPLIED"}
    assert len(kept.sent) == 1  # its confirmation


def test_an_event_on_another_type_s_topic_is_dead_lettered_by_services_and_tracker(
    tmp_path: Path,
) -> None:
    """A death published on the birth topic: Housing Benefit applied it, and the tracker awaited
    it from death's services, which never saw it."""
    from consumers.tracker import TrackerHandler, TrackerStore
    from tellusonce.topics import TRACKER

    death = event(EventType.DEATH)
    on_births = as_received(death, Codec().encode(death))._replace(
        topic=Topics().events(EventType.BIRTH)
    )
    for name in ("housing_benefit", TRACKER):
        kept = Kept()
        tracker_store = TrackerStore(f"sqlite:///{tmp_path / 'tracker.db'}")
        consumer = (
            handler(tmp_path, name)
            if name != TRACKER
            else TrackerHandler(tracker_store, Topics(), Codec())
        )
        runtime = Runtime(consumer, kept, kept, Topics())  # type: ignore[arg-type]
        runtime.process([on_births])
        runtime.relay()
        assert [m.topic for m in kept.sent] == [Topics().dead_letter(name)], name


def test_a_copy_on_the_wrong_topic_does_not_take_the_right_one_with_it(tmp_path: Path) -> None:
    """A death published on the birth topic too, and read in one batch before the one on the
    death topic (Housing Benefit reads both): the copy is dead-lettered, and the death, the
    same bytes, is applied and confirmed, not skipped as its repeat."""
    death = event(EventType.DEATH)
    service = handler(tmp_path, "housing_benefit")
    kept = Kept()
    runtime = Runtime(service, kept, kept, Topics())  # type: ignore[arg-type]
    value = Codec().encode(death)
    wrong = as_received(death, value)._replace(topic=Topics().events(EventType.BIRTH), offset=5)
    right = as_received(death, value)._replace(topic=Topics().events(EventType.DEATH), offset=7)

    runtime.process([wrong, right])
    runtime.relay()

    assert service.store.outcomes() == {death.envelope.event_id_text: "APPLIED"}
    assert sorted(m.topic for m in kept.sent) == sorted(
        [Topics().dead_letter("housing_benefit"), Topics().confirmations]
    )


def test_an_event_whose_facts_do_not_decode_is_answered_rejected_with_why(tmp_path: Path) -> None:
    """A death whose envelope reads but whose facts do not (another producer's invalid NINO):
    dead-lettered, and answered nothing, so the registrar's status awaited Housing Benefit
    for ever (and paged as overdue). It is answered REJECTED now, naming the field, and
    nothing is applied; on another type's topic it is dead-lettered alone (its services
    answer it on its own)."""
    from tellusonce.codec import Confirmation

    death = event(EventType.DEATH)
    record = death.model_dump()
    record["facts"]["deceased"]["nino"] = "not a nino"
    value = Codec().encode_record("death", record)
    service = handler(tmp_path, "housing_benefit")
    for topic, answered in ((EventType.BIRTH, False), (EventType.DEATH, True)):
        kept = Kept()
        runtime = Runtime(service, kept, kept, Topics())  # type: ignore[arg-type]
        with capture_logs() as lines:
            runtime.process([as_received(death, value)._replace(topic=Topics().events(topic))])
            runtime.relay()
        letters = [m for m in kept.sent if m.topic == Topics().dead_letter("housing_benefit")]
        answers = [Codec().decode(m.value) for m in kept.sent if m.topic == Topics().confirmations]
        assert len(letters) == 1, topic
        said = repr(lines) + repr(letters[0].headers)  # (its body is the message, as it came)
        assert "facts.deceased.nino" in said
        for personal in ("not a nino", death.facts.deceased.family_name):
            assert personal not in said, topic  # pydantic's error says input_value='...'
        assert service.store.outcomes() == {}
        assert len(answers) == int(answered), topic
    answer = answers[0]
    assert isinstance(answer, Confirmation)
    assert (answer.event_id_text, answer.outcome) == (death.envelope.event_id_text, "REJECTED")
    assert "facts.deceased.nino" in answer.actions[0]
    assert "not a nino" not in answer.actions[0]
