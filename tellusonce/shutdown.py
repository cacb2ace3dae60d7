"""The process-wide stop request: SIGTERM or SIGINT sets it, from the very start of main(); the
same signal again ends the process at once (Ctrl-C twice: a drain stuck on an unreachable
broker, say). A SIGTERM after a SIGINT still drains: `tellusonce up` stops its processes with
SIGTERM after the terminal's Ctrl-C reached them too. A short command, which drains nothing,
is interrupted where it is instead (`at_once`)."""

from __future__ import annotations

import os
import signal
import sys
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


_interrupted: list[int] = []  # the signal that interrupted a short command


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    if _interrupted:  # again, while saying what the first interrupted: ended now
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)
    _received.add(signum)
    requested.set()
    _interrupted.append(signum)
    raise KeyboardInterrupt


def at_once() -> None:
    """For a short command (submit, status, dlq ...): SIGTERM and SIGINT raise KeyboardInterrupt
    where it is, as a drain nobody waits for would leave Ctrl-C unanswered until it ended; one
    received already (during start-up) raises it now."""
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    if requested.is_set():
        _interrupted.append(signal.SIGTERM if signal.SIGTERM in _received else signal.SIGINT)
        raise KeyboardInterrupt


def exit_status() -> int:
    """The shell's status for a process ended by the signal it was sent (128 + its number)."""
    return 128 + (_interrupted[0] if _interrupted else signal.SIGINT)


def end_if_interrupted() -> None:
    """End the process by the signal that interrupted its short command, if one did: its
    parent (a shell's loop, a supervisor) sees it killed by that signal, not an exit."""
    if _interrupted:
        sys.stdout.flush()
        sys.stderr.flush()
        signal.signal(_interrupted[0], signal.SIG_DFL)
        os.kill(os.getpid(), _interrupted[0])
