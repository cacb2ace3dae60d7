"""Transient trouble a consumer lives through rather than ends on (nothing restarts it under
`tellusonce up`): a retry of a partition taken away meanwhile, a busy store when the gauges are
refreshed, and a poison message too large to dead-letter whole; and a dead-letter topic that
does not answer costs a batch one publish's timeout, not one per partition."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import KafkaError
from prometheus_client import REGISTRY
from sqlalchemy import select, update
from structlog.testing import capture_logs

from consumers.runtime import Runtime
from consumers.store import records
from consumers.tracker import TrackerStore
from tellusonce.errors import BrokerUnavailable, MessageTooLarge, StoreBusy
from tellusonce.events import Outcome
from tellusonce.headers import DEAD_LETTER_BODY_DROPPED, header
from tellusonce.kafka import Outgoing, Publisher, Received
from tellusonce.metrics import OUTBOX_PENDING
from tellusonce.settings import Settings
from tellusonce.topics import Topics
from tests.factories import deaths
from tests.handlers import CODEC, handler
from tests.messages import as_received, encoded, received
from tests.mock_kafka import mock_cluster, taken_away
from tests.stand_ins import Kept

LIMIT = 1000  # bytes the publisher below takes in one message


class Busy:
    """A service handler whose store is locked by another instance."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @contextmanager
    def batch(self, _messages: Sequence[Any]) -> Iterator[None]:
        raise StoreBusy("written meanwhile by another instance")
        yield

    def outbox_size(self) -> int:
        raise StoreBusy("store busy: OperationalError")


class Limited(Kept):
    """Keeps what it publishes, refusing messages larger than LIMIT as Kafka would."""

    def publish(self, messages: Sequence[Outgoing]) -> None:
        for m in messages:
            headers = sum(len(k) + len(v) for k, v in m.headers)
            if len(m.value) + len(m.key or b"") + headers > LIMIT:
                raise MessageTooLarge(f"{len(m.value)} bytes: more than Kafka takes")
        super().publish(messages)

    def lag(self) -> dict[tuple[str, int], int]:
        return {}


def test_a_retry_of_a_partition_taken_away_meanwhile_leaves_it_to_its_new_owner(
    tmp_path: Path,
) -> None:
    """Its revocation served inside poll, then the batch's unit failed (the new owner writing
    the same events): the rewind's seek raised librdkafka's _STATE and ended the process."""
    subscriber, batch, _cluster = taken_away()
    runtime = Runtime(Busy(handler(tmp_path, "pensions")), subscriber, Kept(), Topics())  # type: ignore[arg-type]

    runtime.process(batch)  # raised KafkaException(_STATE)

    assert runtime._resume_at == {}  # no retry waits here for a partition not ours
    subscriber.close()


def test_a_busy_store_leaves_the_gauges_as_they_were(tmp_path: Path) -> None:
    kept = Limited()
    runtime = Runtime(Busy(handler(tmp_path, "pensions")), kept, kept, Topics())  # type: ignore[arg-type]
    OUTBOX_PENDING.labels("pensions").set(7)
    with capture_logs() as logs:
        runtime._gauges()  # raised StoreBusy out of the consumer's loop
    assert [e["event"] for e in logs] == ["gauges_not_updated"]
    assert REGISTRY.get_sample_value("tellusonce_outbox_pending", {"service": "pensions"}) == 7


def test_a_locked_tracker_store_is_busy_when_asked_what_awaits(tmp_path: Path) -> None:
    store = TrackerStore(f"sqlite:///{tmp_path / 'tracker.db'}")
    store.engine.dispose()  # its connections closed, as in another process's store
    locker = sqlite3.connect(tmp_path / "tracker.db", isolation_level=None)
    locker.execute("PRAGMA locking_mode=EXCLUSIVE")  # held by one connection, readers
    locker.execute("BEGIN EXCLUSIVE")  # kept out too, past the busy timeout
    try:
        with pytest.raises(StoreBusy):  # was SQLAlchemy's OperationalError: not transient
            store.awaiting()
    finally:
        locker.close()
    assert store.awaiting() == (0, 0.0)


