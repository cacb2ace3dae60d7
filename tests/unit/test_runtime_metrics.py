"""What a consumer's counters and timings show an operator from its first message."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from consumers import runtime as runtime_module
from consumers.runtime import Runtime
from consumers.tracker import TrackerHandler, TrackerStore
from tellusonce.codec import Codec
from tellusonce.events import EventType
from tellusonce.topics import Topics
from tests.factories import event
from tests.handlers import handler
from tests.messages import as_received
from tests.stand_ins import Kept

CONSUMED = "tellusonce_events_consumed_total"
BUCKETS = "tellusonce_processing_seconds_bucket"


def consumed(service: str, outcome: str) -> float | None:
    return REGISTRY.get_sample_value(
        CONSUMED, {"service": service, "event_type": "death", "outcome": outcome}
    )


def test_each_process_starts_at_0_the_counters_of_its_own_outcomes_only(tmp_path: Path) -> None:
    """Every process made every outcome's series at 0: the tracker's applied, no_record ... lay
    flat on the throughput panel as if it applied events; a service's series start at 0 so
    that rate() sees their first increment."""
    kept = Kept()
    Runtime(handler(tmp_path, "disability"), kept, kept, Topics())  # type: ignore[arg-type]
    tracker = TrackerHandler(TrackerStore(f"sqlite:///{tmp_path}/t.db"), Topics(), Codec())
    Runtime(tracker, kept, kept, Topics())  # type: ignore[arg-type]

    for outcome in ("applied", "no_record", "not_applicable", "rejected", "duplicate"):
        assert consumed("disability", outcome) is not None, outcome
    for outcome in ("recorded", "duplicate", "retried", "dead_lettered"):
        assert consumed("tracker", outcome) is not None, outcome
    assert consumed("disability", "recorded") is None
    for outcome in ("applied", "no_record", "not_applicable", "rejected"):
        assert consumed("tracker", outcome) is None, outcome


def test_a_message_handled_in_seconds_is_timed_in_a_bucket_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The processing histogram's buckets stopped at 1 s: a message that took 3 s (a store
    waiting on a lock) read as 1 s on the p99 panel."""
    death = event(EventType.DEATH)
    service = handler(tmp_path, "pensions")
    kept = Kept()
    runtime = Runtime(service, kept, kept, Topics())  # type: ignore[arg-type]
    message = as_received(death, Codec().encode(death))._replace(topic=service.topics[0])
    labels = {"service": "pensions"}

    def bucket(le: str) -> float:
        found = REGISTRY.get_sample_value(BUCKETS, labels | {"le": le})
        assert found is not None, le
        return found

    below = {le: bucket(le) for le in ("1.0", "2.5", "10.0")}
    clock = itertools.count(step=3.0)  # each reading 3 s after the one before
    monkeypatch.setattr(runtime_module.time, "perf_counter", lambda: next(clock))

    runtime.process([message])

    assert bucket("1.0") == below["1.0"]
    assert bucket("2.5") == below["2.5"]
    assert bucket("10.0") == below["10.0"] + 1
