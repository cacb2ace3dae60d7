"""What a consumer's timings tell an operator: a message's handling, and a batch's with its
store commit."""

from __future__ import annotations

from pathlib import Path

import pytest
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


def test_a_stuck_loop_is_not_healthy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """/healthz answered from the metrics thread: a consumer whose loop hung was "ok" for ever,
    its gauges frozen, and no alert could fire."""
    import urllib.error
    import urllib.request

    from consumers import runtime as runtime_module
    from tellusonce.metrics import serve, stop_serving

    clock = [1000.0]
    monkeypatch.setattr(runtime_module.time, "monotonic", lambda: clock[0])
    service = handler(tmp_path, "pensions")
    kept = Kept()
    kept.lag = dict  # type: ignore[attr-defined]  # no partitions: no lag
    runtime = Runtime(service, kept, kept, Topics())  # type: ignore[arg-type]
    runtime._gauges()  # a turn of the loop
    turned = sample("tellusonce_consumer_loop_turned_timestamp_seconds")
    assert turned > 0
    server = serve(0, lambda: True, alive=runtime.alive)
    url = f"http://127.0.0.1:{server.server_port}/healthz"
    try:
        with urllib.request.urlopen(url) as answered:
            assert answered.status == 200
        clock[0] += runtime_module.STUCK_AFTER_SECONDS + 1
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url)
        assert refused.value.code == 503
        refused.value.close()
        runtime._gauges()
        assert runtime.alive()
    finally:
        stop_serving(server)


def test_a_consumer_s_loop_is_said_to_have_turned_from_its_start(tmp_path: Path) -> None:
    """The gauge was 0 until the loop's first turn (after the first poll, batch and relay:
    up to 30 s with Kafka unreachable): the stuck alert's time() - 0 went pending at each start."""
    import time

    from tellusonce.metrics import LOOP_TURNED

    LOOP_TURNED.labels("pensions").set(0)  # as in a process just started
    kept = Kept()
    started = time.time()
    Runtime(handler(tmp_path, "pensions"), kept, kept, Topics())  # type: ignore[arg-type]
    assert sample("tellusonce_consumer_loop_turned_timestamp_seconds") >= started


def test_a_consumer_whose_brokers_do_not_answer_is_not_ready_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """/readyz stayed 200 through a broker outage (joined once, ready for ever)."""
    service = handler(tmp_path, "pensions")
    kept = Kept()
    kept.lag = dict  # type: ignore[attr-defined]  # no partitions: no lag
    runtime = Runtime(service, kept, kept, Topics())  # type: ignore[arg-type]
    runtime.joined.set()
    assert runtime.ready()
    kept.brokers_up = False  # librdkafka's statistics: no broker connection up
    assert not runtime.ready()
    runtime._gauges()
    reachable = {"service": "pensions"}  # and Prometheus sees it (the loop turns on)
    assert REGISTRY.get_sample_value("tellusonce_kafka_brokers_reachable", reachable) == 0
    kept.brokers_up = True
    assert runtime.ready()
    runtime._next_gauges = 0.0
    runtime._gauges()
    assert REGISTRY.get_sample_value("tellusonce_kafka_brokers_reachable", reachable) == 1
    captured = capsys.readouterr()
    said = captured.out + captured.err
    assert said.index("brokers_unreachable") < said.index("brokers_reachable")
