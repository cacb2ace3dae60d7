"""Money in integer pence: formatting, and settling a weekly payment up to a date of death.

A weekly benefit paid up to and including `paid_to` for someone entitled up to and including
`entitled_to` was overpaid by the days in between (paid_to after entitled_to), or is owed arrears
for them (paid_to before entitled_to). Each day is a seventh of the weekly rate, and the total is
rounded to the penny in the family's favour (an overpayment down, arrears up), so the rounding
never counts against them.
"""

from __future__ import annotations

from datetime import date
from typing import NamedTuple

from consumers.rules import counted


class Settlement(NamedTuple):
    """What is owed either way after a payment stops."""

    overpayment_pence: int
    arrears_pence: int
    days: int


def settle(weekly_pence: int, paid_to: date, entitled_to: date) -> Settlement:
    """Overpayment (paid past entitlement) or arrears (entitled past payment) in pence."""
    days = (paid_to - entitled_to).days
    if days > 0:
        return Settlement(weekly_pence * days // 7, 0, days)
    return Settlement(0, -(weekly_pence * days // 7), -days)  # -(-x // 7): x / 7 rounded up


def pounds(pence: int) -> str:
    """£1,234.56 from 123456."""
    return f"£{pence // 100:,}.{pence % 100:02d}"


def describe(settlement: Settlement, what: str) -> list[str]:
    """Plain words for a settlement, e.g. 'State Pension overpayment £65.14 recorded (4 days)'."""
    if settlement.overpayment_pence:
        return [
            f"{what} overpayment {pounds(settlement.overpayment_pence)} recorded "
            f"({counted(settlement.days, 'day')} paid after death)"
        ]
    if settlement.arrears_pence:
        return [
            f"{what} arrears {pounds(settlement.arrears_pence)} due to the estate "
            f"({counted(settlement.days, 'day')} unpaid before death)"
        ]
    return []
