"""A per-client token bucket: how many requests a client may make, and when to come back."""

from __future__ import annotations

import math
import threading
import time

KEPT = 10_000  # buckets kept before the full ones (as good as none) are dropped


class RateLimit:
    """`rate` requests a second on average, bursts up to `burst`, per client key. Only clients
    whose bucket is not full again are remembered: keys met without end (addresses, references
    typed) keep no more than those seen lately."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()
        self._prune_above = KEPT

    def __len__(self) -> int:
        return len(self._buckets)

    def give_back(self, client: str) -> None:
        """Return a request taken (one that turned out not to count), up to the burst."""
        now = time.monotonic()
        with self._lock:
            self._buckets[client] = (min(self.burst, self._tokens(client, now) + 1), now)

    def take(self, client: str) -> int | None:
        """None if the request may go ahead, else the seconds to wait (for Retry-After)."""
        now = time.monotonic()
        with self._lock:
            tokens = self._tokens(client, now)
            if len(self._buckets) >= self._prune_above:
                self._prune(now)
            if tokens >= 1:
                self._buckets[client] = (tokens - 1, now)
                return None
            self._buckets[client] = (tokens, now)
            return max(1, math.ceil((1 - tokens) / self.rate))

    def _tokens(self, client: str, now: float) -> float:
        tokens, last = self._buckets.get(client, (float(self.burst), now))
        return min(self.burst, tokens + (now - last) * self.rate)

    def _prune(self, now: float) -> None:
        """Forget the buckets full again; look again once as many more are kept."""
        self._buckets = {
            client: (tokens, last)
            for client, (tokens, last) in self._buckets.items()
            if tokens + (now - last) * self.rate < self.burst
        }
        self._prune_above = max(KEPT, 2 * len(self._buckets))
