"""Operators list and replay dead letters: a message dead-lettered for want of its writer schema
is applied once the schema is deployed and the letter replayed."""

from __future__ import annotations

import subprocess
from pathlib import Path

from consumers.seed import seed
from consumers.services import SERVICES
from consumers.store import ServiceStore
from tellusonce.codec import Codec
from tellusonce.events import EventType
from tellusonce.kafka import Outgoing, Publisher
from tellusonce.settings import Settings
from tellusonce.topics import Topics
from tests.factories import event
from tests.faults.evolution import OPTIONAL, evolve, v2_bytes
from tests.integration.conftest import Fleet, tellusonce, wait_for


def test_dead_letter_is_listed_then_replayed_once_the_schema_is_deployed(
    settings: Settings, topics: Topics, tmp_path: Path
) -> None:
    """UnknownSchema → listed without personal data → schema deployed → replayed → APPLIED,
    and marked replayed: not sent again."""
    seed(settings)
    death = event(EventType.DEATH, settings)
    v2_dir = evolve(tmp_path / "schemas", OPTIONAL)
    v2 = next(s for s in Codec([v2_dir]).writers.values() if s.version == 2)
    Publisher(settings, "new-writer").publish(
        [
            Outgoing(
                topics.events(EventType.DEATH),
                death.envelope.person_ref.encode(),
                v2_bytes(v2, death),
                [],
            )
        ]
    )
    store = ServiceStore(settings.store_url_for("pensions"), SERVICES["pensions"].record_type)

    old = Fleet(settings)
    old.start("pensions")
    try:

        def listing() -> subprocess.CompletedProcess[str] | bool:
            listed = tellusonce(settings, "dlq", "list", "pensions")
            return listed.stdout.startswith("1 dead letters") and listed

        listed = wait_for(listing, "the dead letter to be listed")
    finally:
        old.stop()
    assert "UnknownSchema" in listed.stdout
    assert "Thompson" not in listed.stdout
    assert "JT" not in listed.stdout
    assert store.outcomes() == {}

    upgraded = Fleet(settings.model_copy(update={"schema_dirs": [v2_dir]}))
    upgraded.start("pensions")
    try:
        replayed = tellusonce(settings, "dlq", "replay", "pensions")
        assert (
            replayed.stdout.strip() == "replayed 1 dead letters of pensions to their origin topics"
        )
        wait_for(
            lambda: store.outcomes() == {str(death.envelope.event_id): "APPLIED"},
            "the replayed death to be applied",
        )
        # marked replayed (its group's offset on Kafka): listed so, and not sent again
        listed_again = tellusonce(settings, "dlq", "list", "pensions")
        assert listed_again.stdout.startswith("1 dead letters for pensions, 1 of them replayed")
        again = tellusonce(settings, "dlq", "replay", "pensions")
        assert again.stdout.startswith("nothing to replay: every dead letter of pensions")
    finally:
        upgraded.stop()
