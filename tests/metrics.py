"""Reading this process's Prometheus metrics in tests."""

from __future__ import annotations

from prometheus_client import REGISTRY


def consumed(service: str, outcome: str, event_type: str = "death") -> float:
    """How many life events of a type a service handled with an outcome, so far (0 if none)."""
    labels = {"service": service, "event_type": event_type, "outcome": outcome}
    return REGISTRY.get_sample_value("tellusonce_events_consumed_total", labels) or 0.0
