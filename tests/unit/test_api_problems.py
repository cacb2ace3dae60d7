"""The registrar API without a broker (a publisher that keeps): requests it refuses, each a
problem+json naming what is wrong, with the headers HTTP asks for; the same correction sent
again is the correction published; a read before the tracker has the event."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from sqlalchemy.exc import OperationalError
from structlog.testing import capture_logs

from consumers.tracker import TrackerStore
from producers import idempotency, status_page
from producers.api import MAX_BODY, create_app
from producers.ledger import Ledger
from producers.offices import Offices, key_id
from producers.problems import MEDIA_TYPE
from producers.submission import Registrar
from tellusonce.codec import Codec
from tellusonce.errors import MessageTooLarge
from tellusonce.events import EventType
from tellusonce.settings import Settings
from tests.factories import document
from tests.handlers import tracked
from tests.metrics import samples_in_a_new_process
from tests.stand_ins import Kept, Outage

OFFICE = "LEEDS-RO-1"


class Api:
    def __init__(self, tmp_path: Path) -> None:
        settings = Settings(data_dir=tmp_path, bootstrap_servers="127.0.0.1:1")
        self.publisher = Kept()
        self.registrar = Registrar(settings, self.publisher, Codec())  # type: ignore[arg-type]
        self.client = TestClient(create_app(settings, self.registrar))
        self.key = Offices(settings.store_url_for("registrar")).create_key(OFFICE)

    def post(self, path: str, body: Any, key: str = "k1", **headers: str) -> Any:
        sent = {
            "Authorization": f"Bearer {self.key}",
            "Idempotency-Key": key,
            "Content-Type": "application/json",
            **headers,
        }
        content = body if isinstance(body, bytes) else json.dumps(body)
        return self.client.post(path, content=content, headers=sent)

    def get(self, path: str) -> Any:
        return self.client.get(path, headers={"Authorization": f"Bearer {self.key}"})


@pytest.fixture
def api(tmp_path: Path) -> Api:
    return Api(tmp_path)


def is_problem(response: Any, status: int) -> bool:
    body = response.json()
    return (
        response.status_code == status
        and response.headers["content-type"] == MEDIA_TYPE
        and body["status"] == status
        and {"type", "title", "detail"} <= body.keys()
    )


def test_a_reason_holding_a_lone_surrogate_is_422_not_500(api: Api) -> None:
    """Valid JSON ("\\ud800") but not text: the envelope's model refused it past the checks,
    a 500 whose traceback held the reason."""
    reference = api.post("/v1/events/death", document(EventType.DEATH)).json()["reference"]
    raw = b'{"reason": "\\ud800 oops"}'
    refused = api.post(f"/v1/events/{reference}/cancellation", raw, key="k2")
    assert is_problem(refused, 422)
    assert [e["pointer"] for e in refused.json()["errors"]] == ["/reason"]
    assert "oops" not in refused.text


def test_amending_a_cancelled_registration_is_a_conflict(api: Api) -> None:
    """A registration cancelled since is a 409, as the README says (it was 422); its
    cancellation sent again, with the same reason, is the cancellation published (200)."""
    reference = api.post("/v1/events/death", document(EventType.DEATH)).json()["reference"]
    cancel = {"reason": "registered in error"}
    first = api.post(f"/v1/events/{reference}/cancellation", cancel, key="k2")
    assert first.status_code == 201
    again = api.post(f"/v1/events/{reference}/cancellation", cancel, key="k3")
    assert (again.status_code, again.json()["event_id"]) == (200, first.json()["event_id"])
    other = {"reason": "another reason"}
    assert is_problem(api.post(f"/v1/events/{reference}/cancellation", other, key="k5"), 409)
    fixed = document(EventType.DEATH, date_of_death="2026-03-10")
    assert is_problem(api.post(f"/v1/events/{reference}/corrections", fixed, key="k4"), 409)


def test_the_same_correction_under_another_key_is_the_correction_published(api: Api) -> None:
    """It was published again, as a revision 2 correcting revision 1 to the same facts."""
    reference = api.post("/v1/events/death", document(EventType.DEATH)).json()["reference"]
    fixed = document(EventType.DEATH, date_of_death="2026-03-10")
    first = api.post(f"/v1/events/{reference}/corrections", fixed, key="c1")
    again = api.post(f"/v1/events/{reference}/corrections", fixed, key="c2")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["event_id"] == first.json()["event_id"]
    assert len(api.publisher.sent) == 2  # the registration and one correction


def test_a_retry_typing_the_reference_another_way_is_the_same_request(api: Api) -> None:
    """Paths take a reference typed any way, but its Idempotency-Key compared the path as
    typed: the retry of a correction to 5D4Z6-43N23 as 5d4z643n23 was "a different request"."""
    reference = api.post("/v1/events/death", document(EventType.DEATH)).json()["reference"]
    fixed = document(EventType.DEATH, date_of_death="2026-03-10")
    first = api.post(f"/v1/events/{reference.lower()}/corrections", fixed, key="c1")
    retried = api.post(f"/v1/events/{reference.replace('-', '')}/corrections", fixed, key="c1")
    assert (first.status_code, retried.status_code) == (201, 201)
    assert retried.json() == first.json()
    assert len(api.publisher.sent) == 2  # the registration and one correction


def test_a_file_sent_to_the_family_s_form_is_answered_as_a_page(api: Api) -> None:
    """A file in a field of the status form was answered with the API's JSON problem, on the
    family's page."""
    from producers import status_page

    sent = api.client.post("/status", files={"reference": ("ref.txt", b"5D4Z6-43N23")})
    assert sent.status_code == 422
    assert sent.headers["content-type"].startswith("text/html")
    assert status_page.NOT_TYPED in sent.text
    assert sent.headers["X-Frame-Options"] == status_page.HEADERS["X-Frame-Options"]


