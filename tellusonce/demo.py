"""The main job (`make run`): a fresh local stack, one real death flowing to four confirmations."""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from consumers.report import render
from consumers.tracker import TrackerStore
from producers.offices import Offices
from tellusonce import shutdown
from tellusonce.settings import Settings
from tellusonce.stack import (
    WAIT_SECONDS,
    ensure_topics,
    local_host,
    say,
    seed_stores,
    start_processes,
    stop_processes,
    wait_ready,
)
from tellusonce.topics import TRACKER

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "death.json"
DEMO_OFFICE = "LEEDS-RO-1"  # the register office of the example


class NotSubmitted(Exception):
    """The registrar API did not take the demo's death: why, and the exit code to end with (3,
    as every command, when Kafka did not acknowledge it)."""

    def __init__(self, why: str, code: int = 1) -> None:
        super().__init__(why)
        self.code = code


def submit_over_http(base: str, key: str, document: dict[str, Any]) -> dict[str, Any]:
    """POST a death to the registrar API, as a registration system would; NotSubmitted if it
    does not answer, or refuses it."""
    try:
        response = httpx.post(
            f"{base}/v1/events/death", json=document, timeout=30,
            headers={"Authorization": f"Bearer {key}", "Idempotency-Key": str(uuid.uuid4())},
        )  # fmt: skip
    except httpx.HTTPError as exc:
        raise NotSubmitted(f"the registrar API at {base} did not answer ({exc})") from None
    if response.is_error:  # a problem+json: its detail names no one
        try:
            detail = response.json().get("detail", "")
        except ValueError:
            detail = ""
        said = detail or response.reason_phrase
        code = 3 if response.status_code == 503 else 1
        raise NotSubmitted(f"the registrar API answered {response.status_code}: {said}", code)
    return dict(response.json())


def family_page(base: str, reference: str, born: str) -> str:
    """What the family's status page shows for a reference and date of birth (YYYY-MM-DD)."""
    year, month, day = born.split("-")
    form = {"reference": reference, "day": day, "month": month, "year": year}
    try:
        return httpx.post(f"{base}/status", data=form, timeout=10).text
    except httpx.HTTPError:  # said as "did not answer"
        return ""


def run(settings: Settings, owned: bool = False) -> int:
    """The whole demo; 0 when every subscribed service confirmed (a REJECTED answer is not).
    Its stores are made afresh: in a directory it made them in, or `owned` (its own)."""
    ensure_topics(settings)
    seed_stores(settings, fresh=True, owned=owned)
    key = Offices(settings.store_url_for("registrar")).create_key(DEMO_OFFICE, ["Leeds"])
    base = f"http://127.0.0.1:{settings.api_port}"
    children = start_processes(settings, api_port=settings.api_port)
    try:
        wait_ready(children, settings.data_dir / "logs", local_host(settings.metrics_host))
        document = json.loads(EXAMPLE.read_text(encoding="utf-8"))
        try:
            receipt = submit_over_http(base, key, document)
        except NotSubmitted as exc:
            print(f"error: {exc} (the processes' logs: {settings.data_dir / 'logs'})",
                  file=sys.stderr)  # fmt: skip
            return exc.code
        acknowledged = time.monotonic()
        say(
            f"submitted {EXAMPLE.name} to {base}/v1/events/death: reference "
            f"{receipt['reference']}, event {receipt['event_id']} (acknowledged by Kafka)"
        )
        tracker = TrackerStore(settings.store_url_for(TRACKER))
        deadline = acknowledged + WAIT_SECONDS
        while True:
            statuses = tracker.status(receipt["reference"])
            done = bool(statuses) and statuses[-1].confirmed == len(statuses[-1].services)
            if done or time.monotonic() > deadline:
                break
            if shutdown.requested.wait(0.05):
                say("stopped before every service confirmed")
                return 130
        elapsed = time.monotonic() - acknowledged
        say("")
        say(render(receipt["reference"], statuses))
        say("")
        born = document["deceased"]["date_of_birth"]
        page = family_page(base, receipt["reference"], born)
        shown = "shows every service's answer" if "have confirmed" in page else "did not answer"
        say(
            f"family status page {base}/status {shown} for reference {receipt['reference']} "
            f"and date of birth {born}"
        )
        last = statuses[-1] if statuses else None
        rejected = last.rejected if last else 0  # answered, but not done: not a confirmation
        confirmed = last.confirmed - rejected if last else 0
        expected = len(last.services) if last else 4
        refused = f" ({rejected} rejected: see its answer above)" if rejected else ""
        say(f"confirmed by {confirmed}/{expected} services in {elapsed:.2f} s{refused}")
        return 0 if done and not rejected else 1
    finally:
        stop_processes(children)
