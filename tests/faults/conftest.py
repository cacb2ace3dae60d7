"""Fault-suite fixtures: services as real child processes that can be killed and restarted."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from consumers.launch import NAMES
from consumers.seed import seed
from producers.submission import Registrar
from tellusonce.events import LifeEvent
from tellusonce.settings import Settings
from tests.faults.ledger import Ledger, take
from tests.faults.replay import differences
from tests.faults.stream import CROWD_SIZE
from tests.integration.conftest import cli_env, fleet, registrar, topics, wait_for

__all__ = ["fleet", "registrar", "topics"]


class Processes:
    """tellusonce consumers as child processes, each with a static group instance id."""

    def __init__(self, settings: Settings, logs: Path) -> None:
        self.settings = settings
        self.logs = logs
        self.running: dict[str, subprocess.Popen[bytes]] = {}
        logs.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, instance: str = "1") -> None:
        key = f"{name}-{instance}"
        env = cli_env(self.settings) | {"TELLUSONCE_INSTANCE_ID": key}
        with (self.logs / f"{key}.log").open("ab") as log:
            self.running[key] = subprocess.Popen(
                # several instances of a service at once: each /metrics on a port of its own
                [sys.executable, "-m", "tellusonce", "consume", name, "--metrics-port", "0"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def start_all(self) -> None:
        for name in NAMES:
            self.start(name)

    def kill(self, key: str) -> None:
        """SIGKILL: no drain, no commit, no goodbye."""
        process = self.running[key]
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    def restart(self, key: str) -> None:
        self.kill(key)
        name, instance = key.rsplit("-", 1)
        self.start(name, instance)

    def alive(self) -> dict[str, bool]:
        return {key: p.poll() is None for key, p in self.running.items()}

    def terminate(self, key: str) -> int:
        """SIGTERM and wait for a clean exit; return the exit code."""
        process = self.running.pop(key)
        process.terminate()
        return process.wait(60)

    def terminate_all(self) -> dict[str, int]:
        return {key: self.terminate(key) for key in list(self.running)}


@pytest.fixture
def crowd_seeded(settings: Settings) -> None:
    """Every store seeded with the demo household and the crowd the streams talk about."""
    seed(settings, others=CROWD_SIZE)


@pytest.fixture
def processes(settings: Settings, topics: Any, crowd_seeded: None) -> Iterator[Processes]:
    """Child-process consumers; any still running at the end are stopped cleanly."""
    procs = Processes(settings, settings.data_dir / "logs")
    yield procs
    left = [key for key, process in procs.running.items() if process.poll() is None]
    for process in procs.running.values():
        if process.poll() is None:
            process.kill()
        process.wait(10)
    if left:
        pytest.fail(f"left running by the test: {', '.join(left)}")


def settle(
    settings: Settings,
    events: list[LifeEvent[Any]],
    logs: Path | None = None,
    timeout: float = 180,
    dead_letters: bool = False,
) -> Ledger:
    """Wait until the ledger is exact (or fail naming what is missing); return it."""
    last: list[Ledger] = []

    def exact() -> bool:
        last[:] = [take(settings, events, logs, dead_letters)]
        return last[0].exact

    try:
        wait_for(exact, "every event applied once by every subscribed service", timeout)
    finally:
        if last and not last[0].exact:
            ledger = last[0]
            print(
                f"missing {ledger.missing[:5]} extra {ledger.extra[:5]} "
                f"twice {ledger.applied_twice[:5]}",
                file=sys.stderr,
            )
    return last[0]


def exactly_once(
    settings: Settings, events: list[LifeEvent[Any]], logs: Path | None = None, replay: bool = True
) -> Ledger:
    """The ledger taken again, once the faults are over, and (with `replay`) the replay oracle:
    fails naming what is wrong. settle() returns at the first exact ledger, so its own cannot
    show a repeat applied or confirmed after it; the ledger counts, and the replay checks what
    the stores hold (`replay` only where the stores saw nothing but `events`)."""
    ledger = take(settings, events, logs)
    assert ledger.exact, (
        f"missing {ledger.missing[:5]} extra {ledger.extra[:5]} twice "
        f"{ledger.applied_twice[:5]} confirmations {ledger.confirmations} of "
        f"{ledger.expected_confirmations}"
    )
    if replay:
        found = differences(settings, events)
        assert not found, "\n".join(found)
    return ledger


def publish_while_killing(
    processes: Processes, registrar: Registrar, stream: list[LifeEvent[Any]], kills: int, seed: int
) -> int:
    """Publish a stream in chunks of 100 while SIGKILLing (and restarting) a random consumer
    process `kills` times, one after each chunk and then until done; return the kills made."""
    rng = random.Random(seed)  # noqa: S311 (test schedule)
    made = published = 0
    publishing = publish_in_chunks(registrar, stream, size=100)
    while published < len(stream) or made < kills:
        published = next(publishing, published)
        if made < kills:
            processes.restart(rng.choice(sorted(processes.running)))
            made += 1
            # Let the restarted consumer get some work done before the next kill (a fault
            # schedule, not synchronisation: the oracle polls for the outcome).
            time.sleep(rng.uniform(0.2, 1.2))
    return made


def publish_in_chunks(
    registrar: Registrar, events: list[LifeEvent[Any]], size: int = 200
) -> Iterator[int]:
    """Publish events in acknowledged chunks, yielding the count published so far."""
    for start in range(0, len(events), size):
        registrar.publish_many(events[start : start + size])
        yield min(start + size, len(events))


def report(capsys: pytest.CaptureFixture[str], text: str) -> None:
    """Print a ledger line to the terminal even while pytest captures output."""
    with capsys.disabled():
        print(f"\n{text}", flush=True)


os.environ.setdefault("PYTHONUNBUFFERED", "1")
