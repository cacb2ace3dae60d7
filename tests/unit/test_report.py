"""`tellusonce status`: what a registrar reads of a reference."""

from __future__ import annotations

from datetime import UTC, datetime

from consumers.report import render
from consumers.tracker import EventStatus, ServiceStatus

AT = datetime(2026, 3, 13, 10, 30, tzinfo=UTC)


def _status(action: str, revision: int, chain: str = "e") -> EventStatus:
    pension = ServiceStatus("pensions", "State Pension", "APPLIED", ("stopped",), "SP-1", AT)
    amends = f"{chain}{revision - 1}" if revision else None
    return EventStatus(f"{chain}{revision}", "death", action, revision, AT, (pension,), amends)


def test_an_earlier_revision_says_what_superseded_it() -> None:
    """After a correction and a cancellation each revision read as current: the registration
    still "State Pension stopped ... overpayment recorded", with nothing to say it was not."""
    actions = ("REGISTERED", "CORRECTED", "CANCELLED")
    shown = render("5D4Z6-43N23", [_status(a, r) for r, a in enumerate(actions)])
    headings = [line for line in shown.splitlines() if line.startswith("Reference")]
    assert headings == [
        "Reference 5D4Z6-43N23 · death registered 2026-03-13 10:30 UTC · answered by 1/1 "
        "services · superseded by the correction below",
        "Reference 5D4Z6-43N23 · death corrected 2026-03-13 10:30 UTC · answered by 1/1 "
        "services · superseded by the cancellation below",
        "Reference 5D4Z6-43N23 · death cancelled 2026-03-13 10:30 UTC · answered by 1/1 services",
    ]


def test_a_rejected_answer_and_an_amendments_reason_are_shown() -> None:
    """ "confirmed by 2/4" counted a REJECTED answer as done; the event's id (as its receipt
    gave it) and an amendment's reason were nowhere."""
    refused = ServiceStatus("disability", "Disability", "REJECTED", ("Rejected: x",), None, AT)
    status = _status("CORRECTED", 1)
    status = EventStatus("e1", "death", "CORRECTED", 1, AT, (*status.services, refused))
    shown = render("5D4Z6-43N23", [status], {"e1": "date of death misread"}).splitlines()
    assert shown[:3] == [
        "Reference 5D4Z6-43N23 · death corrected 2026-03-13 10:30 UTC · answered by 2/2 "
        "services, 1 rejected (each says why)",
        "  event e1",
        "  reason: date of death misread",
    ]


def test_what_kafka_did_not_acknowledge_is_said_so() -> None:
    waiting = _status("CANCELLED", 2)
    shown = render("5D4Z6-43N23", [], {}, [waiting])
    assert "not acknowledged by Kafka: run the same command again" in shown
    assert "No events known" not in shown


def test_two_registrations_sharing_a_reference_do_not_supersede_each_other() -> None:
    """Listed by revision, the first registration read as "superseded by the registration
    below": another family's registration under the same reference."""
    statuses = [_status("REGISTERED", 0), _status("REGISTERED", 0, "f"), _status("CORRECTED", 1)]
    headings = [line for line in render("R", statuses).splitlines() if line.startswith("Ref")]
    assert headings == [
        "Reference R · death registered 2026-03-13 10:30 UTC · answered by 1/1 services "
        "· superseded by the correction below",
        "Reference R · death registered 2026-03-13 10:30 UTC · answered by 1/1 services",
        "Reference R · death corrected 2026-03-13 10:30 UTC · answered by 1/1 services",
    ]


def test_the_family_page_does_not_count_a_refusal_as_done() -> None:
    """ "4 have confirmed what they did" above "Could not be done automatically"."""
    from producers.status_page import answers

    refused = ServiceStatus("disability", "Disability", "REJECTED", ("Rejected: x",), None, AT)
    status = _status("REGISTERED", 0)
    status = EventStatus("e0", "death", "REGISTERED", 0, AT, (*status.services, refused))
    assert "2 services. 1 has confirmed what they did. 1 could not do it automatically" in (
        answers(status)
    )


def test_a_time_postgresql_gives_in_its_zone_is_said_in_utc() -> None:
    """11:30+01:00 (the server's Europe/London, in summer) was printed "11:30 UTC"."""
    from zoneinfo import ZoneInfo

    from consumers.tracker import _in_utc

    london = datetime(2026, 7, 2, 11, 30, tzinfo=ZoneInfo("Europe/London"))
    assert _in_utc(london) == datetime(2026, 7, 2, 10, 30, tzinfo=UTC)
    assert _in_utc(london).tzinfo is UTC
