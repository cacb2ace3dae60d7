"""`make bench`: how fast the bus moves events, as ratios to the bare Kafka transport.

Each measurement alternates ours and the baseline (fresh topics, groups and stores each run) on
the same broker, and reports the median and range. Writes bench/results.json, bench/results.png
and bench/profile.txt, and prints a table. Sizes can be lowered for a quick look with
BENCH_EVENTS, BENCH_RUNS, BENCH_RATE, BENCH_SECONDS, BENCH_LATENCY_WARM_UP and BENCH_CATCH_UP.
A warm-up run of each, not counted, comes first; each latency run offers its rate for
BENCH_LATENCY_WARM_UP seconds before the BENCH_SECONDS it measures.
"""

from __future__ import annotations

import cProfile
import io
import json
import os
import platform
import pstats
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from tellusonce import logs
from tellusonce.settings import Settings
from tests.bench.harness import (
    CODEC,
    Bus,
    baseline_latency,
    baseline_throughput,
    catch_up,
    ours_applied_once,
    ours_latency,
    ours_throughput,
    with_duplicates,
    workload,
)

OUT = Path(__file__).resolve().parents[2] / "bench"
EVENTS = int(os.environ.get("BENCH_EVENTS", "30000"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
RATE = int(os.environ.get("BENCH_RATE", "1000"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "30"))
# seconds at the rate before those measured: the step from idle to the rate is a transient of its
# own (ours' p50 100 to 170 ms in its first 0.6 s, 30 to 40 from the second second on), reported
# apart, as load generators keep a warm-up apart from the measure (OpenMessaging Benchmark)
LATENCY_WARM_UP = int(os.environ.get("BENCH_LATENCY_WARM_UP", "5"))
CATCH_UP = int(os.environ.get("BENCH_CATCH_UP", "20000"))
WARM_UP = EVENTS  # events in each of the uncounted runs that warm the broker up
SPEED_EVENTS = 1500  # events through the consumers' hot path alone, to gauge the machine's speed


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def quantiles(latencies: dict[str, list[int]]) -> dict[str, dict[str, float]]:
    """p50, p99 and p99.9 of ours and the baseline's (nothing of a flow without any)."""
    return {
        kind: {q: percentile(ms, p) for q, p in (("p50", 0.5), ("p99", 0.99), ("p99.9", 0.999))}
        for kind, ms in latencies.items()
        if ms
    }


def percentile(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, int(q * len(ordered)))])


def measure(root: Path, label: str, run: Any, *args: Any) -> Any:
    """One run on its own topics, groups and stores; the stores and logs (about 250 MB a run)
    are removed after it, or kept, and named, if it failed. What earlier runs and the new
    stores' seeding left in the page cache is written to disk first (os.sync), so that the
    kernel's writeback of it does not fall inside the run: a bare-transport run lasts 1 to 3 s."""
    bus = Bus.fresh(root)
    os.sync()
    try:
        result = run(bus, *args)
    except BaseException:
        bus.stop()
        say(f"  the failed run's stores and logs are kept in {bus.settings.data_dir}")
        raise
    bus.stop()
    bus.discard()
    say(f"{label}: {result}")
    return result


def profile_consumer(root: Path, count: int) -> str:
    """cProfile of one service (pensions) handling a backlog in this process."""
    from sqlalchemy import func, select

    from consumers.launch import build, tune_garbage_collector
    from consumers.store import processed
    from producers.submission import Registrar
    from tellusonce.kafka import Publisher

    bus = Bus.fresh(root)
    stream = workload(count, bus.settings, seed_=5)
    Registrar(bus.settings, Publisher(bus.settings, "bench"), CODEC).publish_many(stream)
    runtime = build("pensions", bus.settings, CODEC)
    stop = threading.Event()
    wanted = expected_for_pensions(stream)
    engine = runtime.handler.store.engine  # type: ignore[attr-defined]

    def processed_count() -> int:  # one COUNT: the profiled thread is not kept from the GIL
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(processed)).scalar_one())

    def watch() -> None:
        deadline = time.monotonic() + 600
        while processed_count() < wanted:
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        stop.set()

    threading.Thread(target=watch, daemon=True).start()
    tune_garbage_collector()  # as a consumer process does (this one holds the bench's data too)
    profiler = cProfile.Profile()
    profiler.runcall(runtime.run, stop)
    bus.stop()
    bus.discard()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(30)
    return text.getvalue()


