"""Synthetic demo records for every service's store: the hero couple of the design (§7) and others.

Everyone here is invented. NINOs have a valid format (prefix letters allowed by HMRC's rules) but
are made up; the hero couple's match examples/death.json.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from datetime import date, timedelta

from consumers.council_tax import CouncilTaxAccount
from consumers.disability import Award, DisabilityRecord
from consumers.housing_benefit import HousingBenefitClaim
from consumers.pensions import PensionRecord
from consumers.rules import Record
from consumers.services import SERVICES
from consumers.store import ServiceStore
from tellusonce.events import Address, MaritalStatus, Person
from tellusonce.fields import NINO_NEVER_ISSUED
from tellusonce.settings import Settings

HOME = Address(lines=("14 Elm Road", "Headingley", "Leeds"), postcode="LS6 2AB")
ARTHUR = Person(
    given_names="Arthur James",
    family_name="Thompson",
    date_of_birth=date(1946, 5, 14),
    nino="JT123456A",
)
MARGARET = Person(
    given_names="Margaret", family_name="Thompson", date_of_birth=date(1949, 9, 2), nino="JT654321B"
)
PAID_TO = date(2026, 3, 15)

_GIVEN = [
    "Aisha",
    "Bronwen",
    "Chidi",
    "Dafydd",
    "Eilidh",
    "Farah",
    "Grace",
    "Hamza",
    "Ioana",
    "Jack",
]
_FAMILY = ["Patel", "O'Brien", "Smith-Jones", "Nguyễn", "Kowalski", "Evans", "Begum", "Murray"]
_POSTCODES = ["LS6 1AA", "M1 2AB", "CF10 3AT", "EH1 1YZ", "B33 8TH", "SW1A 1AA"]
_PREFIX_LETTERS = "ABCEGHJKLMNPRSTWXYZ"


def crowd(count: int, seed: int = 7) -> list[tuple[Person, Address]]:
    """Synthetic people and their addresses, the same for the same count and seed."""
    rng = random.Random(seed)  # noqa: S311 (synthetic demo data, not security)
    people = []
    for i in range(count):
        prefix = "TN"
        while prefix in NINO_NEVER_ISSUED:
            prefix = rng.choice("ABCEHJKLMPRSTWXY") + rng.choice(_PREFIX_LETTERS)
        person = Person(
            given_names=rng.choice(_GIVEN),
            family_name=rng.choice(_FAMILY),
            date_of_birth=date(1940, 1, 1) + timedelta(days=rng.randrange(30_000)),
            nino=f"{prefix}{rng.randrange(10**6):06d}{'ABCD'[i % 4]}",
        )
        address = Address(lines=(f"{i + 1} Example Street",), postcode=rng.choice(_POSTCODES))
        people.append((person, address))
    return people


def demo_records(others: int = 20) -> dict[str, list[Record]]:
    """Every service's demo records, by service name."""
    people = crowd(others)
    pensions: list[Record] = [
        PensionRecord(
            record_id="SP-100001",
            pensioner=ARTHUR,
            address=HOME,
            weekly_amount_pence=23_000,
            paid_to=PAID_TO,
            marital_status=MaritalStatus.MARRIED,
        ),
        PensionRecord(
            record_id="SP-100002",
            pensioner=MARGARET,
            address=HOME,
            weekly_amount_pence=17_650,
            paid_to=PAID_TO,
            marital_status=MaritalStatus.MARRIED,
        ),
    ]
    pensions += [
        PensionRecord(
            record_id=f"SP-2{i:05d}",
            pensioner=p,
            address=a,
            weekly_amount_pence=17_000 + 100 * i,
            paid_to=PAID_TO,
            marital_status=MaritalStatus.SINGLE,
        )
        for i, (p, a) in enumerate(people)
    ]
    disability: list[Record] = [
        DisabilityRecord(
            record_id="DLA-200001",
            claimant=ARTHUR,
            address=HOME,
            awards=(
                Award(
                    benefit="DLA",
                    component="care component, middle rate",
                    weekly_amount_pence=7_390,
                    paid_to=date(2026, 3, 22),
                ),
                Award(
                    benefit="DLA",
                    component="mobility component, lower rate",
                    weekly_amount_pence=2_920,
                    paid_to=date(2026, 3, 22),
                ),
            ),
        )
    ]
    disability += [
        DisabilityRecord(
            record_id=f"PIP-3{i:05d}",
            claimant=p,
            address=a,
            awards=(
                Award(
                    benefit="PIP",
                    component="daily living, standard rate",
                    weekly_amount_pence=7_390,
                    paid_to=PAID_TO,
                ),
            ),
        )
        for i, (p, a) in enumerate(people[::2])
    ]
    council_tax: list[Record] = [
        CouncilTaxAccount(
            record_id="CT-300001",
            property=HOME,
            residents=(ARTHUR, MARGARET),
            annual_charge_pence=198_000,
        )
    ]
    council_tax += [
        CouncilTaxAccount(
            record_id=f"CT-4{i:05d}",
            property=a,
            residents=(p,),
            annual_charge_pence=150_000 + 1_000 * i,
            discount="SINGLE_PERSON",
        )
        for i, (p, a) in enumerate(people)
    ]
    housing_benefit: list[Record] = [
        HousingBenefitClaim(
            record_id="HB-500001",
            claimant=ARTHUR,
            partner=MARGARET,
            address=HOME,
            weekly_award_pence=9_850,
        )
    ]
    housing_benefit += [
        HousingBenefitClaim(
            record_id=f"HB-6{i:05d}", claimant=p, address=a, weekly_award_pence=8_000 + 50 * i
        )
        for i, (p, a) in enumerate(people[1::3])
    ]
    return {
        "pensions": pensions,
        "disability": disability,
        "council_tax": council_tax,
        "housing_benefit": housing_benefit,
    }


def seed(settings: Settings, others: int = 20, only_empty: bool = False) -> dict[str, int]:
    """Write the demo records into every service's store (replacing records of the same id);
    if `only_empty`, into the stores that hold none (a seed cut short goes on where it was)."""
    records = demo_records(others)
    counts = {}
    for name, store in _stores(settings, list(records)):
        if only_empty and store.holds_records():
            continue
        with store.transaction() as tx:
            for record in records[name]:
                tx.put(record)
        counts[name] = len(records[name])
    return counts


def seeded(settings: Settings) -> list[str]:
    """The services whose stores hold records already (seeded, or changed by events since:
    seeding again would put back what events changed)."""
    seeding = list(demo_records(0))
    return [name for name, store in _stores(settings, seeding) if store.holds_records()]


def _stores(settings: Settings, names: Sequence[str]) -> Iterator[tuple[str, ServiceStore]]:
    """Each named service's store, opened in turn and closed once the caller is done with it."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        store = ServiceStore(settings.store_url_for(name), SERVICES[name].record_type)
        try:
            yield name, store
        finally:
            store.close()
