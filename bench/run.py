"""The benchmark: one command brings everything up, runs the scenarios, and reports.

    .venv/bin/python -m bench [--scenarios 1,2,...] [--quick] [sizes...]     (or: make bench)

It starts the local services (``event-manager services start``, which reuses running
ones), its own API and worker processes on a fresh database prefix ``bench_<random>``
(dropped at the end) and a receiver process; runs the scenarios; writes
``bench/results/<date>-<host>.json``; and prints the targets as a markdown table, with
the CPU each process used per scenario. Delivery results are also given as a ratio to a
raw ceiling measured in the same run, on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import aiohttp

from bench import (
    activity,
    dashboard,
    delivery,
    fairness,
    first_attempts,
    idle,
    intake,
    latency,
    memory,
    report,
    sweep,
    tenants,
)
from bench.context import Bench, Sizes
from bench.probes import wake_penalty
from bench.receiver import KEEPALIVE, Receiver
from bench.stack import ROOT, Stack
from tests.collector import Collector
from tests.support import free_port

SCENARIOS = {
    "1": ("delivery, fast receiver, 1 action per event", delivery.scenario_1),
    "2": ("delivery, 50 actions per event", delivery.scenario_2),
    "3": ("delivery, receiver 200 ms", delivery.scenario_3),
    "4": ("intake: triggerEvent ×32, triggerEvents ×100", intake.scenario_4),
    "5": ("end-to-end latency at a steady rate", latency.scenario_5),
    "6": ("a tenant with many activity rows", activity.scenario_6),
    "7": ("memory after N deliveries", memory.scenario_7),
    "8": ("a light tenant's latency while another's deliveries are heavy",
          fairness.scenario_8),
    "9": ("steady-rate sweep, one triggerEvent per request", sweep.scenario_9),
    "10": ("idle: no traffic", idle.scenario_10),
    "11": ("dashboards: activityStats over 24 h of many rows", dashboard.scenario_11),
    "12": ("first attempts first: a healthy action while a hanging one's retries are due",
           first_attempts.scenario_12),
    "13": ("thousands of tenants: cost per tenant, latency among many",
           tenants.scenario_13),
}
CPU_COLUMNS = ("api", "worker", "ferretdb", "redis", "installation", "bench", "others",
               "machine")


def options(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help="comma-separated, e.g. 1,4 (default: all)")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--deliveries", type=int, help="scenario 7: deliveries (default "
                        "20,000; target 100,000)")
    parser.add_argument("--throughput-deliveries", type=int,
                        help="scenarios 1-2: deliveries per run (default 5,000)")
    parser.add_argument("--rows", type=int, help="scenario 6: activity rows (default "
                        "100,000; target 1,000,000)")
    parser.add_argument("--dashboard-rows", type=int, help="scenario 11: activity rows over "
                        "24 h (default 1,000,000)")
    parser.add_argument("--latency-seconds", type=float, help="scenario 5: seconds per rate")
    parser.add_argument("--warm-up-events", type=int, help="scenarios 5 and 9: triggers "
                        "sent at the rate before each measured window (default 500)")
    parser.add_argument("--sweep-rates", type=numbers(float),
                        help="scenario 9: triggers/s, e.g. 50,200 (default 50,200,500,1000)")
    parser.add_argument("--sweep-seconds", type=float,
                        help="scenario 9: seconds measured per rate (default 20)")
    parser.add_argument("--worker-processes", type=numbers(int),
                        help="scenarios 1 and 9: the worker's --processes, each in turn "
                             "(default 1,2)")
    parser.add_argument("--idle-seconds", type=float,
                        help="scenario 10: seconds with no traffic (default 30)")
    parser.add_argument("--first-attempts-seconds", type=float,
                        help="scenario 12: seconds the healthy action is timed alone and "
                             "again while the retries are due (default 20; at 5 triggers/s, "
                             "its p99 is the second largest of 100 samples)")
    parser.add_argument("--tenants", type=int,
                        help="scenario 13: tenants made (default 1,000)")
    parser.add_argument("--tenant-passes", type=int,
                        help="scenario 13: passes of triggers over all tenants, the RSS "
                             "sampled throughout (default 2: cold, then warm)")
    parser.add_argument("--cached-tenants", type=int,
                        help="EVENT_MANAGER_CACHED_TENANTS of the API and worker (default: "
                             "the setting's default); listed under settings_changed")
    parser.add_argument("--tenant-databases", type=int,
                        help="EVENT_MANAGER_TENANT_DATABASES (default: the setting's default, "
                             "1); listed under settings_changed")
    parser.add_argument("--intake-requests", type=int, help="scenario 4: triggerEvent calls")
    parser.add_argument("--intake-events", type=int, help="scenario 4: events in batches")
    parser.add_argument("--profile", action=argparse.BooleanOptionalAction, default=None,
                        help="py-spy the worker in scenario 1 and the API in scenario 4 "
                             "(default: on, off with --quick)")
    parser.add_argument("--output", type=Path, help="the JSON file (default "
                        "bench/results/<date>-<host>.json)")
    parser.add_argument("--trace", action="store_true",
                        help="tracing on: the API and worker export every span over OTLP to "
                             "a collector in the bench process that counts them (its CPU "
                             "is the bench's, as an operator's collector is not ours)")
    parser.add_argument("--scenario-timeout", type=float, default=1800.0,
                        help="seconds before a scenario is given up (default 1800)")
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    args.chosen = chosen
    return args


def numbers(kind: type[int] | type[float]) -> Callable[[str], tuple[Any, ...]]:
    """An option's parser for a comma-separated list of positive numbers: "1,2"."""
    def parse(text: str) -> tuple[Any, ...]:
        try:
            values = tuple(kind(part) for part in text.split(",") if part.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: comma-separated numbers") from None
        if not values or min(values) <= 0:
            raise argparse.ArgumentTypeError(f"{text!r}: one or more numbers above 0")
        return values

    return parse


def sizes_from(args: argparse.Namespace) -> Sizes:
    sizes = Sizes.quick() if args.quick else Sizes()
    changes = {field: value for field, value in (
        ("memory_deliveries", args.deliveries), ("deliveries", args.throughput_deliveries),
        ("rows", args.rows), ("dashboard_rows", args.dashboard_rows),
        ("latency_seconds", args.latency_seconds),
        ("intake_requests", args.intake_requests), ("intake_events", args.intake_events),
        ("warm_up_events", args.warm_up_events), ("sweep_rates", args.sweep_rates),
        ("sweep_seconds", args.sweep_seconds), ("worker_processes", args.worker_processes),
        ("idle_seconds", args.idle_seconds), ("first_seconds", args.first_attempts_seconds),
        ("tenants", args.tenants), ("tenant_passes", args.tenant_passes),
    ) if value is not None}
    return replace(sizes, **changes)


def machine() -> dict[str, Any]:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    return {
        "host": socket.gethostname(), "cpus": os.cpu_count(), "platform": platform.platform(),
        "python": platform.python_version(),
        "commit": commit + ("+changes" if dirty else ""),
        "versions": {p: version(p) for p in ("aiohttp", "pymongo", "dramatiq", "uvicorn",
                                             "strawberry-graphql", "redis")},
    }


def cpu_table(results: dict[str, Any]) -> str:
    """Cores used per process during each scenario's main measurement."""
    lines = ["| # | " + " | ".join(CPU_COLUMNS) + " |", "|---" * (len(CPU_COLUMNS) + 1) + "|"]
    for number, result in results.items():
        found = result.get("cpu_cores") or (result.get("trigger_event") or {}).get("cpu_cores") \
            or ((result.get("attempts") or [{}])[0]).get("cpu_cores")
        if found:
            cells = " | ".join(f"{found.get(c, 0):.2f}" for c in CPU_COLUMNS)
            lines.append(f"| {number} | {cells} |")
    return "\n".join(lines)


@contextlib.contextmanager
def collector(trace: bool) -> Iterator[dict[str, int] | None]:
    """With ``trace``, an OTLP collector that counts what it gets, named to the API and
    worker by ``OTEL_EXPORTER_OTLP_ENDPOINT`` (``Stack.env`` passes ``OTEL_*`` through);
    yields its counts. Without, makes sure no endpoint is inherited."""
    names = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    before = {name: os.environ.pop(name, None) for name in names}
    sink = Collector(keep=False).start() if trace else None
    if sink is not None:
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = sink.url
    try:
        yield sink.received if sink is not None else None
    finally:
        if sink is not None:
            sink.stop()
        for name, value in before.items():
            os.environ.pop(name, None)
            if value is not None:
                os.environ[name] = value


@contextlib.asynccontextmanager
async def system(sizes: Sizes, profile: bool, worker_threads: int | None = None,
                 overrides: dict[str, Any] | None = None) -> AsyncIterator[Bench]:
    """Services, receiver, API and worker up; everything the bench made gone after, also
    when the bench is stopped by SIGTERM (``timeout``, ``kill``), which cancels it as
    Ctrl-C does instead of ending Python with the API and worker left running."""
    loop, task = asyncio.get_running_loop(), asyncio.current_task()
    if task is not None:
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    logs = Path(tempfile.mkdtemp(prefix="bench-logs-"))
    stack = Stack(logs, worker_threads=worker_threads, overrides=overrides or {})
    print(f"bench: database prefix {stack.settings.database}, logs in {logs}", flush=True)
    await asyncio.to_thread(stack.start_services)
    receiver = await Receiver(free_port(), logs / "receiver.log").ready()
    stack.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120),
                                       connector=aiohttp.TCPConnector(
                                           limit=200, keepalive_timeout=KEEPALIVE))
    try:
        await stack.start_api(free_port())
        await stack.start_worker()
        yield Bench(stack, receiver, sizes, ROOT / "bench" / "results", profile=profile)
    finally:
        await stack.close()
        await receiver.close()
        loop.remove_signal_handler(signal.SIGTERM)