def expected_for_pensions(stream: list[Any]) -> int:
    from tellusonce.topics import subscribers

    return len(
        {e.envelope.event_id for e in stream if "pensions" in subscribers(e.envelope.event_type)}
    )


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    t = results["throughput"]
    for i, key in enumerate(["ours", "baseline"]):
        m = t[key]
        left.bar(
            i,
            m["median"],
            yerr=[[m["median"] - m["min"]], [m["max"] - m["median"]]],
            capsize=6,
            color=["#1d70b8", "#b1b4b6"][i],
        )
    left.set_xticks([0, 1], ["tellusonce", "bare transport"])
    left.set_ylabel("events/s end to end")
    left.set_title(f"Throughput, {EVENTS} events (ratio {results['ratio']:.2f})")
    lat = results["latency"]
    qs = ["p50", "p99", "p99.9"]
    xs = range(len(qs))
    right.bar(
        [x - 0.2 for x in xs],
        [lat["ours"][q] for q in qs],
        0.4,
        label="tellusonce",
        color="#1d70b8",
    )
    right.bar(
        [x + 0.2 for x in xs],
        [lat["baseline"][q] for q in qs],
        0.4,
        label="bare transport",
        color="#b1b4b6",
    )
    right.set_xticks(list(xs), qs)
    right.set_yscale("log")  # the bare transport's milliseconds beside ours, seconds when behind
    highest = max(max(lat[k][q] for q in qs) for k in ("ours", "baseline"))
    right.set_ylim(top=max(highest, 1) * 20)  # room above the bars for the legend
    right.set_ylabel("ms from submission to confirmation (log scale)")
    right.set_title(f"Latency at {RATE} events/s asked")
    right.legend(loc="upper left", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def warm_up(root: Path) -> None:
    """One throughput run of each, not counted. The broker (a JVM) compiles its hot paths in
    its first minutes: on a fresh broker, five runs of ours in a row (20,000 events each) made
    1,081, 1,192, 1,296, 1,172 and 1,250 events/s, the broker using 0.59, 0.34, 0.22, 0.26 and
    0.24 ms of CPU per event; whichever ran first was measured on a slower broker."""
    stream = workload(WARM_UP, Settings(), seed_=7)
    say(f"warm-up, not counted ({WARM_UP} events each)")
    for kind, how in alternating(0, ours_throughput, baseline_throughput):
        measure(root, f"  {kind} events/s (warm-up)", how, stream)


def machine_speed() -> float:
    """The consumers' hot path alone (tests.bench.instructions: no broker, one process, logs to
    /dev/null), in microseconds of CPU per event. On this project's VM it took 591 to 620 one
    morning and 1,300 to 1,500 that afternoon (with 2% fewer instructions per event): figures
    of invocations taken at different speeds compare only with this beside them."""
    env = os.environ | {
        "BENCH_EVENTS": str(SPEED_EVENTS),
        "BENCH_REPEATS": "0",
        "BENCH_BATCH": "500",
    }
    code = "from tests.bench.instructions import cpu_per_event; print(cpu_per_event())"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=OUT.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        check=True,
    )
    return float(done.stdout.split()[-1])  # after the hot path's progress lines


def alternating(run: int, ours: Any, baseline: Any) -> list[tuple[str, Any]]:
    """Ours then the baseline, or the reverse every other run: neither always runs first
    (the VM's speed drifts)."""
    pair = [("ours", ours), ("baseline", baseline)]
    return pair if run % 2 == 0 else pair[::-1]


