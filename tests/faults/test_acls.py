"""The ACLs `tellusonce acls --apply` makes, on a private broker that allows nothing else (SASL
PLAIN, KRaft's StandardAuthorizer, allow.everyone.if.no.acl.found=false): every service, the
tracker and the registrar do their work with their own grants alone, and a service's principal
cannot publish a life event."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from consumers.launch import NAMES
from consumers.seed import seed
from consumers.tracker import TrackerStore
from producers.submission import Registrar
from tellusonce.acls import grants
from tellusonce.codec import Codec
from tellusonce.errors import BrokerUnavailable
from tellusonce.events import EventType
from tellusonce.kafka import Admin, Publisher
from tellusonce.settings import Settings
from tellusonce.topics import REGISTRAR, TRACKER, Topics, subscribers
from tests.integration.conftest import Fleet, tellusonce, wait_for

BROKER = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "broker.sh"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PORT, CONTROLLER_PORT, INTERNAL_PORT = 19094, 19095, 19096
PASSWORD = "test-only"
USERS = ("admin", *NAMES, REGISTRAR)
LISTENERS = (
    f"SASL_PLAINTEXT://127.0.0.1:{PORT},PLAINTEXT://127.0.0.1:{INTERNAL_PORT},"
    f"CONTROLLER://127.0.0.1:{CONTROLLER_PORT}"
)
# The broker's own connections (inter-broker, controller) are PLAINTEXT on loopback, as
# ANONYMOUS, a super user; every client of the test comes in by SASL as one of USERS.
AUTHORIZING = f"""
listeners={LISTENERS}
advertised.listeners={LISTENERS}
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT
inter.broker.listener.name=PLAINTEXT
sasl.enabled.mechanisms=PLAIN
listener.name.sasl_plaintext.plain.sasl.jaas.config=\
org.apache.kafka.common.security.plain.PlainLoginModule required \
{" ".join(f'user_{user}="{PASSWORD}"' for user in USERS)};
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:ANONYMOUS;User:admin
allow.everyone.if.no.acl.found=false
"""


def as_user(settings: Settings, user: str) -> Settings:
    security = {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "PLAIN",
        "sasl.username": user,
        "sasl.password": PASSWORD,
    }
    return settings.model_copy(update={"kafka_security": security})


@pytest.fixture
def authorizing(settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    """This test's settings on a private broker that authorizes every request."""
    extra = tmp_path / "authorizing.properties"
    extra.write_text(AUTHORIZING)
    env = os.environ | {
        "TELLUSONCE_KAFKA_PORT": str(PORT),
        "TELLUSONCE_KAFKA_CONTROLLER_PORT": str(CONTROLLER_PORT),
        "TELLUSONCE_KAFKA_STATE": str(tmp_path / "broker"),
        "TELLUSONCE_KAFKA_EXTRA_CONFIG": str(extra),
    }
    subprocess.run([str(BROKER), "start"], env=env, check=True, timeout=180)
    try:
        yield settings.model_copy(update={"bootstrap_servers": f"127.0.0.1:{PORT}"})
    finally:
        subprocess.run([str(BROKER), "stop"], env=env, check=True, timeout=120)


def document(kind: str) -> Any:
    return json.loads((EXAMPLES / f"{kind}.json").read_text())


def test_every_process_works_with_its_own_grants_alone(authorizing: Settings) -> None:
    admin = as_user(authorizing, "admin")
    Admin(admin).ensure_topics(Topics(admin.topic_prefix).all(), {})
    applied = tellusonce(admin, "acls", "--apply", "--principal", "User:{name}")
    assert applied.returncode == 0, applied.stderr
    made = len(grants(Topics(admin.topic_prefix)))
    assert applied.stdout == f"{made} ACLs created (or there already) at 127.0.0.1:{PORT}\n"
    seed(authorizing)
    fleets = [Fleet(as_user(authorizing, name)) for name in NAMES]
    registering = as_user(authorizing, REGISTRAR)
    registrar = Registrar(registering, Publisher(registering, "test"), Codec())
    forging = as_user(authorizing, "pensions").model_copy(
        update={"data_dir": authorizing.data_dir / "forger"}
    )
    forger = Registrar(forging, Publisher(forging, "forger"), Codec())
    try:
        for fleet, name in zip(fleets, NAMES, strict=True):
            fleet.start(name)  # its group joined, its topics read: or wait_for fails
        receipt = registrar.submit(EventType.DEATH, document("death"))
        tracker = TrackerStore(authorizing.store_url_for(TRACKER))

        def answered() -> dict[str, str | None]:
            (status,) = tracker.status(receipt.reference) or [None]  # type: ignore[list-item]
            return {s.service: s.outcome for s in status.services} if status else {}

        outcomes = wait_for(
            lambda: (found := answered()) and all(found.values()) and found,
            "every entitled service's answer, through the tracker",
            60,
        )
        assert sorted(outcomes) == sorted(subscribers(EventType.DEATH))
        assert set(outcomes.values()) <= {"APPLIED", "NOT_APPLICABLE", "NO_RECORD"}
        with pytest.raises(BrokerUnavailable, match=r"(?i)authorization"):
            forger.submit(EventType.BIRTH, document("birth"))  # a service's principal
    finally:
        for fleet in fleets:
            fleet.stop()
