"""Disability benefits (DLA, PIP, Attendance Allowance): what happens when told of a life event.

- Death of a claimant: every award still in payment stops from the day after death, and each is
  settled like State Pension: paid beyond the date of death is an overpayment, paid short of it is
  arrears due to the estate (each day a seventh of the weekly rate, the total rounded to the penny
  in the family's favour: consumers/money.py). A claimant with
  no award in payment gets NOT_APPLICABLE.
- Address change of a claimant: the address is updated, from the move's day. Already there, or
  at an address from a later move (moves about one person come on different partitions):
  NOT_APPLICABLE.
- Nobody in the event claims a disability benefit: NO_RECORD.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from consumers.money import describe, settle
from consumers.rules import (
    Decision,
    Matches,
    Record,
    Service,
    day_after,
    move_address,
    no_record,
    unchanged,
)
from tellusonce.events import (
    Address,
    DeathFacts,
    EventType,
    Frozen,
    LifeEvent,
    Outcome,
    Person,
    PersonKey,
)

WHAT = "disability benefit award"


class Award(Frozen):
    """One disability benefit award (e.g. DLA care component, middle rate)."""

    benefit: Literal["DLA", "PIP", "AA"]
    component: str
    weekly_amount_pence: int
    paid_to: date
    status: Literal["IN_PAYMENT", "STOPPED"] = "IN_PAYMENT"
    stopped_from: date | None = None
    overpayment_pence: int = 0
    arrears_pence: int = 0


class DisabilityRecord(Record):
    """One claimant's disability benefit awards."""

    claimant: Person
    address: Address
    address_from: date | None = None  # the day the move that gave the address took effect
    awards: tuple[Award, ...]

    def people(self) -> list[PersonKey]:
        return [self.claimant.key(self.address.postcode)]

    def summary(self) -> str:
        paying = [f"{a.benefit} {a.component}" for a in self.awards if a.status == "IN_PAYMENT"]
        return "in payment: " + ", ".join(paying) if paying else "no award in payment"


def on_death(event: LifeEvent[Any], matches: Matches) -> Decision:
    """Stop every award in payment from the day after death and settle each."""
    facts: DeathFacts = event.facts
    record = matches.get("deceased")
    if not isinstance(record, DisabilityRecord):
        return no_record(WHAT)
    if not any(a.status == "IN_PAYMENT" for a in record.awards):
        return unchanged("No disability benefit award in payment", record)
    stop_from = day_after(facts.date_of_death)
    actions: list[str] = []
    awards = []
    for award in record.awards:
        if award.status != "IN_PAYMENT":
            awards.append(award)
            continue
        settlement = settle(award.weekly_amount_pence, award.paid_to, facts.date_of_death)
        name = f"{award.benefit} {award.component}"
        actions.append(f"{name} stopped from {stop_from}")
        actions.extend(describe(settlement, name))
        awards.append(
            award.model_copy(
                update={
                    "status": "STOPPED",
                    "stopped_from": stop_from,
                    "overpayment_pence": settlement.overpayment_pence,
                    "arrears_pence": settlement.arrears_pence,
                }
            )
        )
    changed = record.model_copy(update={"awards": tuple(awards)})
    return Decision(Outcome.APPLIED, tuple(actions), (changed,), record.record_id)


SERVICE = Service(
    name="disability",
    title="Disability benefits (DLA, PIP, Attendance Allowance)",
    record_type=DisabilityRecord,
    rules={
        EventType.DEATH: on_death,
        EventType.ADDRESS_CHANGE: lambda event, matches: move_address(
            event, matches, DisabilityRecord, WHAT
        ),
    },
    # a death registered without a NINO is matched at its usual address: found once a move
    # there, read after it, is applied
    brings_people=frozenset({EventType.ADDRESS_CHANGE}),
)
