"""The registrar HTTP API against the real broker: success, each error status, idempotency,
authentication, isolation between offices, and a broker that is down."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient

from consumers.tracker import TrackerStore
from producers import submission
from producers.api import create_app
from producers.idempotency import IdempotencyKeys
from producers.offices import Offices
from producers.submission import Registrar
from tellusonce.codec import Codec
from tellusonce.events import EventType
from tellusonce.kafka import Publisher
from tellusonce.settings import Settings
from tellusonce.topics import TRACKER, Topics
from tests.factories import document, event
from tests.handlers import tracked
from tests.integration.conftest import read_topic

OFFICE = "LEEDS-RO-1"  # the office of examples/death.json


class Api:
    """A test client with one API key per office."""

    def __init__(self, settings: Settings) -> None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.registrar = Registrar(settings, Publisher(settings, "api"), Codec())
        self.client = TestClient(create_app(settings, self.registrar))
        offices = Offices(settings.store_url_for("registrar"))
        self.keys = {OFFICE: offices.create_key(OFFICE), "YORK-1": offices.create_key("YORK-1")}

    def post(
        self, path: str, body: Any, key: str = "k1", office: str = OFFICE, **headers: str
    ) -> Any:
        sent = {
            "Authorization": f"Bearer {self.keys[office]}",
            "Idempotency-Key": key,
            "Content-Type": "application/json",
            **headers,
        }
        return self.client.post(path, content=json.dumps(body), headers=sent)

    def get(self, path: str, office: str = OFFICE) -> Any:
        return self.client.get(path, headers={"Authorization": f"Bearer {self.keys[office]}"})

    def close(self) -> None:
        self.registrar.publisher.close()


@pytest.fixture
def api(settings: Settings, topics: Topics) -> Api:
    with_limits = settings.model_copy(update={"api_burst": 50})
    return Api(with_limits)


def published(settings: Settings, topics: Topics) -> int:
    return len(read_topic(settings, topics.events(EventType.DEATH)))


class TestSubmit:
    """POST /v1/events/{type}."""

    def test_death_is_published_and_acknowledged(
        self, api: Api, settings: Settings, topics: Topics
    ) -> None:
        """201 with event_id, reference and status URL; the event is on the topic."""
        response = api.post("/v1/events/death", document(EventType.DEATH))
        assert response.status_code == 201
        body = response.json()
        assert body["status_url"] == f"/v1/events/{body['reference']}"
        (message,) = read_topic(settings, topics.events(EventType.DEATH))
        assert dict(message.headers)["ce_id"].decode() == body["event_id"]

    def test_same_key_and_body_returns_the_original_response(
        self, api: Api, settings: Settings, topics: Topics
    ) -> None:
        first = api.post("/v1/events/death", document(EventType.DEATH))
        again = api.post("/v1/events/death", document(EventType.DEATH))
        assert (again.status_code, again.json()) == (201, first.json())
        assert published(settings, topics) == 1

    def test_same_key_with_another_body_is_422(self, api: Api) -> None:
        api.post("/v1/events/death", document(EventType.DEATH))
        other = api.post("/v1/events/death", document(EventType.DEATH, date_of_death="2026-03-10"))
        assert other.status_code == 422
        assert other.headers["content-type"] == "application/problem+json"

    def test_same_registration_under_another_key_returns_the_existing_event(
        self, api: Api, settings: Settings, topics: Topics
    ) -> None:
        first = api.post("/v1/events/death", document(EventType.DEATH), key="k1")
        second = api.post("/v1/events/death", document(EventType.DEATH), key="k2")
        assert (second.status_code, second.json()) == (200, first.json())
        assert published(settings, topics) == 1

    def test_the_same_registration_with_other_facts_is_409_and_not_published(
        self, api: Api, settings: Settings, topics: Topics
    ) -> None:
        reference = api.post("/v1/events/death", document(EventType.DEATH)).json()["reference"]
        other = document(EventType.DEATH, date_of_death="2026-03-10")
        response = api.post("/v1/events/death", other, key="k2")
        assert response.status_code == 409
        assert response.json()["errors"] == [
            {
                "pointer": "/registration",
                "detail": f"this register entry was submitted already (reference {reference}) "
                f"with other facts: correct {reference} instead",
            }
        ]
        assert published(settings, topics) == 1

    def test_the_same_key_sent_twice_at_once_publishes_once(
        self, api: Api, settings: Settings, topics: Topics
    ) -> None:
        """A client's retry racing its first try, with another body: one is published."""
        start = threading.Barrier(2)

        def submit(entry: int) -> Any:
            doc = document(
                EventType.DEATH,
                registration={"district": "Leeds", "entry_number": entry, "office": OFFICE},
            )
            start.wait()
            return api.post("/v1/events/death", doc, key="same")

        with ThreadPoolExecutor(2) as pool:
            statuses = sorted(r.status_code for r in pool.map(submit, (3001, 3002)))
        assert statuses == [201, 422]
        assert published(settings, topics) == 1

    def test_invalid_submission_is_422_with_pointers_and_no_echo(
        self, api: Api, settings: Settings, topics: Topics
    ) -> None:
        doc = document(EventType.DEATH)
        doc["deceased"]["nino"] = "QQ999999Q"
        response = api.post("/v1/events/death", doc)
        assert response.status_code == 422
        problem = response.json()
        assert {"detail", "pointer"} <= set(problem["errors"][0])
        assert "/deceased/nino" in [e["pointer"] for e in problem["errors"]]
        assert "QQ999999Q" not in response.text
        assert "Traceback" not in response.text
        assert read_topic(settings, topics.events(EventType.DEATH)) == []

    def test_another_offices_registration_is_refused(self, api: Api) -> None:
        response = api.post("/v1/events/death", document(EventType.DEATH), office="YORK-1")
        assert response.status_code == 422
        assert [e["pointer"] for e in response.json()["errors"]] == ["/registration/office"]

    @pytest.mark.parametrize(
        ("headers", "status"),
        [
            ({"Authorization": "Bearer tuo_wrong"}, 401),
            ({"Authorization": ""}, 401),
            ({"Idempotency-Key": ""}, 400),
            ({"Content-Type": "text/plain"}, 415),
        ],
    )
    def test_error_statuses(self, api: Api, headers: dict[str, str], status: int) -> None:
        response = api.post("/v1/events/death", document(EventType.DEATH), **headers)
        assert response.status_code == status
        assert response.json()["status"] == status

    def test_body_over_16_kib_is_413(self, api: Api) -> None:
        doc = document(EventType.DEATH, padding="x" * 17_000)
        assert api.post("/v1/events/death", doc).status_code == 413

    def test_not_json_is_400(self, api: Api) -> None:
        response = api.client.post(
            "/v1/events/death",
            content=b"{not json",
            headers={
                "Authorization": f"Bearer {api.keys[OFFICE]}",
                "Idempotency-Key": "x",
                "Content-Type": "application/json",
            },
        )
        assert response.status_code == 400

    def test_submissions_made_at_once_are_each_published_and_kept_for_reading(
        self, api: Api, settings: Settings, topics: Topics
    ) -> None:
        """16 registrars submit at the same moment: each gets 201, each event is on the topic,
        and each reference can be read back (and so corrected or cancelled) from the ledger.
        Concurrent requests used to lose some events from the ledger (SQLite refused a record
        whose read came before another request's commit): their references answered 404."""
        registrations = range(2001, 2017)
        start = threading.Barrier(len(registrations))

        def submit(entry: int) -> Any:
            doc = document(
                EventType.DEATH,
                registration={"district": "Leeds", "entry_number": entry, "office": OFFICE},
            )
            start.wait()
            return api.post("/v1/events/death", doc, key=f"entry-{entry}")

        with ThreadPoolExecutor(len(registrations)) as pool:
            responses = list(pool.map(submit, registrations))
        assert [r.status_code for r in responses] == [201] * len(registrations)
        assert published(settings, topics) == len(registrations)
        for response in responses:
            reference = response.json()["reference"]
            assert api.get(f"/v1/events/{reference}").status_code == 200, reference

    def test_json_nested_too_deeply_is_400(self, api: Api) -> None:
        """Within the size limit, thousands of brackets exhaust the parser's recursion."""
        response = api.client.post(
            "/v1/events/death",
            content=b"[" * 15_000,
            headers={
                "Authorization": f"Bearer {api.keys[OFFICE]}",
                "Idempotency-Key": "x",
                "Content-Type": "application/json",
            },
        )
        assert (response.status_code, response.json()["detail"]) == (
            400,
            "The body is nested more than 32 deep",
        )

    def test_over_the_rate_is_429_with_retry_after(
        self, settings: Settings, topics: Topics
    ) -> None:
        tight = Api(settings.model_copy(update={"api_burst": 2, "api_rate_per_second": 0.01}))
        statuses = [tight.post("/v1/events/death", {}, key=str(i)).status_code for i in range(3)]
        assert statuses == [422, 422, 429]
        assert int(tight.post("/v1/events/death", {}).headers["Retry-After"]) >= 1


