"""The family status page's answers, without a broker (a ledger and a tracker store, as the
registrar's API holds them): the registration the family asks about, as it now stands."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from consumers.tracker import TrackerStore
from producers import limits, status_page, submission
from producers.submission import Registrar
from tellusonce.codec import Codec
from tellusonce.errors import BrokerUnavailable
from tellusonce.events import EventType, Outcome
from tellusonce.identity import as_issued
from tellusonce.settings import Settings
from tests.factories import document
from tests.handlers import SHARED, tracked
from tests.stand_ins import Failing, Kept


@pytest.fixture
def registrar(tmp_path: Path) -> Registrar:
    return Registrar(Settings(data_dir=tmp_path), Kept(), Codec())  # type: ignore[arg-type]


@pytest.fixture
def store(tmp_path: Path) -> TrackerStore:
    return TrackerStore(f"sqlite:///{tmp_path / 'tracker.db'}")


def ask(registrar: Registrar, store: TrackerStore, reference: str, born: str) -> Any:
    app = FastAPI()
    app.include_router(status_page.router(registrar.ledger, store, attempts_per_minute=100))
    year, month, day = born.split("-")
    form = {"reference": reference, "day": day, "month": month, "year": year}
    return TestClient(app).post("/status", data=form)


def death(**deceased: str) -> dict[str, Any]:
    doc = document(EventType.DEATH)
    doc["deceased"] |= deceased
    return doc


def test_a_correction_no_service_has_seen_yet_is_what_the_page_says(
    registrar: Registrar, store: TrackerStore
) -> None:
    """It showed the registration as current ("shared with 4 services"), as the tracker knew
    nothing newer."""
    first = registrar.submit(EventType.DEATH, death())
    tracked(store, registrar.ledger, [str(first.event_id)])
    registrar.correct(first.reference, death() | {"date_of_death": "2026-03-10"}, "mistyped")

    shown = ask(registrar, store, first.reference, "1946-05-14")

    assert shown.status_code == 200
    assert "The death correction has been sent. No service has confirmed it yet." in shown.text
    assert "registration was shared" not in shown.text


def test_a_family_finds_its_registration_under_a_shared_reference(
    registrar: Registrar, store: TrackerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other registration's newest revision was the only one looked at: its date of birth
    is not the family's, so the family was told there was no such registration."""
    monkeypatch.setattr(submission, "reference", lambda *_args: SHARED)
    leeds = registrar.submit(EventType.DEATH, death())
    york = death(date_of_birth="1950-01-02")
    york["registration"] = {"district": "York", "entry_number": 7, "office": "YORK-1"}
    registrar.submit(EventType.DEATH, york)
    theirs = registrar.ledger.latest(SHARED, "YORK-1")  # corrected, as the API corrects it
    assert theirs is not None
    fixed = york | {"date_of_death": "2026-03-10"}
    registrar.publish_once(submission.correction(theirs, fixed, registrar.settings, "typo"))
    tracked(store, registrar.ledger, [str(leeds.event_id)])

    shown = ask(registrar, store, SHARED, "1946-05-14")

    assert shown.status_code == 200
    assert "The death registration was shared with 4 services." in shown.text
    assert ask(registrar, store, SHARED, "1950-01-02").status_code == 200  # theirs too
    assert ask(registrar, store, SHARED, "1950-01-03").status_code == 404


def test_either_party_of_a_marriage_finds_it_and_nobody_else(
    registrar: Registrar, store: TrackerStore
) -> None:
    """Only the first party's date of birth was taken: the second was told there was no such
    registration, and the attempt counted against the reference's ten wrong ones."""
    married = registrar.submit(EventType.MARRIAGE, document(EventType.MARRIAGE))
    tracked(store, registrar.ledger, [str(married.event_id)])

    for born in ("1990-01-15", "1991-04-22"):  # the two parties' (examples/marriage.json)
        assert ask(registrar, store, married.reference, born).status_code == 200
    assert ask(registrar, store, married.reference, "1990-04-22").status_code == 404