def test_no_route_and_no_method_are_problems(api: Api) -> None:
    """They were FastAPI's own {"detail": ...}."""
    assert is_problem(api.client.get("/v1/nothing"), 404)
    wrong_method = api.client.put("/v1/events/death")
    assert is_problem(wrong_method, 405)
    assert wrong_method.headers["allow"] == "POST"


def test_a_missing_key_is_401_saying_how_to_authenticate(api: Api) -> None:
    refused = api.client.get("/v1/events/ABCDE-FGHJK")
    assert is_problem(refused, 401)
    assert refused.headers["www-authenticate"] == "Bearer"


def test_a_media_type_in_capitals_is_json(api: Api) -> None:
    """Media types are case-insensitive (RFC 9110): it was 415."""
    headers = {"Content-Type": "Application/JSON"}
    accepted = api.post("/v1/events/death", document(EventType.DEATH), **headers)
    assert accepted.status_code == 201


def test_a_body_with_no_length_is_read_only_up_to_the_limit(api: Api) -> None:
    """Sent in chunks without Content-Length, it was read whole (any size) before the 413."""
    asked = 0

    async def receive() -> dict[str, Any]:
        nonlocal asked
        asked += 1
        return {"type": "http.request", "body": b" " * 1024, "more_body": asked < 1000}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = {"authorization": f"Bearer {api.key}", "idempotency-key": "big"}
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/v1/events/death", "raw_path": b"/v1/events/death",
        "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()]
        + [(b"content-type", b"application/json")],
    }  # fmt: skip
    anyio.run(api.client.app, scope, receive, send)

    assert sent[0]["status"] == 413
    assert asked * 1024 <= MAX_BODY + 2 * 1024  # not the 1,000 chunks sent


def test_a_registration_read_before_the_tracker_has_it_shows_its_services_pending(
    api: Api,
) -> None:
    """Read right after its 201, it showed no events at all."""
    submitted = api.post("/v1/events/death", document(EventType.DEATH)).json()
    read = api.client.get(
        f"/v1/events/{submitted['reference']}", headers={"Authorization": f"Bearer {api.key}"}
    ).json()
    (shown,) = read["events"]
    assert (shown["event_id"], shown["action"]) == (submitted["event_id"], "REGISTERED")
    assert [s["outcome"] for s in shown["services"]] == [None] * 4


