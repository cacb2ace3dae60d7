"""A service restarted with more than a page of unsent confirmations (its publishing failed
meanwhile) publishes every one of them, with no new event coming to move its relay on."""

from __future__ import annotations

from typing import Any

from consumers import store
from consumers.launch import build_handler
from consumers.runtime import BATCH, Runtime
from consumers.services import SERVICES
from consumers.store import ServiceStore
from tellusonce.codec import Codec
from tellusonce.events import EventType
from tellusonce.settings import Settings
from tellusonce.topics import Topics
from tests.faults.conftest import Processes
from tests.integration.conftest import read_topic, wait_for
from tests.messages import death_messages
from tests.stand_ins import Outage

SERVICE = "pensions"
WAITING = store.PENDING_LIMIT + 200  # a full page of the outbox and part of the next


def handled_unpublished(settings: Settings, topics: Topics) -> None:
    """State Pension handles WAITING deaths in its store while every publish fails: their
    confirmations stay in its outbox. (In process, from messages never on the broker.)"""
    handler = build_handler(SERVICE, settings, Codec())
    down = Outage()
    runtime: Runtime[Any] = Runtime(handler, down, down, topics)  # type: ignore[arg-type]
    messages = death_messages(WAITING, topics.events(EventType.DEATH))
    for start in range(0, WAITING, BATCH):
        runtime.process(messages[start : start + BATCH])
        runtime.relay()
    assert down.sent == []
    handler.store.engine.dispose()


def unsent(settings: Settings) -> int:
    service_store = ServiceStore(settings.store_url_for(SERVICE), SERVICES[SERVICE].record_type)
    try:
        return service_store.count_pending()
    finally:
        service_store.engine.dispose()


def test_a_restart_publishes_every_page_of_the_outbox(
    settings: Settings, topics: Topics, processes: Processes
) -> None:
    handled_unpublished(settings, topics)
    assert unsent(settings) == WAITING

    processes.start(SERVICE)
    published = wait_for(
        lambda: len(found := read_topic(settings, topics.confirmations)) >= WAITING and found,
        f"all {WAITING} confirmations of the outbox on the confirmations topic",
        60,
    )

    assert len({m.key for m in published}) == WAITING  # each event's confirmation
    assert processes.terminate(f"{SERVICE}-1") == 0  # SIGTERM: marks what Kafka acknowledged
    assert unsent(settings) == 0
    assert len(read_topic(settings, topics.confirmations)) == WAITING  # and each once
