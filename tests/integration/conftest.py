"""Fixtures on the real broker: isolated topics, and services plus tracker running in threads."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from consumers.launch import NAMES, build
from consumers.runtime import Runtime
from consumers.seed import seed
from producers.submission import Registrar
from tellusonce.codec import Codec
from tellusonce.kafka import Admin, Publisher, Reader
from tellusonce.settings import Settings
from tellusonce.topics import Topics

T = TypeVar("T")
CODEC = Codec()


def wait_for(check: Callable[[], T], what: str, timeout: float = 30.0) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` after the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}; last: {result!r}")
        time.sleep(0.05)


@pytest.fixture
def topics(settings: Settings) -> Iterator[Topics]:
    """The bus's topics under this test's own prefix, deleted afterwards."""
    admin = Admin(settings)
    if not admin.reachable(10):
        pytest.fail(f"no Kafka broker answers at {settings.bootstrap_servers}: run `make test`")
    names = Topics(settings.topic_prefix)
    admin.ensure_topics(names.all(), {})
    yield names
    admin.delete_topics(names.all())


class Fleet:
    """Services and the tracker, each a real runtime on its own thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.runtimes: dict[str, Runtime] = {}
        self.threads: dict[str, tuple[threading.Thread, threading.Event]] = {}

    def start(self, *names: str) -> None:
        for name in names:
            runtime = build(name, self.settings, Codec(self.settings.schema_dirs))
            stop = threading.Event()
            thread = threading.Thread(target=runtime.run, args=(stop,), name=name, daemon=True)
            thread.start()
            self.runtimes[name] = runtime
            self.threads[name] = (thread, stop)
        for name in names:
            wait_for(self.runtimes[name].ready, f"{name} to join its group", 60)

    def stop(self) -> None:
        for _thread, stop in self.threads.values():
            stop.set()
        for name, (thread, _stop) in self.threads.items():
            thread.join(30)
            assert not thread.is_alive(), f"{name} did not stop within 30 s"


@pytest.fixture
def fleet(settings: Settings, topics: Topics) -> Iterator[Fleet]:
    """Seeded stores and every service plus the tracker consuming."""
    seed(settings)
    running = Fleet(settings)
    running.start(*NAMES)
    yield running
    running.stop()


@pytest.fixture
def registrar(settings: Settings, topics: Topics) -> Registrar:
    """Submits to this test's topics."""
    return Registrar(settings, Publisher(settings, "test"), CODEC)


def read_topic(settings: Settings, topic: str) -> list[Any]:
    """Every message on a topic now (raw Received records)."""
    return Reader(settings, topic).read_all()


def cli_env(settings: Settings) -> dict[str, str]:
    """The environment that points the CLI at this test's broker, topics and stores."""
    return os.environ | settings.as_environment()


def tellusonce(settings: Settings, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The tellusonce command, run as a process against this test's broker, topics and stores
    (and `env` besides)."""
    return subprocess.run(
        [sys.executable, "-m", "tellusonce", *args],
        env=cli_env(settings) | env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def free_ports(count: int) -> int:
    """The first of `count` consecutive free ports on 127.0.0.1."""
    for base in range(23_000, 60_000, 97):
        sockets = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
        return base
    raise RuntimeError("no free ports")
