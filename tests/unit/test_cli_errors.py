"""What the command line says when it cannot do what it is asked: one line, the documented
exit code, no traceback."""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest

from consumers import dead_letters
from tellusonce import demo


def test_a_status_from_a_data_directory_without_stores_says_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: Callable[[list[str]], int]
) -> None:
    """`make run` keeps its stores in .run/demo; `tellusonce status` looked in .run/data and
    printed 60 lines of SQLAlchemy's traceback."""
    nowhere = tmp_path / "no" / "such" / "dir"
    monkeypatch.setenv("TELLUSONCE_DATA_DIR", str(nowhere))
    with pytest.raises(SystemExit) as stopped:
        run_cli(["status", "5D4Z6-43N23"])
    message = str(stopped.value.code)
    assert message.startswith("error: ")
    assert f"data directory {nowhere}" in message
    assert "\n" not in message


def test_serving_on_a_port_in_use_says_so(
    capsys: pytest.CaptureFixture[str], run_cli: Callable[[list[str]], int]
) -> None:
    """uvicorn's failure to bind exited 3, the code for Kafka not acknowledging."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert run_cli(["serve", "--port", str(port)]) == 1
    assert "another process listens there" in capsys.readouterr().err


def test_replaying_dead_letters_there_are_none_of_says_so(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    run_cli: Callable[[list[str]], int],
) -> None:
    monkeypatch.setattr(dead_letters, "read", lambda _settings, _service: [])
    assert run_cli(["dlq", "replay", "pensions"]) == 0  # nothing to do is not an error
    assert capsys.readouterr().out == "nothing to replay: no dead letters of pensions\n"
    assert run_cli(["dlq", "replay", "pensions", "--partition", "1"]) == 2
    assert capsys.readouterr().err == "error: no dead letters of pensions at partition 1\n"


def test_the_demo_keeps_its_fresh_stores_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: Callable[[list[str]], int]
) -> None:
    """Run as `tellusonce demo`, it wiped the stores `up`, `consume` and `submit` use."""
    used: list[Any] = []
    monkeypatch.setattr(
        demo, "run", lambda settings, owned: used.append((settings.data_dir, owned)) or 0
    )
    monkeypatch.delenv("TELLUSONCE_DATA_DIR", raising=False)
    assert run_cli(["demo"]) == 0
    monkeypatch.setenv("TELLUSONCE_DATA_DIR", str(tmp_path))
    assert run_cli(["demo"]) == 0
    monkeypatch.setenv("TELLUSONCE_DATA_DIR", ".run/demo")  # as make run names it
    assert run_cli(["demo"]) == 0
    assert used == [(Path(".run/demo"), True), (tmp_path, False), (Path(".run/demo"), True)]


def test_the_demo_does_not_empty_a_data_directory_it_did_not_make(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    run_cli: Callable[[list[str]], int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """TELLUSONCE_DATA_DIR naming a real one (compose's /data), `demo` deleted every store
    there: the registrar's ledger and offices' keys, each service's records."""
    monkeypatch.setattr(demo, "ensure_topics", lambda _settings: None)  # no broker asked
    monkeypatch.setenv("TELLUSONCE_DATA_DIR", str(tmp_path))
    (tmp_path / "registrar.db").write_bytes(b"the office's keys")
    assert run_cli(["demo"]) == 1
    assert "holds stores the demo did not make (registrar.db)" in capsys.readouterr().err
    assert (tmp_path / "registrar.db").read_bytes() == b"the office's keys"


def test_submitting_with_the_placeholder_secret_to_a_remote_broker_is_refused(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    run_cli: Callable[[list[str]], int],
) -> None:
    monkeypatch.setenv("TELLUSONCE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TELLUSONCE_BOOTSTRAP_SERVERS", "kafka.example:9092")
    monkeypatch.delenv("TELLUSONCE_PSEUDONYM_SECRET", raising=False)
    assert run_cli(["submit", "death", "examples/death.json"]) == 1
    said = capsys.readouterr()
    assert said.err.startswith("error: the pseudonym secret is the published placeholder")
    assert "event_id" not in said.out
    assert not (tmp_path / "data").exists()  # (it had made the ledger, then refused)


@pytest.mark.parametrize(("trusted", "believed"), [(None, False), ("10.0.0.5", True)])
def test_the_api_believes_x_forwarded_for_only_from_proxies_it_is_told_of(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    run_cli: Callable[[list[str]], int],
    trusted: str | None,
    believed: bool,
) -> None:
    """uvicorn believed it from 127.0.0.1 by default: behind a local proxy passing it on, each
    guess at a family's date of birth could name another client."""
    import uvicorn

    ran: dict[str, Any] = {}

    def run(server: uvicorn.Server, sockets: list[socket.socket] | None = None) -> None:
        server.started = True
        ran.update(vars(server.config))

    monkeypatch.setattr(uvicorn.Server, "run", run)
    monkeypatch.setenv("TELLUSONCE_DATA_DIR", str(tmp_path))
    if trusted:
        monkeypatch.setenv("TELLUSONCE_API_TRUSTED_PROXIES", trusted)
    assert run_cli(["serve", "--port", str(_free()), "--metrics-port", "0"]) == 0
    assert ran["proxy_headers"] is believed
    assert ran["forwarded_allow_ips"] == (trusted or "")


def test_the_api_serves_its_metrics_on_the_metrics_port_while_it_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: Callable[[list[str]], int]
) -> None:
    import urllib.error
    import urllib.request

    import uvicorn

    api_port, metrics_port = _free(), _free()
    scraped: list[str] = []

    def running(server: uvicorn.Server, sockets: list[socket.socket] | None = None) -> None:
        server.started = True
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as answer:
            scraped.append(answer.read().decode())

    monkeypatch.setattr(uvicorn.Server, "run", running)
    monkeypatch.setenv("TELLUSONCE_DATA_DIR", str(tmp_path))
    assert run_cli(["serve", "--port", str(api_port), "--metrics-port", str(metrics_port)]) == 0
    assert "tellusonce_events_published_total" in scraped[0]
    with pytest.raises(urllib.error.URLError):  # stopped with the API
        urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5)


