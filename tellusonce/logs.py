"""structlog set-up: JSON lines off a TTY, readable colours on one; always to stderr."""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, BinaryIO, TextIO

import orjson
import structlog
from structlog.processors import ExceptionRenderer
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import EventDict, ExcInfo


def configure(level: str = "info", to: BinaryIO | None = None) -> None:
    """Configure structlog once per process, at the edge (JSON by orjson, written as bytes:
    structlog's recipe for speed, as consumers log a line per message), to stderr or as JSON
    lines to `to`. Context variables are not merged into lines: nothing binds any (loggers are
    bound), and the merging processor cost 0.6% of the consumers' instructions."""
    processors: list[structlog.typing.Processor]
    factory: Callable[..., Any]
    if to is None and sys.stderr.isatty():  # the renderer formats a traceback itself (_as_text)
        processors = [
            structlog.processors.add_log_level,
            Timestamp(),
            structlog.dev.ConsoleRenderer(exception_formatter=_as_text),
        ]
        factory = structlog.PrintLoggerFactory(sys.stderr)
    else:
        processors = [JsonLine()]
        factory = structlog.BytesLoggerFactory(to or sys.stderr.buffer)
    structlog.configure(
        processors=processors,
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
    # an exception nothing caught is a line too (Python's own hook printed its message and the
    # pydantic error it came from, with the input: a record's date of birth, say)
    sys.excepthook = _uncaught
    threading.excepthook = lambda hook: _uncaught(
        hook.exc_type, hook.exc_value or hook.exc_type(), hook.exc_traceback
    )


WITHHELD = "(withheld: may hold personal data)"
_SAFE_BUILTINS = frozenset({
    "AttributeError", "TypeError", "NameError", "ImportError", "ModuleNotFoundError",
    "NotImplementedError", "RecursionError", "MemoryError", "KeyboardInterrupt", "SystemExit",
    "RuntimeError", "TimeoutError", "OSError", "FileNotFoundError", "PermissionError",
    "ConnectionError", "ConnectionRefusedError", "ConnectionResetError", "BrokenPipeError",
    "KafkaException",
})  # fmt: skip


def _ours() -> set[str]:
    """Our exceptions' names: their messages are written to carry no personal data (dead
    letters' headers and API problems carry them too)."""
    from tellusonce.errors import TellUsOnceError

    names, todo = set(), [TellUsOnceError]
    while todo:
        kind = todo.pop()
        names.add(kind.__name__)
        todo += kind.__subclasses__()
    return names


class SafeTracebacks(ExceptionDictTransformer):
    """Tracebacks without local variables (structlog shows them by default: a request's whole
    submission was in the line of an API error), and with the message of an exception withheld
    unless its kind is known to say no personal data: a pydantic error shows the input it
    refused, a database error the values bound to its statement, a KeyError its key."""

    def __init__(self) -> None:
        super().__init__(show_locals=False)

    def __call__(self, exc_info: ExcInfo) -> list[dict[str, Any]]:
        stacks = super().__call__(exc_info)
        _withhold(stacks, _SAFE_BUILTINS | _ours())
        return stacks


def _withhold(stacks: list[dict[str, Any]], safe: frozenset[str] | set[str]) -> None:
    for stack in stacks:
        if stack["exc_type"] not in safe:
            stack["exc_value"] = WITHHELD
            stack["exc_notes"] = []
        for group in stack.get("exceptions", ()):  # an exception group's members
            _withhold(group, safe)


_TRACEBACKS = ExceptionRenderer(SafeTracebacks())


def _as_text(sio: TextIO, exc_info: ExcInfo) -> None:
    """A traceback on a terminal, as safe as a JSON line's."""
    for stack in reversed(SafeTracebacks()(exc_info)):
        for frame in stack["frames"]:
            sio.write(f'\n  File "{frame["filename"]}", line {frame["lineno"]}, in {frame["name"]}')
        sio.write(f"\n{stack['exc_type']}: {stack['exc_value']}")


def _uncaught(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    structlog.get_logger().critical("uncaught_exception", exc_info=(kind, value, tb))


_TRUSTED = frozenset({"librdkafka", "uvicorn"})
"""Libraries whose lines' text is written as it is: they name brokers, topics and addresses,
never a person. Another's (asyncio's "Task exception was never retrieved", with the
exception's repr; httpx's request lines) is written as its template, its values withheld."""


class ToStructlog(logging.Handler):
    """A standard library log record as a structlog line: the message as its event (of a
    library not _TRUSTED, its template alone, or nothing but that it was withheld), the
    logger's name, and the traceback if it carries one (SafeTracebacks)."""

    def emit(self, record: logging.LogRecord) -> None:
        repeated = getattr(record, "repeated", None)
        if record.name.partition(".")[0] in _TRUSTED:
            event = record.getMessage()
        else:  # a template's values, or a message made before it was logged, may hold anything
            event = str(record.msg) if record.args else WITHHELD
        structlog.get_logger().log(
            record.levelno,
            event,
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


_LEVELS = {"warn": "warning", "exception": "error"}  # as structlog's add_log_level names them


class JsonLine:
    """A line's level, time (Timestamp's) and traceback (SafeTracebacks', if it carries one)
    added, and the line rendered as JSON by orjson: in one processor what structlog's
    add_log_level, ExceptionRenderer and JSONRenderer do in three (with Timestamp, four calls
    a line: consumers log one per message, and the calls cost 0.6% of their instructions)."""

    def __init__(self) -> None:
        self._stamp = Timestamp()

    def __call__(self, logger: Any, method: str, event_dict: EventDict) -> bytes:
        event_dict["level"] = _LEVELS.get(method, method)
        self._stamp(logger, method, event_dict)
        if "exc_info" in event_dict:
            event_dict = _TRACEBACKS(logger, method, event_dict)
        return orjson.dumps(event_dict, default=_unserialisable)


def _unserialisable(value: Any) -> Any:
    """What JSON has no form for, as structlog's JSONRenderer writes it: by its __structlog__,
    else its repr."""
    try:
        return value.__structlog__()
    except AttributeError:
        return repr(value)


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
