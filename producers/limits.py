"""A per-client token bucket: how many requests a client may make, and when to come back."""

from __future__ import annotations

import math
import threading
import time


class RateLimit:
    """`rate` requests a second on average, bursts up to `burst`, per client key."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, client: str) -> int | None:
        """None if the request may go ahead, else the seconds to wait (for Retry-After)."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(client, (float(self.burst), now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[client] = (tokens - 1, now)
                return None
            self._buckets[client] = (tokens, now)
            return max(1, math.ceil((1 - tokens) / self.rate))