def _free() -> int:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        return int(free.getsockname()[1])


def test_the_api_starts_on_a_port_whose_last_connections_wait_out_time_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: Callable[[list[str]], int]
) -> None:
    """A second `make run` within a minute of the first: the API's probe of its port, bound
    without SO_REUSEADDR (as uvicorn binds with it), said another process listened there."""
    import uvicorn

    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client:
            accepted, _ = server.accept()
            accepted.close()  # the server's side closes first: its port waits in TIME_WAIT
            client.recv(1)
    monkeypatch.setattr(
        uvicorn.Server, "run", lambda server, sockets=None: setattr(server, "started", True)
    )
    monkeypatch.setenv("TELLUSONCE_DATA_DIR", str(tmp_path))
    assert run_cli(["serve", "--port", str(port), "--metrics-port", "0"]) == 0


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "::"])
def test_the_api_on_any_free_port_says_and_probes_the_port_it_has(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    run_cli: Callable[[list[str]], int],
    capsys: pytest.CaptureFixture[str],
    host: str,
) -> None:
    """`serve --port 0` said "http://127.0.0.1:0", and its /readyz connected to port 0: never
    ready. The API's socket is bound first, and the port the system chose is the one said,
    served and probed (its connection answered while the API runs), on IPv6 too (probed
    through an IPv4 socket, /readyz was a 500 with a traceback each time)."""
    import urllib.request

    import uvicorn

    from tellusonce.kafka import Admin

    metrics_port = _free()
    seen: dict[str, Any] = {}

    def run(server: uvicorn.Server, sockets: list[socket.socket] | None = None) -> None:
        assert sockets is not None
        [listener] = sockets
        listener.listen()
        server.started = True
        seen["port"] = listener.getsockname()[1]
        url = f"http://127.0.0.1:{metrics_port}/readyz"
        with urllib.request.urlopen(url, timeout=5) as answer:
            seen["ready"] = answer.status

    monkeypatch.setattr(uvicorn.Server, "run", run)
    monkeypatch.setattr(Admin, "reachable", lambda _admin, _timeout: True)  # no broker needed
    monkeypatch.setenv("TELLUSONCE_DATA_DIR", str(tmp_path))
    asked = ["serve", "--host", host, "--port", "0", "--metrics-port", str(metrics_port)]
    assert run_cli(asked) == 0
    assert seen["port"] != 0
    shown = f"[{host}]" if ":" in host else host
    assert f"registrar API on http://{shown}:{seen['port']} " in capsys.readouterr().out
    assert seen["ready"] == 200


