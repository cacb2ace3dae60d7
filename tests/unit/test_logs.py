"""Log lines: JSON with an ISO 8601 UTC timestamp."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
import structlog

from tellusonce import logs
from tellusonce.kafka import Publisher
from tellusonce.settings import Settings


def stamp(at: float, stamper: logs.Timestamp, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(time, "time", lambda: at)
    return str(stamper(None, "info", {})["timestamp"])


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (0.0, "1970-01-01T00:00:00.000000Z"),
        (1795367999.875, "2026-11-22T17:19:59.875000Z"),
        (1795368000.25, "2026-11-22T17:20:00.250000Z"),
        (1795368000.0, "2026-11-22T17:20:00.000000Z"),
    ],
)
def test_timestamps_are_iso_utc_to_the_microsecond(
    at: float, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert stamp(at, logs.Timestamp(), monkeypatch) == expected


def test_the_second_changes_with_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The date and time of day are formatted once a second, and again when the second changes
    (or the clock is set back)."""
    stamper = logs.Timestamp()
    seen = [stamp(at, stamper, monkeypatch) for at in (100.5, 100.75, 101.0, 86500.5, 100.5)]
    assert seen == [
        "1970-01-01T00:01:40.500000Z",
        "1970-01-01T00:01:40.750000Z",
        "1970-01-01T00:01:41.000000Z",
        "1970-01-02T00:01:40.500000Z",
        "1970-01-01T00:01:40.500000Z",
    ]


def test_a_line_is_json_with_level_and_timestamp(capfd: pytest.CaptureFixture[str]) -> None:
    """Off a TTY each line is one JSON object, stamped with the time it was written."""
    logs.configure("info")
    try:
        before = datetime.now(UTC)
        structlog.get_logger("test").bind(service="pensions").info("message_handled", offset=7)
        line = orjson.loads(capfd.readouterr().err.strip().splitlines()[-1])
    finally:
        structlog.reset_defaults()
    written = datetime.fromisoformat(line.pop("timestamp"))
    assert before.replace(microsecond=0) <= written <= datetime.now(UTC)
    assert line == {
        "service": "pensions",
        "offset": 7,
        "event": "message_handled",
        "level": "info",
    }


def test_lines_go_as_json_to_the_stream_given(capfd: pytest.CaptureFixture[str]) -> None:
    """A process that logs to a file of its own (the bench's, as the services' go to theirs)
    writes the same JSON lines there, and nothing to stderr."""
    written = io.BytesIO()
    logs.configure("info", to=written)
    try:
        structlog.get_logger("test").info("event_published", event_type="death")
        structlog.get_logger("test").debug("not at info")
    finally:
        structlog.reset_defaults()
    (line,) = [orjson.loads(text) for text in written.getvalue().splitlines()]
    assert {k: line[k] for k in ("event", "event_type", "level")} == {
        "event": "event_published",
        "event_type": "death",
        "level": "info",
    }
    assert capfd.readouterr().err == ""


