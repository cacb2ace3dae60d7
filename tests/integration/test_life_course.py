"""A family's life course on the real broker, through every subscribed service and the tracker.

Chidi (a pensioner on PIP, with Housing Benefit and a Council Tax account in Leeds) has a child
with Grace, marries her, the family moves, he dies; the date of death is corrected a week
earlier; a death registered for Grace in error is cancelled. Each step waits for its
confirmations, as months pass between them in life.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from consumers.council_tax import CouncilTaxAccount
from consumers.disability import Award, DisabilityRecord
from consumers.housing_benefit import HousingBenefitClaim
from consumers.pensions import PensionRecord
from consumers.services import SERVICES
from consumers.store import ServiceStore
from consumers.tracker import EventStatus, TrackerStore
from producers.submission import Receipt, Registrar
from tellusonce.events import Address, EventType, MaritalStatus, Person
from tellusonce.settings import Settings
from tellusonce.topics import TRACKER, Topics, subscribers
from tests.integration.conftest import Fleet, wait_for

OLD_HOME = Address(lines=("1 Oak Street", "Leeds"), postcode="LS1 1AA")
NEW_HOME = Address(lines=("22 New Street", "Leeds"), postcode="LS7 3BB")
CHIDI = Person(
    given_names="Chidi", family_name="Okafor", date_of_birth=date(1958, 1, 15), nino="AB123456C"
)
GRACE = Person(
    given_names="Grace", family_name="O'Brien", date_of_birth=date(1962, 4, 22), nino="AB654321D"
)
GRACE_MARRIED = GRACE.model_copy(update={"family_name": "Okafor"})
CHILD = Person(given_names="Adaeze", family_name="Okafor", date_of_birth=date(2025, 2, 1))
PAID_TO = date(2026, 2, 15)


def person(p: Person) -> dict[str, Any]:
    return p.model_dump(mode="json", exclude_none=True)


def address(a: Address) -> dict[str, Any]:
    return a.model_dump(mode="json")


def registration(entry: int, registered_at: str) -> dict[str, Any]:
    return {
        "registration": {"district": "Leeds", "entry_number": entry, "office": "LEEDS-RO-1"},
        "registered_at": registered_at,
    }


def death(entry: int, deceased: Person, died: str, partner: Person | None) -> dict[str, Any]:
    return {
        **registration(entry, "2026-02-12T10:00:00Z"),
        "deceased": person(deceased),
        "usual_address": address(NEW_HOME),
        "marital_status": "MARRIED",
        "date_of_death": died,
        "surviving_partner": person(partner) if partner else None,
        "informant": {"name": "A relative", "relationship": "Relative"},
    }


def seed_family(settings: Settings) -> None:
    records = {
        "pensions": [
            PensionRecord(
                record_id="SP-700001",
                pensioner=CHIDI,
                address=OLD_HOME,
                weekly_amount_pence=23_000,
                paid_to=PAID_TO,
                marital_status=MaritalStatus.SINGLE,
            )
        ],
        "disability": [
            DisabilityRecord(
                record_id="PIP-700001",
                claimant=CHIDI,
                address=OLD_HOME,
                awards=(
                    Award(
                        benefit="PIP",
                        component="daily living",
                        weekly_amount_pence=7_390,
                        paid_to=PAID_TO,
                    ),
                ),
            )
        ],
        "council_tax": [
            CouncilTaxAccount(
                record_id="CT-700001",
                property=OLD_HOME,
                residents=(CHIDI,),
                annual_charge_pence=180_000,
                discount="SINGLE_PERSON",
            )
        ],
        "housing_benefit": [
            HousingBenefitClaim(
                record_id="HB-700001", claimant=CHIDI, address=OLD_HOME, weekly_award_pence=9_000
            )
        ],
    }
    for name, recs in records.items():
        with ServiceStore(
            settings.store_url_for(name), SERVICES[name].record_type
        ).transaction() as tx:
            for record in recs:
                tx.put(record)


def settled(settings: Settings, receipt: Receipt) -> EventStatus:
    """Wait until every subscribed service confirmed this event; return its status."""

    def done() -> EventStatus | None:
        for status in TrackerStore(settings.store_url_for(TRACKER)).status(receipt.reference):
            if status.event_id == str(receipt.event_id) and status.confirmed == len(
                subscribers(receipt.event_type)
            ):
                return status
        return None

    return wait_for(done, f"{receipt.event_type} {receipt.action} to be confirmed")


def outcomes(status: EventStatus) -> dict[str, str | None]:
    return {s.service: s.outcome for s in status.services}


def record(settings: Settings, service: str, record_id: str) -> Any:
    return {
        r.record_id: r
        for r in ServiceStore(
            settings.store_url_for(service), SERVICES[service].record_type
        ).records()
    }[record_id]


def test_family_life_course_reaches_every_service_once(
    settings: Settings, topics: Topics, fleet: Fleet, registrar: Registrar
) -> None:
    """Birth, marriage, move, death, correction, cancellation: final records and confirmations."""
    seed_family(settings)

    birth = registrar.submit(
        EventType.BIRTH,
        {
            **registration(101, "2025-02-20T09:00:00Z"),
            "child": person(CHILD),
            "parents": [person(CHIDI), person(GRACE)],
            "address": address(OLD_HOME),
        },
    )
    assert outcomes(settled(settings, birth)) == {"housing_benefit": "APPLIED"}

    marriage = registrar.submit(
        EventType.MARRIAGE,
        {
            **registration(102, "2025-06-14T15:00:00Z"),
            "kind": "MARRIAGE",
            "married_on": "2025-06-14",
            "parties": [
                {"person": person(CHIDI), "address_before": address(OLD_HOME)},
                {
                    "person": person(GRACE),
                    "family_name_after": "Okafor",
                    "address_before": address(Address(lines=("9 Birch Lane",), postcode="LS2 2BB")),
                },
            ],
            "address_after": address(OLD_HOME),
        },
    )
    assert outcomes(settled(settings, marriage)) == {
        "pensions": "APPLIED",
        "council_tax": "APPLIED",
        "housing_benefit": "APPLIED",
    }

    move = registrar.submit(
        EventType.ADDRESS_CHANGE,
        {
            **registration(103, "2025-09-03T11:00:00Z"),
            "people_moving": [person(CHIDI), person(GRACE_MARRIED), person(CHILD)],
            "old_address": address(OLD_HOME),
            "new_address": address(NEW_HOME),
            "effective_on": "2025-09-01",
        },
    )
    assert set(outcomes(settled(settings, move)).values()) == {"APPLIED"}

    died = registrar.submit(EventType.DEATH, death(104, CHIDI, "2026-02-10", GRACE_MARRIED))
    assert outcomes(settled(settings, died)) == {
        "pensions": "APPLIED",
        "disability": "APPLIED",
        "council_tax": "APPLIED",
        "housing_benefit": "NO_RECORD",  # the claim ended when they moved
    }
    assert record(settings, "pensions", "SP-700001").overpayment_pence == 23_000 * 5 // 7

    corrected = registrar.correct(
        died.reference,
        death(104, CHIDI, "2026-02-03", GRACE_MARRIED),
        reason="date of death misread from the certificate",
    )
    assert corrected.reference == died.reference
    assert outcomes(settled(settings, corrected)) == {
        "pensions": "APPLIED",
        "disability": "APPLIED",
        "council_tax": "APPLIED",
        "housing_benefit": "NO_RECORD",  # the claim ended when they moved
    }

    mistaken = registrar.submit(EventType.DEATH, death(105, GRACE_MARRIED, "2026-02-10", None))
    assert outcomes(settled(settings, mistaken))["council_tax"] == "APPLIED"
    cancelled = registrar.cancel(mistaken.reference, reason="registered in error")
    assert outcomes(settled(settings, cancelled)) == {
        "pensions": "NOT_APPLICABLE",
        "disability": "NOT_APPLICABLE",
        "council_tax": "APPLIED",
        "housing_benefit": "NOT_APPLICABLE",
    }

    pension = record(settings, "pensions", "SP-700001")
    assert (pension.status, pension.stopped_from) == ("STOPPED", date(2026, 2, 4))
    assert (pension.overpayment_pence, pension.marital_status) == (23_000 * 12 // 7, "MARRIED")
    assert (pension.partner, pension.address) == (GRACE_MARRIED, NEW_HOME)  # her name after
    (award,) = record(settings, "disability", "PIP-700001").awards
    assert (award.status, award.overpayment_pence) == ("STOPPED", 7_390 * 12 // 7)
    old_account = record(settings, "council_tax", "CT-700001")
    assert (old_account.status, old_account.closed_from) == ("CLOSED", date(2025, 9, 1))
    new_account = record(settings, "council_tax", f"CT-N{move.event_id.hex.upper()}")
    assert new_account.residents == (GRACE_MARRIED, CHILD)
    assert (new_account.discount, new_account.discount_from) == ("SINGLE_PERSON", date(2026, 2, 4))
    claim = record(settings, "housing_benefit", "HB-700001")
    assert (claim.status, claim.ended_from, claim.partner, claim.children) == (
        "ENDED",
        date(2025, 9, 1),
        GRACE_MARRIED,  # by her name after the marriage
        (CHILD,),
    )

    history = TrackerStore(settings.store_url_for(TRACKER)).status(died.reference)
    assert [(s.action, s.revision) for s in history] == [("REGISTERED", 0), ("CORRECTED", 1)]
    for receipt in (birth, marriage, move, died, corrected, mistaken, cancelled):
        for service in subscribers(receipt.event_type):
            assert (
                str(receipt.event_id)
                in ServiceStore(
                    settings.store_url_for(service), SERVICES[service].record_type
                ).outcomes()
            )