def test_a_reference_is_asked_about_a_few_times_an_hour_from_any_addresses(
    registrar: Registrar, store: TrackerStore
) -> None:
    """Dates of birth guessed from addresses without end (IPv6 gives each client plenty): the
    limit per address alone let them try every date of the last century."""
    receipt = registrar.submit(EventType.DEATH, death())
    app = FastAPI()
    app.include_router(status_page.router(registrar.ledger, store, attempts_per_minute=100))

    def ask_from(address: str, reference: str) -> int:
        client = TestClient(app, client=(address, 50000))
        form = {"reference": reference, "day": "1", "month": "1", "year": "1950"}
        return client.post("/status", data=form).status_code

    hourly = status_page.REFERENCE_ATTEMPTS_PER_HOUR
    answered = [ask_from(f"2001:db8::{n}", receipt.reference) for n in range(hourly + 1)]
    assert answered == [404] * hourly + [429]
    assert ask_from("2001:db8::ff", "ZZZZZ-ZZZZZ") == 404  # another reference: not held up


def test_a_family_checking_often_is_not_locked_out_but_a_guesser_is(
    registrar: Registrar, store: TrackerStore
) -> None:
    """Every view of a reference counted: a family that looked ten times in an hour was
    refused its own answers (429) for the rest of it, as anyone knowing the reference could
    make it by asking ten times."""
    receipt = registrar.submit(EventType.DEATH, death())
    app = FastAPI()
    app.include_router(status_page.router(registrar.ledger, store, attempts_per_minute=100))

    def ask_from(address: str, born: tuple[str, str, str]) -> int:
        client = TestClient(app, client=(address, 50000))
        form = {"reference": receipt.reference, "day": born[2], "month": born[1], "year": born[0]}
        return client.post("/status", data=form).status_code

    hourly = status_page.REFERENCE_ATTEMPTS_PER_HOUR
    right, wrong = ("1946", "05", "14"), ("1950", "01", "01")
    views = [ask_from(f"2001:db8:0:{n}::1", right) for n in range(2 * hourly)]
    assert views == [200] * 2 * hourly
    guesses = [ask_from(f"2001:db8:1:{n}::1", wrong) for n in range(hourly)]
    assert guesses == [404] * hourly
    assert ask_from("2001:db8:2::1", right) == 429  # the allowance guessed away: all wait


