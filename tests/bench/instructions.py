"""Instructions per event in the consumers' hot path: a CPU cost this VM's changes of speed do
not touch (callgrind counts instructions; the same count to 0.04% run to run, whatever else the
machine is doing), for comparing two versions of the code.

`make bench-instructions` runs this module under `valgrind --tool=callgrind`, collecting only
inside `functools.reduce` (a C function callgrind can switch collection on for), through which the
hot section alone is run. That section is the four services and the tracker, each with its real
runtime, store and codec, handling the same in-memory stream: every event once, then every
confirmation the services made, in batches as from Kafka. Kafka's own work is left out: the
runtime's subscriber and publisher here only keep what they are given (this is not a test of the
bus; the integration and fault suites use a real broker).

BENCH_EVENTS sets the number of events (300); BENCH_REPEATS a share of them delivered a second
time, each at a random later point (as in `make bench`'s duplicate runs), the count staying per
distinct event; BENCH_BATCH the messages per consumer batch (500, as in a backlog; a consumer
keeping up with live traffic handles batches of about 10 to 30, where each batch's own work
weighs more). Without valgrind (`python -m tests.bench.instructions`) it prints CPU time per
event only, which varies with the machine's speed.
"""

from __future__ import annotations

import functools
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from consumers.launch import build_handler, tune_garbage_collector
from consumers.runtime import Runtime
from consumers.seed import seed
from consumers.services import SERVICES
from tellusonce import logs
from tellusonce.kafka import Outgoing, Received
from tellusonce.settings import Settings
from tellusonce.topics import TRACKER, Topics
from tests.bench.harness import CODEC, with_duplicates, workload
from tests.faults.stream import CROWD_SIZE
from tests.messages import encoded, received
from tests.stand_ins import Kept

EVENTS = int(os.environ.get("BENCH_EVENTS", "300"))
REPEATS = float(os.environ.get("BENCH_REPEATS", "0"))  # share of events delivered twice
BATCH = int(os.environ.get("BENCH_BATCH", "500"))  # messages per consumer batch


def hot_path(runtimes: dict[str, tuple[Runtime[Any], Kept]], stream: list[Received]) -> None:
    """Each service handles the events it is entitled to; the tracker, every event and every
    confirmation the services made."""
    confirmations: list[Outgoing] = []
    for name, (runtime, kept) in runtimes.items():
        mine = stream if name != TRACKER else stream + received(confirmations)
        mine = [r for r in mine if r.topic in runtime.handler.topics]
        for start in range(0, len(mine), BATCH):
            runtime.process(mine[start : start + BATCH])
            runtime.relay()
        confirmations += kept.sent
        print(f"  {name}: {len(mine)} messages handled", flush=True)


def cpu_per_event(events: int = EVENTS, repeats: float = REPEATS) -> float:
    """Microseconds of CPU per event over the hot section, run as in a consumer process (its
    garbage-collector tuning, a log line per message to stderr)."""
    logs.configure("info")  # each consumer logs a line per message: part of the cost
    with tempfile.TemporaryDirectory(prefix="tellusonce-instructions-") as root:
        settings = Settings(topic_prefix="instructions.", data_dir=Path(root))
        seed(settings, others=CROWD_SIZE)
        topics = Topics(settings.topic_prefix)
        made = workload(events, settings)
        stream = received(encoded(with_duplicates(made, repeats) if repeats else made, topics))
        runtimes = {}
        for name in (*SERVICES, TRACKER):
            kept = Kept()
            handler = build_handler(name, settings, CODEC)
            runtimes[name] = (Runtime(handler, kept, kept, topics), kept)  # type: ignore[arg-type]
        tune_garbage_collector()  # as a consumer process does
        started = time.process_time()
        functools.reduce(lambda _a, _b: hot_path(runtimes, stream), [None], None)
        return (time.process_time() - started) / events * 1e6


def main() -> None:
    twice = f" ({REPEATS:.0%} of them twice)" if REPEATS else ""
    print(f"{EVENTS} events{twice} through the four services and the tracker", flush=True)
    per_event = cpu_per_event()
    print(f"{EVENTS} events: {per_event:,.0f} µs of CPU per event (far more under valgrind)")


if __name__ == "__main__":
    main()
