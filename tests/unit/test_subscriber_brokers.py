"""Whether a subscriber's brokers answer, from librdkafka's statistics (a consumer's /readyz):
on librdkafka's in-process mock cluster, up; its broker gone, down (it stayed ready)."""

from __future__ import annotations

import time

import pytest

from tellusonce import kafka
from tests.mock_kafka import read, subscribed


def brokers_up_within(subscriber: kafka.Subscriber, wanted: bool, seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while subscriber.brokers_up != wanted and time.monotonic() < deadline:
        subscriber.poll(10, 0.1)  # statistics are served by poll
    return subscriber.brokers_up == wanted


def test_a_subscriber_says_when_no_broker_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka, "STATISTICS_INTERVAL_MS", 100)
    subscriber, cluster = subscribed(1)
    assert len(read(subscriber, 1)) == 1
    subscriber.brokers_up = False  # as if the last statistics had said so
    assert brokers_up_within(subscriber, True)  # the next say otherwise
    del cluster  # the mock cluster goes with the producer that holds it
    assert brokers_up_within(subscriber, False)
    subscriber.close()
