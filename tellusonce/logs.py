"""structlog set-up: JSON lines off a TTY, readable colours on one; always to stderr."""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog
from structlog.typing import EventDict


def configure(level: str = "info") -> None:
    """Configure structlog once per process, at the edge (JSON by orjson, written as bytes:
    structlog's recipe for speed, as consumers log a line per message). Context variables are
    not merged into lines: nothing binds any (loggers are bound), and the merging processor cost
    0.6% of the consumers' instructions."""
    renderer: structlog.typing.Processor
    factory: Callable[..., Any]
    if sys.stderr.isatty():
        renderer = structlog.dev.ConsoleRenderer()
        factory = structlog.PrintLoggerFactory(sys.stderr)
    else:
        renderer = structlog.processors.JSONRenderer(serializer=orjson.dumps)
        factory = structlog.BytesLoggerFactory(sys.stderr.buffer)
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            Timestamp(),
            structlog.processors.dict_tracebacks,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    # what libraries log through the standard library (uvicorn's errors, librdkafka's lines:
    # see kafka.client_config) is written as the same JSON lines, not as plain text
    root = logging.getLogger()
    root.handlers[:] = [ToStructlog()]
    root.setLevel(level.upper())


class ToStructlog(logging.Handler):
    """A standard library log record as a structlog line: the message as its event, the
    logger's name, and the traceback if it carries one."""

    def emit(self, record: logging.LogRecord) -> None:
        repeated = getattr(record, "repeated", None)
        structlog.get_logger().log(
            record.levelno,
            record.getMessage(),
            logger=record.name,
            exc_info=record.exc_info or False,
            **({"repeated": repeated} if repeated else {}),
        )


class QuietRepeats(logging.Filter):
    """Lets a line through once per `window` seconds, the next one saying how many like it
    were held back (`repeated`). librdkafka logs each failed connection attempt, about four a
    second per client while a broker is down: a `tellusonce submit` printed 160 identical lines
    before its one-line error, and each consumer as many a minute. Lines differing only in a
    duration ("after 3ms") are alike; the newest `kept` kinds of line are remembered."""

    _DURATION = re.compile(r"\d+ms\b")

    def __init__(
        self, window: float = 60.0, kept: int = 256, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.window = window
        self.kept = kept
        self.clock = clock
        self._seen: dict[str, tuple[float, int]] = {}  # kind -> (last shown at, held back since)
        self._lock = threading.Lock()  # librdkafka's lines are served by any polling thread

    def filter(self, record: logging.LogRecord) -> bool:
        kind = self._DURATION.sub("#ms", record.getMessage())
        now = self.clock()
        with self._lock:
            shown, held = self._seen.pop(kind, (None, 0))
            if shown is not None and now - shown < self.window:
                self._seen[kind] = (shown, held + 1)
                return False
            self._seen[kind] = (now, 0)
            while len(self._seen) > self.kept:
                del self._seen[next(iter(self._seen))]
        record.repeated = held
        return True


class Timestamp:
    """Adds `timestamp`: ISO 8601 in UTC to the microsecond (2026-11-22T17:40:01.123456Z), like
    structlog's TimeStamper(fmt="iso", utc=True) but with the date and time of day formatted once
    a second; consumers log a line per message, and that stamper was a fifth of a line's cost.
    """

    def __init__(self) -> None:
        self._second: tuple[int, str] = (-1, "")  # replaced whole: safe across threads

    def __call__(self, _logger: Any, _method: str, event_dict: EventDict) -> EventDict:
        now = time.time()
        second = int(now)
        cached = self._second
        if cached[0] != second:
            cached = (second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
            self._second = cached
        event_dict["timestamp"] = f"{cached[1]}.{int((now - second) * 1_000_000):06d}Z"
        return event_dict
