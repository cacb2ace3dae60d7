"""Plain-text status of a reference: per event, what each service did or that it is pending."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from consumers.tracker import OVERDUE_SHOWN, EventStatus
from tellusonce.events import Action


def render(
    reference: str,
    statuses: list[EventStatus],
    reasons: Mapping[str, str] | None = None,
    unacknowledged: Sequence[EventStatus] = (),
) -> str:
    """The status a registrar reads, e.g. after `tellusonce status REFERENCE`: each event with
    its id (as its receipt gave it) and, for an amendment, its reason where the registrar's
    ledger has it; what Kafka has not acknowledged is said so."""
    if not statuses and not unacknowledged:
        return f"No events known for reference {reference} (yet)."
    reasons = reasons or {}
    # what amended each event, by its link (two registrations can share a reference: the one
    # listed after another does not amend it)
    amended_by = {s.supersedes: s for s in statuses if s.supersedes}
    lines = []
    for status in statuses:
        after = amended_by.get(status.event_id)
        when = status.registered_at.strftime("%Y-%m-%d %H:%M UTC")
        replaced = f" · superseded by the {Action(after.action).noun} below" if after else ""
        rejected = f", {status.rejected} rejected (each says why)" if status.rejected else ""
        lines.append(
            f"Reference {reference} · {status.event_type} {status.action.lower()} {when} · "
            f"answered by {status.confirmed}/{len(status.services)} services{rejected}{replaced}"
        )
        lines.append(f"  event {status.event_id}")
        if status.event_id in reasons:
            lines.append(f"  reason: {reasons[status.event_id]}")
        for service in status.services:
            if service.outcome is None:
                lines.append(f"  {service.title}: PENDING (no confirmation yet)")
                continue
            ref = f" · {service.service_reference}" if service.service_reference else ""
            lines.append(f"  {service.title}: {service.outcome}{ref}")
            lines.extend(f"    - {action}" for action in service.actions)
        lines.append("")
    for status in unacknowledged:
        lines.append(
            f"Reference {reference} · {status.event_type} {status.action.lower()} · not "
            "acknowledged by Kafka: run the same command again to publish it (the services may "
            "have it already)"
        )
        lines.append(f"  event {status.event_id}")
        lines.append("")
    return "\n".join(lines).rstrip()


def render_overdue(overdue: Sequence[tuple[str, EventStatus]], minutes: float) -> str:
    """The events some service has not answered (`tellusonce status --awaiting`), oldest first:
    which the overdue alert is about, and where to look."""
    since = f" for over {minutes:g} minutes" if minutes else ""
    if not overdue:
        return f"No event awaits a service's answer{since}."
    count = f"{len(overdue)}" if len(overdue) < OVERDUE_SHOWN else f"The oldest {len(overdue)}"
    lines = [f"{count} events await a service's answer{since}, oldest first:"]
    for reference, status in overdue:
        when = status.registered_at.strftime("%Y-%m-%d %H:%M UTC")
        pending = ", ".join(s.title for s in status.services if s.outcome is None)
        lines.append(
            f"  {reference} · {status.event_type} {status.action.lower()} {when} · "
            f"event {status.event_id} · awaiting {pending}"
        )
    lines.append("Each: tellusonce status REFERENCE; a service's dead letters: tellusonce dlq list")
    return "\n".join(lines)
