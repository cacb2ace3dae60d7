"""The hero scenario on a real broker: one death, four services, each store and confirmation."""

from __future__ import annotations

from datetime import date

from consumers.services import SERVICES
from consumers.store import ServiceStore
from consumers.tracker import TrackerStore
from producers.submission import Registrar
from tellusonce.codec import Codec
from tellusonce.events import Confirmation, EventType, Outcome
from tellusonce.settings import Settings
from tellusonce.topics import TRACKER, Topics
from tests.factories import document, event
from tests.integration.conftest import Fleet, read_topic, wait_for
from tests.metrics import consumed

CODEC = Codec()


def store(settings: Settings, service: str) -> ServiceStore:
    return ServiceStore(settings.store_url_for(service), SERVICES[service].record_type)


def records(settings: Settings, service: str) -> dict[str, object]:
    return {r.record_id: r for r in store(settings, service).records()}


def confirmed(settings: Settings, reference: str) -> int:
    statuses = TrackerStore(settings.store_url_for(TRACKER)).status(reference)
    return statuses[-1].confirmed if statuses else 0


def confirmations_on_topic(settings: Settings, topics: Topics) -> list[Confirmation]:
    decoded = [CODEC.decode(m.value) for m in read_topic(settings, topics.confirmations)]
    return [c for c in decoded if isinstance(c, Confirmation)]


class TestHeroDeath:
    """A married pensioner dies; one submission; all four services act and confirm."""

    def test_one_death_reaches_all_four_services(
        self, settings: Settings, topics: Topics, fleet: Fleet, registrar: Registrar
    ) -> None:
        """Each store holds the rule's result and each service's confirmation is on the topic."""
        receipt = registrar.submit(EventType.DEATH, document(EventType.DEATH))
        wait_for(lambda: confirmed(settings, receipt.reference) == 4, "4 confirmations")

        pension, widow = (
            records(settings, "pensions")["SP-100001"],
            records(settings, "pensions")["SP-100002"],
        )
        assert (pension.status, pension.stopped_from, pension.overpayment_pence) == (
            "STOPPED",
            date(2026, 3, 12),
            13_142,
        )
        assert widow.flags == ("BEREAVEMENT_REVIEW",)
        dla = records(settings, "disability")["DLA-200001"]
        assert {a.status for a in dla.awards} == {"STOPPED"}
        account = records(settings, "council_tax")["CT-300001"]
        assert (len(account.residents), account.discount) == (1, "SINGLE_PERSON")
        claim = records(settings, "housing_benefit")["HB-500001"]
        assert (claim.status, claim.flags) == ("ENDED", ("PARTNER_INVITED_TO_CLAIM",))

        on_topic = wait_for(
            lambda: [
                c
                for c in confirmations_on_topic(settings, topics)
                if c.event_id == receipt.event_id
            ],
            "confirmations on topic",
        )
        assert sorted(SERVICES) == sorted(c.service for c in on_topic)
        assert {Outcome.APPLIED} == {c.outcome for c in on_topic}

    def test_resubmitted_registration_is_applied_once(
        self, settings: Settings, topics: Topics, fleet: Fleet, registrar: Registrar
    ) -> None:
        """The same registration twice: one event_id, answered from the registrar's ledger the
        second time; the same event on the bus again (a producer's retry after a lost
        acknowledgement): applied and confirmed once per service."""
        before = {s: consumed(s, "duplicate") for s in SERVICES}
        first = registrar.submit(EventType.DEATH, document(EventType.DEATH))
        second = registrar.submit(EventType.DEATH, document(EventType.DEATH))
        assert second == first
        assert len(read_topic(settings, topics.events(EventType.DEATH))) == 1
        registrar.publish(event(EventType.DEATH, settings))

        wait_for(
            lambda: all(consumed(s, "duplicate") > before[s] for s in SERVICES),
            "every service to see the second copy",
        )
        for service in SERVICES:
            assert {str(first.event_id): "APPLIED"} == store(settings, service).outcomes()
        pension = records(settings, "pensions")["SP-100001"]
        assert pension.overpayment_pence == 13_142  # not recovered twice
        mine = [c for c in confirmations_on_topic(settings, topics) if c.event_id == first.event_id]
        assert len(mine) == len(SERVICES)
        assert len(read_topic(settings, topics.events(EventType.DEATH))) == 2

    def test_someone_unknown_everywhere_is_no_record(
        self, settings: Settings, topics: Topics, fleet: Fleet, registrar: Registrar
    ) -> None:
        """A death nobody has records for is confirmed NO_RECORD by all four, changing nothing."""
        doc = document(
            EventType.DEATH,
            surviving_partner=None,
            marital_status="SINGLE",
            registration={"district": "York", "entry_number": 5, "office": "YORK-1"},
        )
        doc["deceased"] = {
            "given_names": "Nobody",
            "family_name": "Known",
            "date_of_birth": "1950-01-01",
            "nino": "AB999999A",
        }
        before = {service: records(settings, service) for service in SERVICES}
        receipt = registrar.submit(EventType.DEATH, doc)
        wait_for(lambda: confirmed(settings, receipt.reference) == 4, "4 confirmations")
        statuses = TrackerStore(settings.store_url_for(TRACKER)).status(receipt.reference)
        assert {s.outcome for s in statuses[0].services} == {"NO_RECORD"}
        assert {service: records(settings, service) for service in SERVICES} == before