async def run(args: argparse.Namespace) -> tuple[dict[str, Any], Path]:
    sizes = sizes_from(args)
    profile = args.profile if args.profile is not None else not args.quick
    started, load_at_start = datetime.now(UTC), os.getloadavg()
    woken = await asyncio.to_thread(wake_penalty, 50 if args.quick else 200)
    overrides = {name: value for name, value in (
        ("cached_tenants", args.cached_tenants), ("tenant_databases", args.tenant_databases))
        if value is not None}
    with collector(args.trace) as traced:
        results, bench = await scenarios(args, sizes, profile, overrides)
        tracing = {"spans_exported": dict(traced)} if traced is not None else None
    out = args.output or bench.results / f"{started:%Y-%m-%d}-{socket.gethostname()}.json"
    rows = report.targets(results)
    document = {
        "date": started.isoformat(timespec="seconds"),
        "machine": {**machine(), "load_average_at_start": load_at_start,
                    "wake_penalty": woken,
                    "load_average_at_end": os.getloadavg()},
        "options": {"scenarios": args.chosen, "quick": args.quick, "profile": profile,
                    "sizes": sizes.__dict__, "database": bench.stack.settings.database,
                    "settings_changed": bench.stack.changed_settings,
                    "tracing": tracing,
                    "raw_ceiling_concurrency": bench.concurrency,
                    "logs": str(bench.stack.logs)},
        "scenarios": results, "targets": rows,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return document, out


async def scenarios(args: argparse.Namespace, sizes: Sizes, profile: bool,
                    overrides: dict[str, Any]) -> tuple[dict[str, Any], Bench]:
    """The chosen scenarios' results, one failed scenario leaving the others'."""
    results: dict[str, Any] = {}
    async with system(sizes, profile, overrides=overrides) as bench:
        for number in args.chosen:
            title, scenario = SCENARIOS[number]
            print(f"scenario {number}: {title} …", flush=True)
            began = time.monotonic()
            try:
                results[number] = await asyncio.wait_for(scenario(bench), args.scenario_timeout)
            except Exception as exc:  # one failed scenario still leaves the others' results
                traceback.print_exc()
                results[number] = {"error": f"{type(exc).__name__}: {exc}"}
            results[number]["scenario_seconds"] = round(time.monotonic() - began, 1)
    return results, bench


def main(argv: list[str] | None = None) -> int:
    args = options(argv)
    try:
        try:
            import uvloop
        except ImportError:
            document, out = asyncio.run(run(args))
        else:
            document, out = asyncio.Runner(loop_factory=uvloop.new_event_loop).run(run(args))
    except asyncio.CancelledError:  # SIGTERM (system())
        print("bench: stopped by SIGTERM; what it started is stopped", file=sys.stderr)
        return 143
    m = document["machine"]
    print(f"\n## Event Manager bench, {document['date']}, {m['host']} ({m['cpus']} CPUs, "
          f"load {m['load_average_at_start'][0]:.2f} at start, commit {m['commit']})\n")
    w = m["wake_penalty"]
    print(f"Waking up here: the same Python work takes {w['warm_us']:.0f} µs of CPU back to "
          f"back and {w['after_sleep_us']:.0f} µs after {w['gap_ms']:.0f} ms asleep "
          f"({w['factor']:.1f}×; bench/probes.py wake_penalty).\n")
    tracing = document["options"]["tracing"]
    if tracing:
        got = tracing["spans_exported"]
        print(f"Tracing on: {got['spans']:,} spans exported in {got['requests']:,} OTLP requests "
              f"({got['bytes'] / 1e6:.1f} MB).\n")
    print(report.table(document["targets"]))
    sweep_table = report.sweep_table(document["scenarios"])
    if sweep_table:
        print("\nScenario 9, the sweep: latency trigger sent → request received, ms; CPU s per "
              "1,000 deliveries of each process (with its children) and of the installation "
              "(API + worker + FerretDB + Redis):\n")
        print(sweep_table)
    print("\nCPU used during each scenario, in cores (1.00 = one core busy; others = "
          "programs outside the bench, such as other people's tests):\n")
    print(cpu_table(document["scenarios"]))
    print()
    for note in report.notes(document):
        print(f"- {note}")
    errors = {n: r["error"] for n, r in document["scenarios"].items() if "error" in r}
    for number, error in errors.items():
        print(f"\nscenario {number} failed: {error}")
    print(f"\nresults: {out}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
