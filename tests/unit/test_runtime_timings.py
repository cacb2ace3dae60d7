"""What a consumer's timings tell an operator: a message's handling, and a batch's with its
store commit."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import REGISTRY

from consumers.runtime import Runtime
from tellusonce.codec import Codec
from tellusonce.events import EventType
from tellusonce.topics import Topics
from tests.factories import event
from tests.handlers import handler
from tests.messages import as_received
from tests.stand_ins import Kept


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, {"service": "pensions"} | labels) or 0.0


def test_a_message_and_its_batch_are_timed_in_buckets_that_tell_them_apart(
    tmp_path: Path,
) -> None:
    """Every message fell in the first bucket (10 ms), so the p99 panel read 0.0099 s however
    slow the store; and the store's commit, per batch, was in no timing."""
    death = event(EventType.DEATH)
    service = handler(tmp_path, "pensions")
    kept = Kept()
    runtime = Runtime(service, kept, kept, Topics())  # type: ignore[arg-type]
    message = as_received(death, Codec().encode(death))._replace(topic=service.topics[0])
    handled = sample("tellusonce_processing_seconds_count")
    batches = sample("tellusonce_batch_seconds_count")
    batch_time = sample("tellusonce_batch_seconds_sum")
    message_time = sample("tellusonce_processing_seconds_sum")

    runtime.process([message])

    assert sample("tellusonce_processing_seconds_count") == handled + 1
    assert (
        REGISTRY.get_sample_value(
            "tellusonce_processing_seconds_bucket", {"service": "pensions", "le": "0.0005"}
        )
        is not None
    )  # buckets below a millisecond
    assert sample("tellusonce_batch_seconds_count") == batches + 1
    took = sample("tellusonce_batch_seconds_sum") - batch_time
    assert took > sample("tellusonce_processing_seconds_sum") - message_time  # and its commit
