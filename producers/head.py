"""HEAD requests answered as their GET, headers only (RFC 9110 9.3.2): FastAPI's routes take
only the methods they are declared with, so an uptime check's HEAD /healthz was 405."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

ASKED_HEAD = "tellusonce.head"  # in the scope of a HEAD answered as a GET


def methods_with_head(methods: set[str]) -> set[str]:
    """The methods a path takes, HEAD with its GET."""
    return methods | {"HEAD"} if "GET" in methods else methods


class HeadAsGet:
    """Runs a HEAD request as the GET of its path and sends the GET's status and headers (its
    Content-Length too: the length a GET would have) without the body. A path with no GET
    answers 405 as to any other method it does not take."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET", ASKED_HEAD: True}, receive, headers_only)
