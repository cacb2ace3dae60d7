"""The main job (`make run`): a fresh local stack, one real death flowing to four confirmations."""

from __future__ import annotations

import json
import time
from pathlib import Path

from consumers.report import render
from consumers.tracker import TrackerStore
from producers.submission import Registrar
from tellusonce.codec import Codec
from tellusonce.events import EventType
from tellusonce.kafka import Publisher
from tellusonce.settings import Settings
from tellusonce.stack import (
    WAIT_SECONDS,
    ensure_topics,
    say,
    seed_stores,
    start_processes,
    stop_processes,
    wait_ready,
)
from tellusonce.topics import TRACKER

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "death.json"


def run(settings: Settings) -> int:
    """The whole demo; 0 when every subscribed service confirmed."""
    ensure_topics(settings)
    seed_stores(settings, fresh=True)
    children = start_processes(settings)
    try:
        wait_ready(children)
        registrar = Registrar(settings, Publisher(settings, "demo"), Codec(settings.schema_dirs))
        document = json.loads(EXAMPLE.read_text(encoding="utf-8"))
        receipt = registrar.submit(EventType.DEATH, document)
        acknowledged = time.monotonic()
        say(
            f"submitted {EXAMPLE.name}: reference {receipt.reference}, "
            f"event {receipt.event_id} (acknowledged by Kafka)"
        )
        tracker = TrackerStore(settings.store_url_for(TRACKER))
        deadline = acknowledged + WAIT_SECONDS
        while True:
            statuses = tracker.status(receipt.reference)
            done = bool(statuses) and statuses[-1].confirmed == len(statuses[-1].services)
            if done or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        elapsed = time.monotonic() - acknowledged
        say("")
        say(render(receipt.reference, statuses))
        say("")
        confirmed = statuses[-1].confirmed if statuses else 0
        expected = len(statuses[-1].services) if statuses else 4
        say(f"confirmed by {confirmed}/{expected} services in {elapsed:.2f} s")
        return 0 if done else 1
    finally:
        stop_processes(children)
