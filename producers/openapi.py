"""OpenAPI documentation of the request bodies, built from the same models that validate them."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import TypeAdapter, create_model

from tellusonce.events import FACTS, Action, EventType, Outcome, Registration
from tellusonce.fields import Instant

_DEFINITIONS: dict[str, Any] = {}
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key", "in": "header", "required": True,
    "description": "Any unique string per request; a retry with the same key and body returns "
                   "the first response, and the same key with another body is refused (422).",
    "schema": {"type": "string", "minLength": 1, "maxLength": 200},
}  # fmt: skip
PROBLEM = {"application/problem+json": {"schema": {"type": "object", "properties": {
    "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
    "detail": {"type": "string"},
    "errors": {"type": "array", "items": {"type": "object", "properties": {
        "detail": {"type": "string"}, "pointer": {"type": "string"}}}}}}}}  # fmt: skip
PROBLEMS = {str(code): {"description": text, "content": PROBLEM} for code, text in [
    (400, "Missing Idempotency-Key or not JSON"), (401, "Missing or unknown API key"),
    (403, "Your office does not register in the registration's district"),
    (404, "No such reference for your office"),
    (409, "Contradicts what was published for the register entry or reference (see errors)"),
    (413, "Body over 16 KiB, or the event it makes larger than Kafka takes in one message"),
    (415, "Not application/json"), (422, "Invalid submission (see errors)"),
    (429, "Rate limited (see Retry-After)"),
    (503, "Kafka did not acknowledge, or a store is busy (see Retry-After)")]}  # fmt: skip
_TEXT, _NULLABLE = {"type": "string"}, {"type": ["string", "null"]}
RECEIPT = {"application/json": {"schema": {"type": "object", "properties": {
    "event_id": {"type": "string", "format": "uuid"}, "reference": _TEXT,
    "event_type": {"enum": [t.value for t in EventType]},
    "action": {"enum": [a.value for a in Action]},
    "late_registration": {"type": "boolean"},
    "status_url": {"type": "string", "description": "where to read what each service did"}},
    "required": ["event_id", "reference", "event_type", "action", "late_registration",
                 "status_url"]}}}  # fmt: skip
_ANSWER = {"type": "object", "properties": {
    "service": _TEXT, "title": _TEXT,
    "outcome": {"enum": [*(o.value for o in Outcome), None],
                "description": "null while the service has not answered"},
    "actions": {"type": "array", "items": _TEXT}, "service_reference": _NULLABLE,
    "processed_at": {"type": ["string", "null"], "format": "date-time"}}}  # fmt: skip
_EVENT = {"type": "object", "properties": {
    "event_id": {"type": "string", "format": "uuid"}, "event_type": _TEXT, "action": _TEXT,
    "revision": {"type": "integer"}, "registered_at": {"type": "string", "format": "date-time"},
    "services": {"type": "array", "items": _ANSWER}}}  # fmt: skip
STATUS = {"application/json": {"schema": {"type": "object", "properties": {
    "reference": _TEXT,
    "events": {"type": "array", "items": _EVENT,
               "description": "the registration and its amendments, oldest first"}}}}}  # fmt: skip
RESPONSES = {
    "200": {"description": "The same registration (or correction, or cancellation with the "
                           "same reason) was already published: the existing event",
            "content": RECEIPT},
    "201": {"description": "Published and acknowledged by Kafka", "content": RECEIPT,
            "headers": {"Location": {"description": "the status_url", "schema": _TEXT}}},
    **{code: PROBLEMS[code] for code in
       ("400", "401", "409", "413", "415", "422", "429", "503")},
}  # fmt: skip
AMENDMENT_RESPONSES = {**RESPONSES, "404": PROBLEMS["404"]}
READ_RESPONSES = {
    "200": {"description": "Each event of the registration, with each service's answer",
            "content": STATUS},
    **{code: PROBLEMS[code] for code in ("401", "404", "429", "503")},
}  # fmt: skip


def _body(schema: dict[str, Any], responses: dict[str, Any] = RESPONSES) -> dict[str, Any]:
    _DEFINITIONS.update(schema.pop("$defs", {}))
    return {
        "parameters": [IDEMPOTENCY_KEY],
        "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
        "responses": responses,
    }


def submission_body(event_type: EventType) -> dict[str, Any]:
    """The documented body of a submission of one kind: its facts plus the register entry."""
    model = create_model(
        f"{FACTS[event_type].__name__.removesuffix('Facts')}Submission",
        __base__=FACTS[event_type],
        registration=(Registration, ...),
        registered_at=(Instant | None, None),
    )
    schema = TypeAdapter(model).json_schema(ref_template="#/components/schemas/{model}")
    return _body(schema, {**RESPONSES, "403": PROBLEMS["403"]})


def any_submission_body() -> dict[str, Any]:
    """A correction's body: a whole corrected submission, optionally with correction_reason."""
    return _body(
        {
            "type": "object",
            "description": "The whole corrected submission (same "
            "registration), plus an optional correction_reason",
        },
        AMENDMENT_RESPONSES,
    )


def cancellation_body() -> dict[str, Any]:
    """A cancellation's body: the reason."""
    return _body(
        {
            "type": "object",
            "required": ["reason"],
            "properties": {
                "reason": {
                    "type": "string",
                    "description": "1 to 200 characters once the spaces around it are trimmed",
                }
            },
        },
        AMENDMENT_RESPONSES,
    )


def document(app: FastAPI) -> None:
    """Make the app's OpenAPI include the body schemas and the bearer-key security scheme."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            components = schema.setdefault("components", {})
            components.setdefault("schemas", {}).update(_DEFINITIONS)
            components["securitySchemes"] = {"apiKey": {"type": "http", "scheme": "bearer"}}
            schema["security"] = [{"apiKey": []}]
            paths = schema["paths"]
            for open_route in ("/healthz", "/readyz"):  # probes: no key
                paths[open_route]["get"]["security"] = []
            paths["/v1/events/{reference}"]["get"]["responses"] = READ_RESPONSES
            _problems_only(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _problems_only(schema: dict[str, Any]) -> None:
    """Drop the application/json 422 FastAPI documents for a route with a path parameter (its
    HTTPValidationError): this API answers every error as problem+json."""
    for methods in schema["paths"].values():
        for operation in methods.values():
            content = operation.get("responses", {}).get("422", {}).get("content", {})
            content.pop("application/json", None)
    schemas = schema.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
