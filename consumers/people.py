"""The matching keys a batch's events may need, read in two queries and matched in memory.

A consumer batch reads the matching keys (record_people rows) of every NINO, and of every surname
with date of birth, its events name, up front. Matching a person is then a look-up here, with the
same rules as the store's queries: by NINO (the record at the event's postcode first, then by
record id), else by surname + date of birth + postcode (only keys without a NINO if the person has
one; of several records so found, the one whose person has the given names asked for, if only
one has: twins share the rest). Keys the batch writes are kept here too. A NINO, or a surname
with date of birth, that was not read up front is not known here, and the store asks the
database instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from tellusonce.events import PersonKey

Details = tuple[str, date, str]
Born = tuple[str, date]
"""A surname (as matched: tellusonce.fields.name_key) with a date of birth."""


class KnownPeople:
    """Matching keys by record, for the NINOs and the surnames with dates of birth read up
    front."""

    def __init__(self) -> None:
        self.ninos: set[str] = set()
        self.details: set[Born] = set()
        self._keys: dict[str, list[PersonKey]] = {}
        self._by_nino: dict[str, set[tuple[str, str | None]]] = {}
        # (record id, whether its key has a NINO, its given names) by surname, birth, postcode
        self._by_details: dict[Details, set[tuple[str, bool, str | None]]] = {}

    def read(
        self, ninos: Iterable[str], details: Iterable[Born], rows: Iterable[tuple[str, PersonKey]]
    ) -> None:
        """Add what the store read for these NINOs and surnames with dates of birth: (record
        id, key) rows."""
        for record_id, key in rows:
            if key not in self._keys.get(record_id, ()):
                self._add(record_id, key)
        self.ninos.update(ninos)
        self.details.update(details)

    def knows(self, key: PersonKey) -> bool:
        """Whether a person can be matched here without asking the database."""
        born = (key.surname, key.date_of_birth)
        return (key.nino is None or key.nino in self.ninos) and born in self.details

    def match(self, key: PersonKey) -> str | None:
        """The record id of a person (known here: see knows()), or None."""
        if key.nino:
            by_nino = self._by_nino.get(key.nino)
            if by_nino:
                return min(by_nino, key=lambda c: (_postcode_rank(c[1], key.postcode), c[0]))[0]
        if key.postcode is None:
            return None
        found = self._by_details.get((key.surname, key.date_of_birth, key.postcode), set())
        alike = [(r, given) for r, has_nino, given in found if not (key.nino and has_nino)]
        ids = {record_id for record_id, _ in alike}
        if len(ids) > 1 and key.given:  # twins' records: the one with their given names
            named = {record_id for record_id, given in alike if given == key.given}
            if len(named) == 1:
                return named.pop()
        return min(ids) if ids else None

    def keys_of(self, record_id: str) -> list[PersonKey]:
        """A record's keys known here."""
        return list(self._keys.get(record_id, []))

    def replace(self, record_id: str, keys: Iterable[PersonKey]) -> None:
        """A record's keys as written now (none: the record was removed)."""
        for key in self._keys.pop(record_id, []):
            if key.nino:
                self._by_nino[key.nino].discard((record_id, key.postcode))
            if key.postcode is not None:
                details = (key.surname, key.date_of_birth, key.postcode)
                self._by_details[details].discard((record_id, key.nino is not None, key.given))
        for key in keys:
            self._add(record_id, key)

    def _add(self, record_id: str, key: PersonKey) -> None:
        self._keys.setdefault(record_id, []).append(key)
        if key.nino:
            self._by_nino.setdefault(key.nino, set()).add((record_id, key.postcode))
        if key.postcode is not None:
            details = (key.surname, key.date_of_birth, key.postcode)
            entry = (record_id, key.nino is not None, key.given)
            self._by_details.setdefault(details, set()).add(entry)


def _postcode_rank(postcode: str | None, wanted: str | None) -> int:
    """As SQL orders `postcode = :wanted` descending: equal, then unequal, then unknown."""
    if postcode is None or wanted is None:
        return 2
    return 0 if postcode == wanted else 1
