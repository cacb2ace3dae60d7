"""A local stack of tellusonce processes: topics, stores, every service and the tracker as children.

Used by `tellusonce demo` (make run) and `tellusonce up`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from consumers.launch import NAMES
from consumers.seed import seed, seeded
from tellusonce import shutdown
from tellusonce.errors import BrokerUnavailable, UnsafeSettings
from tellusonce.kafka import Admin
from tellusonce.settings import Settings
from tellusonce.topics import REGISTRAR, TRACKER, Topics

METRICS_BASE_PORT = 9401
PORT_MAX = 65535
WAIT_SECONDS = 60.0
Children = dict[str, tuple[subprocess.Popen[bytes], int]]


def say(text: str) -> None:
    """Progress for the person running the demo."""
    print(text, flush=True)


def ensure_topics(settings: Settings) -> None:
    """Check the broker answers and create the topics that are missing."""
    admin = Admin(settings)
    if not admin.reachable(10):  # exit 3, as every command Kafka does not answer
        raise BrokerUnavailable(
            f"no Kafka broker answers at {settings.bootstrap_servers}: run `make broker-start` or "
            "set TELLUSONCE_BOOTSTRAP_SERVERS"
        )
    topics = Topics(settings.topic_prefix)
    created = admin.ensure_topics(topics.all(), topics.config(settings.replication_factor))
    say(
        f"topics: {len(topics.all())} ready ({len(created)} created) "
        f"on {settings.bootstrap_servers}"
    )


STORE_FILES = ("*.db", "*.db-wal", "*.db-shm", "*.db-journal")  # SQLite's, all a demo empties
DEMO_MARK = ".made-by-tellusonce-demo"
"""In a data directory whose stores the demo made (and may empty again)."""


def seed_stores(settings: Settings, fresh: bool, owned: bool = False) -> None:
    """Seed the synthetic records into every store holding none; into every store, emptying
    them first, if `fresh`: only
    in a directory the demo made them in (its mark there), or `owned` (the demo's own), or
    holding none. UnsafeSettings otherwise: TELLUSONCE_DATA_DIR naming a real data directory
    (compose's /data) would have had its ledger, keys and stores deleted."""
    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    if fresh:
        files = [p for pattern in STORE_FILES for p in data_dir.glob(pattern)]
        stores = sorted(p.name for p in files)
        if stores and not owned and not (data_dir / DEMO_MARK).exists():
            raise UnsafeSettings(
                f"{data_dir} holds stores the demo did not make ({', '.join(stores)}), and the "
                "demo starts from fresh ones: set TELLUSONCE_DATA_DIR to an empty directory, or "
                "leave it unset (.run/demo)"
            )
        held = seeded(settings) if settings.store_url else []  # databases it cannot empty
        if held:
            raise UnsafeSettings(
                f"TELLUSONCE_STORE_URL's databases hold records ({', '.join(held)}), and the "
                "demo starts from empty stores (it empties SQLite files it made, never a "
                "database): point it at empty databases, or leave it unset"
            )
        (data_dir / DEMO_MARK).write_text("made by `tellusonce demo`: each run empties it\n")
        for old in files:
            old.unlink()
    counts = seed(settings, only_empty=not fresh)
    if counts:  # (none: every store holds records, as events left them)
        say("seeded synthetic records: " + ", ".join(f"{n} {c}" for n, c in counts.items()))


PORT_ORDER = ("pensions", "disability", "council_tax", "housing_benefit", TRACKER, REGISTRAR)
"""The processes' metrics ports from the base, as Prometheus's config names them; a service
that joins later takes the next (9407 on), so no process's port moves when one joins."""


def metrics_port(name: str, base_port: int = METRICS_BASE_PORT) -> int:
    """Where a process serves /metrics unless told otherwise: pensions 9401, disability 9402,
    council tax 9403, housing benefit 9404, the tracker 9405, the registrar API 9406, a service
    that joined later 9407 on (in consumers/services.py's order)."""
    order = (*PORT_ORDER, *(n for n in NAMES if n not in PORT_ORDER))
    return base_port + order.index(name)


def start_processes(
    settings: Settings, base_port: int = METRICS_BASE_PORT, api_port: int | None = None
) -> Children:
    """Start every service and the tracker (and the registrar API if api_port is given) as
    child processes, each logging to data_dir/logs/NAME.log."""
    logs = settings.data_dir / "logs"
    logs.mkdir(exist_ok=True)
    served = (*NAMES, REGISTRAR) if api_port is not None else NAMES
    ports = [metrics_port(name, base_port) for name in served] + ([api_port] if api_port else [])
    if api_port in ports[:-1]:
        clash = f"port {api_port} is the API's and a process's metrics port"
        raise SystemExit(f"{clash}: choose another")
    if max(ports) > PORT_MAX:
        raise SystemExit(f"metrics ports from {base_port} would end past {PORT_MAX}: a lower base")
    host = local_host(settings.metrics_host)
    for port in ports:  # a process already there would answer for the one started now
        if _answers(host if port != api_port else "127.0.0.1", port):
            raise SystemExit(
                f"port {port} is in use (another tellusonce process: `up`, the demo, a "
                "`consume` or `serve`?): stop it first"
            )
    commands = {
        name: (["consume", name, "--metrics-port", str(port)], port)
        for name, port in ((n, metrics_port(n, base_port)) for n in NAMES)
    }
    if api_port is not None:
        port = metrics_port(REGISTRAR, base_port)
        serve = ["serve", "--port", str(api_port), "--metrics-port", str(port)]
        commands[REGISTRAR] = (serve, port)
    children: Children = {}
    try:
        for name, (args, port) in commands.items():
            with (logs / f"{name}.log").open("wb") as log:
                child = subprocess.Popen(
                    [sys.executable, "-m", "tellusonce", *args],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=os.environ | settings.as_environment(),
                )
            children[name] = (child, port)
            say(f"started {name:<16} pid {child.pid:<7} metrics {url(host, port, '/metrics')}")
    except BaseException:  # those started so far are stopped, not left running on their own
        stop_processes(children)
        raise
    return children


def local_host(bound: str) -> str:
    """The address this machine reaches a server on that is bound to `bound` (a process's
    TELLUSONCE_METRICS_HOST): the loopback for one bound to every address."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(bound, bound)  # noqa: S104


def url(host: str, port: int, path: str) -> str:
    """An http URL of a host (an IPv6 address bracketed) and port."""
    return f"http://[{host}]:{port}{path}" if ":" in host else f"http://{host}:{port}{path}"


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def wait_ready(children: Children, logs: Path | None = None, host: str = "127.0.0.1") -> None:
    """Wait until every child has joined its consumer group (/readyz on `host` answers 200);
    one that exits meanwhile is named, with its log in `logs` (where start_processes put it)."""
    deadline = time.monotonic() + WAIT_SECONDS
    waiting = set(children)
    while waiting:
        for name in sorted(waiting):
            child, port = children[name]
            if child.poll() is not None:
                where = f", {logs / f'{name}.log'}" if logs else ""
                raise SystemExit(f"{name} exited with {child.returncode}; see its log{where}")
            try:
                with urllib.request.urlopen(url(host, port, "/readyz"), timeout=1):  # noqa: S310
                    waiting.discard(name)
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
        if time.monotonic() > deadline:
            raise SystemExit(f"not ready after {WAIT_SECONDS:.0f} s: {', '.join(sorted(waiting))}")
        if shutdown.requested.wait(0.2):
            raise SystemExit("stopped before every process was ready")
    say(f"all {len(children)} processes ready")


def stop_processes(children: Children) -> None:
    """SIGTERM every child and wait for each to drain and close."""
    for child, _port in children.values():
        if child.poll() is None:
            child.terminate()
    clean = 0
    for name, (child, _port) in children.items():
        try:
            clean += child.wait(timeout=30) == 0
        except subprocess.TimeoutExpired:
            child.kill()
            say(f"{name} did not stop within 30 s; killed")
    say(f"stopped {clean}/{len(children)} processes cleanly")
