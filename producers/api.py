"""The registrar HTTP API: submit, correct, cancel and read life events (FastAPI, OpenAPI at /docs).

Every error is RFC 9457 problem+json. A submission is answered 201 only after Kafka acknowledged
it; 503 with Retry-After when it did not (the same request again publishes it; the ledger keeps
it meanwhile, as it may have reached services). Idempotency-Key is required.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.to_thread
import structlog
from fastapi import FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route

from consumers.tracker import EventStatus, TrackerStore
from producers import documents, openapi, status_page
from producers.head import ASKED_HEAD, HeadAsGet, methods_with_head
from producers.idempotency import IdempotencyKeys, Stored, body_hash
from producers.limits import RateLimit
from producers.locks import NamedLocks
from producers.offices import Offices
from producers.problems import problem
from producers.submission import (
    Header,
    Registrar,
    cancellation,
    correction,
    entry_of,
    parse,
    problems_of,
)
from producers.submission import build_event as build
from tellusonce import __version__
from tellusonce.errors import (
    BrokerUnavailable,
    InvalidSubmission,
    MessageTooLarge,
    NotRecorded,
    StoreBusy,
    SubmissionConflict,
)
from tellusonce.events import Action, EventType, LifeEvent, Problem
from tellusonce.identity import as_issued
from tellusonce.kafka import Admin
from tellusonce.metrics import HTTP_REQUESTS
from tellusonce.settings import Settings
from tellusonce.topics import TRACKER

MAX_BODY = 16 * 1024
SUBMISSIONS = "/v1/events/"  # the routes registrars POST events to (the alert's, too)
SUBMISSION_STATUSES = ("201", "500", "503")  # published; a fault of ours; not (surely) published
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})  # as labels
RETRY_SECONDS = 5
# Submissions waiting on Kafka at once, on threads of their own: a broker that does not answer
# holds each for the publish's timeout (30 s), and in the pool reads share they took every
# thread: status queries and the family's page waited too. Beyond these, a 503 at once.
PUBLISHING_AT_ONCE = 16
ENTRY_FIELDS = frozenset({"district", "entry_number"})  # a cancellation's `registration`
ENTRY_ASKED = ("district", "must be given with entry_number, a whole number: a register entry")
NOT_OF_AN_ENTRY = "is not a field of the register entry cancelled (the office is your API key's)"
log = structlog.get_logger("tellusonce.api")
_NOT_A_TYPE = re.compile(r"^/v1/events/[^/]+$")  # POSTed to, it is not one of the types' paths
_SUBMISSION_PATHS = ", ".join(f"/v1/events/{t.value}" for t in EventType)
Builder = Callable[[str, object], LifeEvent[Any]]


class Rejected(Exception):
    """Stops a request with a problem response."""

    def __init__(self, response: Response) -> None:
        self.response = response


def create_app(settings: Settings, registrar: Registrar) -> FastAPI:  # noqa: PLR0915 (routes as closures)
    """The API over a registrar (which owns the publisher and the ledger)."""
    url = settings.store_url_for("registrar")
    offices, keys = Offices(url), IdempotencyKeys(url)
    tracker = TrackerStore(settings.store_url_for(TRACKER))
    limit = RateLimit(rate=settings.api_rate_per_second, burst=settings.api_burst)
    admin = Admin(settings)  # one client for every readiness probe
    # no redirect from a path with a trailing slash: made from the Host header, before any key
    # was checked, it sent a client (and the body it posts again) wherever the header said
    app = FastAPI(title="Tell Us Once registrar API", version=__version__,
                  description=__doc__, redirect_slashes=False)  # fmt: skip
    pages = status_page.router(registrar.ledger, tracker, settings.status_attempts_per_minute)
    app.include_router(pages)
    openapi.document(app)

    @app.exception_handler(Rejected)
    async def rejected(_request: Request, exc: Rejected) -> Response:
        return exc.response

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        """No such route, or not this method (the Allow header kept): a problem, as every error.
        A submission to an event type there is none of (/v1/events/deaths) is no such route,
        not the read of a reference by the wrong method."""
        wrong_type = request.method == "POST" and _NOT_A_TYPE.match(request.url.path)
        if exc.status_code == 405 and wrong_type:
            return problem(404, f"There is no such event type: submit to {_SUBMISSION_PATHS}")
        headers = dict(exc.headers or {})
        if exc.status_code == 405 and (methods := _methods(request.url.path)):
            headers["Allow"] = ", ".join(sorted(methods))
        return problem(exc.status_code, str(exc.detail), headers=headers)

    def _methods(path: str) -> set[str]:
        """Every method of the routes of this very path (/status: the page and its form's):
        Starlette's 405 names the first route's alone (Allow: GET)."""
        return methods_with_head({
            method
            for route in (*app.router.routes, *pages.routes)
            if isinstance(route, Route) and route.path == path
            for method in route.methods or ()
        })  # fmt: skip

    @app.exception_handler(Exception)
    async def failed(_request: Request, _exc: Exception) -> Response:
        """A fault of ours outside `measure` (which answers the rest): a problem too (uvicorn
        logs it, its message withheld: logs.py)."""
        return _fault()

    @app.exception_handler(StoreBusy)
    async def busy(_request: Request, _exc: StoreBusy) -> Response:
        return problem(503, "The status store is busy; try again", retry_after=RETRY_SECONDS)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        if request.url.path == "/status":  # a family's form (a file sent as a field): a page
            form = status_page.form(status_page.NOT_TYPED)
            return status_page.page("Check what has been done", form, status=422)
        errors = [
            (".".join(str(p) for p in e["loc"][1:]) or str(e["loc"][0]), e["msg"])
            for e in exc.errors()
        ]
        return problem(422, "The request does not match the API", errors)

    @app.middleware("http")
    async def measure(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception:  # a fault of ours: answered here, so counted and logged as any
            # request (Starlette's handler of Exception answers outside this middleware); its
            # traceback logged with messages withheld (logs.py), its route on the line below
            log.exception("request_failed")
            response = _fault()
        route = request.scope.get("route")
        if getattr(route, "path", None) == "/status":  # its refusals too (a form not parsed)
            for name, value in status_page.HEADERS.items():
                response.headers.setdefault(name, value)
        # a receipt, a reference's outcomes (an overpayment, a partner's award): for the
        # office that asked alone, not kept by a proxy or a browser's cache
        response.headers.setdefault("Cache-Control", "no-store")
        path = getattr(route, "path", "unmatched")
        method = "HEAD" if request.scope.get(ASKED_HEAD) else request.method
        method = method if method in METHODS else "OTHER"  # any token is one
        HTTP_REQUESTS.labels(method, path, str(response.status_code)).inc()
        log.info(
            "http_request",
            method=method,
            route=path,
            status=response.status_code,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
        )
        return response

    def office_of(request: Request) -> str:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        office = offices.office_of(key.strip()) if scheme.lower() == "bearer" else None
        if office is None:
            raise Rejected(
                problem(
                    401,
                    "Send a registration office's API key as 'Authorization: Bearer <key>'",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            )
        wait = limit.take(office)
        if wait is not None:
            raise Rejected(problem(429, "Too many requests from this office", retry_after=wait))
        return office

    async def read_json(request: Request) -> tuple[bytes, object]:
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/json":
            raise Rejected(problem(415, "Send the submission as application/json"))
        too_large = Rejected(problem(413, f"The body may be at most {MAX_BODY} bytes"))
        declared = request.headers.get("content-length", "0")
        if declared.isdigit() and int(declared) > MAX_BODY:
            raise too_large
        body = b""
        async for chunk in request.stream():  # chunked, with no length declared: read no more
            body += chunk
            if len(body) > MAX_BODY:
                raise too_large
        try:
            return body, documents.load(body)
        except documents.NotJson as exc:
            raise Rejected(problem(400, f"The body {exc}")) from None

    by_key, by_reference = NamedLocks(), NamedLocks()
    publishing = anyio.CapacityLimiter(PUBLISHING_AT_ONCE)

    def publish_once(office: str, key: str, digest: str, event: LifeEvent[Any]) -> Stored:
        """Publish an event unless it was already (the registrar checks and records it under
        its ledger's write lock, against every process), and keep the response under its key:
        one request at a time per Idempotency-Key (twins answered once) and per reference (its
        registration's, which its corrections and cancellations keep: a twin waits rather than
        publishes the same event again). Other requests go on meanwhile (one waiting on an
        unreachable broker holds up only those that share its locks)."""
        with by_key.hold(f"{office}\n{key}"), by_reference.hold(event.envelope.reference):
            stored = keys.get(office, key)
            if stored is not None and not (stored.pending and stored.body_hash == digest):
                return stored  # a twin of this request got here first, or another request
            taken = keys.reserve(office, key, digest) if stored is None else None
            if taken is not None and not (taken.pending and taken.body_hash == digest):
                return taken  # another instance's twin was first (answered), or another (422)
            # an amendment's reason is the body's correction_reason, or a cancellation's reason
            field = "correction_reason" if event.envelope.action == Action.CORRECTED else "reason"
            try:
                answered, published = registrar.publish_once(event, field)
            except (SubmissionConflict, InvalidSubmission, ValidationError, MessageTooLarge):
                keys.release(office, key, digest)  # refused, nothing published: not held
                raise
            stored = Stored(digest, 201 if published else 200, _receipt(answered))
            keys.put(office, key, stored)
            return stored

    async def accept(request: Request, build_for: Builder) -> Response:
        office = office_of(request)
        key = request.headers.get("idempotency-key", "").strip()
        if not key or len(key) > 200:
            raise Rejected(
                problem(
                    400,
                    "An Idempotency-Key header (1 to 200 characters) is "
                    "required, so a retried request is not applied twice",
                )
            )
        body, document = await read_json(request)
        digest = body_hash(_resource(request), body)
        stored = keys.get(office, key)
        if stored is None or (stored.pending and stored.body_hash == digest):
            try:
                event = build_for(office, document)
                if publishing.available_tokens < 1:
                    raise Rejected(
                        problem(
                            503,
                            "Too many submissions are waiting for Kafka to answer. Try again "
                            "shortly with the same Idempotency-Key.",
                            retry_after=RETRY_SECONDS,
                        )
                    )
                stored = await anyio.to_thread.run_sync(
                    publish_once, office, key, digest, event, limiter=publishing
                )
            except SubmissionConflict as exc:
                return problem(
                    409, "The submission contradicts what was published; nothing was", exc.problems
                )
            except (InvalidSubmission, ValidationError) as exc:  # a model's own check past
                # parsing's is a 422 as well, never a 500 (its messages name, never echo)
                problems = exc.problems if isinstance(exc, InvalidSubmission) else problems_of(exc)
                return problem(422, "The submission is not valid; nothing was published", problems)
            except (NotRecorded, MessageTooLarge, BrokerUnavailable) as exc:
                return _not_published(exc)
        if stored.body_hash != digest:
            return problem(422, "This Idempotency-Key was used for a different request")
        return JSONResponse(
            stored.response,
            status_code=stored.status,
            headers={"Location": stored.response["status_url"]},
        )

    def latest(
        reference: str, office: str, entry: tuple[str, int] | None = None, exactly: bool = True
    ) -> LifeEvent[Any]:
        """The newest revision of the office's registration under a reference (of its register
        entry, if the reference names several: a SubmissionConflict, 409, if none is said)."""
        try:
            return registrar.registration(reference, office, entry, exactly)
        except SubmissionConflict as exc:  # several, or one Kafka has not acknowledged yet
            raise Rejected(problem(409, "Say which registration", exc.problems)) from None
        except InvalidSubmission:  # none
            raise Rejected(
                problem(404, "No event with this reference was submitted by your office")
            ) from None

    def new_event(event_type: EventType) -> Builder:
        def build_for(office: str, document: object) -> LifeEvent[Any]:
            header, facts = parse(event_type, document)
            _own_office(header, office)
            allowed = offices.districts(office)
            if allowed is not None and header.registration.entry[0] not in allowed:
                raise Rejected(problem(403, "Your office does not register in this district"))
            return build(event_type, header, facts, settings)

        return build_for

    for event_type in EventType:
        app.add_api_route(
            f"/v1/events/{event_type.value}",
            _endpoint(accept, new_event(event_type)),
            methods=["POST"],
            status_code=201,
            name=f"submit_{event_type.name.lower()}",
            summary=f"Submit a {event_type.value} registration",
            openapi_extra=openapi.submission_body(event_type),
        )

    @app.post(
        "/v1/events/{reference}/corrections",
        status_code=201,
        openapi_extra=openapi.any_submission_body(),
    )
    async def correct(reference: str, request: Request) -> Response:
        """Correct a registration: send the whole corrected submission for the same entry."""

        def build_for(office: str, document: object) -> LifeEvent[Any]:
            reason = document.pop("correction_reason", None) if isinstance(document, dict) else None
            amended = latest(reference, office, entry_of(document), exactly=False)
            registered = registrar.ledger.registered_at(amended)
            return correction(amended, document, settings, reason, registered=registered)

        return await accept(request, build_for)

    @app.post(
        "/v1/events/{reference}/cancellation",
        status_code=201,
        openapi_extra=openapi.cancellation_body(),
    )
    async def cancel(reference: str, request: Request) -> Response:
        """Cancel a registration made in error; the body gives the reason."""

        def build_for(office: str, document: object) -> LifeEvent[Any]:
            if not isinstance(document, dict):
                raise InvalidSubmission([Problem("(document)", "must be a JSON object")])
            if other := sorted(set(document) - {"reason", "registration"}):  # read strictly
                named = other[0] if documents.FIELD_NAME.fullmatch(other[0]) else "(document)"
                raise InvalidSubmission([Problem(named, "is not a field of a cancellation")])
            entry = entry_of(document)  # which registration, if the reference names several
            said = document.get("registration")
            if isinstance(said, dict) and (other := sorted(set(said) - ENTRY_FIELDS)):
                named = other[0] if documents.FIELD_NAME.fullmatch(other[0]) else "(field)"
                raise InvalidSubmission([Problem(f"registration.{named}", NOT_OF_AN_ENTRY)])
            if "registration" in document and entry is None:
                problem_ = Problem("registration", "must be {district, entry_number} of an entry")
                raise InvalidSubmission([problem_])
            return cancellation(latest(reference, office, entry), settings, document.get("reason"))

        return await accept(request, build_for)

    @app.get("/v1/events/{reference}")
    async def read(
        reference: str,
        request: Request,
        district: str | None = None,
        entry_number: str | None = None,
    ) -> Response:
        """What each service did with the events of a reference (your office's only); of its
        register entry `district` `entry_number`, if the reference names several."""
        entry = None
        if district is not None or entry_number is not None:
            said = {"registration": {"district": district, "entry_number": entry_number}}
            entry = entry_of(said)
            if entry is None:
                raise Rejected(problem(422, "Say which register entry", [ENTRY_ASKED]))
        event = latest(reference, office_of(request), entry)
        chain = await run_in_threadpool(registrar.ledger.chain, event)
        statuses = await run_in_threadpool(tracker.status, event.envelope.reference, chain)
        seen = {s.event_id for s in statuses}
        published = await run_in_threadpool(registrar.ledger.acknowledged, chain)
        unrecorded = [e.envelope for e in published if e.envelope.event_id_text not in seen]
        # just published (the tracker has not read them yet), or dead-lettered by the tracker
        unseen = await run_in_threadpool(tracker.unrecorded, unrecorded)
        events = sorted([*statuses, *unseen], key=lambda s: s.revision)
        return JSONResponse(
            {"reference": event.envelope.reference, "events": [_status(s) for s in events]}
        )

    @app.get("/healthz", response_class=PlainTextResponse)
    async def healthz() -> str:
        return "ok\n"

    @app.get(
        "/readyz",
        response_class=PlainTextResponse,
        responses={
            200: {"description": "Kafka answers: submissions can be published"},
            503: {"description": "No broker answered within 2 s", "content": {"text/plain": {}}},
        },
    )
    async def readyz() -> Response:
        ready = await run_in_threadpool(admin.reachable, 2.0)
        return PlainTextResponse(
            "ready\n" if ready else "not ready\n", status_code=200 if ready else 503
        )

    app.add_middleware(HeadAsGet)  # added last, outermost: routes, limits, metrics see a GET
    for route in app.routes:  # series from 0: the submissions-failing alert's ratio, and
        # increase(), see the first answer of each
        path = getattr(route, "path", "")  # (an included router has none)
        if path.startswith(SUBMISSIONS) and "POST" in getattr(route, "methods", ()):
            for status in SUBMISSION_STATUSES:
                HTTP_REQUESTS.labels("POST", path, status)
    return app


def _fault() -> Response:
    return problem(500, "Something failed on our side; send the same request again later")


def _not_published(error: NotRecorded | MessageTooLarge | BrokerUnavailable) -> Response:
    """What a submission that was not (or not surely) published and recorded is answered."""
    if isinstance(error, NotRecorded):
        return problem(
            503,
            "Kafka acknowledged the event, but this registrar could not record it. Try again "
            "with the same Idempotency-Key to record it (services apply it once)."
            if error.published
            else "This registrar could not record the event, so it was not published. Try "
            "again with the same Idempotency-Key.",
            retry_after=RETRY_SECONDS,
        )
    if isinstance(error, MessageTooLarge):
        return problem(
            413,
            "Kafka refuses the event this submission makes: larger than its topic takes in one "
            "message",
        )
    return problem(
        503,
        "Kafka did not acknowledge the event (it may have reached services all the same). Try "
        "again with the same Idempotency-Key to publish it.",
        retry_after=RETRY_SECONDS,
    )


def _endpoint(
    accept: Callable[[Request, Builder], Awaitable[Response]], build_for: Builder
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return await accept(request, build_for)

    return endpoint


def _own_office(header: Header, office: str) -> None:
    if header.registration.office != office:
        raise InvalidSubmission(
            [Problem("registration.office", "must be the office of the API key used")]
        )


def _receipt(event: LifeEvent[Any]) -> dict[str, Any]:
    env = event.envelope
    return {
        "event_id": str(env.event_id),
        "reference": env.reference,
        "event_type": env.event_type.value,
        "action": env.action.value,
        "late_registration": env.late_registration,
        "status_url": f"/v1/events/{env.reference}",
    }


def _status(status: EventStatus) -> dict[str, Any]:
    return {
        "event_id": status.event_id,
        "event_type": status.event_type,
        "action": status.action,
        "revision": status.revision,
        "registered_at": status.registered_at.isoformat(),
        "services": [
            {
                "service": s.service,
                "title": s.title,
                "outcome": s.outcome,
                "actions": list(s.actions),
                "service_reference": s.service_reference,
                "processed_at": s.processed_at.isoformat() if s.processed_at else None,
            }
            for s in status.services
        ],
    }


def _resource(request: Request) -> str:
    """The path of what a request is about, a reference in it written as issued: the same
    request with the reference typed another way (lower case, without its dash) is the same
    request to its Idempotency-Key."""
    reference = request.path_params.get("reference")
    route = request.scope.get("route")
    if reference is None or not isinstance(route, Route):
        return request.url.path
    return route.path.replace("{reference}", as_issued(reference))
