"""The registry of reference services, by name as in the subscription matrix."""

from __future__ import annotations

from consumers import council_tax, disability, housing_benefit, pensions
from consumers.rules import Service

SERVICES: dict[str, Service] = {
    s.name: s
    for s in (pensions.SERVICE, disability.SERVICE, council_tax.SERVICE, housing_benefit.SERVICE)
}
