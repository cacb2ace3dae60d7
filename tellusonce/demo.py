"""The main job (`make run`): broker topics, seeded stores, all services, one real death flowing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from consumers.launch import NAMES
from consumers.report import render
from consumers.seed import seed
from consumers.tracker import TrackerStore
from producers.submission import Registrar
from tellusonce.codec import Codec
from tellusonce.events import EventType
from tellusonce.kafka import Admin, Publisher
from tellusonce.settings import Settings
from tellusonce.topics import TRACKER, Topics

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "death.json"
METRICS_BASE_PORT = 9401
WAIT_SECONDS = 60.0


def say(text: str) -> None:
    """Progress for the person running the demo."""
    print(text, flush=True)


def prepare(settings: Settings) -> None:
    """Fresh demo stores, the topics, and the seeded records."""
    admin = Admin(settings)
    if not admin.reachable(10):
        raise SystemExit(
            f"no Kafka broker answers at {settings.bootstrap_servers}: run `make broker-start` or "
            "set TELLUSONCE_BOOTSTRAP_SERVERS"
        )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    for old in settings.data_dir.glob("*.db*"):
        old.unlink()
    topics = Topics(settings.topic_prefix)
    created = admin.ensure_topics(topics.all(), {"retention.ms": str(7 * 24 * 3600 * 1000)})
    say(
        f"topics: {len(topics.all())} ready ({len(created)} created) "
        f"on {settings.bootstrap_servers}"
    )
    counts = seed(settings)
    say("seeded synthetic records: " + ", ".join(f"{n} {c}" for n, c in counts.items()))


def start_processes(settings: Settings) -> dict[str, tuple[subprocess.Popen[bytes], int]]:
    """Start every service and the tracker as child processes, logging to data_dir/logs."""
    logs = settings.data_dir / "logs"
    logs.mkdir(exist_ok=True)
    children = {}
    for i, name in enumerate(NAMES):
        port = METRICS_BASE_PORT + i
        env = os.environ | {"TELLUSONCE_DATA_DIR": str(settings.data_dir)}
        with (logs / f"{name}.log").open("wb") as log:
            child = subprocess.Popen(
                [sys.executable, "-m", "tellusonce", "consume", name, "--metrics-port", str(port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        children[name] = (child, port)
        say(f"started {name:<16} pid {child.pid:<7} metrics http://127.0.0.1:{port}/metrics")
    return children


def wait_ready(children: dict[str, tuple[subprocess.Popen[bytes], int]]) -> None:
    """Wait until every child has joined its consumer group (/readyz answers 200)."""
    deadline = time.monotonic() + WAIT_SECONDS
    waiting = set(children)
    while waiting:
        for name in sorted(waiting):
            child, port = children[name]
            if child.poll() is not None:
                raise SystemExit(f"{name} exited with {child.returncode}; see its log")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1):
                    waiting.discard(name)
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
        if time.monotonic() > deadline:
            raise SystemExit(f"not ready after {WAIT_SECONDS:.0f} s: {', '.join(sorted(waiting))}")
        time.sleep(0.2)
    say(f"all {len(children)} consumers joined their groups")


def stop_processes(children: dict[str, tuple[subprocess.Popen[bytes], int]]) -> None:
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


def run(settings: Settings) -> int:
    """The whole demo; 0 when every subscribed service confirmed."""
    prepare(settings)
    children = start_processes(settings)
    try:
        wait_ready(children)
        registrar = Registrar(settings, Publisher(settings, "demo"), Codec(settings.schema_dirs))
        document = json.loads(EXAMPLE.read_text(encoding="utf-8"))
        receipt = registrar.submit(EventType.DEATH, document)
        acknowledged = time.monotonic()
        say(
            f"submitted {EXAMPLE.name}: reference {receipt.reference}, "
            f"event {receipt.event_id} (acknowledged by Kafka)"
        )
        tracker = TrackerStore(settings.store_url_for(TRACKER))
        deadline = acknowledged + WAIT_SECONDS
        while True:
            statuses = tracker.status(receipt.reference)
            done = bool(statuses) and statuses[-1].confirmed == len(statuses[-1].services)
            if done or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        elapsed = time.monotonic() - acknowledged
        say("")
        say(render(receipt.reference, statuses))
        say("")
        confirmed = statuses[-1].confirmed if statuses else 0
        expected = len(statuses[-1].services) if statuses else 4
        say(f"confirmed by {confirmed}/{expected} services in {elapsed:.2f} s")
        return 0 if done else 1
    finally:
        stop_processes(children)
