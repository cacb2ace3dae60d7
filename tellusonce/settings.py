"""Settings read once from the environment (TELLUSONCE_*) at the edge and passed down."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from tellusonce.events import SOURCE_PATTERN

DEVELOPMENT_SECRET = "local-development-only-not-a-secret"  # noqa: S105 (a labelled placeholder)


# librdkafka settings the code sets itself: given in kafka_security, they would override it (a
# bootstrap.servers there took the clients to a cluster the pseudonym secret's check, which
# reads bootstrap_servers, did not see)
OWN_CLIENT_SETTINGS = frozenset(
    {"bootstrap.servers", "metadata.broker.list", "client.id", "group.id", "logger",
     "enable.idempotence", "acks", "enable.auto.commit", "enable.auto.offset.store",
     "fetch.wait.max.ms", "fetch.min.bytes", "message.timeout.ms"}
)  # fmt: skip


def _librdkafka_settings(given: object) -> object:
    """Extra librdkafka settings: texts, numbers and booleans (librdkafka takes each as text),
    none of those the code sets itself."""
    if not isinstance(given, dict):
        return given  # (pydantic says what it should be)
    if own := sorted(OWN_CLIENT_SETTINGS & set(given)):
        where = {"bootstrap.servers", "metadata.broker.list"} & set(own)
        raise ValueError(
            f"{', '.join(own)}: set by tellusonce itself"
            + (" (the cluster's address is TELLUSONCE_BOOTSTRAP_SERVERS)" if where else "")
        )
    return {key: _as_text(value) for key, value in given.items()}


def _as_text(value: object) -> object:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, int | float) else value


def _schemas_there(directories: list[Path]) -> list[Path]:
    """Extra schema directories that hold schemas the codec can tell apart (a directory not
    there was ignored: the schemas deployed ahead of the code missing, their messages
    dead-lettered until someone looked)."""
    if directories:
        from tellusonce.codec import load_schemas

        try:
            load_schemas(directories)  # its ValueError says what is wrong
        except OSError as exc:  # a file this process cannot read
            raise ValueError(f"{exc.filename}: {exc.strerror}") from None
    return directories


def _one_store_each(template: str | None) -> str | None:
    """A store URL template naming each service's own database ({service}), and no other
    field: without it every service shared one database (each service's records beside the
    others', and an event one applied taken by the others for one they had)."""
    if template is None:
        return None
    if "{service}" not in template:
        raise ValueError("must name each service's own database with {service}")
    try:
        url = template.format(service="pensions")
    except (KeyError, IndexError, ValueError):
        raise ValueError("may hold {service} and no other {field}") from None
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        dialect = make_url(url).get_dialect()
    except NoSuchModuleError:  # postgres://, say (SQLAlchemy names it postgresql)
        raise ValueError("names a database SQLAlchemy has no dialect for (e.g. "
                         "postgresql+psycopg://...)") from None  # fmt: skip
    except ArgumentError:
        raise ValueError("is not a SQLAlchemy URL (e.g. postgresql+psycopg://...)") from None
    try:
        dialect.import_dbapi()
    except ImportError as exc:  # without the tellusonce[postgresql] extra, say
        raise ValueError(
            f"needs the Python package {exc.name or 'its driver'}, which is not installed (for "
            "postgresql+psycopg: pip install 'tellusonce[postgresql]')"
        ) from None
    return template


class Settings(BaseSettings):
    """Everything a tellusonce process may be configured with."""

    model_config = SettingsConfigDict(env_prefix="TELLUSONCE_", frozen=True)

    bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="Kafka bootstrap servers, comma separated"
    )
    kafka_security: Annotated[dict[str, str], BeforeValidator(_librdkafka_settings)] = Field(
        default_factory=dict,
        description="extra librdkafka settings for an existing cluster, as JSON "
        '(e.g. {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512"})',
    )
    topic_prefix: str = Field("", description="prefix for every topic and group (test isolation)")
    partitions: int = Field(6, ge=1)
    replication_factor: int = Field(1, ge=1)
    schema_dirs: Annotated[list[Path], AfterValidator(_schemas_there)] = Field(
        default_factory=list, description="extra writer schemas (schemas/<kind>/vN.avsc layout)"
    )
    instance_id: str | None = Field(
        None, description="static group membership id of this instance (fast restarts)"
    )
    data_dir: Path = Field(Path(".run/data"), description="where SQLite stores live")
    store_url: Annotated[str | None, AfterValidator(_one_store_each)] = Field(
        None, description="SQLAlchemy URL template with {service}; default SQLite in data_dir"
    )
    pseudonym_secret: SecretStr = Field(
        SecretStr(DEVELOPMENT_SECRET), description="HMAC key for person_ref pseudonyms"
    )
    source: str = Field(
        "urn:tellusonce:registrar",
        description="CloudEvents ce_source: an absolute URI, e.g. urn:tellusonce:leeds-ro",
        pattern=SOURCE_PATTERN,
        max_length=200,
    )
    # above linger.ms (5 ms), up to librdkafka's most
    publish_timeout_seconds: float = Field(30.0, ge=0.01, le=2_147_483)
    fetch_wait_ms: int = Field(
        25,
        ge=0,
        le=59_000,  # below librdkafka's socket.timeout.ms (60 s), which it warns of above
        description="how long the broker may hold a consumer's fetch until fetch_min_bytes are "
        "there. Fuller batches than librdkafka's 500 ms and 1 byte (which answer at the first "
        "byte): at 1,000 events/s, make bench's p99 from submission to confirmation fell from "
        "173 to 92 ms, with less CPU per event and the same throughput and catch-up; they add "
        "up to 25 ms a hop at light traffic, and each idle consumer's fetches cost the broker "
        "about 0.8% of a core (tests/bench/README.md)",
    )
    fetch_min_bytes: int = Field(16384, ge=1, le=100_000_000, description="see fetch_wait_ms")
    unmatched_deaths_days: int = Field(
        35,
        ge=1,
        description="days Housing Benefit and Council Tax keep a death they had no record of, "
        "to apply it again after a birth, marriage or move dated before it and read after it "
        "(consumers/deaths_read_first.py)",
    )
    api_port: int = Field(8080, ge=0, le=65535, description="port of `tellusonce serve`")
    api_rate_per_second: float = Field(5.0, gt=0, description="requests/s per office (average)")
    api_burst: int = Field(20, ge=1, description="requests an office may make at once")
    status_attempts_per_minute: int = Field(5, ge=1, description="family status page tries/IP")
    api_trusted_proxies: str | None = Field(
        None,
        description="addresses of reverse proxies whose X-Forwarded-For names the client (comma "
        "separated); none by default: the connection's address is the client's, and a header "
        "saying otherwise is not believed (the status page counts attempts per client)",
    )
    log_level: Annotated[str, BeforeValidator(lambda v: v.lower() if isinstance(v, str) else v)] = (
        Field("info", pattern="^(debug|info|warning|error)$")
    )
    metrics_host: str = Field("127.0.0.1", description="address /metrics listens on")
    metrics_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="a process's /metrics port (a consumer's, or serve's); None: 9401-9405 by "
        "service, 9406 for serve",
    )

    def store_url_for(self, service: str) -> str:
        """The SQLAlchemy URL of one service's (or the tracker's) own store."""
        if self.store_url:
            return self.store_url.format(service=service)
        return f"sqlite:///{self.data_dir / service}.db"

    def as_environment(self) -> dict[str, str]:
        """These settings as TELLUSONCE_* variables, for child processes to read back."""
        env = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            elif isinstance(value, (dict, list)):
                value = json.dumps(value, default=str)
            env[f"TELLUSONCE_{name.upper()}"] = str(value)
        return env
