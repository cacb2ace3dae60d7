"""Locks by name: one lock per name while a thread holds it or waits for it, none kept after."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class NamedLocks:
    """Two names never share a lock, so a thread waits only for one holding the same name; and
    the names met without end keep nothing once released (only those in use are held)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._in_use: dict[str, tuple[threading.Lock, int]] = {}  # name -> lock, its users

    def __len__(self) -> int:
        """How many names are in use (held or waited for)."""
        return len(self._in_use)

    @contextmanager
    def hold(self, name: str) -> Iterator[None]:
        with self._guard:
            lock, users = self._in_use.get(name, (None, 0))
            lock = lock or threading.Lock()
            self._in_use[name] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                users = self._in_use[name][1] - 1
                if users:
                    self._in_use[name] = (lock, users)
                else:
                    del self._in_use[name]
