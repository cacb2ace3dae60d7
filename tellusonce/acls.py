"""The Kafka ACLs each process of the bus needs, from the subscription matrix: on a cluster with
an authorizer, a service reads only the event topics it is entitled to (DESIGN: "enforced by
Kafka ACLs, not by good manners"). `tellusonce acls` prints them as kafka-acls.sh commands."""

from __future__ import annotations

import shlex
from typing import NamedTuple

from tellusonce.events import EventType
from tellusonce.topics import REGISTRAR, TRACKER, Topics, subscriptions


class Grant(NamedTuple):
    """One allowed operation of one process on one topic or consumer group."""

    process: str
    operation: str  # Read (a topic or a group: implies Describe) or Write (implies Describe)
    resource: str  # "topic" or "group"
    name: str


def grants(topics: Topics) -> list[Grant]:
    """Every process's grants: each service reads its entitled event topics and its group, and
    writes confirmations and its dead letters; the tracker reads every event topic (envelopes
    only) and the confirmations; the registrar writes the event topics. Write on a topic is
    what an idempotent producer needs (Kafka 3.0 on: no IdempotentWrite on the cluster)."""
    out = []
    for name, subscription in subscriptions().items():
        out += [Grant(name, "Read", "topic", topics.events(t)) for t in subscription.events]
        out += _consumer(name, topics)
        out.append(Grant(name, "Write", "topic", topics.confirmations))
    out += [Grant(TRACKER, "Read", "topic", topics.events(t)) for t in EventType]
    out.append(Grant(TRACKER, "Read", "topic", topics.confirmations))
    out += _consumer(TRACKER, topics)
    out += [Grant(REGISTRAR, "Write", "topic", topics.events(t)) for t in EventType]
    return out


def _consumer(name: str, topics: Topics) -> list[Grant]:
    """What every consumer needs: its group, and its dead-letter topic to write."""
    return [
        Grant(name, "Read", "group", topics.group(name)),
        Grant(name, "Write", "topic", topics.dead_letter(name)),
    ]


def commands(granted: list[Grant], principal: str, bootstrap: str) -> list[str]:
    """kafka-acls.sh commands adding the grants, each process's principal made by `principal`
    with its name (User:tellusonce-{name}, say)."""
    return [
        shlex.join(
            [
                "kafka-acls.sh",
                "--bootstrap-server",
                bootstrap,
                "--add",
                "--allow-principal",
                principal.format(name=g.process),
                "--operation",
                g.operation,
                f"--{g.resource}",
                g.name,
            ]
        )
        for g in granted
    ]
