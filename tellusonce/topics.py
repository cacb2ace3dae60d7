"""Topic names, consumer group names and the subscription matrix (who gets which events)."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from tellusonce.events import SERVICE_PATTERN, EventType

CONFIRMATIONS = "life-events.confirmations"
TRACKER = "tracker"
REGISTRAR = "registrar"  # the registrar's process (its API, metrics, principal)
RETENTION_DAYS = 7


@dataclass(frozen=True)
class Subscription:
    """One service and the event types it is entitled to; `external`: it runs elsewhere (in
    another language, say), speaking the same contract, with no module in consumers/."""

    service: str
    title: str
    events: tuple[EventType, ...]
    external: bool = False


@cache
def subscriptions() -> dict[str, Subscription]:
    """The subscription matrix read from subscriptions.toml, by service name."""
    path = Path(__file__).with_name("subscriptions.toml")
    return matrix(path.read_text(encoding="utf-8"))


def matrix(text: str) -> dict[str, Subscription]:
    """A subscription matrix from its TOML; ValueError naming a service's unknown key."""
    services = {}
    for name, entry in tomllib.loads(text)["services"].items():
        if not re.fullmatch(SERVICE_PATTERN, name):  # a confirmation could not carry it: the
            # tracker would dead-letter each of its confirmations, its events awaited for ever
            raise ValueError(
                f"services.{name}: a service's name is 2 to 41 lower-case letters and "
                "underscores, starting with a letter (the confirmation schema's `service`)"
            )
        if name in (TRACKER, REGISTRAR):  # their own groups, topics and metrics ports
            raise ValueError(f"services.{name}: the name of a process of the bus itself")
        if unknown := set(entry) - {"title", "events", "external"}:
            raise ValueError(f"services.{name}: unknown keys {sorted(unknown)}")
        events = tuple(EventType(e) for e in entry["events"])
        services[name] = Subscription(name, entry["title"], events, entry.get("external", False))
    return services


def subscribers(event_type: EventType) -> tuple[str, ...]:
    """The services entitled to one event type, in matrix order."""
    return tuple(s.service for s in subscriptions().values() if event_type in s.events)


class Topics:
    """Topic and group names, all under one optional prefix (tests use a unique one each)."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix

    def events(self, event_type: EventType) -> str:
        """The topic of one kind of life event."""
        return f"{self.prefix}life-events.{event_type.value}"

    @property
    def confirmations(self) -> str:
        """The topic every service confirms on."""
        return self.prefix + CONFIRMATIONS

    def dead_letter(self, service: str) -> str:
        """The dead-letter topic of one service."""
        return f"{self.prefix}life-events.dead-letter.{service}"

    def group(self, service: str) -> str:
        """The consumer group of one service (or of the tracker)."""
        return f"{self.prefix}tellusonce.{service}"

    def all(self) -> list[str]:
        """Every topic the bus needs, for creating them up front."""
        names = [self.events(t) for t in EventType]
        names.append(self.confirmations)
        names.extend(self.dead_letter(s) for s in (*subscriptions(), TRACKER))
        return names

    @staticmethod
    def config(replication_factor: int) -> dict[str, str]:
        """What every topic of the bus is created with: a retention of its own (a cluster's
        default may be a day: a week lets a service stopped over a weekend catch up, and dead
        letters be replayed), and, replicated, acknowledgements that mean two copies with 3
        replicas or more (acks=all is only as strong as min.insync.replicas; with 2 replicas,
        one: requiring both, every publish failed while either broker was down) and no unclean
        leader (which would lose acknowledged events)."""
        config = {"retention.ms": str(RETENTION_DAYS * 24 * 3600 * 1000)}
        if replication_factor > 1:
            config["min.insync.replicas"] = str(min(2, replication_factor - 1))
            config["unclean.leader.election.enable"] = "false"
        return config

    def event_type_of(self, topic: str) -> EventType | None:
        """The event type a topic carries, or None for confirmations and dead letters."""
        for event_type in EventType:
            if topic == self.events(event_type):
                return event_type
        return None