class TestAmendAndRead:
    """Corrections, cancellations and reading a reference, per office."""

    def test_correct_then_cancel(self, api: Api) -> None:
        reference = api.post("/v1/events/death", document(EventType.DEATH)).json()["reference"]
        fixed = document(EventType.DEATH, date_of_death="2026-03-04", correction_reason="misread")
        corrected = api.post(f"/v1/events/{reference}/corrections", fixed, key="k2")
        assert (corrected.status_code, corrected.json()["action"]) == (201, "CORRECTED")
        cancelled = api.post(
            f"/v1/events/{reference}/cancellation", {"reason": "registered in error"}, key="k3"
        )
        assert (cancelled.status_code, cancelled.json()["action"]) == (201, "CANCELLED")
        again = api.post(f"/v1/events/{reference}/cancellation", {"reason": "again"}, key="k4")
        assert again.status_code == 409  # cancelled already: a conflict

    def test_two_amendments_at_once_publish_one(
        self, api: Api, settings: Settings, topics: Topics
    ) -> None:
        """A correction and a cancellation of one reference sent at the same moment: made from
        the registration both, publishing both would undo one with the other at every service.
        The second is made from the first (a cancellation of the correction: published; a
        correction of the cancelled registration: 409), or from the registration, amended
        meanwhile (409): the published amendments are a chain, never a fork."""
        reference = api.post("/v1/events/death", document(EventType.DEATH)).json()["reference"]
        start = threading.Barrier(2)

        def amend(how: str) -> Any:
            if how == "correct":
                path, body = "corrections", document(EventType.DEATH, date_of_death="2026-03-10")
            else:
                path, body = "cancellation", {"reason": "registered in error"}
            start.wait()
            return api.post(f"/v1/events/{reference}/{path}", body, key=how)

        with ThreadPoolExecutor(2) as pool:
            statuses = sorted(r.status_code for r in pool.map(amend, ("correct", "cancel")))
        assert statuses in ([201, 201], [201, 409])
        messages = read_topic(settings, topics.events(EventType.DEATH))
        envelopes = [Codec().decode(m.value).envelope for m in messages]  # type: ignore[union-attr]
        amendments = [e.supersedes for e in envelopes if e.supersedes is not None]
        assert len(amendments) == statuses.count(201)
        assert len(set(amendments)) == len(amendments)  # each supersedes another event

    def test_an_office_reads_only_its_registration_under_a_shared_reference(
        self, api: Api, settings: Settings, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A reference is 50 bits of an event id, so two registrations can share one: each
        office's status shows its own registration's events, not the other family's."""
        monkeypatch.setattr(submission, "reference", lambda *_args: "7QK2M-93XDA")
        york = {"district": "York", "entry_number": 7, "office": "YORK-1"}
        ids = [
            api.post("/v1/events/death", document(EventType.DEATH), key="leeds").json(),
            api.post(
                "/v1/events/death", document(EventType.DEATH, registration=york), "york", "YORK-1"
            ).json(),
        ]
        store = TrackerStore(settings.store_url_for(TRACKER))
        tracked(store, api.registrar.ledger, [body["event_id"] for body in ids])
        for office, body in zip((OFFICE, "YORK-1"), ids, strict=True):
            shown = api.get("/v1/events/7QK2M-93XDA", office=office).json()["events"]
            assert [e["event_id"] for e in shown] == [body["event_id"]]

    def test_a_reason_that_is_not_text_is_422_naming_it(self, api: Api) -> None:
        reference = api.post("/v1/events/death", document(EventType.DEATH)).json()["reference"]
        fixed = document(EventType.DEATH, correction_reason=5)
        response = api.post(f"/v1/events/{reference}/corrections", fixed, key="k2")
        assert response.status_code == 422
        assert [e["pointer"] for e in response.json()["errors"]] == ["/correction_reason"]

    def test_an_office_reads_only_its_own_events(self, api: Api) -> None:
        reference = api.post("/v1/events/death", document(EventType.DEATH)).json()["reference"]
        mine = api.get(f"/v1/events/{reference}")
        assert (mine.status_code, mine.json()["reference"]) == (200, reference)
        assert api.get(f"/v1/events/{reference}", office="YORK-1").status_code == 404
        assert (
            api.post(
                f"/v1/events/{reference}/cancellation", {"reason": "x"}, office="YORK-1"
            ).status_code
            == 404
        )


def test_broker_down_is_503_with_retry_after_and_the_same_key_works_once_it_is_back(
    settings: Settings, topics: Topics
) -> None:
    """No broker: 503 + Retry-After, the key answered nothing (but is held for this body); the
    event is in the ledger, unacknowledged (it might have reached Kafka all the same), so other
    facts for the entry are a conflict, and the same request, once Kafka is back, publishes it."""
    down = Api(
        settings.model_copy(
            update={"bootstrap_servers": "127.0.0.1:1", "publish_timeout_seconds": 2}
        )
    )
    response = down.post("/v1/events/death", document(EventType.DEATH))
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    down.close()
    death = str(event(EventType.DEATH, settings).envelope.event_id)
    held = IdempotencyKeys(settings.store_url_for("registrar")).get(OFFICE, "k1")
    assert held is not None
    assert held.pending  # no answer kept; the key is this body's
    assert down.registrar.ledger.unacknowledged(death)

    back = Api(settings)
    other = document(EventType.DEATH, date_of_death="2026-03-10")
    assert back.post("/v1/events/death", other, key="k2").status_code == 409
    assert back.post("/v1/events/death", document(EventType.DEATH)).status_code == 201
    assert not back.registrar.ledger.unacknowledged(death)
    assert published(settings, topics) == 1
    back.close()
