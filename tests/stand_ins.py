"""Stand-ins for Kafka where a test is not about Kafka: a subscriber and publisher that keep
what they are given, and publishers that fail as an unreachable broker does."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tellusonce.errors import BrokerUnavailable
from tellusonce.kafka import Outgoing, Received


class Kept:
    """The runtime's subscriber and publisher, keeping what they are given."""

    def __init__(self) -> None:
        self.assigned: set[tuple[str, int]] = set()
        self.brokers_up = True
        self.sent: list[Outgoing] = []
        self.stored: list[Received] = []  # the messages whose offsets the runtime stored
        self.commits = 0

    def store(self, messages: Sequence[Received]) -> None:
        self.stored.extend(messages)

    def publish(self, messages: Sequence[Outgoing]) -> None:
        self.sent.extend(messages)

    def commit(self) -> None:
        self.commits += 1

    def lag(self) -> dict[tuple[str, int], int]:
        """No partitions fetched: no lag to report."""
        return {}

    def close(self) -> None:
        """Nothing to close."""


class Outage(Kept):
    """A publisher whose broker is down until `up` is set."""

    up = False

    def publish(self, messages: Sequence[Outgoing]) -> None:
        if not self.up:
            raise BrokerUnavailable("0 of 1 messages acknowledged by Kafka: broker down")
        super().publish(messages)


class Failing(Kept):
    """A publisher that runs `meanwhile` (another process's work, say) as it publishes, then
    raises `error` if one is given, after the broker got the messages or not (`delivered`)."""

    def __init__(self) -> None:
        super().__init__()
        self.meanwhile: Callable[[], None] = lambda: None
        self.error: Exception | None = None
        self.delivered = False

    def publish(self, messages: Sequence[Outgoing]) -> None:
        self.meanwhile()
        if self.delivered or self.error is None:
            super().publish(messages)
        if self.error is not None:
            raise self.error
