"""State Pension: what the Department for Work and Pensions does when told of a life event.

- Death of a pensioner: the State Pension stops from the day after death. If it was paid beyond
  the date of death the difference is an overpayment to recover from the estate; if it was paid
  only up to a date before death, the difference is arrears due to the estate (each day a
  seventh of the weekly rate, the total rounded to the penny in the family's favour:
  consumers/money.py). A surviving spouse or civil partner who also draws State
  Pension is flagged for a bereavement review (inherited entitlement) and recorded as widowed,
  whether or not the deceased drew it (still married, if a later union of the partner's was
  read first). A pension already stopped is not stopped twice, nor a partner flagged twice:
  nothing left to do is NOT_APPLICABLE.
- Marriage or civil partnership of a pensioner: marital status and partner recorded, and a new
  family name taken. Already recorded: NOT_APPLICABLE. A union on or before the day a
  pensioner was widowed (the partner's death, on another topic, read first) records the partner
  and the name, and the pensioner stays widowed; a union before the one recorded (read later)
  changes nothing: NOT_APPLICABLE.
- Address change of a pensioner: the address is updated, from the move's day. Already at that
  address, or at one from a later move (moves about one person come on different partitions):
  NOT_APPLICABLE.
- Nobody in the event draws State Pension: NO_RECORD.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from consumers.money import describe, pounds, settle
from consumers.rules import (
    Decision,
    Matches,
    Record,
    Service,
    day_after,
    matched,
    move_address,
    no_record,
    unchanged,
)
from tellusonce.events import (
    Address,
    DeathFacts,
    EventType,
    LifeEvent,
    MaritalStatus,
    MarriageFacts,
    Outcome,
    Person,
    PersonKey,
    UnionKind,
)

BEREAVEMENT_REVIEW = "BEREAVEMENT_REVIEW"
WHAT = "State Pension record"


class PensionRecord(Record):
    """One person's State Pension."""

    pensioner: Person
    address: Address
    address_from: date | None = None  # the day the move that gave the address took effect
    weekly_amount_pence: int
    paid_to: date
    status: Literal["IN_PAYMENT", "STOPPED"] = "IN_PAYMENT"
    stopped_from: date | None = None
    overpayment_pence: int = 0
    arrears_pence: int = 0
    marital_status: MaritalStatus
    partner: Person | None = None
    united_on: date | None = None  # the day of the union recorded (marital status, partner)
    widowed_on: date | None = None  # the day the partner died, as a death told it
    flags: tuple[str, ...] = ()

    def people(self) -> list[PersonKey]:
        return [self.pensioner.key(self.address.postcode)]

    def summary(self) -> str:
        if self.status == "IN_PAYMENT":
            return f"State Pension in payment ({pounds(self.weekly_amount_pence)} a week)"
        return f"State Pension stopped from {self.stopped_from}"


def on_death(event: LifeEvent[Any], matches: Matches) -> Decision:
    """Stop the deceased's pension, settle it, and flag a pensioner partner for review (whether
    or not the deceased drew State Pension, or it had stopped already)."""
    facts: DeathFacts = event.facts
    record = matches.get("deceased")
    partner = matches.get("partner")
    if partner is not None and record is not None and partner.record_id == record.record_id:
        # a partner named without a NINO, born the day the deceased was (surname, date of
        # birth and postcode alike), matched the deceased's own award: not theirs to review
        partner = None
    changed: list[Record] = []
    actions: list[str] = []
    if isinstance(record, PensionRecord) and record.status != "STOPPED":
        stop_from = day_after(facts.date_of_death)
        settlement = settle(record.weekly_amount_pence, record.paid_to, facts.date_of_death)
        stopped = {
            "status": "STOPPED",
            "stopped_from": stop_from,
            "overpayment_pence": settlement.overpayment_pence,
            "arrears_pence": settlement.arrears_pence,
        }
        changed.append(record.model_copy(update=stopped))
        actions.append(f"State Pension stopped from {stop_from}")
        actions += describe(settlement, "State Pension")
    if isinstance(partner, PensionRecord) and partner.status == "IN_PAYMENT":
        remarried = partner.united_on is not None and partner.united_on > facts.date_of_death
        widowed = {  # (still married: a later union is recorded, read first)
            "marital_status": partner.marital_status if remarried else MaritalStatus.WIDOWED,
            "flags": tuple(dict.fromkeys((*partner.flags, BEREAVEMENT_REVIEW))),
            "widowed_on": max(partner.widowed_on or date.min, facts.date_of_death),
        }
        if any(getattr(partner, k) != v for k, v in widowed.items()):
            changed.append(partner.model_copy(update=widowed))
            actions.append(
                f"Surviving partner's State Pension ({partner.record_id}) "
                "flagged for bereavement review"
            )
    if changed:
        return Decision(Outcome.APPLIED, tuple(actions), tuple(changed), changed[0].record_id)
    if isinstance(record, PensionRecord):
        return unchanged(f"State Pension already stopped from {record.stopped_from}", record)
    if isinstance(partner, PensionRecord):
        return unchanged("Surviving partner's State Pension already reviewed", partner)
    return no_record(WHAT)


def on_marriage(event: LifeEvent[Any], matches: Matches) -> Decision:
    """Record the new marital status, partner and family name of each pensioner party (one
    widowed on or after the day of the union stays widowed: the death was read first)."""
    facts: MarriageFacts = event.facts
    found = matched(matches, PensionRecord, "party1", "party2")
    if not found:
        return no_record(WHAT)
    status = (
        MaritalStatus.MARRIED
        if facts.kind == UnionKind.MARRIAGE
        else MaritalStatus.CIVIL_PARTNERSHIP
    )
    changed, actions = [], []
    for role, record in found:
        me = facts.parties[int(role[-1]) - 1]
        other = facts.parties[2 - int(role[-1])].after()  # the partner as named after it
        pensioner = record.pensioner
        if me.family_name_after:
            pensioner = pensioner.model_copy(update={"family_name": me.family_name_after})
        if record.united_on is not None and record.united_on > facts.married_on:
            continue  # a later union is recorded (read first)
        widowed = record.widowed_on is not None and record.widowed_on >= facts.married_on
        now = MaritalStatus.WIDOWED if widowed else status
        update = {
            "marital_status": now,
            "partner": other,
            "pensioner": pensioner,
            "united_on": facts.married_on,
        }
        if all(getattr(record, k) == v for k, v in update.items()):
            continue
        changed.append(record.model_copy(update=update))
        words = "married" if status == MaritalStatus.MARRIED else "in a civil partnership"
        since = f", widowed since {record.widowed_on}" if widowed else ""
        actions.append(f"{record.record_id}: recorded as {words} from {facts.married_on}{since}")
    if not changed:
        return unchanged("Marriage already recorded", found[0][1])
    return Decision(Outcome.APPLIED, tuple(actions), tuple(changed), found[0][1].record_id)


SERVICE = Service(
    name="pensions",
    title="State Pension",
    record_type=PensionRecord,
    rules={
        EventType.DEATH: on_death,
        EventType.MARRIAGE: on_marriage,
        EventType.ADDRESS_CHANGE: lambda event, matches: move_address(
            event, matches, PensionRecord, WHAT
        ),
    },
    # a death registered without a NINO is matched at its usual address, under the deceased's
    # family name: found once a move there, or a union naming them so, read after it, is applied
    brings_people=frozenset({EventType.ADDRESS_CHANGE, EventType.MARRIAGE}),
)
