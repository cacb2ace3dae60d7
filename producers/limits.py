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

    def wait(self, client: str) -> int | None:
        """As take(), without using up a request: None if one may go ahead now."""
        with self._lock:
            tokens = self._tokens(client, time.monotonic())
        return None if tokens >= 1 else max(1, math.ceil((1 - tokens) / self.rate))

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
