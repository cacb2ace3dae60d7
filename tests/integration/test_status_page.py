"""The family status page: in a real browser (Debian's Chromium via Playwright) after a real
submission flowed through every service; and its refusals over plain HTTP."""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient
from playwright.sync_api import sync_playwright

from consumers.tracker import TrackerStore
from producers.api import create_app
from producers.submission import Registrar
from tellusonce.codec import Codec
from tellusonce.events import EventType
from tellusonce.kafka import Publisher
from tellusonce.settings import Settings
from tellusonce.topics import TRACKER, Topics
from tests.factories import document
from tests.integration.conftest import Fleet, free_ports, wait_for

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"


@pytest.fixture
def server(settings: Settings, topics: Topics) -> Iterator[tuple[str, Registrar]]:
    """The API served by uvicorn on a free port, as a family's browser would reach it."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    registrar = Registrar(settings, Publisher(settings, "api"), Codec())
    port = free_ports(1)
    config = uvicorn.Config(
        create_app(settings, registrar),
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
    )
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    wait_for(lambda: running.started, "uvicorn to start")
    yield f"http://127.0.0.1:{port}", registrar
    running.should_exit = True
    thread.join(10)


def test_family_sees_each_service_outcome_in_a_browser(
    server: tuple[str, Registrar], fleet: Fleet, settings: Settings
) -> None:
    """Reference and date of birth in; four services and what each did out."""
    base, registrar = server
    receipt = registrar.submit(EventType.DEATH, document(EventType.DEATH))
    tracker = TrackerStore(settings.store_url_for(TRACKER))

    def confirmed_by_all() -> bool:
        found = tracker.status(receipt.reference)
        return bool(found) and found[-1].confirmed == 4

    # the answers page has no form: the family asks once, once every service has answered
    wait_for(confirmed_by_all, "4 confirmations in the tracker", 30)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(f"{base}/status")
        assert page.get_by_role("heading", level=1).inner_text() == "Check what has been done"
        page.get_by_label("Reference").fill(receipt.reference.lower())
        page.get_by_label("Day").fill("14")
        page.get_by_label("Month").fill("5")
        page.get_by_label("Year").fill("1946")
        page.get_by_role("button", name="Show what has been done").click()
        assert "4 have confirmed" in page.content()
        assert page.get_by_role("heading", level=1).inner_text() == f"Reference {receipt.reference}"
        services = [h.inner_text() for h in page.get_by_role("heading", level=2).all()]
        assert services == [
            "State Pension",
            "Disability benefits (DLA, PIP, Attendance Allowance)",
            "Council Tax",
            "Housing Benefit",
        ]
        assert page.get_by_text("State Pension stopped from 2026-03-12").is_visible()
        browser.close()


def test_wrong_date_of_birth_answers_like_an_unknown_reference(
    settings: Settings, topics: Topics
) -> None:
    """Same status and words for a wrong pair and a missing reference; attempts are limited."""
    registrar = Registrar(settings, Publisher(settings, "api"), Codec())
    receipt = registrar.submit(EventType.DEATH, document(EventType.DEATH))
    client = TestClient(create_app(settings, registrar))

    def ask(reference: str, day: str) -> Any:
        return client.post(
            "/status", data={"reference": reference, "day": day, "month": "5", "year": "1946"}
        )

    wrong, unknown = ask(receipt.reference, "15"), ask("ZZZZZ-ZZZZZ", "14")
    assert (wrong.status_code, unknown.status_code) == (404, 404)
    no_such_year = client.post(
        "/status",
        data={"reference": receipt.reference, "day": "14", "month": "5", "year": "9" * 20},
    )
    assert no_such_year.status_code == 422  # not a date (not a 500 from an OverflowError)

    def without_echo(html: str) -> str:  # the form echoes the reference typed, nothing else
        return re.sub(r'value="[^"]*"', "", html)

    assert without_echo(wrong.text) == without_echo(unknown.text)
    assert ask(receipt.reference, "14").status_code == 200
    limited = [
        ask(receipt.reference, "14").status_code for _ in range(settings.status_attempts_per_minute)
    ]
    assert limited[-1] == 429
