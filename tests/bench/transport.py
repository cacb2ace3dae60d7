"""The baseline: the same message flow with no work, over the same Kafka adapter.

Four "service" workers consume the topics their service is entitled to and produce one
confirmation-sized message per event; the harness consumes the confirmations. Run a worker as
`python -m tests.bench.transport SERVICE` with TELLUSONCE_* settings in the environment.
"""

from __future__ import annotations

import sys
import threading

from tellusonce import shutdown
from tellusonce.kafka import Outgoing, Publisher, Subscriber
from tellusonce.settings import Settings
from tellusonce.topics import Topics, subscriptions

CONFIRMATION_BYTES = 230  # about the size of an encoded Confirmation


def work(settings: Settings, service: str, stop: threading.Event) -> None:
    """Consume, answer each message with one confirmation-sized message, store offsets."""
    topics = Topics(settings.topic_prefix)
    subscriber = Subscriber(settings, topics.group(f"baseline-{service}"), f"baseline-{service}")
    publisher = Publisher(settings, f"baseline-{service}")
    subscriber.subscribe([topics.events(t) for t in subscriptions()[service].events])
    body = bytes(CONFIRMATION_BYTES)
    try:
        while not stop.is_set():
            batch = subscriber.poll(500, 0.2)
            if not batch:
                continue
            publisher.publish([
                Outgoing(topics.confirmations, m.key or b"", body,
                         [("origin_ms", str(m.timestamp_ms).encode())])
                for m in batch
            ])  # fmt: skip
            subscriber.store(batch)
    finally:
        subscriber.commit()
        subscriber.close()
        publisher.close()


class Sink:
    """Counts confirmations and their latency (confirmation time - origin event time), each
    with its origin event's time."""

    def __init__(self, settings: Settings) -> None:
        topics = Topics(settings.topic_prefix)
        self.subscriber = Subscriber(settings, topics.group("baseline-sink"), "baseline-sink")
        self.subscriber.subscribe([topics.confirmations])
        self.count = 0
        self.latencies_ms: list[tuple[int, int]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            for message in self.subscriber.poll(1000, 0.1):
                origin = dict(message.headers).get("origin_ms")
                if origin is not None:
                    at = int(origin)
                    self.latencies_ms.append((at, message.timestamp_ms - at))
                self.count += 1
        self.subscriber.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(30)


if __name__ == "__main__":
    shutdown.install()
    work(Settings(), sys.argv[1], shutdown.requested)
