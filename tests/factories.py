"""Valid submissions and events for tests, built from examples/ and small overrides; and the
demo's records (consumers.seed) by id."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from consumers.seed import HOME, demo_records
from producers.submission import build_event, correction, parse
from tellusonce.events import Address, EventType, LifeEvent, Person
from tellusonce.settings import Settings

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
RECORDS = demo_records(others=0)


def record(service: str, record_id: str) -> Any:
    """One of the demo's records (the hero's family and their neighbours) of a service."""
    return next(r for r in RECORDS[service] if r.record_id == record_id)


def document(event_type: EventType, **changes: Any) -> dict[str, Any]:
    """The example submission of a type, with top-level fields replaced."""
    doc = json.loads((EXAMPLES / f"{event_type.value}.json").read_text(encoding="utf-8"))
    doc = copy.deepcopy(doc)
    doc.update(changes)
    return doc


def event(
    event_type: EventType, settings: Settings | None = None, **changes: Any
) -> LifeEvent[Any]:
    """A built (not published) life event from the example submission."""
    header, facts = parse(event_type, document(event_type, **changes))
    return build_event(event_type, header, facts, settings or Settings())


def deaths(count: int, first: int = 1) -> list[LifeEvent[Any]]:
    """Distinct deaths: the example under register entries first .. first + count - 1."""
    return [
        event(EventType.DEATH, registration={"district": "Leeds", "entry_number": n, "office": "L"})
        for n in range(first, first + count)
    ]


def with_deceased_nino(death: LifeEvent[Any], nino: str) -> LifeEvent[Any]:
    """A death with the deceased's NINO replaced, not validated (a NINO no one can have makes an
    event that encodes as valid Avro and that consumers must refuse)."""
    deceased = Person.model_construct(**{**death.facts.deceased.__dict__, "nino": nino})
    facts = death.facts.model_construct(**{**death.facts.__dict__, "deceased": deceased})
    return death.model_construct(envelope=death.envelope, facts=facts)


def corrected_death(original: LifeEvent[Any], died: str) -> LifeEvent[Any]:
    """A correction of a death: the example with another date of death."""
    return correction(original, document(EventType.DEATH, date_of_death=died), Settings(), None)


NEW_HOME = Address(lines=("5 New Road", "Leeds"), postcode="LS7 3BB")


def move(*people: Any, new: Address = NEW_HOME) -> Any:
    """People of the demo's home moving together to `new`."""
    return event(
        EventType.ADDRESS_CHANGE,
        people_moving=[p.model_dump(mode="json") for p in people],
        old_address=HOME.model_dump(mode="json"),
        new_address=new.model_dump(mode="json"),
    )
