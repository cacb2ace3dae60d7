"""Operators' view, checked by a real Prometheus: every dashboard and alert expression has data,
alerts fire when provoked, /metrics passes promtool, logs hold no personal data; `tellusonce up`."""

from __future__ import annotations

import json
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from consumers.report import render
from consumers.tracker import TrackerStore
from producers.api import create_app
from producers.offices import Offices
from producers.submission import Registrar
from tellusonce.events import EventType
from tellusonce.kafka import Outgoing, Publisher
from tellusonce.metrics import serve, stop_serving
from tellusonce.settings import Settings
from tellusonce.stack import start_processes, stop_processes, wait_ready
from tellusonce.topics import TRACKER, Topics
from tests.factories import document, event
from tests.integration.conftest import CODEC, cli_env, free_ports, read_topic, wait_for

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
NINO = re.compile(r"\b[A-CEGHJ-PR-TW-Z]{2}\s?\d{2}\s?\d{2}\s?\d{2}\s?[A-D]\b")
DATE = re.compile(r"\b(19|20)\d{2}-\d{2}-\d{2}\b")
POSTCODE = re.compile(r"\b[A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2}\b")


class Prometheus:
    """A real Prometheus (Debian's package) scraping this test's processes every second."""

    def __init__(self, tmp: Path, targets: dict[str, int], port: int) -> None:
        self.port = port
        rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(DEPLOY / "prometheus" / "alerts.yml")],
            "scrape_configs": [
                {
                    "job_name": "tellusonce",
                    "static_configs": [
                        {"targets": [f"127.0.0.1:{port}"], "labels": {"process": name}}
                        for name, port in targets.items()
                    ],
                }
            ],
        }
        self.rules = rules["groups"][0]["rules"]
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = (tmp / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={tmp / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        wait_for(self.ready, "Prometheus to be ready", 60)

    def get(self, path: str, **params: str) -> Any:
        url = f"http://127.0.0.1:{self.port}{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read()) if path.startswith("/api") else response.read()

    def ready(self) -> bool:
        try:
            self.get("/-/ready")
        except OSError:
            return False
        return True

    def query(self, expr: str) -> list[Any]:
        return self.get("/api/v1/query", query=expr)["data"]["result"]  # type: ignore[no-any-return]

    def alert_states(self) -> dict[str, str]:
        groups = self.get("/api/v1/rules", type="alert")["data"]["groups"]
        return {r["name"]: r["state"] for g in groups for r in g["rules"]}

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)
        self.log.close()


@pytest.fixture
def stack(settings: Settings, topics: Topics, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Services and tracker as child processes with /metrics, this process as the producer,
    and Prometheus scraping them all."""
    from consumers.seed import seed

    seed(settings)
    base = free_ports(7)  # five processes, this producer, Prometheus
    producer = serve(base + 5, lambda: True)
    children = start_processes(settings.model_copy(update={"log_level": "info"}), base)
    targets = {name: port for name, (_child, port) in children.items()} | {"registrar": base + 5}
    prometheus = Prometheus(tmp_path, targets, base + 6)
    try:
        wait_ready(children)
        yield {"children": children, "prometheus": prometheus, "targets": targets}
    finally:
        stop_processes(children)
        prometheus.stop()
        stop_serving(producer)


def dashboard_expressions() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "tellusonce.json").read_text())
    return [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]


def test_prometheus_sees_every_panel_and_alert(
    settings: Settings, topics: Topics, stack: dict[str, Any], registrar: Registrar
) -> None:
    """A death and a poison message: every dashboard expression returns data; the dead-letter
    alert fires; a killed process makes the process-down alert pending; promtool likes /metrics;
    logs carry no NINO, date or postcode."""
    prometheus: Prometheus = stack["prometheus"]
    wait_for(
        lambda: (
            prometheus.query('count(up{job="tellusonce"} == 1) == 6')
            and prometheus.query("tellusonce_dead_letters_total")
        ),
        "Prometheus to have scraped every process (and the zero counters) once",
        60,
    )
    # through the registrar API, as registrars submit: its answers' series (the submissions-
    # failing alert's) are this process's
    api = TestClient(create_app(settings, registrar))
    key = Offices(settings.store_url_for("registrar")).create_key("LEEDS-RO-1")
    wait_for(  # its series from 0 seen first, as an API started before its first request
        lambda: prometheus.query('tellusonce_http_requests_total{route="/v1/events/death"}'),
        "Prometheus to have scraped the API's answers at 0",
        60,
    )
    answered = api.post(
        "/v1/events/death",
        json=document(EventType.DEATH),
        headers={"Authorization": f"Bearer {key}", "Idempotency-Key": "operations-1"},
    )
    assert answered.status_code == 201, answered.text
    reference = answered.json()["reference"]
    # poison: bytes that are no message, and a death whose deceased's NINO was never issued
    # (its error must name the field, never the value, in logs and dead letters' headers)
    invalid = event(
        EventType.DEATH, registration={"district": "Leeds", "entry_number": 9, "office": "L"}
    )
    record = invalid.model_dump()
    record["facts"]["deceased"]["nino"] = "BG123456C"
    death_topic = topics.events(EventType.DEATH)
    Publisher(settings, "poison").publish(
        [
            Outgoing(death_topic, b"k", b"not avro at all", []),
            Outgoing(death_topic, b"k", CODEC.encode_record("death", record), []),
        ]
    )
    tracker = TrackerStore(settings.store_url_for(TRACKER))

    def confirmed(of: str) -> bool:  # by all four services (the invalid death: REJECTED)
        status = tracker.status(of)
        return bool(status) and status[-1].confirmed == 4

    wait_for(lambda: confirmed(reference), "4 confirmations")
    wait_for(lambda: confirmed(invalid.envelope.reference), "4 refusals of the invalid death")

    for expr in dashboard_expressions():
        wait_for(lambda e=expr: prometheus.query(e), f"data for dashboard query {expr}", 60)
    wait_for(
        lambda: prometheus.alert_states().get("TellUsOnceDeadLetters") == "firing",
        "the dead-letter alert to fire",
        60,
    )
    for rule in prometheus.rules:  # every alert's series exist, thresholds and exceptions aside
        firing_on = re.sub(r"\bunless\b.*", "", rule["expr"], flags=re.DOTALL)
        relaxed = re.sub(r"(>|==)\s*[\d.]+", ">= 0", firing_on)
        wait_for(lambda e=relaxed: prometheus.query(e), f"data for {rule['alert']}", 60)

    for name, port in stack["targets"].items():
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as response:
            text = response.read()
        checked = subprocess.run(
            ["promtool", "check", "metrics"], input=text, capture_output=True, check=False
        )
        assert checked.returncode == 0, f"{name}: {checked.stdout!r} {checked.stderr!r}"

    child, _port = stack["children"]["housing_benefit"]
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    wait_for(
        lambda: prometheus.alert_states().get("TellUsOnceProcessDown") == "pending",
        "the process-down alert to be pending",
        60,
    )
    states = prometheus.alert_states()
    assert states["TellUsOnceConfirmationSLOBreach"] == "inactive"
    assert states["TellUsOnceConfirmationsOverdue"] == "inactive"

    logs = list((settings.data_dir / "logs").glob("*.log"))
    assert len(logs) == 5
    for log in logs:
        for line in log.read_text().splitlines():
            text = line  # a line not JSON (a traceback printed whole) is read as it is
            if line.startswith("{"):
                fields = json.loads(line)
                fields.pop("timestamp")
                text = json.dumps(fields)
            assert not NINO.search(text), f"NINO-like text in {log.name}: {text}"
            assert not DATE.search(text), f"date in {log.name}: {text}"
            assert not POSTCODE.search(text), f"postcode-like text in {log.name}: {text}"
    assert "PENDING" not in render(reference, tracker.status(reference))
    letters = read_topic(settings, topics.dead_letter("pensions"))
    why = [dict(m.headers)["dlq_error_message"].decode() for m in letters]
    assert len(why) == 2, why
    assert "facts.deceased.nino" in why[1]
    assert not [m for m in letters if NINO.search(repr(m.headers))], why


def test_up_runs_until_interrupted(settings: Settings, topics: Topics) -> None:
    """`tellusonce up` prints where metrics are and a summary line; SIGINT stops it cleanly."""
    base = free_ports(7)  # six processes' metrics (the API's the sixth), and the API
    with_api = settings.model_copy(update={"api_port": base + 6})
    process = subprocess.Popen(
        [sys.executable, "-m", "tellusonce", "up", "--metrics-base-port", str(base)],
        env=cli_env(with_api),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(
        target=lambda: [lines.put(x) for x in process.stdout or []], daemon=True
    )
    reader.start()
    seen: list[str] = []

    def saw(text: str) -> bool:
        while not lines.empty():
            seen.append(lines.get())
        return any(text in line for line in seen)

    try:
        wait_for(lambda: saw("· 6/6 up"), "a summary line with every process up", 90)
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(60)
        reader.join(10)
        if process.stdout:
            process.stdout.close()
    assert code == 0
    saw("")
    assert any(f"http://127.0.0.1:{base}/metrics" in line for line in seen)
    assert any("stopped 6/6 processes cleanly" in line for line in seen)
    for port in range(base, base + 7):  # and nothing of it goes on: every port is let go
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, port