def test_the_openapi_document_lists_what_each_route_answers(api: Api) -> None:
    """The read listed only a 422 it never gives; submissions a 404 they never give; the
    probes asked for a key they do not need."""
    paths = api.client.get("/openapi.json").json()["paths"]
    codes = {
        (path, method): set(operation["responses"])
        for path, methods in paths.items()
        for method, operation in methods.items()
    }
    assert codes[("/v1/events/{reference}", "get")] == {"200", "401", "404", "429", "503"}
    assert "404" not in codes[("/v1/events/death", "post")]
    assert "404" in codes[("/v1/events/{reference}/corrections", "post")]
    assert "403" in codes[("/v1/events/death", "post")]  # another office's district
    assert "403" not in codes[("/v1/events/{reference}/corrections", "post")]
    assert paths["/healthz"]["get"]["security"] == []
    assert codes[("/readyz", "get")] == {"200", "503"}  # it listed 200 only


def test_the_openapi_document_describes_the_bodies_the_api_sends(api: Api) -> None:
    """Amendments listed a 422 of FastAPI's HTTPValidationError the API never sends (every
    error is problem+json), and the receipts and statuses had no schema."""
    openapi = api.client.get("/openapi.json").json()
    corrections = openapi["paths"]["/v1/events/{reference}/corrections"]["post"]["responses"]
    assert list(corrections["422"]["content"]) == ["application/problem+json"]
    assert "HTTPValidationError" not in json.dumps(openapi)
    created = openapi["paths"]["/v1/events/death"]["post"]["responses"]["201"]
    receipt = created["content"]["application/json"]["schema"]["properties"]
    sent = api.post("/v1/events/death", document(EventType.DEATH))
    assert sent.status_code == 201
    assert set(sent.json()) == set(receipt)
    assert "Location" in created["headers"]
    read = openapi["paths"]["/v1/events/{reference}"]["get"]["responses"]["200"]
    status = read["content"]["application/json"]["schema"]["properties"]
    authorised = {"Authorization": f"Bearer {api.key}"}
    shown = api.client.get(sent.headers["Location"], headers=authorised)
    assert set(shown.json()) == set(status)