def test_guesses_sent_at_once_are_limited_too(registrar: Registrar, store: TrackerStore) -> None:
    """With the allowance checked before the look-up and used after it, 60 wrong dates sent at
    once all got past the check: 60 answers (404), not 10 and then 429s."""
    import asyncio

    import httpx

    receipt = registrar.submit(EventType.DEATH, death())
    app = FastAPI()
    app.include_router(status_page.router(registrar.ledger, store, attempts_per_minute=100))

    async def guess(n: int) -> int:
        transport = httpx.ASGITransport(app=app, client=(f"2001:db8:{n}::1", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            form = {"reference": receipt.reference, "day": "1", "month": "1", "year": f"{1900 + n}"}
            return (await client.post("/status", data=form)).status_code

    async def all_at_once() -> list[int]:
        return list(await asyncio.gather(*(guess(n) for n in range(60))))

    answered = asyncio.run(all_at_once())
    assert answered.count(404) == status_page.REFERENCE_ATTEMPTS_PER_HOUR
    assert answered.count(429) == 60 - status_page.REFERENCE_ATTEMPTS_PER_HOUR


def test_only_buckets_not_full_again_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [0.0]
    monkeypatch.setattr(limits.time, "monotonic", lambda: clock[0])
    limit = limits.RateLimit(rate=1.0, burst=2)
    for n in range(limits.KEPT * 3):
        assert limit.take(f"client-{n}") is None
        clock[0] += 0.001  # one a millisecond: each bucket full again a second later
    assert len(limit) <= limits.KEPT  # not 30,000
    last = f"client-{limits.KEPT * 3 - 1}"
    assert limit.take(last) is None  # its second of two
    assert limit.take(last) is not None  # a recent client is still limited


@pytest.mark.parametrize("busy", ["tracker.db", "registrar.db"])
def test_a_busy_store_is_a_page_saying_so(
    registrar: Registrar, store: TrackerStore, tmp_path: Path, busy: str
) -> None:
    """It was a bare 500 (SQLAlchemy's OperationalError, raised out of the request): the
    tracker's store, or the registrar's ledger (locked by a burst of submissions, say)."""
    receipt = registrar.submit(EventType.DEATH, death())
    store.engine.dispose()
    registrar.ledger.engine.dispose()
    locker = sqlite3.connect(tmp_path / busy, isolation_level=None)
    locker.execute("PRAGMA locking_mode=EXCLUSIVE")  # another process holds it, past the
    locker.execute("BEGIN EXCLUSIVE")  # busy timeout
    try:
        shown = ask(registrar, store, receipt.reference, "1946-05-14")
    finally:
        locker.close()
    assert shown.status_code == 503
    assert status_page.BUSY in shown.text
    assert ask(registrar, store, receipt.reference, "1946-05-14").status_code == 200


def test_an_amendment_kafka_did_not_acknowledge_is_not_shown_as_sent(
    tmp_path: Path, store: TrackerStore
) -> None:
    """The page said the cancellation had been sent, hiding the services' answers to the
    registration, when it had not been published."""
    failing = Registrar(Settings(data_dir=tmp_path), Failing(), Codec())  # type: ignore[arg-type]
    first = failing.submit(EventType.DEATH, death())
    tracked(store, failing.ledger, [str(first.event_id)])
    failing.publisher.error = BrokerUnavailable("no acknowledgement")  # type: ignore[attr-defined]
    with pytest.raises(BrokerUnavailable):
        failing.cancel(first.reference, "registered in error")

    shown = ask(failing, store, first.reference, "1946-05-14")

    assert "The death registration was shared with 4 services." in shown.text
    assert "cancellation" not in shown.text


def test_attempts_from_one_ipv6_network_are_counted_together(
    registrar: Registrar, store: TrackerStore
) -> None:
    """Each address of a /64 (one household's, one machine's) was a fresh allowance."""
    app = FastAPI()
    app.include_router(status_page.router(registrar.ledger, store, attempts_per_minute=3))

    asked = iter(range(100))

    def ask_from(address: str) -> int:  # each about another reference: its own limit aside
        reference = f"ZZZZZ-{next(asked):05d}"
        form = {"reference": reference, "day": "1", "month": "1", "year": "1950"}
        return TestClient(app, client=(address, 50000)).post("/status", data=form).status_code

    assert [ask_from(f"2001:db8::{n}") for n in range(4)] == [404, 404, 404, 429]
    assert ask_from("2001:db8:0:1::1") == 404  # another network
    assert [ask_from("192.0.2.1"), ask_from("192.0.2.2")] == [404, 404]  # IPv4: by address
    # an IPv4 client of a dual-stack server: by its IPv4 address, not all in ::/64
    assert [ask_from(f"::ffff:198.51.100.{n}") for n in range(5)] == [404] * 5


def test_a_familys_page_is_not_kept_framed_or_titled_with_its_reference(
    registrar: Registrar, store: TrackerStore
) -> None:
    """A shared computer's back button or a proxy showed it again; another site could frame it;
    its title put the reference in the browser's history."""
    receipt = registrar.submit(EventType.DEATH, death())
    shown = ask(registrar, store, receipt.reference, "1946-05-14")
    assert shown.status_code == 200
    assert receipt.reference in shown.text
    assert receipt.reference not in shown.text.split("</title>")[0]
    assert shown.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in shown.headers["content-security-policy"]
    assert "default-src 'none'" in shown.headers["content-security-policy"]
    assert shown.headers["referrer-policy"] == "no-referrer"
    assert shown.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize(
    ("seconds", "said"),
    [(1, "1 second"), (59, "59 seconds"), (60, "1 minute"), (61, "2 minutes"), (279, "5 minutes")],
)
def test_a_wait_is_said_as_a_person_reads_it(seconds: int, said: str) -> None:
    """A bereaved family was told to "Please wait 279 seconds"."""
    assert status_page._how_long(seconds) == said


def test_text_that_is_no_reference_is_neither_kept_nor_echoed(
    registrar: Registrar, store: TrackerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A megabyte of text as the reference was kept as a rate limiter's key (up to 10,000 of
    them) and sent back in the page: a few hundred requests held hundreds of megabytes."""
    kept: list[str] = []
    take = status_page.RateLimit.take
    monkeypatch.setattr(
        status_page.RateLimit, "take", lambda limit, key: kept.append(key) or take(limit, key)
    )
    answered = ask(registrar, store, "A" * 1_000_000, "1950-01-01")
    assert answered.status_code == 404
    assert "AAAAAAAAAA" not in answered.text
    assert all(len(key) < 100 for key in kept)


def test_a_date_not_written_as_numbers_is_said_so_and_takes_no_try(
    registrar: Registrar, store: TrackerStore
) -> None:
    """ "May" for the month read as a wrong date of birth (404 "could not find"), and took one
    of the reference's tries an hour: ten slips, from anyone, locked the family out."""
    receipt = registrar.submit(EventType.DEATH, death())
    app = FastAPI()
    app.include_router(status_page.router(registrar.ledger, store, attempts_per_minute=100))
    client = TestClient(app)
    slip = {"reference": receipt.reference, "day": "14", "month": "May", "year": "1946"}
    for _ in range(status_page.REFERENCE_ATTEMPTS_PER_HOUR + 1):
        refused = client.post("/status", data=slip)
        assert refused.status_code == 422
        assert "as numbers" in refused.text
    assert client.post("/status", data=slip | {"month": "5"}).status_code == 200


@pytest.mark.parametrize(
    "typed", ["{a}{b}", "{a} {b}", " {a}\u2013{b} ", "lower {a}-{b}", "{a}\u2014{b}"]
)
def test_a_reference_typed_as_people_type_it_is_found(
    registrar: Registrar, store: TrackerStore, typed: str
) -> None:
    """Without its dash, with a space, an en dash pasted from a letter: "could not find"."""
    receipt = registrar.submit(EventType.DEATH, death())
    first, second = receipt.reference.split("-")
    written = typed.format(a=first, b=second)
    if written.startswith("lower "):
        written = written.removeprefix("lower ").lower()
    assert ask(registrar, store, written, "1946-05-14").status_code == 200


def test_crockford_letters_read_as_the_digits_they_look_like() -> None:
    assert as_issued("o1il5 abcde") == "01115-ABCDE"
    assert as_issued("not a reference") == "NOT A REFERENCE"


def test_answers_to_an_event_the_tracker_never_recorded_are_shown(
    registrar: Registrar, store: TrackerStore
) -> None:
    """The tracker dead-lettered the event (a schema it did not ship yet) while the services
    applied it: their four confirmations were stored, and every view said none had answered."""
    from consumers.tracker import TrackerHandler
    from tellusonce.topics import Topics, subscribers
    from tests.messages import answer, at

    receipt = registrar.submit(EventType.DEATH, death())
    published = registrar.ledger.latest(receipt.reference)
    assert published is not None
    answered = [answer(published, s, Outcome.APPLIED) for s in subscribers(EventType.DEATH)]
    tracker = TrackerHandler(store, Topics(), Codec())
    with tracker.batch(answered):
        for confirmation in answered:
            tracker.handle(confirmation, at(1))
    assert store.status(receipt.reference) == []  # not recorded

    (shown,) = store.unrecorded([published.envelope])
    assert (shown.confirmed, len(shown.services)) == (4, 4)
    page = ask(registrar, store, receipt.reference, "1946-05-14")
    assert "4 have confirmed what they did" in page.text