def test_the_oldest_awaiting_age_grows_while_the_tracker_store_is_busy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Set from the store every 5 s, the age stayed at its last reading while the store was
    busy: below the overdue alert's 900 s, it never crossed it."""
    from consumers import tracker as tracker_module

    store = TrackerStore(f"sqlite:///{tmp_path / 'tracker.db'}")
    tracker = tracker_module.TrackerHandler(store, Topics(), CODEC)
    clock = [1_000_000.0]
    monkeypatch.setattr(tracker_module.time, "time", lambda: clock[0])
    readings: list[tuple[int, float] | Exception] = [(3, 600.0), StoreBusy("database is locked")]

    def awaiting() -> tuple[int, float]:
        reading = readings.pop(0)
        if isinstance(reading, Exception):
            raise reading
        return reading

    monkeypatch.setattr(store, "awaiting", awaiting)
    age = "tellusonce_oldest_awaiting_confirmation_age_seconds"
    tracker.observe()
    assert REGISTRY.get_sample_value(age) == 600.0
    clock[0] += 400
    with pytest.raises(StoreBusy):  # (logged by the runtime: gauges_not_updated)
        tracker.observe()
    assert REGISTRY.get_sample_value(age) == 1000.0


def test_a_poison_message_too_large_to_dead_letter_whole_is_dead_lettered_without_it(
    tmp_path: Path,
) -> None:
    """Kafka refused the dead letter (the message and our headers over its limit) and the
    consumer ended, and again on the same message after every restart."""
    service = handler(tmp_path, "pensions")
    kept = Limited()
    runtime = Runtime(service, kept, kept, Topics())
    topic = service.topics[0]
    kept.assigned.add((topic, 0))
    poison = Received(topic, 0, 7, b"key", b"x" * LIMIT, [("origin", b"h")], 0)

    runtime.process([poison])

    (letter,) = [m for m in kept.sent if m.topic == service.dead_letter_topic]
    assert (letter.key, letter.value) == (None, b"")
    assert header(letter.headers, DEAD_LETTER_BODY_DROPPED) == str(LIMIT + 3)
    assert header(letter.headers, "dlq_origin_offset") == "7"
    assert header(letter.headers, "origin") is None  # the original's headers stay with it


def test_kafka_refusing_a_message_as_too_large_is_a_permanent_error() -> None:
    _cluster, servers = mock_cluster()
    publisher = Publisher(Settings(bootstrap_servers=servers), "test")
    with pytest.raises(MessageTooLarge):  # was KafkaException(MSG_SIZE_TOO_LARGE)
        publisher.publish([Outgoing("events", b"k", b"x" * 1_100_000, [])])
    publisher.publish([Outgoing("events", b"k", b"small", [])])  # the producer still works
    publisher.close()


