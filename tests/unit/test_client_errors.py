"""What the Kafka adapter and the metrics server do when something fails: a client's fatal
error ends what it was doing (librdkafka can do nothing more with that client), other
consumer errors are said, and one silent connection does not silence the probes."""

from __future__ import annotations

import logging
import socket
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from tellusonce.errors import BrokerUnavailable
from tellusonce.kafka import Outgoing, Publisher, Subscriber
from tellusonce.metrics import serve, stop_serving
from tellusonce.settings import Settings

NOWHERE = Settings(bootstrap_servers="127.0.0.1:1", publish_timeout_seconds=5)


class Failed:
    """A message librdkafka's consumer gives for an error (confluent-kafka makes its error
    without the fatal flag, whatever its code)."""

    def __init__(self, code: int, reason: str = "") -> None:
        self._error = KafkaError(code, reason)

    def error(self) -> KafkaError:
        return self._error


class Consumer:
    def __init__(self, message: Failed | None = None, commit: KafkaError | None = None) -> None:
        self.message, self.refusal = message, commit

    def poll(self, _timeout: float) -> Failed | None:
        return self.message

    def consume(self, _count: int, _timeout: float) -> list[Failed]:
        return []

    def commit(self, asynchronous: bool) -> None:
        if self.refusal is not None:
            raise KafkaException(self.refusal)

    def close(self) -> None:
        """Nothing to leave."""


def subscriber_on(consumer: Consumer) -> Subscriber:
    subscriber = Subscriber(NOWHERE, "group", "test")
    subscriber._consumer.close()
    subscriber._consumer = consumer  # type: ignore[assignment]
    return subscriber


def test_a_fatal_consumer_error_ends_the_poll() -> None:
    """A consumer fenced by another with its group.instance.id got _FATAL as a message, whose
    error says fatal() False: it was skipped, and the process idled on, ready and alive."""
    with pytest.raises(KafkaException):
        subscriber_on(Consumer(Failed(KafkaError._FATAL))).poll(10, 0)


def test_a_fatal_error_of_a_commit_is_raised() -> None:
    subscriber = subscriber_on(Consumer(commit=KafkaError(KafkaError._FATAL)))
    with pytest.raises(KafkaException):
        subscriber.commit()
    assert subscriber_on(Consumer(commit=KafkaError(KafkaError.REBALANCE_IN_PROGRESS))).commit()


def test_other_consumer_errors_are_said(caplog: pytest.LogCaptureFixture) -> None:
    """A topic missing or not allowed: nothing was read from it, and nothing said why."""
    missing = Failed(KafkaError.UNKNOWN_TOPIC_OR_PART, "Subscribed topic not available: t.x")
    with caplog.at_level(logging.WARNING, logger="librdkafka"):
        assert subscriber_on(Consumer(missing)).poll(10, 0) == []
    said = [r.getMessage() for r in caplog.records if r.name == "librdkafka"]
    # (the real consumer it replaced may have said it could not connect to 127.0.0.1:1)
    assert [line for line in said if line.startswith("consumer error")] == [
        "consumer error: Subscribed topic not available: t.x"
    ]


class Producer:
    """A producer whose fatal error error_cb raises from the flush that serves it."""

    def __init__(self) -> None:
        self.delivered: list[Callable[..., None]] = []
        self.purged = False

    def produce(self, *_args: Any, on_delivery: Callable[..., None], **_kwargs: Any) -> None:
        self.delivered.append(on_delivery)

    def flush(self, _timeout: float) -> int:
        if self.purged:
            return 0
        raise KafkaException(KafkaError(KafkaError._FATAL, "fenced", fatal=True))

    def purge(self) -> None:
        self.purged = True


def test_a_fatal_producer_error_raised_by_flush_is_broker_unavailable() -> None:
    """It left publish as a raw KafkaException (a 500 from the API; a consumer's relay let it
    end the process), and the failed producer was kept until its next produce failed."""
    publisher = Publisher(NOWHERE, "test")
    failing = Producer()
    publisher._producer = failing  # type: ignore[assignment]
    with pytest.raises(BrokerUnavailable) as refused:
        publisher.publish([Outgoing("events", b"k", b"v", [])])
    assert "1 of 1 messages not acknowledged by Kafka" in str(refused.value)
    assert publisher._producer is not failing  # a new one
    assert failing.purged


def test_a_silent_connection_does_not_silence_the_probes() -> None:
    """The metrics server answered one connection at a time: one that sent nothing held it,
    and /healthz went unanswered (the probe failed, the process would be restarted)."""
    server = serve(0, ready=lambda: True)
    port = server.server_port
    silent = socket.create_connection(("127.0.0.1", port))
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            assert answer.status == 200
    finally:
        silent.close()
        stop_serving(server)


def test_a_message_refused_before_it_was_queued_purges_no_other_thread_s() -> None:
    """One thread's message too large for the producer (refused as it is produced, nothing of
    its publish queued) purged the shared producer's queue: another thread's publish, waiting
    for its acknowledgement, was told its message was purged (a needless 503)."""
    from confluent_kafka import KafkaError as Error
    from confluent_kafka import KafkaException as Refused

    from tellusonce.errors import MessageTooLarge

    class Refusing(Producer):
        def produce(self, *args: Any, on_delivery: Callable[..., None], **kwargs: Any) -> None:
            if len(kwargs["value"]) > 10:
                raise Refused(Error(Error.MSG_SIZE_TOO_LARGE, "too large"))
            super().produce(*args, on_delivery=on_delivery, **kwargs)

    publisher = Publisher(NOWHERE, "test")
    refusing = Refusing()
    publisher._producer = refusing  # type: ignore[assignment]
    with pytest.raises(MessageTooLarge):
        publisher.publish([Outgoing("events", b"k", b"x" * 100, [])])
    assert not refusing.purged
