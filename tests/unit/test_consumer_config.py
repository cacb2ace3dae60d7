"""The settings every group member gets (tellusonce.kafka.consumer_config)."""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer

from tellusonce.kafka import consumer_config
from tellusonce.settings import Settings


def test_the_broker_may_hold_a_fetch_to_fill_it_as_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fetches are held up to fetch_wait_ms for fetch_min_bytes (TELLUSONCE_FETCH_*), and
    librdkafka takes the configuration as it is (an unknown or invalid property would raise)."""
    default = consumer_config(Settings(), "group", "client")
    assert (default["fetch.wait.max.ms"], default["fetch.min.bytes"]) == (25, 16384)
    monkeypatch.setenv("TELLUSONCE_FETCH_WAIT_MS", "500")
    monkeypatch.setenv("TELLUSONCE_FETCH_MIN_BYTES", "1")
    config = consumer_config(Settings(), "group", "client")
    assert (config["fetch.wait.max.ms"], config["fetch.min.bytes"]) == (500, 1)
    assert config["enable.auto.offset.store"] is False  # offsets stored only once handled
    Consumer(config).close()
