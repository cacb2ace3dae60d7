"""State Pension: what the Department for Work and Pensions does when told of a life event.

Death of a pensioner: the State Pension stops from the day after death. If it was paid beyond the
date of death the difference is recorded as an overpayment to recover from the estate; if it was
paid only up to a date before death, the difference is arrears due to the estate (daily rate =
weekly / 7, rounded down to the penny). A surviving spouse or civil partner who also draws State
Pension is flagged for a bereavement review (inherited entitlement) and recorded as widowed.
A pension already stopped is not stopped twice (NOT_APPLICABLE).
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from consumers.money import describe, settle
from consumers.rules import Decision, Matches, Record, Service, day_after, no_record
from tellusonce.events import (
    DeathFacts,
    EventType,
    LifeEvent,
    MaritalStatus,
    Outcome,
    Person,
    PersonKey,
)

BEREAVEMENT_REVIEW = "BEREAVEMENT_REVIEW"


class PensionRecord(Record):
    """One person's State Pension."""

    pensioner: Person
    postcode: str
    weekly_amount_pence: int
    paid_to: date
    status: Literal["IN_PAYMENT", "STOPPED"] = "IN_PAYMENT"
    stopped_from: date | None = None
    overpayment_pence: int = 0
    arrears_pence: int = 0
    marital_status: MaritalStatus
    flags: tuple[str, ...] = ()

    def people(self) -> list[PersonKey]:
        return [self.pensioner.key(self.postcode)]


def on_death(event: LifeEvent[Any], matches: Matches) -> Decision:
    """Stop the deceased's pension, settle it, and flag a pensioner partner for review."""
    facts: DeathFacts = event.facts
    record = matches.get("deceased")
    if not isinstance(record, PensionRecord):
        return no_record("State Pension record")
    if record.status == "STOPPED":
        return Decision(
            Outcome.NOT_APPLICABLE,
            (f"State Pension already stopped from {record.stopped_from}",),
            service_reference=record.record_id,
        )
    stop_from = day_after(facts.date_of_death)
    settlement = settle(record.weekly_amount_pence, record.paid_to, facts.date_of_death)
    changed: list[Record] = [
        record.model_copy(
            update={
                "status": "STOPPED",
                "stopped_from": stop_from,
                "overpayment_pence": settlement.overpayment_pence,
                "arrears_pence": settlement.arrears_pence,
            }
        )
    ]
    actions = [f"State Pension stopped from {stop_from}", *describe(settlement, "State Pension")]
    partner = matches.get("partner")
    if isinstance(partner, PensionRecord) and partner.status == "IN_PAYMENT":
        changed.append(
            partner.model_copy(
                update={
                    "marital_status": MaritalStatus.WIDOWED,
                    "flags": (*partner.flags, BEREAVEMENT_REVIEW),
                }
            )
        )
        actions.append(
            f"Surviving partner's State Pension ({partner.record_id}) "
            "flagged for bereavement review"
        )
    return Decision(Outcome.APPLIED, tuple(actions), tuple(changed), record.record_id)


SERVICE = Service(
    name="pensions",
    title="State Pension",
    record_type=PensionRecord,
    rules={EventType.DEATH: on_death},
)
