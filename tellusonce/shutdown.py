"""The process-wide stop request: SIGTERM or SIGINT sets it, from the very start of main()."""

from __future__ import annotations

import signal
import threading
from types import FrameType

requested = threading.Event()


def _request(_signum: int, _frame: FrameType | None) -> None:
    requested.set()


def install() -> None:
    """Route SIGTERM and SIGINT to `requested` (a stop during start-up is honoured, cleanly)."""
    signal.signal(signal.SIGTERM, _request)
    signal.signal(signal.SIGINT, _request)
