"""Shared fixtures: settings isolated per test (own topic prefix, own stores)."""

from __future__ import annotations

import logging
import os
import signal
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog

from tellusonce.settings import Settings
from tests.postgres import Server, server


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings with a unique topic/group prefix and stores under tmp_path."""
    return Settings(
        bootstrap_servers=os.environ.get("TELLUSONCE_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        topic_prefix=f"t{uuid.uuid4().hex[:10]}.",
        data_dir=tmp_path / "data",
        partitions=3,
        publish_timeout_seconds=10,
    )


@pytest.fixture(scope="session")
def postgres() -> Iterator[Server]:
    """A PostgreSQL server for this test session (started by the first test that asks)."""
    with server() as started:
        yield started


@pytest.fixture
def run_cli() -> Iterator[Callable[[list[str]], int]]:
    """tellusonce's command line, run in this process. It configures logging for the process,
    to this test's captured stderr (closed after it), and its signal handlers: undone after the
    test."""
    from tellusonce import cli, shutdown

    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    yield cli.main
    for number, handler in handlers.items():
        signal.signal(number, handler)
    shutdown.requested.clear()
    shutdown._received.clear()
    shutdown._interrupted.clear()
    structlog.reset_defaults()
    logging.getLogger("librdkafka").setLevel(logging.NOTSET)  # a command may quieten it