def test_a_long_topic_is_read_whole_while_its_messages_keep_coming(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`dlq list` and `dlq replay` read a dead-letter topic with one 10 s deadline for the
    whole: a bad day's letters, read for longer than that, failed as "Kafka did not answer"."""
    from confluent_kafka import Producer

    from tellusonce import kafka

    _cluster, servers = mock_cluster()
    producer = Producer({"bootstrap.servers": servers})
    for i in range(20):
        producer.produce("letters", value=f"v{i}".encode(), partition=0)
    assert producer.flush(10) == 0
    reader = kafka.Reader(Settings(bootstrap_servers=servers), "letters")
    clock = [0.0]
    monkeypatch.setattr(kafka.time, "monotonic", lambda: clock[0])
    consume = reader._consumer.consume

    def one_a_second(_count: int, timeout: float) -> list[Any]:
        clock[0] += 1.0  # a slow link: each message a second, the whole 20 s
        return consume(1, timeout)  # type: ignore[no-any-return]

    monkeypatch.setattr(reader, "_consumer", _Consuming(reader._consumer, one_a_second))
    got = reader.read_all(timeout=5.0)
    assert [r.value for r in got] == [f"v{i}".encode() for i in range(20)]


def test_a_topic_that_cannot_be_read_is_said_not_read_as_empty() -> None:
    """Not there (another prefix; `tellusonce topics` not run) or not described to this
    principal: `dlq list` said "0 dead letters", `dlq replay` "nothing to replay", exit 0."""
    from tellusonce import kafka

    _cluster, servers = mock_cluster()
    unknown = r"cannot read life-events\.dead-letter\.x: .*Unknown"
    with pytest.raises(BrokerUnavailable, match=unknown):
        kafka.Reader(Settings(bootstrap_servers=servers), "life-events.dead-letter.x")


class _Consuming:
    """A consumer whose consume is another function (confluent's own is read-only)."""

    def __init__(self, inner: Any, consume: Any) -> None:
        self._inner, self.consume = inner, consume

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class Unanswered(Kept):
    """A dead-letter topic that does not acknowledge (each try would wait out its timeout)."""

    def __init__(self) -> None:
        super().__init__()
        self.tries = 0

    def publish(self, messages: Sequence[Outgoing]) -> None:
        self.tries += 1
        raise BrokerUnavailable("1 of 1 messages not acknowledged by Kafka")

    def rewind(self, topic: str, partition: int, offset: int) -> None:
        """Paused to read `offset` again (a real subscriber's seek)."""


def test_a_dead_letter_topic_that_does_not_answer_is_tried_once_a_batch(tmp_path: Path) -> None:
    service = handler(tmp_path, "pensions")
    kept = Unanswered()
    runtime = Runtime(service, kept, kept, Topics())
    topic = service.topics[0]
    kept.assigned.update((topic, partition) for partition in range(3))
    poison = [Received(topic, p, 5, b"k", b"not avro", [], 0) for p in range(3)]

    runtime.process(poison)

    assert kept.tries == 1  # was 3: 30 s each, SIGTERM waiting on the batch meanwhile
    assert sorted(runtime._resume_at) == [(topic, p) for p in range(3)]  # each held, to retry
    runtime.process(poison)  # tried again the next batch
    assert kept.tries == 2


class CommitBusy:
    """A service handler whose batch's commit finds the store locked `times` times."""

    def __init__(self, inner: Any, times: int) -> None:
        self._inner, self.times = inner, times

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @contextmanager
    def batch(self, messages: Sequence[Any]) -> Iterator[None]:
        with self._inner.batch(messages):
            yield
            if self.times:
                self.times -= 1
                raise StoreBusy("database is locked")


class Rewound(Kept):
    """Keeps where each partition was rewound to."""

    def __init__(self) -> None:
        super().__init__()
        self.rewinds: list[tuple[str, int, int]] = []

    def rewind(self, topic: str, partition: int, offset: int) -> None:
        self.rewinds.append((topic, partition, offset))


def test_a_poison_message_is_dead_lettered_once_however_often_its_batch_is_retried(
    tmp_path: Path,
) -> None:
    """The dead letter was published (and counted, and logged) as the message was handled, in
    the batch's transaction: each retry of a batch whose commit failed published another, about
    120 an hour while the store stayed locked, each paging again."""
    service = CommitBusy(handler(tmp_path, "pensions"), times=2)
    kept = Rewound()
    runtime = Runtime(service, kept, kept, Topics())  # type: ignore[arg-type]
    topic = service.topics[0]
    kept.assigned.add((topic, 0))
    poison = Received(topic, 0, 5, b"k", b"not avro", [], 0)
    counted = {"service": "pensions", "topic": topic, "error": "UndecodableMessage"}
    before = REGISTRY.get_sample_value("tellusonce_dead_letters_total", counted) or 0

    for _ in range(3):  # refused at its commit twice, then committed
        runtime.process([poison])

    letters = [m for m in kept.sent if m.topic == service.dead_letter_topic]
    assert len(letters) == 1
    assert REGISTRY.get_sample_value("tellusonce_dead_letters_total", counted) == before + 1
    assert kept.rewinds == [(topic, 0, 5), (topic, 0, 5)]
    runtime.process([poison._replace(offset=6)])  # another poison message at another offset
    assert len([m for m in kept.sent if m.topic == service.dead_letter_topic]) == 2


def test_a_batch_failing_after_one_of_its_partitions_was_held_is_one_retry(
    tmp_path: Path,
) -> None:
    """A partition held at a message, then the batch's commit refused: two retries counted and
    logged, the backoff doubled, for one."""
    inner = handler(tmp_path, "pensions")
    service = CommitBusy(inner, times=1)
    kept = Rewound()
    runtime = Runtime(service, kept, kept, Topics())  # type: ignore[arg-type]
    topic = service.topics[0]
    kept.assigned.add((topic, 0))
    first, second = deaths(2)
    batch = [
        as_received(d, CODEC.encode(d))._replace(topic=topic, offset=i)
        for i, d in enumerate((first, second))
    ]
    handle, calls = inner.handle, [0]

    def busy_second(message: Any, received: Received) -> str:
        calls[0] += 1
        if calls[0] == 2:
            raise StoreBusy("database is locked")
        return handle(message, received)  # type: ignore[no-any-return]

    inner.handle = busy_second
    with capture_logs() as lines:
        runtime.process(batch)
    paused = [line for line in lines if line["event"] == "partition_paused_for_retry"]
    assert [(line["offset"], line["attempt"]) for line in paused] == [(1, 1)]
    assert runtime._attempts == {(topic, 0): 1}
    assert kept.rewinds == [(topic, 0, 1), (topic, 0, 0)]  # from its first: nothing committed


def test_only_what_committed_has_its_offset_stored_and_nothing_after_a_held_message(
    tmp_path: Path,
) -> None:
    """Nothing is lost: a message's offset is stored only once the transaction that applied it
    committed, and nothing after a message held back for a transient error is applied (its
    partition is read again from it, in order), while another partition goes on."""
    inner = handler(tmp_path, "pensions")
    kept = Rewound()
    runtime = Runtime(inner, kept, kept, Topics())  # type: ignore[arg-type]
    topic = inner.topics[0]
    kept.assigned.update({(topic, 0), (topic, 1)})
    events = deaths(4)
    places = [(0, 0), (0, 1), (0, 2), (1, 0)]
    batch = [
        as_received(d, CODEC.encode(d))._replace(topic=topic, partition=p, offset=o)
        for d, (p, o) in zip(events, places, strict=True)
    ]
    handle = inner.handle

    def busy_at_0_1(message: Any, received: Received) -> str:
        if (received.partition, received.offset) == (0, 1):
            raise StoreBusy("database is locked")
        return handle(message, received)  # type: ignore[no-any-return]

    inner.handle = busy_at_0_1  # type: ignore[method-assign]
    runtime.process(batch)

    assert {(m.partition, m.offset) for m in kept.stored} == {(0, 0), (1, 0)}
    applied = inner.store.outcomes()
    assert [e.envelope.event_id_text in applied for e in events] == [True, False, False, True]
    assert kept.rewinds == [(topic, 0, 1)]

    (tmp_path / "other").mkdir()
    failing = CommitBusy(handler(tmp_path / "other", "pensions"), times=1)
    refused = Rewound()
    again = Runtime(failing, refused, refused, Topics())  # type: ignore[arg-type]
    refused.assigned.update({(topic, 0), (topic, 1)})
    again.process(batch)  # the commit refused: nothing stored
    assert refused.stored == []


def test_a_partition_s_retries_back_off_from_a_fifth_of_a_second_doubling_to_30_s(
    tmp_path: Path,
) -> None:
    service = Busy(handler(tmp_path, "pensions"))
    kept = Rewound()
    runtime = Runtime(service, kept, kept, Topics())  # type: ignore[arg-type]
    topic = service.topics[0]
    kept.assigned.add((topic, 0))
    (death,) = deaths(1)
    message = as_received(death, CODEC.encode(death))._replace(topic=topic)
    with capture_logs() as lines:
        for _ in range(10):
            runtime.process([message])
    delays = [line["retry_in_seconds"] for line in lines if "retry_in_seconds" in line]
    assert delays == [0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30.0, 30.0]
    assert kept.stored == []


def test_offsets_are_committed_when_partitions_are_revoked_not_when_lost(tmp_path: Path) -> None:
    """Revoked, a partition's stored offsets are committed at once, so its new owner starts
    where this one stopped; lost (the session expired), there is no commit to make."""
    service = handler(tmp_path, "pensions")
    kept = Kept()
    runtime = Runtime(service, kept, kept, Topics())  # type: ignore[arg-type]
    runtime._lost([(service.topics[0], 0)])
    assert kept.commits == 0
    runtime._revoked([(service.topics[0], 0)])
    assert kept.commits == 1


def test_an_event_about_a_record_the_service_cannot_read_is_dead_lettered_and_rejected(
    tmp_path: Path,
) -> None:
    """A stored record its model could not read ended the consumer, printing pydantic's error
    with the record's date of birth, and again after every restart, holding up every event."""
    service = handler(tmp_path, "pensions")
    with service.store.engine.begin() as conn:
        data = conn.execute(select(records.c.data).where(records.c.record_id == "SP-100001"))
        image = orjson.loads(data.scalar_one())
        del image["weekly_amount_pence"]  # written by hand, or by an older version
        conn.execute(
            update(records)
            .where(records.c.record_id == "SP-100001")
            .values(data=orjson.dumps(image).decode())
        )
    kept = Kept()
    runtime = Runtime(service, kept, kept, Topics())
    death, later = deaths(2)  # Arthur's (SP-100001's) death, twice under two entries
    topic = service.topics[0]
    kept.assigned.add((topic, 0))
    with capture_logs() as lines:
        runtime.process([
            as_received(d, CODEC.encode(d))._replace(topic=topic, offset=i)
            for i, d in enumerate((death, later))
        ])  # fmt: skip
        runtime.relay()

    letters = [m for m in kept.sent if m.topic == service.dead_letter_topic]
    assert [header(m.headers, "dlq_error_class") for m in letters] == ["UnreadableRecord"] * 2
    why = header(letters[0].headers, "dlq_error_message")
    assert why == "stored record SP-100001 cannot be read: weekly_amount_pence (missing)"
    answers = [CODEC.decode(m.value) for m in kept.sent if m.topic == Topics().confirmations]
    assert [a.outcome for a in answers] == [Outcome.REJECTED] * 2  # type: ignore[union-attr]
    assert "1946-05-14" not in repr(lines) + repr(kept.sent)  # his date of birth


class Answering:
    """A producer that answers each message at once with `error` (None: acknowledged), and
    counts its purges."""

    def __init__(self, error: KafkaError | None) -> None:
        self.error = error
        self.purges = 0

    def produce(self, *_args: object, on_delivery: Any, **_kwargs: object) -> None:
        on_delivery(self.error, None)

    def flush(self, _timeout: float = 0) -> int:
        return 0

    def purge(self) -> None:
        self.purges += 1


def test_a_fatal_error_in_a_delivery_report_makes_a_new_producer() -> None:
    """An idempotent producer that hit a fatal error can do nothing more: kept, every later
    publish of the process failed with it."""
    publisher = Publisher(Settings(bootstrap_servers="127.0.0.1:1"), "test")
    fenced = Answering(KafkaError(KafkaError._FATAL, "fenced", fatal=True))
    publisher._producer = fenced  # type: ignore[assignment]
    with pytest.raises(BrokerUnavailable, match="1 of 1 messages not acknowledged by Kafka"):
        publisher.publish([Outgoing("events", b"k", b"v", [])])
    assert publisher._producer is not fenced  # a new one
    assert fenced.purges == 1  # what it still held is never sent late
    publisher.close()


def test_a_publish_refused_with_every_answer_in_purges_nothing_of_other_threads() -> None:
    """Refused as too large, each of its messages answered, a publish purged the producer's
    queue all the same: other threads' messages, waiting there, were failed with it."""
    publisher = Publisher(Settings(bootstrap_servers="127.0.0.1:1"), "test")
    refusing = Answering(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
    publisher._producer = refusing  # type: ignore[assignment]
    with pytest.raises(MessageTooLarge):
        publisher.publish([Outgoing("events", b"k", b"x" * 3000, [])])
    assert refusing.purges == 0


def test_a_message_s_own_dead_letter_headers_are_not_kept_as_its_dead_letter_s(
    tmp_path: Path,
) -> None:
    """Dead-lettered with its own headers first, a message carrying dlq_ headers was read by
    `dlq list` as their values say (any text, personal data too, as its error) and replayed to
    the topic its dlq_origin_topic named."""
    service = handler(tmp_path, "pensions")
    kept = Kept()
    runtime = Runtime(service, kept, kept, Topics())  # type: ignore[arg-type]
    forged = [
        ("dlq_origin_topic", b"life-events.birth"),
        ("dlq_error_message", b"QQ123456C Jane Smith"),
        ("ce_type", b"x"),
    ]
    topic = service.topics[0]
    kept.assigned.add((topic, 0))
    runtime.process([Received(topic, 0, 5, b"k", b"not avro", forged, 0)])

    (letter,) = kept.sent
    names = [name for name, _ in letter.headers]
    assert names.count("dlq_origin_topic") == names.count("dlq_error_message") == 1
    assert header(letter.headers, "dlq_origin_topic") == topic
    assert "QQ123456C" not in str(letter.headers)
    assert ("ce_type", b"x") in letter.headers  # its other headers kept


def test_a_message_without_a_key_is_dead_lettered_without_one(tmp_path: Path) -> None:
    """A message without a key (another producer's) was dead-lettered, and so replayed, with
    an empty key: Kafka places a keyed message by its key's hash, one without by its own."""
    service = handler(tmp_path, "pensions")
    kept = Kept()
    runtime = Runtime(service, kept, kept, Topics())  # type: ignore[arg-type]
    topic = service.topics[0]
    kept.assigned.add((topic, 0))
    runtime.process([
        Received(topic, 0, 5, None, b"not avro", [], 0),
        Received(topic, 0, 6, b"", b"not avro either", [], 0),
    ])  # fmt: skip

    assert [letter.key for letter in kept.sent] == [None, b""]


def test_a_batch_its_store_refused_is_timed_too(tmp_path: Path) -> None:
    """Only committed batches were timed: a store locked for good showed as no traffic on the
    processing-time panel, not as slow."""
    kept = Limited()
    runtime = Runtime(Busy(handler(tmp_path, "pensions")), kept, kept, Topics())  # type: ignore[arg-type]
    timed = {"service": "pensions"}
    before = REGISTRY.get_sample_value("tellusonce_batch_seconds_count", timed) or 0
    runtime.process(received(encoded(deaths(3), Topics())))
    assert REGISTRY.get_sample_value("tellusonce_batch_seconds_count", timed) == before + 1
