"""The registrar API without a broker: one request at a time per Idempotency-Key and per
reference, not one at a time in all (a request waiting on Kafka holds up only those that share
its locks); requests counted under bounded labels."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from producers.api import create_app
from producers.locks import NamedLocks
from producers.offices import Offices
from producers.submission import Registrar
from tellusonce.codec import Codec
from tellusonce.events import EventType
from tellusonce.kafka import Outgoing
from tellusonce.settings import Settings
from tests.factories import document
from tests.integration.conftest import wait_for

OFFICE = "LEEDS-RO-1"


class Stalling:
    """A publisher whose first publish waits until released (Kafka slow to answer)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.sent: list[Outgoing] = []
        self._first = True

    def publish(self, messages: Sequence[Outgoing]) -> None:
        if self._first:
            self._first = False
            self.release.wait(60)
        self.sent.extend(messages)

    def close(self) -> None:
        """Nothing to close."""


def test_a_request_waiting_on_kafka_holds_up_no_other_registration(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, bootstrap_servers="127.0.0.1:1")
    publisher = Stalling()
    registrar = Registrar(settings, publisher, Codec())  # type: ignore[arg-type]
    client = TestClient(create_app(settings, registrar))
    key = Offices(settings.store_url_for("registrar")).create_key(OFFICE)

    def submit(entry: int) -> Any:
        registration = {"district": "Leeds", "entry_number": entry, "office": OFFICE}
        return client.post(
            "/v1/events/death",
            content=json.dumps(document(EventType.DEATH, registration=registration)),
            headers={
                "Authorization": f"Bearer {key}",
                "Idempotency-Key": f"entry-{entry}",
                "Content-Type": "application/json",
            },
        )

    stalled: list[Any] = []
    first = threading.Thread(target=lambda: stalled.append(submit(1)))
    first.start()
    wait_for(lambda: not publisher._first, "the first request to wait on Kafka", 10)
    try:
        assert submit(2).status_code == 201  # not held up behind it
        assert not stalled
    finally:
        publisher.release.set()
        first.join(30)
    assert stalled[0].status_code == 201


class Stuck:
    """A publisher every publish of which waits until released (Kafka not answering)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.waiting = 0
        self._lock = threading.Lock()

    def publish(self, messages: Sequence[Outgoing]) -> None:
        with self._lock:
            self.waiting += 1
        self.release.wait(60)

    def close(self) -> None:
        """Nothing to close."""


NOT_FOUND = {"reference": "AAAAA-BBBBB", "day": "1", "month": "1", "year": "1950"}


def test_submissions_waiting_on_kafka_leave_threads_for_everything_else(tmp_path: Path) -> None:
    """Forty submissions waiting on a broker that did not answer took every thread of the pool
    reads share: status queries and the family's status page waited with them."""
    from producers import api

    settings = Settings(data_dir=tmp_path, bootstrap_servers="127.0.0.1:1", api_burst=60)
    publisher = Stuck()
    registrar = Registrar(settings, publisher, Codec())  # type: ignore[arg-type]
    client = TestClient(create_app(settings, registrar))
    key = Offices(settings.store_url_for("registrar")).create_key(OFFICE)

    def submit(entry: int) -> int:
        registration = {"district": "Leeds", "entry_number": entry, "office": OFFICE}
        return client.post(
            "/v1/events/death",
            content=json.dumps(document(EventType.DEATH, registration=registration)),
            headers={
                "Authorization": f"Bearer {key}",
                "Idempotency-Key": f"entry-{entry}",
                "Content-Type": "application/json",
            },
        ).status_code

    held = api.PUBLISHING_AT_ONCE
    answered: list[int] = []
    waiting = [
        threading.Thread(target=lambda n=n: answered.append(submit(n))) for n in range(1, held + 1)
    ]
    for thread in waiting:
        thread.start()
    try:
        wait_for(lambda: publisher.waiting == held, "submissions to wait on Kafka", 20)
        more: list[int] = []  # 30 more: with those, more than the pool's 40 threads
        extra = range(held + 1, held + 31)
        sending = threading.Thread(target=lambda: more.extend(submit(n) for n in extra))
        sending.start()
        sending.join(20)
        assert more == [503] * 30  # said at once, not waiting on Kafka in a thread each
        page: list[int] = []
        asked = threading.Thread(
            target=lambda: page.append(client.post("/status", data=NOT_FOUND).status_code)
        )
        asked.start()
        asked.join(10)
        assert page == [404]  # the family's page answers meanwhile
    finally:
        publisher.release.set()
        for thread in waiting:
            thread.join(60)
    assert answered == [201] * held


def test_a_name_waits_only_for_its_own_holder_and_is_kept_only_while_in_use() -> None:
    locks = NamedLocks()
    release = threading.Event()
    inside: list[str] = []

    def hold(name: str, until: threading.Event | None = None) -> None:
        with locks.hold(name):
            inside.append(name)
            if until is not None:
                until.wait(10)

    holder = threading.Thread(target=hold, args=("a", release))
    holder.start()
    wait_for(lambda: inside == ["a"], "the first holder", 10)
    other = threading.Thread(target=hold, args=("b",))
    other.start()
    other.join(10)
    assert inside == ["a", "b"]  # another name did not wait
    waiter = threading.Thread(target=hold, args=("a",))
    waiter.start()
    wait_for(lambda: locks._in_use["a"][1] == 2, "the second to wait", 10)
    assert inside == ["a", "b"]  # the same name waits for its holder
    release.set()
    holder.join(10)
    waiter.join(10)
    assert inside == ["a", "b", "a"]
    assert len(locks) == 0  # nothing kept for names no longer in use


def test_a_method_no_route_has_is_counted_as_other(tmp_path: Path) -> None:
    """Any token is a method to the HTTP server, and requests are counted before they are
    authenticated: one series each would let anyone grow the metrics without end."""
    settings = Settings(data_dir=tmp_path, bootstrap_servers="127.0.0.1:1")
    registrar = Registrar(settings, Stalling(), Codec())  # type: ignore[arg-type]
    client = TestClient(create_app(settings, registrar))

    def counted(method: str) -> float:
        labels = {"method": method, "route": "/healthz", "status": "405"}
        return REGISTRY.get_sample_value("tellusonce_http_requests_total", labels) or 0.0

    before = counted("OTHER")
    for method in ("FOO1", "FOO2"):
        assert client.request(method, "/healthz").status_code == 405
    assert (counted("OTHER"), counted("FOO1")) == (before + 2, 0.0)
