"""A histogram consumers add to a batch at a time reads as prometheus_client's own would."""

from __future__ import annotations

import sys
import threading

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tellusonce.metrics import PROCESSING_BUCKETS, BatchedHistogram

SECONDS = st.floats(min_value=0, max_value=100, allow_nan=False) | st.sampled_from(
    [*PROCESSING_BUCKETS, 0.0]  # on a bucket's bound: counted in it (le: "at most")
)


def samples(registry: CollectorRegistry) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Each sample of a registry but the times series were made."""
    text = generate_latest(registry).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if not s.name.endswith("_created")
    }


@given(batches=st.lists(st.lists(SECONDS, max_size=20), max_size=5))
def test_batches_read_as_the_same_values_observed_one_by_one(batches: list[list[float]]) -> None:
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    histogram = Histogram(
        "t_seconds", "t", ["service"], buckets=PROCESSING_BUCKETS, registry=theirs
    )
    batched = BatchedHistogram("t_seconds", "t", PROCESSING_BUCKETS, registry=ours)
    for service in ("pensions", "disability"):
        histogram.labels(service)  # a series from 0, before anything is observed
        batched.labels(service)
    for values in batches:
        for value in values:
            histogram.labels("pensions").observe(value)
        batched.labels("pensions").add(values)
    assert samples(ours) == samples(theirs)


def test_each_series_says_when_it_was_made() -> None:
    registry = CollectorRegistry()
    BatchedHistogram("t_seconds", "t", (1, 2), registry=registry).labels("pensions")
    created = registry.get_sample_value("t_seconds_created", {"service": "pensions"})
    assert created is not None
    assert created > 1.7e9  # seconds since 1970: after 2023


def test_values_added_while_read_are_counted_whole() -> None:
    """The metrics thread reads a series while its consumer adds batches: every reading's
    count is a whole number of batches, and its sum theirs (the threads switched as often as
    the interpreter lets them)."""
    registry = CollectorRegistry()
    tally = BatchedHistogram("t_seconds", "t", (1, 2), registry=registry).labels("pensions")
    done = threading.Event()

    def add() -> None:
        for _ in range(2000):
            tally.add([0.5, 1.5, 3.0])
        done.set()

    readings = []
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        adding = threading.Thread(target=add)
        adding.start()
        while not done.is_set():
            readings.append(tally.read())
        adding.join()
    finally:
        sys.setswitchinterval(interval)
    readings.append(tally.read())
    for counts, total in readings:
        assert counts[0] == counts[1] == counts[2]
        assert total == counts[0] * 5.0
    assert readings[-1] == ([2000, 2000, 2000], 10000.0)


def test_no_series_says_when_it_was_made_once_those_are_turned_off() -> None:
    """As prometheus_client's histograms: PROMETHEUS_DISABLE_CREATED_SERIES, or
    disable_created_metrics(), leaves every `_created` series out."""
    from prometheus_client import disable_created_metrics, enable_created_metrics

    registry = CollectorRegistry()
    BatchedHistogram("t_seconds", "t", (1, 2), registry=registry).labels("pensions")
    disable_created_metrics()
    try:
        text = generate_latest(registry).decode()
    finally:
        enable_created_metrics()
    assert "t_seconds_count" in text
    assert "_created" not in text
