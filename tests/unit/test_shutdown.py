"""Stopping: a first SIGTERM or SIGINT asks for a clean stop, the same signal again ends the
process at once; what waits for processes to come up gives up when a stop is asked for."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tellusonce import shutdown
from tellusonce.stack import wait_ready
from tests.integration.conftest import free_ports, wait_for

TWICE = """
import os, signal, time
from tellusonce import shutdown
shutdown.install()
os.kill(os.getpid(), signal.SIGINT)  # the terminal's Ctrl-C, then a supervisor's SIGTERM
os.kill(os.getpid(), signal.SIGTERM)
print("asked once:", shutdown.requested.is_set(), flush=True)
os.kill(os.getpid(), signal.SIGTERM)
time.sleep(5)
print("still running", flush=True)
"""


def test_the_same_signal_again_ends_the_process_at_once() -> None:
    """It only set the flag again: a drain stuck on an unreachable broker could be ended by
    SIGKILL alone. Another signal (SIGTERM after Ctrl-C) still lets it drain."""
    ended = subprocess.run(
        [sys.executable, "-c", TWICE], capture_output=True, text=True, timeout=60, check=False
    )
    assert ended.stdout == "asked once: True\n"
    assert ended.returncode == -signal.SIGTERM


@pytest.fixture
def requested() -> Iterator[None]:
    shutdown.requested.set()
    try:
        yield
    finally:
        shutdown.requested.clear()


@pytest.mark.usefixtures("requested")
def test_waiting_for_processes_to_be_ready_stops_when_asked() -> None:
    """It polled on for its 60 s, then `make run` crashed on the processes it had stopped."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with pytest.raises(SystemExit, match="stopped before every process was ready"):
            wait_ready({"pensions": (child, 1)})  # port 1: nothing answers
    finally:
        child.kill()
        child.wait()


def test_a_process_that_exits_before_it_is_ready_is_named_with_its_log(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "raise SystemExit(1)"])
    child.wait()
    with pytest.raises(SystemExit, match=f"registrar exited with 1; see its log, {tmp_path}/"):
        wait_ready({"registrar": (child, 1)}, tmp_path)


