"""The ACLs `tellusonce acls` prints: each service reads the event topics the matrix entitles it
to and no others, and writes only its answers and its own dead letters."""

from __future__ import annotations

import shlex
from collections.abc import Callable

import pytest

from tellusonce.acls import Grant, commands, grants
from tellusonce.events import EventType
from tellusonce.topics import REGISTRAR, TRACKER, Topics, subscriptions

TOPICS = Topics("p.")


def of(process: str) -> set[tuple[str, str, str]]:
    return {(g.operation, g.resource, g.name) for g in grants(TOPICS) if g.process == process}


@pytest.mark.parametrize("service", list(subscriptions()))
def test_a_service_reads_what_it_is_entitled_to_and_writes_its_answers(service: str) -> None:
    entitled = {("Read", "topic", TOPICS.events(t)) for t in subscriptions()[service].events}
    assert of(service) == entitled | {
        ("Read", "group", TOPICS.group(service)),
        ("Write", "topic", TOPICS.confirmations),
        ("Write", "topic", TOPICS.dead_letter(service)),
    }


def test_the_tracker_reads_every_event_and_answer_and_the_registrar_writes_events() -> None:
    every = {TOPICS.events(t) for t in EventType}
    assert of(TRACKER) == {("Read", "topic", t) for t in every} | {
        ("Read", "topic", TOPICS.confirmations),
        ("Read", "group", TOPICS.group(TRACKER)),
        ("Write", "topic", TOPICS.dead_letter(TRACKER)),
    }
    assert of(REGISTRAR) == {("Write", "topic", t) for t in every}


def test_each_grant_is_one_kafka_acls_command() -> None:
    grant = Grant("pensions", "Read", "topic", "p.life-events.death")
    (line,) = commands([grant], "User:CN={name},O=DWP", "kafka1:9093")
    assert shlex.split(line) == [
        "kafka-acls.sh", "--bootstrap-server", "kafka1:9093", "--add",
        "--allow-principal", "User:CN=pensions,O=DWP", "--operation", "Read",
        "--topic", "p.life-events.death",
    ]  # fmt: skip


def test_one_principal_for_every_process_is_refused(
    capsys: pytest.CaptureFixture[str], run_cli: Callable[[list[str]], int]
) -> None:
    with pytest.raises(SystemExit) as refused:
        run_cli(["acls", "--principal", "User:tellusonce"])
    assert refused.value.code == 2
    assert "must hold {name}: each process its own principal" in capsys.readouterr().err
