"""The broker SIGKILLed mid-stream and restarted: nothing lost, nothing applied twice."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from consumers.seed import seed
from producers.submission import Registrar
from tellusonce.codec import Codec
from tellusonce.errors import BrokerUnavailable
from tellusonce.kafka import Admin, Publisher
from tellusonce.settings import Settings
from tellusonce.topics import Topics
from tests.faults.conftest import exactly_once, report, settle
from tests.faults.stream import CROWD_SIZE, events
from tests.integration.conftest import Fleet, wait_for

BROKER = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "broker.sh"
PORT, CONTROLLER_PORT = 19092, 19093


class PrivateBroker:
    """A second local broker of this test's own, on other ports, that it may kill."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.env = os.environ | {
            "TELLUSONCE_KAFKA_PORT": str(PORT),
            "TELLUSONCE_KAFKA_CONTROLLER_PORT": str(CONTROLLER_PORT),
            "TELLUSONCE_KAFKA_STATE": str(state),
        }

    def run(self, command: str) -> None:
        subprocess.run([str(BROKER), command], env=self.env, check=True, timeout=180)

    def sigkill(self) -> None:
        pid = int((self.state / "broker.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not _answers(), "the killed broker's port to close", 30)


def _answers() -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", PORT)) == 0


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    private = PrivateBroker(tmp_path / "broker")
    private.run("start")
    yield private
    private.run("stop")


def test_broker_sigkilled_mid_stream(
    settings: Settings, broker: PrivateBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    """1,000 events; the broker is SIGKILLed after 400 and restarted; the ledger is exact. Every
    consumer says it is not ready while no broker answers (it said ready throughout), and is
    ready again after."""
    private = settings.model_copy(update={"bootstrap_servers": f"127.0.0.1:{PORT}"})
    Admin(private).ensure_topics(Topics(private.topic_prefix).all(), {})
    seed(private, others=CROWD_SIZE)
    stream = events(1000, private, seed=5)
    fleet = Fleet(private)
    fleet.start("pensions", "disability", "council_tax", "housing_benefit", "tracker")
    registrar = Registrar(private, Publisher(private, "test"), Codec())
    try:
        retries = 0
        for start in range(0, len(stream), 100):
            if start == 400:
                broker.sigkill()
                wait_for(
                    lambda: not any(r.ready() for r in fleet.runtimes.values()),
                    "every consumer's /readyz to say not ready while no broker answers",
                )
                broker.run("start")
            while True:
                try:
                    registrar.publish_many(stream[start : start + 100])
                    break
                except BrokerUnavailable:  # resubmitting is safe: same event ids
                    retries += 1
                    assert retries < 10
        ledger = settle(private, stream, timeout=240)
        wait_for(lambda: all(r.ready() for r in fleet.runtimes.values()), "all ready again")
        report(capsys, ledger.line("broker SIGKILL") + f" | publish retries {retries}")
        assert all(thread.is_alive() for thread, _stop in fleet.threads.values())
    finally:
        fleet.stop()
    exactly_once(private, stream)
