"""The command line against the real broker: invalid input changes nothing; the demo's main job."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from consumers.services import SERVICES
from consumers.store import ServiceStore
from tellusonce.codec import Codec
from tellusonce.events import EventType
from tellusonce.settings import Settings
from tellusonce.topics import Topics
from tests.factories import document
from tests.integration.conftest import free_ports, read_topic, tellusonce

# The hero's personal data as it could appear in any form in a log, key or header.
PERSONAL = re.compile(
    r"JT\s?12\s?34\s?56\s?A|JT\s?65\s?43\s?21\s?B|Thompson|Arthur|Margaret|1946-05-14|1949-09-02"
    r"|LS6\s?2AB|Elm Road",
    re.IGNORECASE,
)


class TestSubmitCommand:
    """`tellusonce submit` publishes valid registrations and refuses invalid ones."""

    @pytest.mark.parametrize(
        ("change", "expected"),
        [
            ({"deceased.nino": "JT12345"}, "deceased.nino: not a valid National Insurance number"),
            ({"date_of_death": "1940-02-02"}, "date_of_death: is before the date of birth"),
        ],
    )
    def test_invalid_submission_exits_2_naming_the_field_and_publishes_nothing(
        self,
        settings: Settings,
        topics: Topics,
        tmp_path: Path,
        change: dict[str, str],
        expected: str,
    ) -> None:
        """A malformed NINO, or a death before birth: exit 2, the field named, topic empty."""
        doc = document(EventType.DEATH)
        for path, value in change.items():
            *parents, leaf = path.split(".")
            target = doc
            for part in parents:
                target = target[part]
            target[leaf] = value
        file = tmp_path / "bad.json"
        file.write_text(json.dumps(doc))

        result = tellusonce(settings, "submit", "death", str(file))

        assert result.returncode == 2
        assert expected in result.stderr
        assert "JT12345" not in result.stderr
        assert read_topic(settings, topics.events(EventType.DEATH)) == []

    def test_valid_submission_prints_id_and_reference_after_acknowledgement(
        self, settings: Settings, topics: Topics
    ) -> None:
        """The example is published once and its event_id and reference printed."""
        result = tellusonce(settings, "submit", "death", "examples/death.json")
        assert result.returncode == 0, result.stderr
        printed = dict(line.split(": ", 1) for line in result.stdout.splitlines())
        (message,) = read_topic(settings, topics.events(EventType.DEATH))
        assert printed["event_id"] == dict(message.headers)["ce_id"].decode()
        assert re.fullmatch(r"[0-9A-Z]{5}-[0-9A-Z]{5}", printed["reference"])

    def test_unreachable_broker_exits_3_without_claiming_success(self, settings: Settings) -> None:
        """No broker: exit 3, at once, and no event_id printed."""
        unreachable = settings.model_copy(update={"bootstrap_servers": "127.0.0.1:1"})
        result = tellusonce(
            unreachable,
            "submit",
            "death",
            "examples/death.json",
            TELLUSONCE_PUBLISH_TIMEOUT_SECONDS="3",
        )
        assert result.returncode == 3
        assert "event_id" not in result.stdout
        said = result.stderr.splitlines()[-1]
        assert said == (
            "error: no broker answers at 127.0.0.1:1: nothing was published; run the same "
            "command again once Kafka answers"
        )
        # said before publishing (not after the publish's timeout), so nothing was recorded
        # as perhaps published: the registrar may submit other facts for the entry
        ledger = sqlite3.connect(settings.data_dir / "registrar.db")
        assert ledger.execute("SELECT count(*) FROM submissions").fetchone() == (0,)
        # librdkafka logs each failed attempt to connect, about 4 a second: said once at most
        failures = [line for line in result.stderr.splitlines() if "Connect to" in line]
        assert len(failures) <= 1, result.stderr


class TestDemo:
    """`tellusonce demo` (what `make run` runs): processes, one death, 4/4, no personal data."""

    def test_demo_confirms_by_four_services_without_personal_data_anywhere(
        self, settings: Settings, topics: Topics
    ) -> None:
        """Exit 0, `confirmed by 4/4 services`; logs, keys and headers carry no personal data."""
        result = tellusonce(settings.model_copy(update={"api_port": free_ports(1)}), "demo")

        assert result.returncode == 0, result.stdout + result.stderr
        assert re.search(r"^confirmed by 4/4 services in \d+\.\d\d s$", result.stdout, re.M)
        assert "stopped 6/6 processes cleanly" in result.stdout
        assert "shows every service's answer" in result.stdout
        logs = list((settings.data_dir / "logs").glob("*.log"))
        assert len(logs) == 6
        for log in logs:
            text = log.read_text()
            lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
            handled = (
                {"http_request"}
                if log.name == "registrar.log"
                else {"message_handled", "batch_handled"}
            )
            assert handled <= {line["event"] for line in lines}
            assert not PERSONAL.search(text), f"personal data in {log.name}"
        assert not PERSONAL.search(result.stderr)
        for topic in topics.all():
            for message in read_topic(settings, topic):
                assert re.fullmatch(rb"[0-9a-f]{64}|[0-9a-f-]{36}", message.key or b"")
                for name, value in message.headers:
                    assert not PERSONAL.search(value.decode()), f"{name} on {topic}"
        # and the outcomes themselves: four confirmations of the one death on the topic, and
        # the pension stopped in State Pension's own store
        (death,) = read_topic(settings, topics.events(EventType.DEATH))
        answers = [Codec().decode(m.value) for m in read_topic(settings, topics.confirmations)]
        assert sorted((a.service, str(a.event_id)) for a in answers) == sorted(  # type: ignore[union-attr]
            (name, dict(death.headers)["ce_id"].decode()) for name in SERVICES
        )
        store = ServiceStore(settings.store_url_for("pensions"), SERVICES["pensions"].record_type)
        (pension,) = [r for r in store.records() if r.record_id == "SP-100001"]
        store.close()
        assert pension.status == "STOPPED"  # type: ignore[attr-defined]


def test_acls_applied_to_a_broker_without_an_authorizer_says_so(settings: Settings) -> None:
    """The local broker authorizes nothing: applying ACLs there is refused, in one line."""
    result = tellusonce(settings, "acls", "--apply")
    assert result.returncode == 3
    assert result.stderr.startswith("error: ACL not created (User:tellusonce-pensions Read topic")
    assert result.stderr.endswith("): No Authorizer is configured.\n")