def lines_written(capfd: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """Every line written to stderr, each of which must be a JSON object."""
    return [orjson.loads(line) for line in capfd.readouterr().err.splitlines() if line]


def test_what_libraries_log_is_json_too(capfd: pytest.CaptureFixture[str]) -> None:
    """uvicorn's errors (its tracebacks) and librdkafka's lines were plain text on stderr."""
    logs.configure("info")
    try:
        try:
            raise ValueError("a bug")
        except ValueError:
            logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
        publisher = Publisher(Settings(bootstrap_servers="127.0.0.1:1"), "test")
        deadline = time.monotonic() + 10
        seen: list[dict[str, Any]] = []
        while not [s for s in seen if s.get("logger") == "librdkafka"]:
            assert time.monotonic() < deadline, "no line from librdkafka"
            publisher._producer.poll(0.1)  # librdkafka's lines are served by poll
            seen += lines_written(capfd)
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
    uvicorn, *rest = seen
    assert (uvicorn["event"], uvicorn["logger"], uvicorn["level"]) == (
        "Exception in ASGI application",
        "uvicorn.error",
        "error",
    )
    assert uvicorn["exception"][0]["exc_type"] == "ValueError"
    assert any(s["logger"] == "librdkafka" and "127.0.0.1:1" in s["event"] for s in rest)


def test_a_line_repeated_is_let_through_once_a_window_saying_how_often() -> None:
    """librdkafka logs each failed connection, about four a second per client: a `tellusonce
    submit` to a broker that was down printed 160 identical lines before its one-line error."""
    now = [0.0]
    quiet = logs.QuietRepeats(window=60, clock=lambda: now[0])
    kept: list[logging.LogRecord] = []

    def log(message: str) -> None:
        record = logging.LogRecord("librdkafka", logging.ERROR, __file__, 1, message, None, None)
        if quiet.filter(record):
            kept.append(record)

    failed = "127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed (after {}ms in CONNECT)"
    for second in range(120):
        now[0] = second + 0.5
        for attempt in range(4):
            log(failed.format(attempt))  # alike: they differ only in how long the attempt took
        log("another line")
    log("the last")
    shown = [(r.getMessage(), r.repeated) for r in kept]  # type: ignore[attr-defined]
    assert shown == [
        (failed.format(0), 0),
        ("another line", 0),
        (failed.format(0), 239),  # 60 s later: held back since, 4 a second but the one shown
        ("another line", 59),
        ("the last", 0),
    ]


def test_a_repeat_count_is_part_of_the_line(capfd: pytest.CaptureFixture[str]) -> None:
    logs.configure("info")
    try:
        record = logging.LogRecord("librdkafka", logging.ERROR, __file__, 1, "down", None, None)
        record.repeated = 12  # as QuietRepeats says
        logs.ToStructlog().handle(record)
        (line,) = lines_written(capfd)
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
    assert (line["event"], line["logger"], line["repeated"]) == ("down", "librdkafka", 12)


def test_the_kinds_of_line_remembered_are_bounded() -> None:
    quiet = logs.QuietRepeats(kept=3, clock=lambda: 0.0)

    def let_through(message: str) -> bool:
        return quiet.filter(logging.LogRecord("x", logging.ERROR, __file__, 1, message, None, None))

    assert [let_through(m) for m in ("a", "b", "c", "a", "d")] == [True, True, True, False, True]
    assert let_through("b")  # forgotten when "d" came: "a" had been seen since
    assert not let_through("a")


NINO = "QQ123456C"  # what must not be written


def test_an_exceptions_line_shows_no_locals_and_withholds_messages_that_may_hold_data(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """structlog's tracebacks showed every frame's local variables (an API error's line held
    the whole submission) and each chained exception's message (pydantic's shows its input)."""
    from pydantic import BaseModel

    from tellusonce.errors import UndecodableMessage

    class Person(BaseModel):
        nino: int

    logs.configure("info")
    try:
        submission = {"nino": NINO}
        try:
            try:
                Person.model_validate(submission)
            except ValueError as exc:
                raise UndecodableMessage("decoded death message is invalid: nino") from exc
        except UndecodableMessage:
            structlog.get_logger().exception("request_failed")
        (line,) = lines_written(capfd)
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
    assert NINO not in orjson.dumps(line).decode()
    ours, cause = line["exception"]
    assert (ours["exc_type"], ours["exc_value"]) == (
        "UndecodableMessage",
        "decoded death message is invalid: nino",  # ours: written to say no personal data
    )
    assert (cause["exc_type"], cause["exc_value"]) == ("ValidationError", logs.WITHHELD)
    assert all("locals" not in frame for stack in line["exception"] for frame in stack["frames"])
    assert ours["frames"][-1]["name"].startswith("test_an_exceptions_line")  # where it was


@pytest.mark.parametrize("where", ["main thread", "another thread"])
def test_an_uncaught_exception_is_a_line_without_its_message(where: str) -> None:
    """Python's own hook printed the exception's message: a stored record's date of birth,
    say, as a consumer process ended."""
    raising = f"raise KeyError({NINO!r})"
    if where == "another thread":
        raising = (
            "import threading; "
            f"t = threading.Thread(target=lambda: {{}}[{NINO!r}]); t.start(); t.join()"
        )
    done = subprocess.run(
        [sys.executable, "-c", f"from tellusonce import logs; logs.configure(); {raising}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert NINO not in done.stderr
    (line,) = [orjson.loads(text) for text in done.stderr.splitlines()]
    assert (line["event"], line["level"]) == ("uncaught_exception", "critical")
    assert (line["exception"][0]["exc_type"], line["exception"][0]["exc_value"]) == (
        "KeyError",
        logs.WITHHELD,
    )


def test_a_traceback_on_a_terminal_withholds_the_message_too() -> None:
    try:
        {}[NINO]
    except KeyError:
        written = io.StringIO()
        logs._as_text(written, sys.exc_info())  # type: ignore[arg-type]
    assert NINO not in written.getvalue()
    assert written.getvalue().endswith(f"KeyError: {logs.WITHHELD}")


def test_a_line_with_a_traceback_on_a_terminal_is_written_without_the_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a terminal the renderer was given the JSON lines' traceback (a list) and failed, and
    Python's fallback then printed the exception whole."""

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    logs.configure("info")
    try:
        try:
            {}[NINO]
        except KeyError:
            structlog.get_logger().exception("request_failed")
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
    written = terminal.getvalue()
    assert "request_failed" in written
    assert f"KeyError: {logs.WITHHELD}" in written
    assert NINO not in written


def test_another_library_s_message_is_written_as_its_template_or_withheld(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A library's line was written as it was made: asyncio's "Task exception was never
    retrieved" carries the exception's repr (its message: a NINO, say), httpx's request lines
    their URL. librdkafka's and uvicorn's lines name brokers and addresses, and are kept."""
    logs.configure("info")
    try:
        for name, message, args in (
            ("asyncio", "Task exception was never retrieved\nexception=ValueError('AB123456C')",
             None),
            ("httpx", "HTTP Request: %s %s", ("POST", "http://x/v1/events/5D4Z6-43N23")),
            ("uvicorn.error", "Started server process [%d]", (42,)),
        ):  # fmt: skip
            record = logging.LogRecord(name, logging.ERROR, __file__, 1, message, args, None)
            logs.ToStructlog().handle(record)
        written = [(line["logger"], line["event"]) for line in lines_written(capfd)]
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
    assert written == [
        ("asyncio", logs.WITHHELD),
        ("httpx", "HTTP Request: %s %s"),
        ("uvicorn.error", "Started server process [42]"),
    ]
