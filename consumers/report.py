"""Plain-text status of a reference: per event, what each service did or that it is pending."""

from __future__ import annotations

from consumers.tracker import EventStatus

_NOUNS = {"REGISTERED": "registration", "CORRECTED": "correction", "CANCELLED": "cancellation"}


def render(reference: str, statuses: list[EventStatus]) -> str:
    """The status a registrar reads, e.g. after `tellusonce status REFERENCE`."""
    if not statuses:
        return f"No events known for reference {reference} (yet)."
    lines = []
    for status, after in zip(statuses, [*statuses[1:], None], strict=True):
        when = status.registered_at.strftime("%Y-%m-%d %H:%M UTC")
        replaced = f" · superseded by the {_NOUNS[after.action]} below" if after else ""
        lines.append(
            f"Reference {reference} · {status.event_type} {status.action.lower()} {when} · "
            f"confirmed by {status.confirmed}/{len(status.services)} services{replaced}"
        )
        for service in status.services:
            if service.outcome is None:
                lines.append(f"  {service.title}: PENDING (no confirmation yet)")
                continue
            ref = f" · {service.service_reference}" if service.service_reference else ""
            lines.append(f"  {service.title}: {service.outcome}{ref}")
            lines.extend(f"    - {action}" for action in service.actions)
        lines.append("")
    return "\n".join(lines).rstrip()
