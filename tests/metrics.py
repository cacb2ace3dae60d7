"""Reading this process's Prometheus metrics in tests, or a new process's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from prometheus_client import REGISTRY


def consumed(service: str, outcome: str, event_type: str = "death") -> float:
    """How many life events of a type a service handled with an outcome, so far (0 if none)."""
    labels = {"service": service, "event_type": event_type, "outcome": outcome}
    return REGISTRY.get_sample_value("tellusonce_events_consumed_total", labels) or 0.0


def samples_in_a_new_process(setup: str, name: str, data_dir: Path) -> set[str]:
    """The samples of a metric (`labels... value`, a line each) in a process of its own after
    `setup` (Python, given `settings` over `data_dir`): counters start there as a process
    starts them (this one's were made by other tests)."""
    code = (
        "import sys; from pathlib import Path; from prometheus_client import REGISTRY\n"
        "from tellusonce.codec import Codec; from tellusonce.settings import Settings\n"
        "from tests.stand_ins import Kept\n"
        "settings = Settings(data_dir=Path(sys.argv[1]), bootstrap_servers='127.0.0.1:1')\n"
        f"{setup}\n"
        "for metric in REGISTRY.collect():\n"
        "    for s in metric.samples:\n"
        f"        if s.name == {name!r}:\n"
        "            print(*s.labels.values(), s.value)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(data_dir)], capture_output=True, text=True, check=True
    )
    return set(done.stdout.splitlines())
