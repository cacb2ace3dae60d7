"""RFC 9457 problem details: every API error as application/problem+json, naming fields by JSON
pointer and never echoing the rejected values."""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus

from fastapi.responses import JSONResponse

MEDIA_TYPE = "application/problem+json"


def pointer(field: str) -> str:
    """A JSON pointer from a dotted field path: deceased.nino → /deceased/nino."""
    if field in {"", "(document)", "(file)"}:
        return ""
    return "/" + "/".join(part.replace("~", "~0").replace("/", "~1") for part in field.split("."))


def problem(
    status: int,
    detail: str,
    errors: Sequence[tuple[str, str]] = (),
    retry_after: int | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """A problem+json response; errors are (dotted field path, reason) pairs."""
    body: dict[str, object] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,  # about:blank: the status's own phrase (RFC 9457)
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = [{"detail": reason, "pointer": pointer(field)} for field, reason in errors]
    headers = dict(headers or {})
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)
