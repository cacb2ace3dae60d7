"""`tellusonce status`: what a registrar reads of a reference."""

from __future__ import annotations

from datetime import UTC, datetime

from consumers.report import render
from consumers.tracker import EventStatus, ServiceStatus

AT = datetime(2026, 3, 13, 10, 30, tzinfo=UTC)


def _status(action: str, revision: int) -> EventStatus:
    pension = ServiceStatus("pensions", "State Pension", "APPLIED", ("stopped",), "SP-1", AT)
    return EventStatus(f"e{revision}", "death", action, revision, AT, (pension,))


def test_an_earlier_revision_says_what_superseded_it() -> None:
    """After a correction and a cancellation each revision read as current: the registration
    still "State Pension stopped ... overpayment recorded", with nothing to say it was not."""
    actions = ("REGISTERED", "CORRECTED", "CANCELLED")
    shown = render("5D4Z6-43N23", [_status(a, r) for r, a in enumerate(actions)])
    headings = [line for line in shown.splitlines() if line.startswith("Reference")]
    assert headings == [
        "Reference 5D4Z6-43N23 · death registered 2026-03-13 10:30 UTC · confirmed by 1/1 "
        "services · superseded by the correction below",
        "Reference 5D4Z6-43N23 · death corrected 2026-03-13 10:30 UTC · confirmed by 1/1 "
        "services · superseded by the cancellation below",
        "Reference 5D4Z6-43N23 · death cancelled 2026-03-13 10:30 UTC · confirmed by 1/1 services",
    ]
