"""What consumers.launch builds: the tracker takes a backlog in larger batches than a service."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from consumers import launch
from consumers.launch import TRACKER_BATCH, build
from consumers.runtime import BATCH, Runtime
from consumers.tracker import TrackerHandler, TrackerStore, events
from tellusonce import metrics, stack
from tellusonce.codec import Codec
from tellusonce.events import EventType
from tellusonce.settings import Settings
from tellusonce.stack import start_processes
from tellusonce.topics import REGISTRAR, TRACKER, Topics
from tests.messages import death_messages
from tests.stand_ins import Kept


def test_the_tracker_polls_four_messages_for_each_a_service_polls(tmp_path: Path) -> None:
    """The tracker reads about four messages an event (the event and three services'
    confirmations, on average) where a service reads one."""
    settings = Settings(data_dir=tmp_path)
    built = [build(name, settings) for name in ("pensions", TRACKER)]
    try:
        assert [r.batch_size for r in built] == [BATCH, 4 * BATCH]
    finally:
        for runtime in built:
            runtime.subscriber.close()
            runtime.publisher.close()


def test_a_whole_tracker_batch_is_one_unit_of_work(tmp_path: Path) -> None:
    """A batch of TRACKER_BATCH events, every one new, is looked up and stored at once (its
    IN lists of that many ids stay within SQLite's limits on bound values)."""
    store = TrackerStore(f"sqlite:///{tmp_path / 'tracker.db'}")
    kept = Kept()
    runtime = Runtime(TrackerHandler(store, Topics(), Codec()), kept, kept, Topics())  # type: ignore[arg-type]

    runtime.process(death_messages(TRACKER_BATCH, Topics().events(EventType.DEATH)))

    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(events)).scalar_one() == TRACKER_BATCH


@pytest.mark.parametrize(
    ("args", "port"),
    [
        (["consume", "pensions"], 9401),
        (["consume", "tracker"], 9405),
        (["consume", "disability", "--metrics-port", "9500"], 9500),
        (["consume", "pensions", "--metrics-port", "0"], 0),  # any free port
    ],
)
def test_a_consumer_serves_its_metrics_unless_told_where(
    args: list[str],
    port: int,
    monkeypatch: pytest.MonkeyPatch,
    run_cli: Callable[[list[str]], int],
) -> None:
    """Started as the README shows (`tellusonce consume pensions`) it served no /metrics: the
    scrape config's port for it answered nothing."""
    served: list[int | None] = []
    monkeypatch.setattr(launch, "build", lambda name, settings: name)
    monkeypatch.setattr(launch, "run_until_signalled", lambda _r, p, _host: served.append(p))
    monkeypatch.delenv("TELLUSONCE_METRICS_PORT", raising=False)
    assert run_cli(args) == 0
    assert served == [port]


def test_processes_are_not_started_on_a_port_in_use(tmp_path: Path) -> None:
    """Another stack's process answered the readiness check for the one started now (which
    then died, its port taken): the demo submitted to the other registrar and crashed."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SystemExit, match=f"port {port} is in use"):
            start_processes(Settings(data_dir=tmp_path), base_port=port)
    assert not (tmp_path / "logs" / "pensions.log").exists()  # nothing started


def test_a_service_that_joins_later_moves_no_process_s_metrics_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A port was a process's place in the list: with a service added before the tracker, the
    tracker took the registrar's 9406, Prometheus labelled the new service `tracker`, and the
    registrar's own port (its publish counters, the publishing alert) went unscraped."""
    from tellusonce import stack

    before = {name: stack.metrics_port(name) for name in (*stack.NAMES, REGISTRAR)}
    joined = (*stack.NAMES[:-1], "tv_licensing", stack.NAMES[-1])  # services, then the tracker
    monkeypatch.setattr(stack, "NAMES", joined)
    after = {name: stack.metrics_port(name) for name in (*joined, REGISTRAR)}
    assert after == before | {"tv_licensing": 9407}
    assert (after["tracker"], after["registrar"]) == (9405, 9406)


def test_metrics_ports_past_the_last_port_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="metrics ports from 65533 would end past 65535"):
        start_processes(Settings(data_dir=tmp_path), base_port=65533)
    assert not (tmp_path / "logs" / "pensions.log").exists()


def test_processes_are_looked_for_and_waited_for_where_their_metrics_host_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`up` and the demo looked at 127.0.0.1 whatever TELLUSONCE_METRICS_HOST said: with ::1
    (or a LAN address) no process was ever ready ("not ready after 60 s"), and one already on
    a port went unseen; a process could not serve its metrics on an IPv6 address at all."""
    assert (stack.local_host("::"), stack.local_host("0.0.0.0")) == ("::1", "127.0.0.1")  # noqa: S104
    served = metrics.serve(0, lambda: True, "::1")  # ended the process: IPv4's server class
    try:
        port = served.server_port
        with monkeypatch.context() as patched:
            patched.setattr(stack.subprocess, "Popen", _not_started)
            with pytest.raises(SystemExit, match=f"port {port} is in use"):
                start_processes(Settings(data_dir=tmp_path, metrics_host="::"), base_port=port)
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        try:
            stack.wait_ready({"pensions": (child, port)}, host="::1")  # returns: /readyz 200
        finally:
            child.kill()
            child.wait()
    finally:
        metrics.stop_serving(served)


def _not_started(*_args: object, **_kwargs: object) -> None:
    raise AssertionError("a process was started beside one already on its port")
