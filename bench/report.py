"""The targets of issues 6 and 15, checked against a run's results, and the markdown
tables.

Each target is a row: scenario, what is measured, the value, the target, pass or fail
(``n/a`` when its scenario did not run or gave no value; ``info`` for a row that has no
target, only a figure to read).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Row = dict[str, Any]


def _get(results: dict[str, Any], *path: str) -> Any:
    value: Any = results
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _row(scenario: str, measure: str, value: Any, shown: str, target: str,
         check: Callable[[Any], bool]) -> Row:
    ok = None if value is None else bool(check(value))
    return {"scenario": scenario, "measure": measure, "value": value,
            "shown": shown if value is not None else "not run", "target": target, "pass": ok}


def _info(scenario: str, measure: str, value: Any, shown: str, ran: bool) -> Row:
    """A row without a target: its figure, ``info`` in the pass column."""
    return {"scenario": scenario, "measure": measure, "value": value,
            "shown": shown if ran else "not run", "target": "(informational)", "pass": None,
            "informational": True}


def by_processes(result: dict[str, Any] | None) -> list[tuple[int, dict[str, Any]]]:
    """Scenario 1's runs by the worker's ``--processes``: the result itself, then
    ``other_worker_processes``; ``[(1, {})]`` when it did not run."""
    if not result or "deliveries_per_s" not in result:
        return [(1, {})]
    others = result.get("other_worker_processes") or {}
    return [(result.get("worker_processes", 1), result),
            *((int(n), run) for n, run in others.items())]


def per_process(cpu: dict[str, Any]) -> str:
    """``API 0.41, worker 0.92, FerretDB 0.45, Redis 0.06``."""
    return ", ".join(f"{label} {cpu.get(name)}" for name, label in (
        ("api", "API"), ("worker", "worker"), ("ferretdb", "FerretDB"), ("redis", "Redis")))


def targets(results: dict[str, Any]) -> list[Row]:
    s = results
    rows: list[Row] = []
    ratio = _get(s, "1", "ratio_to_ceiling")
    rate1 = _get(s, "1", "deliveries_per_s")
    ceiling = _get(s, "1", "raw_ceiling", "requests_per_s")
    database = _get(s, "1", "database_ceiling", "deliveries_per_s")
    rows.append(_row("1", "deliveries/s vs raw ceiling", ratio,
                     f"{rate1} /s = {ratio:.1%} of {ceiling} /s (database alone: {database} /s)"
                     if ratio is not None else "",
                     "≥ 50 % of raw ceiling", lambda v: v >= 0.5))
    for processes, run in by_processes(s.get("1")):
        cpu = run.get("cpu_s_per_1000") or {}
        burst = cpu.get("installation")
        rows.append(_row("1", f"CPU s per 1,000 deliveries, batched burst, installation "
                         f"(worker --processes {processes})", burst,
                         f"{burst} s at {run.get('deliveries_per_s')} /s ({per_process(cpu)})",
                         "≤ 1.0 s", lambda v: v <= 1.0))
    rate2 = _get(s, "2", "deliveries_per_s")
    rows.append(_row("2", "deliveries/s, 50 actions per event",
                     rate2 if rate1 is not None else None,
                     f"{rate2} /s (scenario 1: {rate1} /s)", "≥ scenario 1",
                     lambda v: v >= rate1))
    rate3 = _get(s, "3", "deliveries_per_s")
    rows.append(_row("3", "deliveries/s, receiver 200 ms", rate3, f"{rate3} /s",
                     "≥ 1,000 /s", lambda v: v >= 1000))
    single = _get(s, "4", "trigger_event", "requests_per_s")
    rows.append(_row("4", "triggerEvent/s, concurrency 32", single, f"{single} /s",
                     "≥ 1,500 /s", lambda v: v >= 1500))
    two = _get(s, "4", "trigger_event_two_apis", "requests_per_s")
    rows.append(_info("4", "triggerEvent/s, concurrency 32, two API processes in turn", two,
                      f"{two} /s (one process: {single} /s)", two is not None))
    batched = _get(s, "4", "trigger_events", "events_per_s")
    rows.append(_row("4", "events/s, triggerEvents × 100", batched, f"{batched} /s",
                     "≥ 10,000 /s", lambda v: v >= 10_000))
    many = s.get("13") or {}
    ran = "ratio_p99_warm" in many
    rows.append(_info("13", "trigger p99 over all tenants / one tenant alone (warm)",
                      many.get("ratio_p99_warm"),
                      f"×{many.get('ratio_p99_warm')} over {many.get('tenants')} tenants "
                      f"(first contact ×{many.get('ratio_p99_cold')})", ran))
    rows.append(_info("13", "createTenant p50 / p95", _get(s, "13", "create_tenant_ms", "p50"),
                      f"{_get(s, '13', 'create_tenant_ms', 'p50')} / "
                      f"{_get(s, '13', 'create_tenant_ms', 'p95')} ms", ran))
    kept = _get(s, "5", "kept_target_rate")
    at = _get(s, "5", "measured_at_rate")
    last_kept = (_get(s, "5", "attempts") or [{}])[-1].get("kept")
    where = "" if kept else f" at {at} /s (200 /s not kept{'' if last_kept else '; nor this'})"
    p50, p99 = _get(s, "5", "latency_ms", "p50"), _get(s, "5", "latency_ms", "p99")
    rows.append(_row("5", "latency p50, trigger → received", p50, f"{p50} ms{where}",
                     "≤ 10 ms at 200 /s", lambda v: kept and v <= 10))
    rows.append(_row("5", "latency p99", p99, f"{p99} ms{where}", "≤ 50 ms at 200 /s",
                     lambda v: kept and v <= 50))
    cpu5 = _get(s, "5", "cpu_s_per_1000") or {}
    cost = cpu5.get("installation")
    rows.append(_row("5", "CPU s per 1,000 deliveries, installation", cost,
                     f"{cost} s{where} ({per_process(cpu5)})", "≤ 2.0 s at 200 /s",
                     lambda v: kept and v <= 2.0))
    n = _get(s, "6", "rows")
    first = _get(s, "6", "big", "first_page", "warm_median_ms")
    cold = _get(s, "6", "big", "first_page", "cold_ms")
    rows.append(_row("6", f"first page of activity(first: 50), {n:,} rows" if n else
                     "first page of activity(first: 50)", first,
                     f"{first} ms (cold {cold} ms)", "< 50 ms", lambda v: v < 50))
    filtered = _get(s, "6", "big", "filtered_page", "warm_median_ms")
    rows.append(_row("6", "filtered page (FAILED + event)", filtered, f"{filtered} ms",
                     "< 50 ms", lambda v: v < 50))
    slowest = _get(s, "6", "slowest_page", "warm_median_ms")
    which = _get(s, "6", "slowest_page", "shape")
    rows.append(_row("6", "slowest page shape (of every filter and cursor)", slowest,
                     f"{slowest} ms ({which})", "< 50 ms", lambda v: v < 50))
    growth = _get(s, "6", "ferretdb_rss_growth_mb")
    rows.append(_row("6", "FerretDB RSS growth while paging", growth, f"{growth} MB",
                     "< 100 MB", lambda v: v < 100))
    search = _get(s, "6", "big", "search, no match", "warm_median_ms")
    note = _get(s, "6", "big", "search, no match", "note")
    rows.append(_row("6", "search matching nothing", search,
                     f"{search} ms{' (partial: ' + note + ')' if note else ' (complete)'}",
                     "≤ 1 s or a note", lambda v: v <= 1000 or bool(note)))
    cost = _get(s, "6", "trigger_cost_ratio")
    big = _get(s, "6", "trigger_event_ms", "big", "p50")
    empty = _get(s, "6", "trigger_event_ms", "empty", "p50")
    rows.append(_row("6", "triggerEvent p50, big vs empty tenant", cost,
                     f"{big} ms vs {empty} ms (×{cost})", "within 10 %",
                     lambda v: v <= 1.10))
    for name, limit in (("worker", 200), ("api", 250)):
        peak = _get(s, "7", name, "peak_mb")
        rows.append(_row("7", f"{name} peak RSS", peak, f"{peak} MB", f"≤ {limit} MB",
                         lambda v, limit=limit: v <= limit))
        growth = _get(s, "7", name, "second_half_growth_mb")
        per_10k = _get(s, "7", name, "second_half_mb_per_10k")
        flat = _get(s, "7", name, "flat")
        trend = "n/a" if per_10k is None else f"{per_10k:+}"
        rows.append(_row("7", f"{name} RSS, second half", flat,
                         f"{'flat' if flat else 'grows'} (peak {growth:+} MB; slope "
                         f"{trend} MB per 10k deliveries)" if growth is not None else "",
                         "flat", bool))
    for kind, what in (("slow", "20 slow"), ("huge", "20 huge"), ("failing", "20 failing"),
                       ("crowd", "1,500 slow")):
        ratio = _get(s, "8", kind, "ratio_p95")
        quiet = _get(s, "8", kind, "quiet", "latency_ms", "p95")
        loaded = _get(s, "8", kind, "loaded", "latency_ms", "p95")
        rows.append(_row("8", f"light tenant's p95 while {what} deliveries of another run",
                         ratio, f"{loaded} ms vs {quiet} ms quiet (×{ratio})",
                         "≤ 2 × quiet", lambda v: v <= 2))
    highest = _get(s, "9", "highest_kept_rate") or {"1": None}
    for processes, rate in highest.items():
        rows.append(_info("9", f"highest rate kept with p99 ≤ 50 ms (worker --processes "
                          f"{processes})", rate, "none of the rates" if rate is None
                          else f"{rate:g} /s", ran="runs" in (s.get("9") or {})))
    idle = _get(s, "10", "installation_cores")
    rows.append(_row("10", "CPU with no traffic, installation", idle,
                     f"{idle} cores ({per_process(_get(s, '10', 'cpu_cores') or {})})",
                     "≤ 0.02 cores", lambda v: v <= 0.02))
    for writers, label in (("one_writer", "1 writer"), ("several_writers", "3 writers")):
        for minutes in (5, 60):
            run = _get(s, "11", writers, f"bucket_{minutes}") or {}
            p50, p95 = _get(run, "latency_ms", "p50"), _get(run, "latency_ms", "p95")
            rows.append(_row("11", f"activityStats, 24 h, bucketMinutes {minutes}, "
                             f"counters of {label}", p50,
                             f"p50 {p50} ms, p95 {p95} ms", "p50 < 100 ms",
                             lambda v: v < 100))
    ratio = _get(s, "12", "ratio_p99")
    quiet = _get(s, "12", "quiet", "latency_ms", "p99")
    loaded = _get(s, "12", "retries", "latency_ms", "p99")
    failing = _get(s, "12", "failing_deliveries")
    rows.append(_row("12", f"healthy action's p99 while {failing or 'the'} retries of a hanging "
                     "one (same tenant) are due", ratio,
                     f"{loaded} ms vs {quiet} ms alone (×{ratio})", "≤ 1.5 × alone",
                     lambda v: v <= 1.5))
    return rows


def table(rows: list[Row]) -> str:
    lines = ["| # | measure | result | target | pass |", "|---|---|---|---|---|"]
    for r in rows:
        verdict = "info" if r.get("informational") else \
            {True: "PASS", False: "FAIL", None: "n/a"}[r["pass"]]
        lines.append(f"| {r['scenario']} | {r['measure']} | {r['shown']} | {r['target']} "
                     f"| {verdict} |")
    return "\n".join(lines)


def sweep_table(results: dict[str, Any]) -> str:
    """Scenario 9's runs, one line per worker processes and rate; empty when it did not
    run."""
    runs = _get(results, "9", "runs")
    if not runs:
        return ""
    lines = ["| N | rate /s | kept | started / delivered /s | p50 | p95 | p99 | "
             "triggerEvent p50 / p99 | API | worker | FerretDB | Redis | installation |",
             "|---" * 13 + "|"]
    for run in runs:
        latency, answer, cpu = run["latency_ms"], run["trigger_event_ms"], run["cpu_s_per_1000"]
        kept = "yes" if run["kept"] else "no" + (" (stopped early)" if run["stopped_early"]
                                                 else "")
        lines.append(
            f"| {run['worker_processes']} | {run['target_rate']:g} | {kept} | "
            f"{run['started_rate']:g} / {run['delivered_rate']:g} | {latency['p50']} | "
            f"{latency['p95']} | {latency['p99']} | {answer['p50']} / {answer['p99']} | "
            + " | ".join(str(cpu.get(n)) for n in ("api", "worker", "ferretdb", "redis",
                                                   "installation")) + " |")
    return "\n".join(lines)


def notes(document: dict[str, Any]) -> list[str]:
    """How the numbers were taken, for the reader of the table."""
    s, options = document["scenarios"], document["options"]
    sizes = options["sizes"]
    out = []
    if any(n in s for n in "123"):
        out.append(f"1-3: triggers fed concurrently with delivery (triggerEvents batches of "
                   f"~100 deliveries, at most {sizes['window']:,} undelivered); raw ceiling = "
                   f"bare aiohttp client, same receiver, concurrency "
                   f"{options['raw_ceiling_concurrency']} (the worker's in-flight limit, per "
                   f"process); scenario 1 at worker --processes "
                   f"{', '.join(map(str, sizes.get('worker_processes', [1])))}")
    if "4" in s and "trigger_event" in s["4"]:
        four = s["4"]
        out.append(f"4: worker stopped during intake; same API process answers /healthz at "
                   f"{four['ceiling_healthz']['requests_per_s']} /s and {{ __typename }} "
                   f"(with key) at {four['ceiling_typename']['requests_per_s']} /s "
                   f"(concurrency 32)")
    if "5" in s and "attempts" in s["5"]:
        tried = ", ".join(f"{a['target_rate']} /s {'kept' if a['kept'] else 'not kept'}"
                          for a in s["5"]["attempts"])
        out.append(f"5: one triggerEvent per trigger, open loop, the action signing its "
                   f"requests; {sizes['warm_up_events']} triggers of warm-up before each "
                   f"{sizes['latency_seconds']:g} s window (left out of latency and CPU); "
                   f"worker --processes {s['5']['worker_processes']}; attempts: {tried}")
    if "9" in s and "runs" in s["9"]:
        out.append(f"9: rates {', '.join(f'{r:g}' for r in s['9']['rates'])} /s, "
                   f"{s['9']['seconds_per_rate']:g} s each after {s['9']['warm_up_triggers']} "
                   f"triggers of warm-up, worker --processes "
                   f"{', '.join(map(str, s['9']['worker_processes']))} (the sweep table above)")
    if "10" in s and "seconds" in s["10"]:
        out.append(f"10: {s['10']['seconds']:g} s with no traffic, once nothing had reached "
                   f"the receiver for {s['10']['settle_seconds']:g} s; worker --processes "
                   f"{s['10']['worker_processes']}; "
                   f"FerretDB and Redis are shared, their share includes others' work")
    if "6" in s and "rows" in s["6"]:
        out.append(f"6: {s['6']['rows']:,} rows (target 1,000,000); insert "
                   f"{s['6']['insert_rows_per_s']:,} rows/s; the recovery sweep's query takes "
                   f"{s['6']['recovery_query_ms']['big']} ms on them "
                   f"({s['6']['recovery_query_ms']['empty']} ms on an empty tenant)")
    if "11" in s and "rows" in s["11"]:
        out.append(f"11: {s['11']['rows']:,} rows over 24 h (target 1,000,000), inserted in "
                   f"{s['11']['insert_seconds']} s; recount-stats counted them in "
                   f"{s['11']['recount_seconds']} s ({s['11']['recount_rows_per_s']:,} rows/s); "
                   f"{s['11']['queries']} queries per figure; {s['11']['stats_documents']} "
                   f"counter documents as {s['11']['writers']} writers'")
    if "8" in s and "rate_b" in s["8"]:
        out.append(f"8: tenant B at {s['8']['rate_b']} triggerEvent/s, quiet, then while "
                   f"tenant A's {s['8']['heavy_deliveries']} heavy deliveries run "
                   f"(bench/fairness.py)")
    if "7" in s and "deliveries" in s["7"]:
        out.append(f"7: {s['7']['deliveries']:,} deliveries (target 100,000)")
    return out
