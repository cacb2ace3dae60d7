"""librdkafka's in-process mock cluster, for fast unit tests of the Kafka adapter (the
integration and fault suites use a real broker)."""

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


def taken_away() -> tuple[Subscriber, list[Received], Producer]:
    """A subscriber holding a message of a partition revoked meanwhile (its revocation served
    inside poll), and the mock cluster's producer that keeps the cluster up."""
    subscriber, cluster = subscribed(1)
    batch = read(subscriber, 1)
    assert len(batch) == 1
    subscriber.assigned.discard(("events", 0))  # as the revocation callback leaves it
    subscriber._consumer.incremental_unassign([TopicPartition("events", 0)])
    return subscriber, batch, cluster