@pytest.mark.parametrize(("asked", "level"), [(None, "warning"), ("info", "info")])
def test_a_command_a_person_runs_answers_without_info_lines(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    run_cli: Callable[[list[str]], int],
    asked: str | None,
    level: str,
) -> None:
    """`submit` printed its event_published line (JSON, or colours on a terminal) among its
    answer; services and the API go on logging at info."""
    from tellusonce import logs

    configured: list[str] = []
    monkeypatch.setattr(logs, "configure", configured.append)
    monkeypatch.setenv("TELLUSONCE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("TELLUSONCE_LOG_LEVEL", raising=False)
    if asked:
        monkeypatch.setenv("TELLUSONCE_LOG_LEVEL", asked)
    assert run_cli(["keys", "list"]) == 0
    assert configured == [level]
    # librdkafka's own retries ("Failed to acquire idempotence PID ...: retrying") are warnings
    librdkafka = logging.getLogger("librdkafka")
    assert librdkafka.level == (logging.ERROR if asked is None else logging.NOTSET)


def test_status_shows_what_the_registrar_published_before_the_tracker_read_it(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    run_cli: Callable[[list[str]], int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Right after a submit it said "No events known for reference ... (yet)" and exited 1,
    until the tracker had read the event; a correction's reason was nowhere."""
    from producers.submission import Registrar
    from tellusonce.codec import Codec
    from tellusonce.events import EventType
    from tellusonce.settings import Settings
    from tests.factories import document
    from tests.stand_ins import Kept

    registrar = Registrar(Settings(data_dir=tmp_path), Kept(), Codec())  # type: ignore[arg-type]
    first = registrar.submit(EventType.DEATH, document(EventType.DEATH))
    fixed = document(EventType.DEATH, date_of_death="2026-03-10")
    second = registrar.correct(first.reference, fixed, "date of death misread")
    monkeypatch.setenv("TELLUSONCE_DATA_DIR", str(tmp_path))

    assert run_cli(["status", f" {first.reference.lower()} "]) == 0

    shown = capsys.readouterr().out
    assert f"event {first.event_id}" in shown
    assert f"event {second.event_id}" in shown
    assert "reason: date of death misread" in shown
    assert "State Pension: PENDING" in shown


def test_an_invalid_setting_is_named_in_one_line_without_its_value(
    monkeypatch: pytest.MonkeyPatch,
    run_cli: Callable[[list[str]], int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A setting pydantic refused was a traceback ending in pydantic's error, which shows the
    value given. A source that is not a URI would have gone out as every event's ce_source."""
    monkeypatch.setenv("TELLUSONCE_SOURCE", "Leeds register office")
    monkeypatch.setenv("TELLUSONCE_PARTITIONS", "six")
    assert run_cli(["status", "5D4Z6-43N23"]) == 1
    said = sorted(capsys.readouterr().err.splitlines())
    assert said[0].startswith("error: setting TELLUSONCE_PARTITIONS: Input should be")
    assert said[1].startswith("error: setting TELLUSONCE_SOURCE: String should match pattern")
    assert "Leeds register office" not in "".join(said)
    assert "six" not in "".join(said)
    monkeypatch.setenv("TELLUSONCE_KAFKA_SECURITY", '{"sasl.password": secret}')
    assert run_cli(["status", "5D4Z6-43N23"]) == 1
    said = capsys.readouterr().err
    assert said == "error: setting TELLUSONCE_KAFKA_SECURITY: not valid JSON\n"
    # a client config pasted whole: its cluster went past the pseudonym secret's check
    monkeypatch.delenv("TELLUSONCE_PARTITIONS")
    monkeypatch.delenv("TELLUSONCE_SOURCE")
    pasted = '{"bootstrap.servers": "kafka.example:9093", "sasl.password": "pw1"}'
    monkeypatch.setenv("TELLUSONCE_KAFKA_SECURITY", pasted)
    assert run_cli(["status", "5D4Z6-43N23"]) == 1
    said = capsys.readouterr().err
    assert said == (
        "error: setting TELLUSONCE_KAFKA_SECURITY: Value error, bootstrap.servers: set by "
        "tellusonce itself (the cluster's address is TELLUSONCE_BOOTSTRAP_SERVERS)\n"
    )
    verified = '{"enable.ssl.certificate.verification": false}'
    monkeypatch.setenv("TELLUSONCE_KAFKA_SECURITY", verified)
    monkeypatch.setenv("TELLUSONCE_FETCH_WAIT_MS", "400000")
    assert run_cli(["status", "5D4Z6-43N23"]) == 1  # the boolean taken; the wait beyond a fetch's
    said = capsys.readouterr().err
    assert said.startswith("error: setting TELLUSONCE_FETCH_WAIT_MS: Input should be less than")


def test_a_misspelt_setting_is_said_and_a_setting_in_capitals_is_taken(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    run_cli: Callable[[list[str]], int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """TELLUSONCE_PARTITION=6 was ignored without a word; TELLUSONCE_LOG_LEVEL=INFO refused."""
    monkeypatch.setenv("TELLUSONCE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TELLUSONCE_PARTITION", "6")
    monkeypatch.setenv("TELLUSONCE_KAFKA_HEAP", "1g")  # the broker script's own
    monkeypatch.setenv("TELLUSONCE_KAFKA_EXTRA_CONFIG", "sasl.properties")  # its too
    monkeypatch.setenv("TELLUSONCE_LOG_LEVEL", "WARNING")
    assert run_cli(["status", "5D4Z6-43N23"]) == 1  # no events known: but it ran
    said = capsys.readouterr().err.splitlines()
    assert said == [
        "warning: TELLUSONCE_PARTITION is not a setting, and is ignored (did you mean "
        "TELLUSONCE_PARTITIONS?)"
    ]


def test_a_submission_sent_again_is_answered_from_the_ledger_with_no_broker(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    run_cli: Callable[[list[str]], int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Sent again, it is answered from the ledger: with the broker down that answer was exit
    3, and when it was answered nothing said it was not sent again."""
    from tests.stand_ins import Kept

    kept = Kept()
    up = [True]
    publishing_to(kept, lambda: up[0], tmp_path, monkeypatch)
    assert run_cli(["submit", "death", "examples/death.json"]) == 0
    first = capsys.readouterr().out
    up[0] = False
    assert run_cli(["submit", "death", "examples/death.json"]) == 0
    again = capsys.readouterr().out
    assert again.startswith(first)
    assert again.endswith("note: published before; nothing was sent again\n")
    assert len(kept.sent) == 1


def test_topics_are_made_with_their_retention_and_replicated_safely(
    monkeypatch: pytest.MonkeyPatch, run_cli: Callable[[list[str]], int]
) -> None:
    """`tellusonce topics` (what compose runs) made them with the cluster's defaults: its
    retention (a day on the local broker, a week from `make run`), and replicated, the
    cluster's min.insync.replicas (often 1: acks=all then meant the leader alone)."""
    from tellusonce import kafka

    made: list[dict[str, str]] = []

    class Admin:
        def __init__(self, *_args: object) -> None:
            pass

        def ensure_topics(self, names: list[str], config: dict[str, str]) -> list[str]:
            made.append(config)
            return names

        def replicas(self, _names: list[str]) -> dict[str, int]:
            return {}

    monkeypatch.setattr(kafka, "Admin", Admin)
    assert run_cli(["topics"]) == 0
    for replicas in ("2", "3"):
        monkeypatch.setenv("TELLUSONCE_REPLICATION_FACTOR", replicas)
        assert run_cli(["topics"]) == 0
    week = str(7 * 24 * 3600 * 1000)
    assert made == [
        {"retention.ms": week},
        {  # with two, one in sync: requiring both, a publish failed while either was down
            "retention.ms": week,
            "min.insync.replicas": "1",
            "unclean.leader.election.enable": "false",
        },
        {
            "retention.ms": week,
            "min.insync.replicas": "2",
            "unclean.leader.election.enable": "false",
        },
    ]


def test_topics_the_cluster_refuses_to_create_are_said_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
    run_cli: Callable[[list[str]], int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """More replicas than the cluster has brokers (or a policy, or no right to create): a
    traceback, exit 1, and no word of the topics made meanwhile."""
    from concurrent.futures import Future

    from confluent_kafka import KafkaError, KafkaException

    from tellusonce import cli, kafka

    class Cluster:
        topics: ClassVar[dict[str, object]] = {}

        def list_topics(self, *_args: object, **_kwargs: object) -> Any:
            return self

        def create_topics(self, wanted: list[Any], **_kwargs: object) -> dict[str, Future[None]]:
            answers: dict[str, Future[None]] = {}
            for i, topic in enumerate(wanted):
                answers[topic.topic] = future = Future()
                if i == 0:
                    future.set_result(None)
                else:
                    too_few = KafkaError(KafkaError.INVALID_REPLICATION_FACTOR, "1 broker")
                    future.set_exception(KafkaException(too_few))
            return answers

    class Admin(kafka.Admin):
        def __init__(self, settings: Any) -> None:
            super().__init__(settings)
            self._admin = Cluster()  # type: ignore[assignment]

        def _wait_for_leaders(self, names: Any, timeout: float = 30.0) -> None:
            """Made: nothing to wait for."""

    monkeypatch.setattr(kafka, "Admin", Admin)
    monkeypatch.setenv("TELLUSONCE_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    assert run_cli(["topics"]) == cli.EXIT_BROKER
    said = capsys.readouterr().err
    assert said.count("\n") == 1, said
    assert said.startswith("error: Kafka refused to create 9 topic(s): life-events.birth: 1 broker")
    assert said.endswith("; created life-events.death\n")


def test_topics_made_before_with_fewer_replicas_are_said_to_be(
    monkeypatch: pytest.MonkeyPatch,
    run_cli: Callable[[list[str]], int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Topics a run with the default (one replica) made stay so: `tellusonce topics` with
    TELLUSONCE_REPLICATION_FACTOR=3 created nothing and said nothing."""
    from tellusonce import kafka

    class Admin:
        def __init__(self, *_args: object) -> None:
            pass

        def ensure_topics(self, names: list[str], _config: dict[str, str]) -> list[str]:
            return [n for n in names if "dead-letter" in n]  # those made now

        def replicas(self, names: list[str]) -> dict[str, int]:
            return {name: 1 for name in names}

    monkeypatch.setattr(kafka, "Admin", Admin)
    monkeypatch.setenv("TELLUSONCE_REPLICATION_FACTOR", "3")
    assert run_cli(["topics"]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert warned[0] == (
        "warning: life-events.death has 1 replica(s), fewer than TELLUSONCE_REPLICATION_FACTOR=3;"
        " Kafka keeps an existing topic's (kafka-reassign-partitions.sh adds replicas; then set"
        " its min.insync.replicas, which only a topic created here is given: kafka-configs.sh"
        " --alter --add-config min.insync.replicas=2)"
    )
    assert len(warned) == 5  # the four event topics and the confirmations


def test_an_event_larger_than_kafka_takes_is_refused_in_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    run_cli: Callable[[list[str]], int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A topic whose limit is under the event's size: a traceback, and the event left in the
    ledger as unacknowledged (sent again, refused again)."""
    from tellusonce.errors import MessageTooLarge
    from tests.stand_ins import Kept

    class TooLarge(Kept):
        def publish(self, messages: Any) -> None:
            raise MessageTooLarge(f"{len(messages[0].value)} bytes: more than Kafka takes")

    publishing_to(TooLarge(), lambda: True, tmp_path, monkeypatch)
    assert run_cli(["submit", "death", "examples/death.json"]) == 2
    said = capsys.readouterr().err.strip().splitlines()
    assert said[-1].startswith("error: Kafka refuses the event: larger than its topic takes")
    assert not any("Traceback" in line for line in said)
    with sqlite3.connect(tmp_path / "registrar.db") as ledger:
        assert ledger.execute("SELECT count(*) FROM submissions").fetchone() == (0,)


def publishing_to(
    publisher: Any, reachable: Callable[[], bool], data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI's publishing commands with this publisher, a broker reachable or not as
    `reachable` says, and their stores in `data`."""
    import structlog

    from producers import submission
    from tellusonce import kafka

    class Admin:
        def __init__(self, *_args: object) -> None:
            pass

        def reachable(self, _timeout: float = 5.0) -> bool:
            return reachable()

    monkeypatch.setenv("TELLUSONCE_DATA_DIR", str(data))
    monkeypatch.setattr(kafka, "Publisher", lambda *_args: publisher)
    monkeypatch.setattr(kafka, "Admin", Admin)
    # the registrar's logger, kept by structlog bound to this test's stderr once used: a fresh
    # one here, so that the module's own is not left writing to it once it is closed
    monkeypatch.setattr(submission, "log", structlog.get_logger("tellusonce.producer"))


def test_output_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """`tellusonce keys list | head -1`: the pipe closed was blamed on the data directory."""
    reading, writing = os.pipe()
    os.close(reading)  # the reader gone before anything is written
    try:
        ended = subprocess.run(
            [sys.executable, "-m", "tellusonce", "keys", "create", "LEEDS-RO", "--any-district"],
            stdout=writing,
            stderr=subprocess.PIPE,
            env={**os.environ, "TELLUSONCE_DATA_DIR": str(tmp_path)},
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(writing)
    assert (ended.returncode, ended.stderr) == (1, "")


def test_a_submission_with_bad_input_makes_no_store(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    run_cli: Callable[[list[str]], int],
) -> None:
    """Refused, it had made the data directory and an empty ledger there all the same."""
    data_dir = tmp_path / "data"
    monkeypatch.setenv("TELLUSONCE_DATA_DIR", str(data_dir))
    document = tmp_path / "death.json"
    document.write_text('{"registration": {}}')
    assert run_cli(["submit", "death", str(document)]) == 2
    assert "error: nothing was published" in capsys.readouterr().err
    assert run_cli(["cancel", "5D4Z6-43N23", "--reason", "made in error"]) == 2
    assert "reference: no registration with this reference was submitted from here" in (
        capsys.readouterr().err
    )
    assert not data_dir.exists()


def test_a_port_out_of_range_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    run_cli: Callable[[list[str]], int],
) -> None:
    """`serve --port 70000` ended in OverflowError's traceback."""
    with pytest.raises(SystemExit) as refused:
        run_cli(["serve", "--port", "70000"])
    assert refused.value.code == 2
    assert "argument --port: 70000 is not a port from 0 to 65535" in capsys.readouterr().err
    monkeypatch.setenv("TELLUSONCE_API_PORT", "70000")
    assert run_cli(["serve"]) == 1
    assert capsys.readouterr().err == (
        "error: setting TELLUSONCE_API_PORT: Input should be less than or equal to 65535\n"
    )


def test_the_demo_empties_its_stores_only(tmp_path: Path) -> None:
    """It deleted every `*.db*` file of its directory (a `registrar.db.bak`, a `notes.dbf`)."""
    from tellusonce.settings import Settings
    from tellusonce.stack import DEMO_MARK, seed_stores

    (tmp_path / DEMO_MARK).write_text("a demo's\n")
    (tmp_path / "tracker.db-wal").write_bytes(b"an earlier demo's")
    kept = {"registrar.db.bak": b"a copy", "notes.dbf": b"notes"}
    for name, content in kept.items():
        (tmp_path / name).write_bytes(content)
    seed_stores(Settings(data_dir=tmp_path), fresh=True)
    assert {name: (tmp_path / name).read_bytes() for name in kept} == kept
    assert not (tmp_path / "tracker.db-wal").exists()


def test_the_demo_on_databases_holding_records_is_refused(tmp_path: Path) -> None:
    """With TELLUSONCE_STORE_URL set, the demo emptied nothing (its stores are not files of its
    directory) and wrote its records over the ones there (a real service's, say); a second run
    on the same databases showed the first's confirmations. Empty ones are seeded."""
    from tellusonce.errors import UnsafeSettings
    from tellusonce.settings import Settings
    from tellusonce.stack import seed_stores

    elsewhere = tmp_path / "databases"
    elsewhere.mkdir()
    settings = Settings(
        data_dir=tmp_path / "demo", store_url=f"sqlite:///{elsewhere}/{{service}}.db"
    )
    seed_stores(settings, fresh=True, owned=True)  # empty: seeded
    assert (elsewhere / "pensions.db").exists()
    with pytest.raises(UnsafeSettings, match="TELLUSONCE_STORE_URL's databases hold records"):
        seed_stores(settings, fresh=True, owned=True)


def test_the_demo_s_submission_the_api_refuses_is_said_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An API answering 503 (Kafka did not acknowledge), or not answering, ended the demo with
    an uncaught HTTPStatusError, its message withheld: now why, and exit 3 as every command
    Kafka does not answer (else 1)."""
    import httpx

    from tellusonce import demo

    def unacknowledged(url: str, **_: Any) -> httpx.Response:
        problem = {"status": 503, "detail": "Kafka did not acknowledge the event in time"}
        return httpx.Response(503, json=problem, request=httpx.Request("POST", url))

    def unanswered(url: str, **_: Any) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    monkeypatch.setattr(demo.httpx, "post", unacknowledged)
    with pytest.raises(demo.NotSubmitted) as refused:
        demo.submit_over_http("http://127.0.0.1:8080", "key", {})
    assert (str(refused.value), refused.value.code) == (
        "the registrar API answered 503: Kafka did not acknowledge the event in time",
        3,
    )
    monkeypatch.setattr(demo.httpx, "post", unanswered)
    with pytest.raises(demo.NotSubmitted) as refused:
        demo.submit_over_http("http://127.0.0.1:8080", "key", {})
    assert (str(refused.value), refused.value.code) == (
        "the registrar API at http://127.0.0.1:8080 did not answer (connection refused)",
        1,
    )


def test_a_cancellation_s_register_entry_is_read_as_entries_are_compared(
    run_cli: Callable[[list[str]], int], capsys: pytest.CaptureFixture[str]
) -> None:
    """`cancel REF --entry Leeds:1042`: which of the registrations sharing a reference."""
    from tellusonce import cli

    assert cli._entry("King’s  Lynn:7") == ("king's lynn", 7)
    with pytest.raises(SystemExit):
        run_cli(["cancel", "ABCDE-FGHJK", "--reason", "x", "--entry", "Leeds"])
    assert "'Leeds' is not DISTRICT:NUMBER (e.g. Leeds:1042)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("sqlite:////tmp/one.db", "must name each service's own database with {service}"),
        ("sqlite:///{service}_{x}.db", "may hold {service} and no other {field}"),
        ("nonsense_{service}", "is not a SQLAlchemy URL (e.g. postgresql+psycopg://...)"),
        ("postgres://u@db/t_{service}", "names a database SQLAlchemy has no dialect for (e.g. "
                                        "postgresql+psycopg://...)"),
        ("mysql+nosuchdriver://u@db/t_{service}", "names a database SQLAlchemy has no dialect "
                                                  "for (e.g. postgresql+psycopg://...)"),
        ("mssql+pymssql://u@db/t_{service}", "needs the Python package pymssql, which is not "
         "installed (for postgresql+psycopg: pip install 'tellusonce[postgresql]')"),
    ],
)  # fmt: skip
def test_a_store_url_not_one_database_each_is_refused(
    monkeypatch: pytest.MonkeyPatch,
    run_cli: Callable[[list[str]], int],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    value: str,
    said: str,
) -> None:
    """Without {service}, `seed` wrote every service's records into one database (an event one
    service applied would be a duplicate to the others); a malformed one was a traceback, and
    so was one whose dialect or driver could not be loaded (its reason withheld)."""
    monkeypatch.setenv("TELLUSONCE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TELLUSONCE_STORE_URL", value)
    assert run_cli(["seed"]) == 1
    assert capsys.readouterr().err == f"error: setting TELLUSONCE_STORE_URL: Value error, {said}\n"
    assert list(tmp_path.iterdir()) == []


def test_settings_and_files_the_libraries_refuse_are_said_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
    run_cli: Callable[[list[str]], int],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """Each was a traceback: librdkafka refusing TELLUSONCE_KAFKA_SECURITY, a store file that
    is not a database; /dev/zero given as a submission grew the process until the system killed
    it; a principal with another {field}."""
    monkeypatch.setenv("TELLUSONCE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TELLUSONCE_KAFKA_SECURITY", '{"bogus.key": "x"}')
    assert run_cli(["topics"]) == 1
    assert capsys.readouterr().err == (
        'error: Kafka\'s client refused its settings: No such configuration property: "bogus.key"\n'
    )
    monkeypatch.delenv("TELLUSONCE_KAFKA_SECURITY")
    (tmp_path / "registrar.db").write_text("not a database")
    with pytest.raises(SystemExit, match="error: store not usable: file is not a database"):
        run_cli(["keys", "list"])
    assert run_cli(["submit", "death", "/dev/zero"]) == 2
    assert "(file): /dev/zero is larger than 1024 KiB" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run_cli(["acls", "--principal", "User:{name}{0}"])
    assert "may hold {name} and no other {field}" in capsys.readouterr().err


def test_up_and_the_demo_without_a_broker_exit_3_as_every_command_kafka_does_not_answer(
    monkeypatch: pytest.MonkeyPatch,
    run_cli: Callable[[list[str]], int],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """They exited 1 (a store's, a setting's), without `error:`."""
    from tellusonce import cli, kafka

    monkeypatch.setattr(kafka.Admin, "reachable", lambda _self, _timeout=5.0: False)
    monkeypatch.setenv("TELLUSONCE_DATA_DIR", str(tmp_path / "demo"))
    monkeypatch.setenv("TELLUSONCE_BOOTSTRAP_SERVERS", "kafka.example:9092")
    assert run_cli(["demo"]) == cli.EXIT_BROKER
    assert capsys.readouterr().err.startswith("error: no Kafka broker answers at kafka.example")


def test_keys_create_names_the_office_as_it_keeps_it(
    monkeypatch: pytest.MonkeyPatch,
    run_cli: Callable[[list[str]], int],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("TELLUSONCE_DATA_DIR", str(tmp_path))
    assert run_cli(["keys", "create", "  LEEDS-RO-1 ", "--district", "Leeds"]) == 0
    assert " for office LEEDS-RO-1, registering in " in capsys.readouterr().out


def test_serve_on_one_port_for_the_api_and_its_metrics_is_refused_before_it_starts(
    monkeypatch: pytest.MonkeyPatch,
    run_cli: Callable[[list[str]], int],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """It said "registrar API on ...", then uvicorn could not bind, and it exited 3 (Kafka's)."""
    monkeypatch.setenv("TELLUSONCE_DATA_DIR", str(tmp_path))
    port = str(_free())
    assert run_cli(["serve", "--port", port, "--metrics-port", port]) == 1
    said = capsys.readouterr()
    assert said.err == f"error: port {port} is the API's and its metrics': choose another\n"
    assert said.out == ""
    assert list(tmp_path.iterdir()) == []


def test_status_lists_the_events_awaiting_an_answer_and_finds_one_by_its_event_id(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    run_cli: Callable[[list[str]], int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The overdue alert said "tellusonce status REFERENCE", and nothing named the reference;
    `status` of an event id (a dead letter's) said "No events known"; and `status` made an empty
    tracker store where there was none. `status --awaiting` lists them, oldest first."""
    from consumers.tracker import TrackerStore
    from producers.submission import Registrar
    from tellusonce.codec import Codec
    from tellusonce.events import EventType
    from tellusonce.settings import Settings
    from tellusonce.topics import TRACKER
    from tests.factories import document
    from tests.handlers import tracked
    from tests.stand_ins import Kept

    settings = Settings(data_dir=tmp_path / "bus")  # (before run_cli configures the logs)
    registrar = Registrar(settings, Kept(), Codec())  # type: ignore[arg-type]
    first = registrar.submit(EventType.DEATH, document(EventType.DEATH))
    event_id = str(first.event_id)
    tracked(TrackerStore(settings.store_url_for(TRACKER)), registrar.ledger, [event_id])
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("TELLUSONCE_DATA_DIR", str(tmp_path / "empty"))
    assert run_cli(["status", "5D4Z6-43N23"]) == 1
    assert run_cli(["status", "--awaiting"]) == 0
    assert "No event awaits a service's answer." in capsys.readouterr().out
    assert list((tmp_path / "empty").iterdir()) == []

    monkeypatch.setenv("TELLUSONCE_DATA_DIR", str(tmp_path / "bus"))
    assert run_cli(["status", "--awaiting", "--older-than", "15"]) == 0
    listed = capsys.readouterr().out
    assert "1 events await a service's answer for over 15 minutes, oldest first:" in listed
    assert f"{first.reference} · death registered" in listed
    assert f"event {event_id} · awaiting State Pension, " in listed
    assert run_cli(["status", event_id.upper()]) == 0
    assert f"Reference {first.reference} · death registered" in capsys.readouterr().out
    (tmp_path / "bus" / "tracker.db").unlink()  # the tracker has not read it: the ledger knows
    assert run_cli(["status", event_id]) == 0
    assert f"Reference {first.reference} · death registered" in capsys.readouterr().out
    assert run_cli(["status"]) == 2
    assert run_cli(["status", first.reference, "--awaiting"]) == 2
    assert run_cli(["status", first.reference, "--older-than", "5"]) == 2
