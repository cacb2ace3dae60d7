"""A partition paused for a retry, taken away and given back, is read again (librdkafka keeps
an application's pause across assignments: it stayed paused, unread, and its lag read 0).
On librdkafka's in-process mock cluster: the adapter's own behaviour, not the bus's."""

from __future__ import annotations

import time

from confluent_kafka import Producer

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


def test_a_partition_paused_for_a_retry_is_read_when_given_back() -> None:
    _cluster, servers = mock_cluster()
    producer = Producer({"bootstrap.servers": servers})
    for i in range(3):
        producer.produce("events", value=f"v{i}".encode(), partition=0)
    assert producer.flush(10) == 0
    settings = Settings(bootstrap_servers=servers, fetch_wait_ms=10, fetch_min_bytes=1)
    subscriber = Subscriber(settings, "group", "test")
    subscriber.subscribe(["events"])
    assert len(read(subscriber, 3)) == 3
    subscriber.rewind("events", 0, 1)  # a transient failure at offset 1: paused, to retry

    subscriber._consumer.unsubscribe()  # taken away (a rebalance) and given back
    subscriber.subscribe(["events"])

    assert [m.offset for m in read(subscriber, 3)] == [0, 1, 2]  # nothing committed: from 0
    subscriber.close()
