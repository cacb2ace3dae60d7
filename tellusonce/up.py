"""`tellusonce up`: the whole local bus for operators until Ctrl-C, with a live one-line summary."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tellusonce import shutdown
from tellusonce.kafka import LOCAL_BROKER, Admin
from tellusonce.settings import Settings
from tellusonce.stack import (
    Children,
    ensure_topics,
    local_host,
    say,
    seed_stores,
    start_processes,
    stop_processes,
    url,
    wait_ready,
)

BROKER_SCRIPT = Path(__file__).resolve().parent.parent / "deploy" / "kafka" / "broker.sh"
SUMMARY_SECONDS = 2.0
SHOWN = ("applied", "no_record", "not_applicable", "rejected", "dead_lettered", "duplicate")


def scrape(children: Children, host: str = "127.0.0.1") -> tuple[Counter[str], int]:
    """Summed samples of every child's /metrics (on `host`), and how many children answered."""
    totals: Counter[str] = Counter()
    answered = 0
    for _child, port in children.values():
        try:
            with urllib.request.urlopen(url(host, port, "/metrics"), timeout=1) as r:  # noqa: S310
                text = r.read().decode()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            continue
        answered += 1
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "tellusonce_events_consumed_total":
                    totals[sample.labels["outcome"]] += int(sample.value)
                elif sample.name in {
                    "tellusonce_consumer_lag_messages",
                    "tellusonce_events_awaiting_confirmation",
                }:
                    totals[sample.name] += int(sample.value)
    return totals, answered


def summary(children: Children, host: str = "127.0.0.1") -> str:
    """One line: what the services did so far, lag, confirmations awaited, processes up."""
    totals, answered = scrape(children, host)
    done = " · ".join(f"{outcome.replace('_', ' ')} {totals[outcome]}" for outcome in SHOWN)
    return (
        f"{time.strftime('%H:%M:%S')}  {done} · lag {totals['tellusonce_consumer_lag_messages']}"
        f" · awaiting {totals['tellusonce_events_awaiting_confirmation']}"
        f" · {answered}/{len(children)} up"
    )


def needs_local_broker(settings: Settings) -> bool:
    """Whether the settings point at the local broker and nothing answers there."""
    return settings.bootstrap_servers == LOCAL_BROKER and not Admin(settings).reachable(3)


def run(settings: Settings, base_port: int) -> int:
    """Run until SIGINT or SIGTERM, then stop every child (and a broker this call started, or
    was starting when it was stopped)."""
    stop = shutdown.requested
    started_broker = needs_local_broker(settings)
    try:
        if started_broker:
            broker = subprocess.run([str(BROKER_SCRIPT), "start"], check=False)
            if broker.returncode:
                raise SystemExit("the local broker did not start (see the lines above)")
        ensure_topics(settings)
        seed_stores(settings, fresh=False)  # the stores holding none (what events changed kept)
        children = start_processes(settings, base_port, api_port=settings.api_port)
        host = local_host(settings.metrics_host)  # where /metrics and /readyz answer
        try:
            wait_ready(children, settings.data_dir / "logs", host)
            say(
                f"ready; registrar API http://127.0.0.1:{settings.api_port}/docs, family status "
                f"page http://127.0.0.1:{settings.api_port}/status; Ctrl-C stops everything"
            )
            live = sys.stdout.isatty()
            while True:
                line = summary(children, host)
                print(f"\r{line}" if live else line, end="" if live else "\n", flush=True)
                if stop.wait(SUMMARY_SECONDS if live else 5 * SUMMARY_SECONDS):
                    break
            print()
        finally:
            stop_processes(children)
    finally:
        if started_broker:
            subprocess.run([str(BROKER_SCRIPT), "stop"], check=False)
    return 0
