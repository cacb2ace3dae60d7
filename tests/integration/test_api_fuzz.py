"""Schemathesis against the API's own OpenAPI spec, on the real broker: no input gives a 5xx."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings

from producers.api import create_app
from producers.offices import Offices
from producers.submission import Registrar
from tellusonce.codec import Codec
from tellusonce.kafka import Publisher
from tellusonce.settings import Settings
from tellusonce.topics import Topics


def test_no_generated_request_makes_a_server_error(settings: Settings, topics: Topics) -> None:
    """Every operation, 40 generated requests each, authenticated: every answer is below 500."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    relaxed = settings.model_copy(update={"api_burst": 100_000})
    key = Offices(relaxed.store_url_for("registrar")).create_key("LEEDS-RO-1")
    app = create_app(relaxed, Registrar(relaxed, Publisher(relaxed, "fuzz"), Codec()))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 7  # 4 submissions, correction, cancellation, read
    seen: dict[int, int] = {}
    for operation in operations:

        @given(case=operation.as_strategy())
        @hypothesis_settings(
            max_examples=40, deadline=None, suppress_health_check=list(HealthCheck)
        )
        def no_server_error(case: Any) -> None:
            response = case.call(headers={"Authorization": f"Bearer {key}"})
            seen[response.status_code] = seen.get(response.status_code, 0) + 1
            assert response.status_code < 500, (case.method, case.path, response.text[:300])

        no_server_error()
    print("status codes seen:", dict(sorted(seen.items())))
    assert sum(seen.values()) > 100
    assert seen.keys() & {200, 201, 404, 422}, seen  # requests got past authentication
