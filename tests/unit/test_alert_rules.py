"""The alert rules and scrape configs in deploy/prometheus, checked and unit-tested by promtool."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

PROMETHEUS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


@pytest.mark.parametrize(
    "args",
    [
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts.test.yml"],
        ["check", "config", "prometheus.yml"],
        ["check", "config", "compose.prometheus.yml"],
    ],
    ids=" ".join,
)
def test_promtool_accepts(args: list[str]) -> None:
    """promtool exits 0: rules valid, each alert fires in its situation and not outside it."""
    result = subprocess.run(
        ["promtool", *args], cwd=PROMETHEUS, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