def test_processes_started_before_a_failure_to_start_the_rest_are_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`tellusonce up | head -3`: the fourth "started" line met a closed pipe, and the three
    consumers started before it were left running, as nothing held them to stop."""
    from tellusonce import stack
    from tellusonce.settings import Settings

    started: list[subprocess.Popen[bytes]] = []
    real_popen = subprocess.Popen

    def sleeper(*_args: object, **kwargs: Any) -> subprocess.Popen[bytes]:
        child = real_popen([sys.executable, "-c", "import time; time.sleep(60)"], **kwargs)
        started.append(child)
        return child

    said: list[str] = []

    def say(text: str) -> None:
        if len(said) == 3:
            raise BrokenPipeError(32, "Broken pipe")
        said.append(text)

    monkeypatch.setattr(stack.subprocess, "Popen", sleeper)
    monkeypatch.setattr(stack, "say", say)
    with pytest.raises(BrokenPipeError):
        stack.start_processes(Settings(data_dir=tmp_path), base_port=free_ports(6))
    assert len(started) == 4
    assert all(child.poll() is not None for child in started)


def test_the_api_on_a_metrics_port_is_refused_before_anything_starts(tmp_path: Path) -> None:
    """The API given the port its own metrics take (the base + 5) could never be ready."""
    from tellusonce import stack
    from tellusonce.settings import Settings

    with pytest.raises(SystemExit, match="port 9406 is the API's and a process's metrics port"):
        stack.start_processes(Settings(data_dir=tmp_path), 9401, api_port=9406)
    assert not (tmp_path / "logs" / "pensions.log").exists()


def test_a_short_command_is_interrupted_where_it_is(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    run_cli: Callable[[list[str]], int],
) -> None:
    """Its handler only asked for a drain nothing waited for: Ctrl-C on a `submit` waiting for
    a broker, or a `dlq replay`, went unanswered until the command ended by itself."""
    from tellusonce import cli

    def waiting(_args: object, _settings: object) -> int:
        os.kill(os.getpid(), signal.SIGTERM)
        threading.Event().wait(10)  # a signal's handler runs during the wait
        return 0

    monkeypatch.setattr(cli, "_publishing", waiting)
    assert run_cli(["cancel", "5D4Z6-43N23", "--reason", "made in error"]) == 128 + signal.SIGTERM
    assert capsys.readouterr().err == (
        "error: interrupted: it may have reached Kafka; run the same command again (services "
        "apply it once)\n"
    )


def test_a_signal_during_start_up_stops_a_short_command_before_it_begins(
    monkeypatch: pytest.MonkeyPatch, run_cli: Callable[[list[str]], int]
) -> None:
    from tellusonce import cli

    ran: list[object] = []
    monkeypatch.setattr(cli, "_status", lambda args, _settings: ran.append(args) or 0)
    shutdown.requested.set()  # a Ctrl-C during the imports
    assert run_cli(["status", "5D4Z6-43N23"]) == 128 + signal.SIGINT
    assert ran == []


def test_serve_asked_to_stop_while_starting_does_not_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, run_cli: Callable[[list[str]], int]
) -> None:
    """A SIGTERM before uvicorn installed its own handlers was only noted: the API then served
    on until a second one killed it."""
    import uvicorn

    served: list[object] = []
    monkeypatch.setattr(uvicorn.Server, "run", served.append)
    monkeypatch.setenv("TELLUSONCE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TELLUSONCE_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    shutdown.requested.set()
    assert run_cli(["serve", "--port", "0", "--metrics-port", "0"]) == 0
    assert served == []


def test_ctrl_c_on_a_submit_waiting_for_a_broker_ends_it_by_the_signal(tmp_path: Path) -> None:
    """It waited its 5 s for a broker and exited 3, Ctrl-C unanswered; a shell's loop running
    it went on to the next iteration, as after any exit."""
    environment = {
        **os.environ,
        "TELLUSONCE_DATA_DIR": str(tmp_path),
        "TELLUSONCE_BOOTSTRAP_SERVERS": "127.0.0.1:1",
    }
    command = [sys.executable, "-m", "tellusonce", "submit", "death", "examples/death.json"]
    child = subprocess.Popen(command, env=environment, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(
            lambda: (tmp_path / "registrar.db").exists() or child.poll() is not None,
            "the submission to open its ledger",
        )
        assert child.poll() is None  # validated, its ledger opened: asking Kafka (for 5 s)
        child.send_signal(signal.SIGINT)
        _, said = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == -signal.SIGINT
    assert said.endswith("error: interrupted: it may have reached Kafka; run the same command "
                         "again (services apply it once)\n")  # fmt: skip


def test_serve_stopped_before_uvicorn_took_the_signals_stops_once_started(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, run_cli: Callable[[list[str]], int]
) -> None:
    """A SIGTERM while the app was built (after the check above, before uvicorn installed its
    handlers) was only noted: the API served on until a second one killed it (exit 143)."""
    import uvicorn

    from producers import api

    built, forced = api.create_app, threading.Event()
    servers: list[uvicorn.Server] = []

    def building(*args: Any) -> Any:
        app = built(*args)
        shutdown.requested.set()  # the SIGTERM, as our handler takes it
        return app

    def watchdog() -> None:  # were it served on, the test would not end: ended after 20 s
        if not served.wait(20):
            forced.set()
            for server in servers:
                server.should_exit = True

    monkeypatch.setattr(api, "create_app", building)
    kept_init = uvicorn.Server.__init__

    def init(server: uvicorn.Server, config: uvicorn.Config) -> None:
        servers.append(server)
        kept_init(server, config)

    monkeypatch.setattr(uvicorn.Server, "__init__", init)
    monkeypatch.setenv("TELLUSONCE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TELLUSONCE_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    served = threading.Event()
    threading.Thread(target=watchdog, daemon=True).start()
    ended = run_cli(["serve", "--port", "0", "--metrics-port", "0"])
    served.set()
    assert (ended, forced.is_set(), [s.started for s in servers]) == (0, False, [True])


def test_keys_create_interrupted_says_a_key_may_have_been_made(
    monkeypatch: pytest.MonkeyPatch,
    run_cli: Callable[[list[str]], int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Interrupted after its commit and before it printed the key: a key nobody saw, unsaid."""
    from tellusonce import cli

    def made_then_interrupted(_args: object, _settings: object) -> int:
        os.kill(os.getpid(), signal.SIGINT)
        threading.Event().wait(10)
        return 0

    monkeypatch.setattr(cli, "_keys", made_then_interrupted)
    assert run_cli(["keys", "create", "LEEDS-RO-1", "--district", "Leeds"]) == 128 + signal.SIGINT
    assert "`tellusonce keys list` names the office's keys" in capsys.readouterr().err
