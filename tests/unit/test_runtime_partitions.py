"""Partitions taken from an instance (a rebalance, or lost when its session expired): nothing
of theirs stays behind, not their retries, not their lag for the dashboard and the alert."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from consumers.runtime import Runtime
from tellusonce.metrics import CONSUMER_LAG
from tellusonce.topics import Topics
from tests.handlers import handler
from tests.stand_ins import Kept


def lag(topic: str, partition: int) -> float | None:
    labels = {"service": "pensions", "topic": topic, "partition": str(partition)}
    return REGISTRY.get_sample_value("tellusonce_consumer_lag_messages", labels)


@pytest.mark.parametrize("taken", ["_revoked", "_lost"])
def test_a_partition_taken_away_reports_no_lag_here(tmp_path: Path, taken: str) -> None:
    """The new owner reports its lag; a series left here was summed with it for ever."""
    service = handler(tmp_path, "pensions")
    kept = Kept()
    runtime = Runtime(service, kept, kept, Topics())  # type: ignore[arg-type]
    topic = service.topics[0]
    for partition in (0, 1):
        CONSUMER_LAG.labels("pensions", topic, str(partition)).set(120)
    runtime._resume_at[(topic, 0)] = 1.0

    getattr(runtime, taken)([(topic, 0), ("never-reported-here", 3)])

    assert (lag(topic, 0), lag(topic, 1)) == (None, 120)
    assert (topic, 0) not in runtime._resume_at
