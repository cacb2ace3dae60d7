"""The status page a family reads: reference and date of birth in, each service's answer out.

Plain server-rendered HTML that works without JavaScript. A wrong reference/date-of-birth pair is
answered exactly like an unknown reference; attempts are limited per client address, and wrong
dates of birth per reference.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import date
from html import escape
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from sqlalchemy.exc import OperationalError

from consumers.tracker import EventStatus, TrackerStore
from producers.ledger import Ledger
from producers.limits import RateLimit
from tellusonce.errors import StoreBusy
from tellusonce.events import REFERENCE_PATTERN, Action
from tellusonce.identity import as_issued

NOT_FOUND = (
    "We could not find a notification with that reference and date of birth. "
    "Check both against the letter from the register office and try again."
)
PLAIN = {
    "APPLIED": "Done",
    "NO_RECORD": "No record found, so nothing needed to change",
    "NOT_APPLICABLE": "Nothing needed to change",
    "REJECTED": "Could not be done automatically; the service will contact you",
}
STYLE = """body{font-family:Arial,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;
color:#0b0c0c;line-height:1.5}h1{font-size:2rem}label,legend{font-weight:bold;display:block}
input{font-size:1.2rem;padding:.3rem;border:2px solid #0b0c0c;margin:.3rem 0 1rem}
.date input{width:4rem;margin-right:1rem}button{font-size:1.2rem;background:#00703c;color:#fff;
border:0;padding:.5rem 1rem}.error{border-left:5px solid #d4351c;padding-left:1rem;color:#d4351c}
.service{border-bottom:1px solid #b1b4b6;padding:.5rem 0}.pending{color:#505a5f}"""


# A family's answers are for them alone: not kept by a browser (its back button on a shared
# computer) or a proxy, not shown in another site's frame, and nothing loaded from elsewhere.
HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
TITLE = "Tell Us Once"  # in the browser's history: never the reference


def page(heading: str, body: str, status: int = 200) -> HTMLResponse:
    """A complete, accessible HTML page."""
    return HTMLResponse(
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{TITLE}</title><style>{STYLE}</style></head>"
        f'<body><main id="content"><h1>{escape(heading)}</h1>{body}</main></body></html>',
        status_code=status,
        headers=HEADERS,
    )


def form(error: str = "", reference: str = "") -> str:
    """The reference and date-of-birth form (GOV.UK date pattern: day, month, year)."""
    warning = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    return f"""{warning}<p>Use the reference from the register office's letter and the date of
birth of the person the registration was about.</p>
<form method="post" action="/status" novalidate>
<label for="reference">Reference</label>
<input id="reference" name="reference" value="{escape(reference)}" autocomplete="off"
 spellcheck="false" aria-describedby="reference-hint">
<div id="reference-hint">For example, 5D4Z6-43N23</div>
<fieldset class="date"><legend>Date of birth</legend>
<label for="dob-day">Day</label><input id="dob-day" name="day" inputmode="numeric">
<label for="dob-month">Month</label><input id="dob-month" name="month" inputmode="numeric">
<label for="dob-year">Year</label><input id="dob-year" name="year" inputmode="numeric">
</fieldset><button type="submit">Show what has been done</button></form>"""


NOT_A_DATE = (
    "Enter the date of birth as numbers, a day that exists: day, month and year, for example "
    "14 5 1946."
)
NOT_TYPED = "Type the reference and the date of birth into the form."
BUSY = "We cannot show this right now"
REFERENCE_ATTEMPTS_PER_HOUR = 10  # a family checks a few times; a guesser needs thousands


def what(event_type: str, action: str) -> str:
    """An event in plain words: "death correction"."""
    return escape(f"{event_type.replace('-', ' ')} {Action(action).noun}")


def answers(latest: EventStatus) -> str:
    """Each service notified and what it did, in plain English, for the newest event."""
    done = latest.confirmed - latest.rejected  # a refusal is an answer, not a thing done
    refused = (
        f" {latest.rejected} could not do it automatically and will contact you."
        if latest.rejected
        else ""
    )
    parts = [
        f"<p>The {what(latest.event_type, latest.action)} was shared with "
        f"{len(latest.services)} services. {done} {'has' if done == 1 else 'have'} confirmed "
        f"what they did.{refused}</p>"
    ]
    for service in latest.services:
        if service.outcome is None:
            parts.append(
                f'<section class="service pending"><h2>{escape(service.title)}</h2>'
                "<p>Not confirmed yet. Nothing for you to do; check again later.</p>"
                "</section>"
            )
            continue
        listed = "".join(f"<li>{escape(a)}</li>" for a in service.actions)
        parts.append(
            f'<section class="service"><h2>{escape(service.title)}</h2>'
            f"<p><strong>{escape(PLAIN[service.outcome])}</strong></p><ul>{listed}</ul>"
            "</section>"
        )
    return "".join(parts)


def _date_of_birth(day: str, month: str, year: str) -> date | None:
    """The date the form's three numbers make, or None if they make none."""
    try:
        return date(int(year), int(month), int(day))
    except (ValueError, OverflowError):  # not a date, or a year no C long holds
        return None


def _how_long(seconds: int) -> str:
    """A wait as a person reads it: seconds under a minute, else whole minutes (rounded up)."""
    if seconds < 60:
        return f"{seconds} second{'s' * (seconds != 1)}"
    minutes = -(-seconds // 60)
    return f"{minutes} minute{'s' * (minutes != 1)}"


def _network(host: str) -> str:
    """The address attempts are counted by: an IPv6 address by its /64, which one household or
    one machine is given whole (each of its 2^64 addresses would be a fresh allowance)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if address.version == 6 and address.ipv4_mapped:  # an IPv4 client of a dual-stack server
        return str(address.ipv4_mapped)
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return host


def router(ledger: Ledger, tracker: TrackerStore, attempts_per_minute: int = 5) -> APIRouter:
    """GET /status shows the form; POST /status shows the answers or the same refusal."""
    routes = APIRouter(include_in_schema=False)
    limit = RateLimit(rate=attempts_per_minute / 60, burst=attempts_per_minute)
    # and wrong dates of birth per reference, whatever the address: dates guessed from many
    # addresses. A family's own views do not count (its checks locked it out after ten in an
    # hour); once a reference's allowance is used up, even the right date waits.
    hourly = REFERENCE_ATTEMPTS_PER_HOUR
    per_reference = RateLimit(rate=hourly / 3600, burst=hourly)

    @routes.get("/status", response_class=HTMLResponse)
    async def ask() -> HTMLResponse:
        return page("Check what has been done", form())

    @routes.post("/status", response_class=HTMLResponse)
    async def show(
        request: Request,
        reference: Annotated[str, Form()] = "",
        day: Annotated[str, Form()] = "",
        month: Annotated[str, Form()] = "",
        year: Annotated[str, Form()] = "",
    ) -> HTMLResponse:
        client = _network(request.client.host if request.client else "unknown")
        reference = as_issued(reference)  # 5d4z6 43n23, or with an en dash from a letter
        if not re.fullmatch(REFERENCE_PATTERN, reference):  # no such reference: none to count
            reference = ""  # (nor to keep: a megabyte's text each was held by the limiter)
        born = _date_of_birth(day, month, year)
        wait = limit.take(client)
        if wait is None and reference and born is not None:  # a typing slip takes no try of
            wait = per_reference.take(reference)  # a reference's; requests at once each one
        if wait is not None:
            response = page(
                "Too many attempts", f"<p>Please wait {_how_long(wait)} and try again.</p>", 429
            )
            response.headers["Retry-After"] = str(wait)
            return response
        if born is None:
            return page("Check what has been done", form(NOT_A_DATE, reference), status=422)
        try:  # the ledger's store busy too (locked by a burst of submissions): said, not a 500
            found = await run_in_threadpool(ledger.registrations, reference) if reference else []
            event = next(
                (e for e in found if any(p.date_of_birth == born for p in e.facts.subjects())),
                None,
            )
            if event is None:
                return page("Check what has been done", form(NOT_FOUND, reference), status=404)
            per_reference.give_back(reference)  # the right date: a family's view does not count
            chain = await run_in_threadpool(ledger.chain, event)
            env = event.envelope
            statuses = await run_in_threadpool(tracker.status, reference, chain)
            newest = next((s for s in statuses if s.event_id == env.event_id_text), None)
            if newest is None:  # not recorded by the tracker: the services' answers, if any
                (unrecorded,) = await run_in_threadpool(tracker.unrecorded, [env])
                newest = unrecorded if unrecorded.confirmed else None
        except (StoreBusy, OperationalError):
            return page(BUSY, "<p>Please try again in a minute.</p>", status=503)
        if newest is None:  # just sent: what it replaces is not the news
            kind = what(env.event_type.value, env.action.value)
            body = f"<p>The {kind} has been sent. No service has confirmed it yet.</p>"
        else:
            body = answers(newest)
        return page(f"Reference {reference}", body)

    return routes
