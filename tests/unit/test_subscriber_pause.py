"""The subscriber across assignments, on librdkafka's in-process mock cluster (the adapter's
own behaviour, not the bus's): a partition paused for a retry, taken away and given back, is
read again (librdkafka keeps an application's pause: it stayed paused, unread); a partition
paused for a retry counts its lag from the message to retry (its position unknown, it read 0);
offsets of a partition taken away while its messages were handled are not stored."""

from __future__ import annotations

import time

from confluent_kafka import Producer, TopicPartition

from tellusonce.kafka import Received, Subscriber
from tellusonce.settings import Settings


def mock_cluster() -> tuple[Producer, str]:
    """A one-broker mock cluster (kept alive by the producer returned) and its address."""
    holder = Producer({"test.mock.num.brokers": 1, "bootstrap.servers": ""})
    broker = next(iter(holder.list_topics(timeout=5).brokers.values()))
    return holder, f"{broker.host}:{broker.port}"


def read(subscriber: Subscriber, count: int, seconds: float = 30) -> list[Received]:
    got: list[Received] = []
    deadline = time.monotonic() + seconds
    while len(got) < count and time.monotonic() < deadline:
        got += subscriber.poll(500, 0.2)
    return got


def subscribed(count: int) -> tuple[Subscriber, Producer]:
    """A subscriber to "events" on a mock cluster holding `count` messages in partition 0, and
    the producer that keeps the cluster up."""
    cluster, servers = mock_cluster()
    producer = Producer({"bootstrap.servers": servers})
    for i in range(count):
        producer.produce("events", value=f"v{i}".encode(), partition=0)
    assert producer.flush(10) == 0
    settings = Settings(bootstrap_servers=servers, fetch_wait_ms=10, fetch_min_bytes=1)
    subscriber = Subscriber(settings, "group", "test")
    subscriber.subscribe(["events"])
    return subscriber, cluster


def test_a_partition_paused_for_a_retry_is_read_when_given_back() -> None:
    subscriber, _cluster = subscribed(3)
    assert len(read(subscriber, 3)) == 3
    subscriber.rewind("events", 0, 1)  # a transient failure at offset 1: paused, to retry

    subscriber._consumer.unsubscribe()  # taken away (a rebalance) and given back
    subscriber.subscribe(["events"])

    assert [m.offset for m in read(subscriber, 3)] == [0, 1, 2]  # nothing committed: from 0
    subscriber.close()


def test_a_partition_paused_for_a_retry_counts_its_lag_from_the_message_to_retry() -> None:
    subscriber, _cluster = subscribed(10)
    assert len(read(subscriber, 10)) == 10
    assert subscriber.lag()[("events", 0)] == 0

    subscriber.rewind("events", 0, 1)  # a transient failure at offset 1: paused, to retry
    assert subscriber.poll(500, 0.2) == []
    assert subscriber.lag()[("events", 0)] == 9

    subscriber.resume("events", 0)
    assert [m.offset for m in read(subscriber, 9)] == list(range(1, 10))
    assert subscriber.lag()[("events", 0)] == 0
    subscriber.close()


def taken_away() -> tuple[Subscriber, list[Received], Producer]:
    """A subscriber holding a message of a partition revoked meanwhile (its revocation served
    inside poll), and the mock cluster's producer that keeps the cluster up."""
    subscriber, cluster = subscribed(1)
    batch = read(subscriber, 1)
    assert len(batch) == 1
    subscriber.assigned.discard(("events", 0))  # as the revocation callback leaves it
    subscriber._consumer.incremental_unassign([TopicPartition("events", 0)])
    return subscriber, batch, cluster


def test_offsets_of_a_partition_taken_away_are_not_stored() -> None:
    """The batch still held its messages, and storing their offsets raised librdkafka's _STATE
    out of the consumer's loop, ending the process."""
    subscriber, batch, _cluster = taken_away()

    subscriber.store(batch)  # raised KafkaException(_STATE)

    assert subscriber.commit() is None  # nothing stored to commit
    (committed,) = subscriber._consumer.committed([TopicPartition("events", 0)], timeout=10)
    assert committed.offset < 0  # its new owner reads it from the start
    subscriber.close()