def main() -> None:
    OUT.mkdir(exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="tellusonce-bench-"))
    # this process is the registrar (and, for the profile, a consumer) and logs as they do: a
    # JSON line for each event published and each message handled, to a file as theirs are
    lines = root / "bench-process.log"
    logs.configure("info", to=lines.open("wb"))
    say(f"the machine's speed: the consumers' hot path alone ({SPEED_EVENTS} events, no broker)")
    speed = [machine_speed()]
    say(f"  {speed[0]:,.0f} µs of CPU per event")
    warm_up(root)
    throughput: dict[str, list[float]] = {"ours": [], "baseline": []}
    for run in range(RUNS):
        stream = workload(EVENTS, Settings())
        say(f"throughput run {run + 1}/{RUNS} ({EVENTS} events)")
        for kind, how in alternating(run, ours_throughput, baseline_throughput):
            throughput[kind].append(measure(root, f"  {kind} events/s", how, stream))
    latency: dict[str, list[int]] = {"ours": [], "baseline": []}
    stepping: dict[str, list[int]] = {"ours": [], "baseline": []}  # the warm-up seconds'
    offered: dict[str, list[float]] = {"ours": [], "baseline": []}
    for run in range(RUNS):
        stream = workload(RATE * (LATENCY_WARM_UP + SECONDS), Settings(), seed_=13 + run)
        say(
            f"latency run {run + 1}/{RUNS} ({RATE} events/s asked for {LATENCY_WARM_UP} s, "
            f"then {SECONDS} s measured)"
        )
        for kind, how in alternating(run, ours_latency, baseline_latency):
            measured = measure(root, f"  {kind} latencies", how, stream, RATE, LATENCY_WARM_UP)
            latency[kind] += measured.ms
            stepping[kind] += measured.warm_up_ms
            offered[kind].append(measured.offered_per_second)
    duplicates: list[float] = []
    for run in range(RUNS):
        stream = workload(EVENTS, Settings(), seed_=17 + run)
        doubled = with_duplicates(stream, 0.10)
        say(f"redelivery run {run + 1}/{RUNS} ({len(stream)} events, and with 10% repeats)")
        rates: dict[str, float] = {}
        # the pair's order alternates: neither half always runs first (the VM's speed drifts)
        for kind in ("clean", "repeats") if run % 2 == 0 else ("repeats", "clean"):
            if kind == "clean":
                rates[kind] = measure(root, "  clean events/s", ours_throughput, stream)
            else:
                rates[kind] = measure(
                    root, "  with 10% duplicates events/s", ours_applied_once, doubled
                )
        duplicates.append(1 - (rates["repeats"] * len(stream) / len(doubled)) / rates["clean"])
    catch: list[float] = []
    for run in range(RUNS):
        say(f"catch-up run {run + 1}/{RUNS} ({CATCH_UP} events waiting)")
        stream = workload(CATCH_UP, Settings(), seed_=23 + run)
        catch.append(measure(root, "  catch-up seconds", catch_up, stream))
    say("profiling the consumer hot path")
    (OUT / "profile.txt").write_text(profile_consumer(root, min(EVENTS, 5000)))
    say("the machine's speed again")
    speed.append(machine_speed())
    say(f"  {speed[1]:,.0f} µs of CPU per event")

    ours, base = summary(throughput["ours"]), summary(throughput["baseline"])
    lat, lat_warm_up = quantiles(latency), quantiles(stepping)
    results = {
        "ratio": ours["median"] / base["median"],
        "events_per_second": ours["median"],
        "baseline_events_per_second": base["median"],
        "p99_ms_at_1000": lat["ours"]["p99"],
        "baseline_p99_ms_at_1000": lat["baseline"]["p99"],
        "duplicate_cost": statistics.median(duplicates),
        "catch_up_seconds": statistics.median(catch),
        "throughput": {"ours": ours, "baseline": base},
        "latency": lat,
        "latency_warm_up": lat_warm_up,  # the first seconds, as the load steps up: not measured
        "latency_offered_per_second": offered,  # the rate each latency run reached
        "duplicate_cost_runs": duplicates,
        "catch_up_runs": catch,
        "settings": {
            "events": EVENTS,
            "runs": RUNS,
            "rate": RATE,
            "seconds": SECONDS,
            "latency_warm_up_seconds": LATENCY_WARM_UP,
            "catch_up_events": CATCH_UP,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "python_executable": os.path.realpath(sys.executable),  # which build: see Makefile
            "platform": platform.platform(),
            # the consumers' hot path alone, before and after: the machine's speed that day
            "hot_path_cpu_us_per_event": speed,
        },
    }
    (OUT / "results.json").write_text(json.dumps(results, indent=2))
    chart(results, OUT / "results.png")
    print()
    print(f"{'measure':<34}{'tellusonce':>14}{'bare transport':>16}")
    print(
        f"{'events/s (median of ' + str(RUNS) + ')':<34}{ours['median']:>14.0f}"
        f"{base['median']:>16.0f}"
    )
    print(f"{'ratio ours / baseline':<34}{results['ratio']:>14.3f}")
    reached = {k: statistics.median(v) for k, v in offered.items()}
    print(
        f"{f'events/s offered ({RATE}/s asked)':<34}{reached['ours']:>14.0f}"
        f"{reached['baseline']:>16.0f}"
    )
    for q in ("p50", "p99", "p99.9"):
        print(f"{q + f' ms at {RATE}/s':<34}{lat['ours'][q]:>14.0f}{lat['baseline'][q]:>16.0f}")
    if lat_warm_up:
        first = f"p99 ms, first {LATENCY_WARM_UP} s (warm-up)"
        ours_first, base_first = (lat_warm_up[k]["p99"] for k in ("ours", "baseline"))
        print(f"{first:<34}{ours_first:>14.0f}{base_first:>16.0f}")
    print(f"{'duplicate cost (10% duplicates)':<34}{results['duplicate_cost']:>14.1%}")
    print(
        f"{'catch-up of ' + str(CATCH_UP) + ' events (s)':<34}{results['catch_up_seconds']:>14.1f}"
    )
    machine = results["machine"]
    alone = ", ".join(f"{us:,.0f}" for us in speed)
    print(
        f"{'hot path alone, µs CPU/event':<34}{alone:>14}   (the machine's speed, first and last)"
    )
    print(f"\non Python {machine['python']} ({machine['python_executable']})")
    print(f"wrote {OUT / 'results.json'}, {OUT / 'results.png'}, {OUT / 'profile.txt'}")
    lines.unlink()
    root.rmdir()  # each run removed its own directory


if __name__ == "__main__":
    main()