def test_a_response_the_key_store_cannot_keep_is_still_given(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Published and recorded, then a 500 because the key's store was locked as the answer
    was kept: the client retried what had succeeded."""

    def locked(*_args: Any, **_kwargs: Any) -> Any:
        raise OperationalError("UPDATE", {}, sqlite3.OperationalError("database is locked"))

    monkeypatch.setattr(idempotency, "update", locked)
    first = api.post("/v1/events/death", document(EventType.DEATH))
    assert first.status_code == 201
    monkeypatch.undo()
    again = api.post("/v1/events/death", document(EventType.DEATH))  # its answer not kept
    assert (again.status_code, again.json()["event_id"]) == (200, first.json()["event_id"])
    assert len(api.publisher.sent) == 1


def test_a_key_the_store_cannot_reserve_publishes_nothing(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key's store locked as a request reserved its key: a warning, and the event
    published without the key held, so after a 503 another body could take the key."""

    def locked(*_args: Any, **_kwargs: Any) -> Any:
        raise OperationalError("INSERT", {}, sqlite3.OperationalError("database is locked"))

    monkeypatch.setattr(idempotency, "insert", locked)
    with capture_logs() as logs:
        refused = api.post("/v1/events/death", document(EventType.DEATH))
    assert is_problem(refused, 503)
    assert api.publisher.sent == []
    said = [line for line in logs if line["event"] == "idempotency_key_not_reserved"]
    assert [line["error"] for line in said] == ["database is locked"]  # why the 503, said
    monkeypatch.undo()
    assert api.post("/v1/events/death", document(EventType.DEATH)).status_code == 201


def test_a_key_another_api_instance_reserved_meanwhile_is_not_taken(
    api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two API instances on one store, one key, two bodies: both read the key free, and the
    second's reservation failing (taken) was ignored: both published, and the first client's
    retry of its own body was then "a different request"."""
    from producers.idempotency import IdempotencyKeys

    other = IdempotencyKeys(f"sqlite:///{tmp_path / 'registrar.db'}")  # the other instance's
    other.reserve(OFFICE, "k1", "the other body's digest")
    real, reads = IdempotencyKeys.get, iter([None, None])  # read twice before it reserved

    def get(keys: IdempotencyKeys, office: str, key: str) -> Any:
        return next(reads, real(keys, office, key))

    monkeypatch.setattr(IdempotencyKeys, "get", get)
    refused = api.post("/v1/events/death", document(EventType.DEATH), key="k1")
    assert is_problem(refused, 422)
    assert refused.json()["detail"] == "This Idempotency-Key was used for a different request"
    assert api.publisher.sent == []


def test_a_submission_to_an_event_type_there_is_none_of_is_404_naming_the_types(
    api: Api,
) -> None:
    """It was 405 Method Not Allowed, Allow: GET (the path of a reference's read)."""
    for path in ("/v1/events/deaths", "/v1/events/Death", "/v1/events/address_change"):
        refused = api.post(path, document(EventType.DEATH))
        assert is_problem(refused, 404), path
        assert refused.json()["detail"] == (
            "There is no such event type: submit to /v1/events/death, /v1/events/birth, "
            "/v1/events/marriage, /v1/events/address-change"
        )
    assert api.publisher.sent == []


def test_a_key_given_twice_is_400_and_nothing_is_published(api: Api) -> None:
    """The last of two date_of_death keys was published."""
    body = json.dumps(document(EventType.DEATH))[:-1] + ', "date_of_death": "2026-03-05"}'
    refused = api.post("/v1/events/death", body.encode())
    assert is_problem(refused, 400)
    assert refused.json()["detail"] == 'The body gives the key "date_of_death" twice in one object'
    assert api.publisher.sent == []


def test_a_fault_of_ours_is_a_problem_too(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: object) -> None:
        raise KeyError("QQ123456C")

    monkeypatch.setattr(Registrar, "publish_once", broken)
    client = TestClient(api.client.app, raise_server_exceptions=False)
    failed = client.post(
        "/v1/events/death",
        content=json.dumps(document(EventType.DEATH)),
        headers={"Authorization": f"Bearer {api.key}", "Idempotency-Key": "k",
                 "Content-Type": "application/json"},
    )  # fmt: skip
    assert is_problem(failed, 500)
    assert "QQ123456C" not in failed.text


def test_a_fault_of_ours_is_counted_and_logged_as_any_request(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Answered by Starlette's outermost handler, a 500 passed no middleware: no count in
    tellusonce_http_requests_total (a 5xx alert saw nothing), no http_request line."""

    def broken(*_args: object) -> None:
        raise KeyError("QQ123456C")

    monkeypatch.setattr(Ledger, "latest", broken)
    labels = {"method": "GET", "route": "/v1/events/{reference}", "status": "500"}
    before = REGISTRY.get_sample_value("tellusonce_http_requests_total", labels) or 0
    client = TestClient(api.client.app, raise_server_exceptions=False)
    authorised = {"Authorization": f"Bearer {api.key}"}
    with capture_logs() as logs:
        failed = client.get("/v1/events/ABCDE-FGHJK", headers=authorised)
    assert is_problem(failed, 500)
    assert failed.json()["title"] == "Internal Server Error"
    assert REGISTRY.get_sample_value("tellusonce_http_requests_total", labels) == before + 1
    lines = {line["event"]: line for line in logs}
    assert lines["http_request"]["status"] == 500
    assert lines["request_failed"]["exc_info"] is True  # its traceback, messages withheld (logs.py)


def test_submission_answers_are_counted_from_zero_in_a_new_api(tmp_path: Path) -> None:
    """The submissions-failing alert divides 5xx answers by all answers to the routes
    registrars POST to: each series from 0, or increase() does not see the first answer. In a
    process of its own: this one's counters were made by other tests."""
    setup = (
        "from producers.api import create_app; from producers.submission import Registrar\n"
        "create_app(settings, Registrar(settings, Kept(), Codec()))"
    )
    samples = samples_in_a_new_process(setup, "tellusonce_http_requests_total", tmp_path)
    routes = [f"/v1/events/{t.value}" for t in EventType] + [
        "/v1/events/{reference}/corrections",
        "/v1/events/{reference}/cancellation",
    ]
    expected = {f"POST {r} {s} 0.0" for r in routes for s in ("201", "500", "503")}
    assert samples == expected


def test_the_api_does_not_serve_its_metrics(api: Api) -> None:
    """Its counters, served beside the API, showed each registration as it was made to anyone
    who could reach the API; they are on the metrics port (127.0.0.1) now."""
    api.post("/v1/events/death", document(EventType.DEATH))
    for path in ("/metrics", "/metrics/"):
        assert is_problem(api.client.get(path), 404)


def test_an_office_submits_only_in_its_districts(api: Api, tmp_path: Path) -> None:
    offices = Offices(f"sqlite:///{tmp_path / 'registrar.db'}")
    york = offices.create_key("YORK-1", ["York"])
    theirs = {"district": "York", "entry_number": 7, "office": "YORK-1"}
    leeds = {"district": "Leeds", "entry_number": 1042, "office": "YORK-1"}

    def submitted(registration: dict[str, Any]) -> Any:
        return api.post("/v1/events/death", document(EventType.DEATH, registration=registration),
                        key=str(registration), Authorization=f"Bearer {york}")  # fmt: skip

    refused = submitted(leeds)
    assert is_problem(refused, 403)
    assert refused.json()["detail"] == "Your office does not register in this district"
    assert submitted(theirs).status_code == 201
    assert len(api.publisher.sent) == 1  # York's own entry only


def test_a_revoked_key_is_401(api: Api, tmp_path: Path) -> None:
    Offices(f"sqlite:///{tmp_path / 'registrar.db'}").revoke(key_id(api.key))
    assert is_problem(api.post("/v1/events/death", document(EventType.DEATH)), 401)


def test_times_read_back_say_they_are_utc(api: Api, tmp_path: Path) -> None:
    """Read from the tracker's store (SQLite keeps no offset), they were 2026-03-13T10:30:00:
    local time where? The submission said Z."""
    submitted = api.post("/v1/events/death", document(EventType.DEATH)).json()
    tracked(TrackerStore(f"sqlite:///{tmp_path / 'tracker.db'}"), api.registrar.ledger,
            [submitted["event_id"]])  # fmt: skip
    read = api.client.get(
        f"/v1/events/{submitted['reference']}", headers={"Authorization": f"Bearer {api.key}"}
    ).json()
    (shown,) = read["events"]
    assert shown["registered_at"] == "2026-03-13T10:30:00+00:00"


def test_a_document_nested_hundreds_deep_is_a_400_not_a_500(api: Api) -> None:
    """500 to 989 deep passed the JSON reader and failed the submission's own recursive checks:
    "Something failed on our side"."""
    body = b'{"registration": ' + b"[" * 600 + b"]" * 600 + b"}"
    answered = api.post("/v1/events/death", body)
    assert is_problem(answered, 400)
    assert "nested more than 32 deep" in answered.text


def test_a_correction_sent_again_with_another_reason_points_at_its_reason(api: Api) -> None:
    """The conflict pointed at /reason, a field a correction's body does not have."""
    reference = api.post("/v1/events/death", document(EventType.DEATH)).json()["reference"]
    fixed = document(EventType.DEATH, date_of_death="2026-03-10")
    path = f"/v1/events/{reference}/corrections"
    assert api.post(path, fixed | {"correction_reason": "a"}, key="k2").status_code == 201
    again = api.post(path, fixed | {"correction_reason": "b"}, key="k3")
    assert is_problem(again, 409)
    assert [e["pointer"] for e in again.json()["errors"]] == ["/correction_reason"]


def test_an_event_larger_than_kafka_takes_is_413_and_left_unrecorded(api: Api) -> None:
    """A topic whose limit is under the event's size: a 500, and the event stayed reserved in
    the ledger as unacknowledged, published again (and refused again) each time it was sent."""
    api.publisher.publish = refuse_as_too_large  # type: ignore[method-assign]
    refused = api.post("/v1/events/death", document(EventType.DEATH))
    assert is_problem(refused, 413)
    assert "larger than its topic takes" in refused.json()["detail"]
    with api.registrar.ledger.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM submissions").scalar() == 0
    del api.publisher.publish  # Kafka takes it now (the topic's limit raised)
    published = api.post("/v1/events/death", document(EventType.DEATH))
    assert published.status_code == 201


def refuse_as_too_large(messages: Any) -> None:
    raise MessageTooLarge(f"{len(messages[0].value)} bytes: more than Kafka takes")


@pytest.mark.parametrize("how", ["a file for a field", "another method"])
def test_the_status_page_refusals_are_not_kept_or_framed_either(api: Api, how: str) -> None:
    """Errors FastAPI itself answered on /status (its form not parsed, a method it does not
    take) came without the page's headers: kept by a shared computer's browser, framed."""
    if how == "another method":
        refused = api.client.put("/status")
    else:
        refused = api.client.post("/status", files={"reference": ("r.txt", b"ABC")})
    assert refused.status_code in {405, 422}
    for name, value in status_page.HEADERS.items():
        assert refused.headers[name] == value


def test_a_key_whose_publication_failed_is_still_its_request_s(api: Api) -> None:
    """A 503 left the key free: another body took it (201), and the retry the 503 asked for
    was refused as "a different request" (422), its event unacknowledged in the ledger."""
    outage = Outage()
    api.registrar.publisher = outage  # type: ignore[assignment]
    first = document(EventType.DEATH)
    other = document(EventType.DEATH)
    other["registration"] = {**first["registration"], "entry_number": 2000}
    assert api.post("/v1/events/death", first, key="k1").status_code == 503
    outage.up = True
    assert is_problem(api.post("/v1/events/death", other, key="k1"), 422)
    retried = api.post("/v1/events/death", first, key="k1")
    assert retried.status_code == 201
    assert api.post("/v1/events/death", first, key="k1").json() == retried.json()


@pytest.mark.parametrize(
    ("body", "pointer"),
    [({"reason": "made in error", "nino": "AB123456C"}, "/nino"), ([1], "")],
)
def test_a_cancellation_body_is_read_strictly(api: Api, body: Any, pointer: str) -> None:
    """A field it does not take was ignored (201), and a list was "reason is required"."""
    reference = api.post("/v1/events/death", document(EventType.DEATH)).json()["reference"]
    refused = api.post(f"/v1/events/{reference}/cancellation", body, key="k2")
    assert is_problem(refused, 422)
    assert [e["pointer"] for e in refused.json()["errors"]] == [pointer]
    assert len(api.publisher.sent) == 1  # the registration alone


@pytest.mark.parametrize(
    ("registration", "pointer", "status"),
    [
        ({"district": "York", "entry_number": 9}, "/registration", 409),
        ({"district": "Leeds", "entry_number": 1042, "office": "YORK-1"}, "/registration/office",
         422),
    ],
)  # fmt: skip
def test_a_cancellation_naming_another_register_entry_is_refused(
    api: Api, registration: dict[str, Any], pointer: str, status: int
) -> None:
    """Leeds 1042's reference with York 9's register entry was cancelled (201: Leeds 1042,
    its benefits' changes undone everywhere), and so was one naming an office: two identifiers
    that disagree are refused, naming the register entry, and nothing is published."""
    death = document(EventType.DEATH)
    death["registration"] = {**death["registration"], "district": "Leeds", "entry_number": 1042}
    reference = api.post("/v1/events/death", death).json()["reference"]
    body = {"reason": "made in error", "registration": registration}
    refused = api.post(f"/v1/events/{reference}/cancellation", body, key="k2")
    assert is_problem(refused, status)
    assert [e["pointer"] for e in refused.json()["errors"]] == [pointer]
    assert len(api.publisher.sent) == 1  # the registration alone
    named = {"reason": "made in error", "registration": {"district": "leeds",
                                                         "entry_number": 1042}}  # fmt: skip
    assert api.post(f"/v1/events/{reference}/cancellation", named, key="k3").status_code == 201


def test_a_path_with_a_trailing_slash_is_not_redirected_by_its_host_header(api: Api) -> None:
    """A 307 to https://evil.example/v1/events/death, before any key was checked."""
    sent = api.post("/v1/events/death/", document(EventType.DEATH), Host="evil.example")
    assert is_problem(sent, 404)
    assert "location" not in sent.headers


def test_a_method_a_path_does_not_take_is_told_every_method_it_takes(api: Api) -> None:
    """PUT /status said Allow: GET (the first of its routes): the form itself posts."""
    refused = api.client.put("/status")
    assert is_problem(refused, 405)
    assert refused.headers["Allow"] == "GET, HEAD, POST"


def test_head_is_answered_as_get_without_the_body(api: Api) -> None:
    """HEAD /healthz (an uptime check's) was 405 Method Not Allowed, Allow: GET."""
    submitted = api.post("/v1/events/death", document(EventType.DEATH)).json()
    auth = {"Authorization": f"Bearer {api.key}"}
    for path, headers in [
        ("/healthz", {}),
        ("/status", {}),
        (f"/v1/events/{submitted['reference']}", auth),
        ("/v1/events/ABCDE-FGHJK", auth),  # no such reference: the GET's 404, headers only
    ]:
        got, asked = api.client.get(path, headers=headers), api.client.head(path, headers=headers)
        assert (got.status_code, b"") == (asked.status_code, asked.content), path
        assert got.headers["content-type"] == asked.headers["content-type"]
        assert asked.headers["content-length"] == str(len(got.content))
    before = REGISTRY.get_sample_value(
        "tellusonce_http_requests_total",
        {"method": "HEAD", "route": "/healthz", "status": "200"},
    )
    api.client.head("/healthz")
    after = REGISTRY.get_sample_value(
        "tellusonce_http_requests_total",
        {"method": "HEAD", "route": "/healthz", "status": "200"},
    )
    assert after == (before or 0) + 1


def test_head_of_a_path_without_get_is_405_and_get_is_allowed_with_head(api: Api) -> None:
    """A path a GET does not take is not read for a HEAD; where GET is taken, so is HEAD."""
    refused = api.client.head("/v1/events/ABCDE-FGHJK/corrections")
    assert (refused.status_code, refused.headers["Allow"]) == (405, "POST")
    assert api.client.post("/healthz").headers["Allow"] == "GET, HEAD"
    assert api.client.put("/status").headers["Allow"] == "GET, HEAD, POST"


def test_a_key_whose_request_was_refused_unpublished_is_free_for_the_next(api: Api) -> None:
    """A 409 (or 413) tied its key to the refused body: the submission the refusal asked for,
    sent under the same key (made from the register entry, say), was 422 "used for a
    different request"."""
    assert api.post("/v1/events/death", document(EventType.DEATH), key="k1").status_code == 201
    contradicting = document(EventType.DEATH, date_of_death="2026-03-10")
    assert api.post("/v1/events/death", contradicting, key="k2").status_code == 409
    other = document(EventType.DEATH)
    other["registration"] = {**other["registration"], "entry_number": 2000}
    assert api.post("/v1/events/death", other, key="k2").status_code == 201
    api.publisher.publish = refuse_as_too_large  # type: ignore[method-assign]
    other["registration"] = {**other["registration"], "entry_number": 2001}
    assert api.post("/v1/events/death", other, key="k3").status_code == 413
    del api.publisher.publish
    other["registration"] = {**other["registration"], "entry_number": 2002}
    assert api.post("/v1/events/death", other, key="k3").status_code == 201


def test_a_second_correction_is_checked_against_the_registration_s_time(api: Api) -> None:
    """Its registered_at was the first correction's (now), so a date after the registration
    passed; the entry was registered on 2026-03-13."""
    reference = api.post("/v1/events/death", document(EventType.DEATH)).json()["reference"]
    path = f"/v1/events/{reference}/corrections"
    first = document(EventType.DEATH, date_of_death="2026-03-10")
    assert api.post(path, first, key="c1").status_code == 201
    after = document(EventType.DEATH, date_of_death="2026-03-20")
    del after["registered_at"]
    refused = api.post(path, after, key="c2")
    assert is_problem(refused, 422)
    assert refused.json()["errors"] == [
        {"pointer": "/date_of_death", "detail": "is after the registration (2026-03-13)"}
    ]


def test_no_answer_of_the_api_is_kept_by_a_cache(api: Api) -> None:
    """A reference's outcomes (an overpayment, a partner's award) had no Cache-Control."""
    submitted = api.post("/v1/events/death", document(EventType.DEATH))
    read = api.client.get(
        f"/v1/events/{submitted.json()['reference']}",
        headers={"Authorization": f"Bearer {api.key}"},
    )
    refused = api.client.get("/v1/events/ABCDE-FGHJK")
    for response in (submitted, read, refused, api.client.get("/healthz")):
        assert response.headers["Cache-Control"] == "no-store"


def test_a_cancellation_of_a_reference_two_registrations_share_says_which(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One office's entries 1042 and 2 under one reference: a cancellation cancelled whichever
    was amended last. It is a 409 naming both until its body names the register entry."""
    from producers import submission
    from tests.handlers import SHARED

    monkeypatch.setattr(submission, "reference", lambda *_args: SHARED)
    api = Api(tmp_path)
    for n in (1042, 2):
        registration = {"district": "Leeds", "entry_number": n, "office": OFFICE}
        assert api.post("/v1/events/death", document(EventType.DEATH, registration=registration),
                        key=f"r{n}").status_code == 201  # fmt: skip
    path = f"/v1/events/{SHARED}/cancellation"
    which = api.post(path, {"reason": "registered in error"}, key="c1")
    assert is_problem(which, 409)
    assert "names 2 registrations (Leeds 1042, Leeds 2)" in which.json()["errors"][0]["detail"]
    named = {"reason": "registered in error", "registration": {"district": "Leeds",
                                                               "entry_number": 2}}  # fmt: skip
    cancelled = api.post(path, named, key="c2")
    assert cancelled.status_code == 201
    sent = api.registrar.ledger.find(cancelled.json()["event_id"])
    assert sent is not None
    assert sent.envelope.registration.entry_number == 2


def test_the_status_of_a_reference_two_registrations_share_is_read_by_register_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One office's entries 1042 and 2 under one reference: GET answered 409 "say which", and
    took no way of saying it. The register entry is asked as ?district=&entry_number=."""
    from producers import submission
    from tests.handlers import SHARED

    monkeypatch.setattr(submission, "reference", lambda *_args: SHARED)
    api = Api(tmp_path)
    ids = {}
    for n in (1042, 2):
        registration = {"district": "Leeds", "entry_number": n, "office": OFFICE}
        sent = api.post("/v1/events/death", document(EventType.DEATH, registration=registration),
                        key=f"r{n}")  # fmt: skip
        ids[n] = sent.json()["event_id"]
    path = f"/v1/events/{SHARED}"
    assert is_problem(api.get(path), 409)
    for n in (1042, 2):
        read = api.get(f"{path}?district=leeds&entry_number={n}")
        assert read.status_code == 200
        assert [e["event_id"] for e in read.json()["events"]] == [ids[n]]
    assert is_problem(api.get(f"{path}?district=Leeds&entry_number=9"), 409)  # neither
    refused = api.get(f"{path}?entry_number=two")
    assert is_problem(refused, 422)
    assert [e["pointer"] for e in refused.json()["errors"]] == ["/district"]


def test_another_office_s_reference_is_not_found_even_unacknowledged(
    api: Api, tmp_path: Path
) -> None:
    """York asking of Leeds's reference, whose publication Kafka had not acknowledged, was told
    409 "Kafka has not acknowledged this registration": that the reference was there."""
    api.publisher.publish = refuse_with_outage  # type: ignore[method-assign]
    assert api.post("/v1/events/death", document(EventType.DEATH)).status_code == 503
    with api.registrar.ledger.engine.connect() as conn:
        reference = conn.exec_driver_sql("SELECT reference FROM submissions").scalar()
    york = Offices(f"sqlite:///{tmp_path / 'registrar.db'}").create_key("YORK-1", ["York"])

    def read_as(key: str) -> Any:
        return api.client.get(f"/v1/events/{reference}", headers={"Authorization": f"Bearer {key}"})

    assert is_problem(read_as(york), 404)
    assert is_problem(read_as(api.key), 409)  # its own office is told why it cannot read it yet


def refuse_with_outage(messages: Any) -> None:
    from tellusonce.errors import BrokerUnavailable

    raise BrokerUnavailable(f"0 of {len(messages)} messages acknowledged by Kafka: broker down")
