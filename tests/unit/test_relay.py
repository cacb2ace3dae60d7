"""The outbox relay publishes every stored confirmation, a page at a time, with no new messages
needed to move it on (a service restarted with, or whose publishing failed for, many pages)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from consumers import store
from consumers.runtime import Runtime
from tellusonce.errors import MessageTooLarge
from tellusonce.headers import header
from tellusonce.topics import Topics
from tests.handlers import handler
from tests.messages import death_messages
from tests.stand_ins import Outage

PAGE = 3
EVENTS = 2 * PAGE + 1  # two full pages and one row


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Runtime[object]:
    """State Pension's runtime with seven deaths handled while the broker was down: their seven
    confirmations wait in its outbox, which is read PAGE rows at a time."""
    monkeypatch.setattr(store, "PENDING_LIMIT", PAGE)
    service = handler(tmp_path, "pensions")
    kept = Outage()
    runtime: Runtime[object] = Runtime(service, kept, kept, Topics())  # type: ignore[arg-type]
    runtime.process(death_messages(EVENTS, service.topics[0]))
    assert runtime.relay() is False  # refused: the rows stay
    assert kept.sent == []
    kept.up = True
    return runtime


def published_event_ids(runtime: Runtime[object]) -> list[bytes]:
    kept = runtime.publisher
    assert isinstance(kept, Outage)
    return [m.key for m in kept.sent]


def test_the_run_loop_relays_every_page_without_new_messages(runtime: Runtime[object]) -> None:
    """Each turn of the run loop (no message polled) publishes the next page, until none waits."""
    turns = 0
    while runtime.relay():
        turns += 1
        assert turns <= EVENTS, "the relay kept publishing"

    sent = published_event_ids(runtime)
    assert turns == 3  # pages of 3, 3 and 1
    assert len(sent) == len(set(sent)) == EVENTS
    assert runtime.handler.outbox() == []
    assert runtime.handler.outbox_size() == 0  # marked sent in the store


def test_shutdown_relays_the_whole_outbox(runtime: Runtime[object]) -> None:
    """SIGTERM's drain publishes every page the outbox holds, not just the first."""
    runtime.shutdown()

    sent = published_event_ids(runtime)
    assert len(sent) == len(set(sent)) == EVENTS
    assert runtime.handler.outbox_size() == 0


def test_confirmations_another_instance_left_unsent_are_relayed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Instance A of a service commits a batch and stops before relaying it (SIGKILL); instance
    B, sharing the store, is given the partition and sees the messages again as duplicates,
    which queue nothing: its relay never looked at the outbox, and A's confirmations waited
    until B applied something new. The gauges' turn, which counts the outbox, now relays it,
    once A's rows are older than A would have taken to relay them (B published each of A's
    rows as A wrote it, as A did: every confirmation twice)."""
    a = handler(tmp_path, "pensions")
    b = handler(tmp_path, "pensions", seeded=False)
    kept_a, kept_b = Outage(), Outage()
    kept_b.up = True
    first: Runtime[object] = Runtime(a, kept_a, kept_a, Topics())  # type: ignore[arg-type]
    second: Runtime[object] = Runtime(b, kept_b, kept_b, Topics())  # type: ignore[arg-type]
    messages = death_messages(2, a.topics[0])
    assert second.relay() is False  # B up and idle: the outbox empty
    first.process(messages)  # committed; stopped before relaying (its publisher refuses)
    assert first.relay() is False

    second.process(messages)  # delivered again: duplicates
    second.relay()
    assert kept_b.sent == []  # what the old runtime left behind, and why it needed the gauges
    second._gauges()
    assert second.relay() is False  # A's, just written: A may be relaying them
    assert kept_b.sent == []

    monkeypatch.setattr(store, "ORPHANED_AFTER", timedelta(0))  # ... and later,
    second._next_gauges = 0  # at the gauges' next turn
    second._gauges()
    assert second.relay() is True
    assert sorted(m.key.decode() for m in kept_b.sent) == sorted(
        header(m.headers, "ce_id") for m in messages
    )
    assert b.outbox_size() == 0


class TooLarge(Outage):
    """A confirmations topic whose limit is below what the relay sends; offsets committed and
    the group left are counted."""

    commits = closes = 0

    def publish(self, messages: object) -> None:
        raise MessageTooLarge("the topic refused the message as too large")

    def commit(self) -> None:
        self.commits += 1

    def close(self) -> None:
        self.closes += 1


def test_a_confirmation_the_topic_refuses_as_too_large_stops_nothing(
    runtime: Runtime[object],
) -> None:
    """MessageTooLarge escaped the relay: the process ended (again at each restart), and a
    SIGTERM's drain left without committing or leaving its group."""
    refusing = TooLarge()
    runtime.publisher = runtime.subscriber = refusing  # type: ignore[assignment]
    assert runtime.relay() is False  # the rows stay, the outbox gauge shows them
    runtime.shutdown()
    assert (refusing.commits, refusing.closes) == (1, 2)  # subscriber's and publisher's close
    assert runtime.handler.outbox_size() == EVENTS
