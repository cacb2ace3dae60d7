"""The process-wide stop request: SIGTERM or SIGINT sets it, from the very start of main(); the
same signal again ends the process at once (Ctrl-C twice: a drain stuck on an unreachable
broker, say). A SIGTERM after a SIGINT still drains: `tellusonce up` stops its processes with
SIGTERM after the terminal's Ctrl-C reached them too. A short command, which drains nothing,
is interrupted where it is instead (`at_once`)."""

from __future__ import annotations

import signal
import threading
from types import FrameType

requested = threading.Event()
_received: set[int] = set()


def _request(signum: int, _frame: FrameType | None) -> None:
    if signum in _received:  # asked twice: not waiting for the drain
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)
    _received.add(signum)
    requested.set()


def install() -> None:
    """Route SIGTERM and SIGINT to `requested` (a stop during start-up is honoured, cleanly)."""
    signal.signal(signal.SIGTERM, _request)
    signal.signal(signal.SIGINT, _request)


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    _received.add(signum)
    requested.set()
    raise KeyboardInterrupt


def at_once() -> None:
    """For a short command (submit, status, dlq ...): SIGTERM and SIGINT raise KeyboardInterrupt
    where it is, as a drain nobody waits for would leave Ctrl-C unanswered until it ended; one
    received already (during start-up) raises it now."""
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    if requested.is_set():
        raise KeyboardInterrupt


def exit_status() -> int:
    """The shell's status for a process ended by the signal it was sent (128 + its number)."""
    return 128 + (signal.SIGTERM if signal.SIGTERM in _received else signal.SIGINT)
