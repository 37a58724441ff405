"""The benchmark runs end to end: ``python -m bench --quick --scenarios 1,4,9,10,11,12,13``
against the real services, and its result file has the expected keys and sane values.

No timing thresholds: the suite must pass on a slow or busy machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def bench_run(mongo: Any, redis_client: Any,
              tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    """One quick run of scenarios 1, 4, the sweep (9: 20 and 50 triggers/s for 2 s each,
    worker processes 1 then 2), idle (10: 2 s) and dashboards (11: 5,000 rows); its JSON
    document and its standard output."""
    out = tmp_path_factory.mktemp("bench") / "result.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--scenarios", "1,4,9,10,11,12,13",
         "--no-profile", "--sweep-rates", "20,50", "--sweep-seconds", "2",
         "--worker-processes", "1,2", "--output", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return json.loads(out.read_text()), done.stdout


def positive(value: Any) -> bool:
    return isinstance(value, int | float) and value > 0


def test_bench_reports_scenarios_run_and_what_was_measured(bench_run: Any) -> None:
    document, _ = bench_run
    assert set(document) >= {"date", "machine", "options", "scenarios", "targets"}
    assert document["options"]["scenarios"] == ["1", "4", "9", "10", "11", "12", "13"]
    assert document["options"]["database"].startswith("bench_")
    assert set(document["scenarios"]) == {"1", "4", "9", "10", "11", "12", "13"}
    assert document["machine"]["cpus"] >= 1


def test_bench_reports_what_waking_up_costs_on_this_machine(bench_run: Any) -> None:
    """The same Python work timed back to back and after a sleep, so that figures from
    two machines (or two days of one VM) can be compared."""
    document, stdout = bench_run
    woken = document["machine"]["wake_penalty"]
    assert positive(woken["warm_us"]) and positive(woken["after_sleep_us"])
    assert woken["factor"] == pytest.approx(woken["after_sleep_us"] / woken["warm_us"], rel=0.01)
    assert f"{woken['after_sleep_us']:.0f} µs after 20 ms asleep" in stdout


def test_bench_runs_the_service_with_default_settings_but_what_up_sets(bench_run: Any) -> None:
    changed = bench_run[0]["options"]["settings_changed"]
    assert set(changed) == {"EVENT_MANAGER_DATABASE", "EVENT_MANAGER_OUTBOUND_ALLOW",
                            "EVENT_MANAGER_SECRET_KEY"}
    assert changed["EVENT_MANAGER_OUTBOUND_ALLOW"] == "127.0.0.0/8"


def test_bench_delivery_scenario_delivers_everything_once(bench_run: Any) -> None:
    first = bench_run[0]["scenarios"]["1"]
    assert "error" not in first, first
    assert first["received"] == first["unique"] == first["expected"] > 0
    assert first["duplicates"] == 0
    assert first["rows_succeeded"] == first["expected"]
    assert positive(first["deliveries_per_s"])
    assert positive(first["raw_ceiling"]["requests_per_s"])
    assert 0 < first["ratio_to_ceiling"] == pytest.approx(
        first["deliveries_per_s"] / first["raw_ceiling"]["requests_per_s"], rel=0.01)
    assert positive(first["database_ceiling"]["deliveries_per_s"])
    assert first["cpu_cores"]["worker"] >= 0 and first["cpu_cores"]["machine"] > 0


def test_bench_delivery_scenario_runs_at_each_worker_process_count(bench_run: Any) -> None:
    first = bench_run[0]["scenarios"]["1"]
    second = first["other_worker_processes"]["2"]
    assert (first["worker_processes"], second["worker_processes"]) == (1, 2)
    assert second["received"] == second["unique"] == second["expected"] > 0
    for run in (first, second):
        cost = run["cpu_s_per_1000"]
        assert set(cost) == {"installation", "api", "worker", "ferretdb", "redis"}
        assert positive(cost["installation"])
        assert cost["installation"] == pytest.approx(
            sum(cost[n] for n in ("api", "worker", "ferretdb", "redis")), abs=0.01)


def test_bench_intake_scenario_measures_both_mutations(bench_run: Any) -> None:
    intake = bench_run[0]["scenarios"]["4"]
    assert "error" not in intake, intake
    assert intake["failures"] == 0
    assert positive(intake["trigger_event"]["requests_per_s"])
    assert intake["trigger_event"]["concurrency"] == 32
    assert positive(intake["trigger_events"]["events_per_s"])
    assert intake["trigger_events"]["batch"] == 100
    assert positive(intake["ceiling_healthz"]["requests_per_s"])
    two = intake["trigger_event_two_apis"]
    assert two["failures"] == 0 and positive(two["requests_per_s"])
    assert positive(two["cpu_cores"]["api"]) and positive(two["cpu_cores"]["api_2"]), (
        "both API processes took calls")


def test_bench_sweep_reports_every_rate_at_each_worker_process_count(bench_run: Any) -> None:
    sweep = bench_run[0]["scenarios"]["9"]
    assert "error" not in sweep, sweep
    assert [(r["worker_processes"], r["target_rate"]) for r in sweep["runs"]] == [
        (1, 20.0), (1, 50.0), (2, 20.0), (2, 50.0)]
    for run in sweep["runs"]:
        assert run["errors"] == 0 and isinstance(run["kept"], bool)
        assert run["latency_ms"]["n"] == run["measured_deliveries"] > 0
        assert run["latency_ms"]["p50"] <= run["latency_ms"]["p95"] <= run["latency_ms"]["p99"]
        assert run["trigger_event_ms"]["n"] > 0
        assert run["unique"] == run["triggers"] == run["measured_deliveries"] + 20
        assert positive(run["cpu_s_per_1000"]["installation"])
    assert set(sweep["highest_kept_rate"]) == {"1", "2"}
    assert all(rate in (None, 20.0, 50.0) for rate in sweep["highest_kept_rate"].values())


def test_bench_idle_scenario_reads_the_installation_at_rest(bench_run: Any) -> None:
    idle = bench_run[0]["scenarios"]["10"]
    assert "error" not in idle, idle
    assert idle["seconds"] == 2.0
    assert idle["installation_cores"] >= 0
    assert set(idle["cpu_s"]) == {"installation", "api", "worker", "ferretdb", "redis"}


def test_bench_dashboard_scenario_counts_every_row_and_times_activity_stats(
        bench_run: Any) -> None:
    """Scenario 11: the rows over 24 h, counted by recount-stats, then activityStats at
    bucketMinutes 5 and 60, with one writer's counters and with three writers'."""
    dashboards = bench_run[0]["scenarios"]["11"]
    assert "error" not in dashboards, dashboards
    assert dashboards["rows"] == 5_000 and positive(dashboards["recount_seconds"])
    assert dashboards["stats_documents"] >= 3 * 24
    for writers, factor in (("one_writer", 1), ("several_writers", 3)):
        for minutes, buckets in ((5, 288), (60, 24)):
            run = dashboards[writers][f"bucket_{minutes}"]
            assert run["rows_counted"] == [factor * 5_000]  # every answer
            assert run["rows_expected"] == factor * 5_000 and run["counts_right"]
            assert run["buckets"] in (buckets, buckets + 1)  # the window's ends, aligned
            assert run["actions"] == 20
            assert positive(run["latency_ms"]["p50"]) and run["latency_ms"]["n"] == 50
            assert run["met"] in (True, False)


def test_bench_first_attempts_scenario_times_the_healthy_action_alone_and_during_retries(
        bench_run: Any) -> None:
    first = bench_run[0]["scenarios"]["12"]
    assert "error" not in first, first
    assert first["failing_deliveries"] == 100
    for phase in ("quiet", "first", "retries"):
        assert first[phase]["received"] == first[phase]["triggers"] > 0, first[phase]
        assert positive(first[phase]["latency_ms"]["p99"])
    assert first["retrying_when_measured"] >= 95  # the hanging action's attempts had failed
    assert first["ratio_p99"] == pytest.approx(
        first["retries"]["latency_ms"]["p99"] / first["quiet"]["latency_ms"]["p99"], abs=0.01)


def test_bench_tenants_scenario_makes_the_tenants_and_times_triggers_spread_over_them(
        bench_run: Any) -> None:
    many = bench_run[0]["scenarios"]["13"]
    assert "error" not in many, many
    assert many["tenants"] == 20 and many["create_tenant_ms"]["n"] == 19
    assert [c["tenants"] for c in many["checkpoints"]] == [1, 10, 20]
    assert all(positive(c["api_rss_mb"]) and positive(c["worker_rss_mb"])
               for c in many["checkpoints"])
    size = many["checkpoints"][-1]["ferretdb_file_mb"]  # None: FerretDB's folder is not ours
    assert size is None or positive(size)
    for phase in ("alone", "spread_cold", "spread_warm"):
        assert many[phase]["received"] == many[phase]["triggers"] > 0, many[phase]
    assert many["spread_cold"]["tenants"] == 20 and many["alone"]["tenants"] == 1
    curve = [point["triggered"] for point in many["curve"]]  # through both passes
    assert curve == sorted(curve) and curve[-1] == (
        many["spread_cold"]["triggers"] + many["spread_warm"]["triggers"])
    assert many["spread_more"] == []  # two passes unless --tenant-passes says more
    assert many["ratio_p99_warm"] == pytest.approx(
        many["spread_warm"]["latency_ms"]["p99"] / many["alone"]["latency_ms"]["p99"],
        abs=0.01)


def test_bench_prints_the_target_table_with_a_verdict_per_target(bench_run: Any) -> None:
    document, stdout = bench_run
    assert "| # | measure | result | target | pass |" in stdout
    assert "| N | rate /s | kept |" in stdout and stdout.count("\n| 2 | 50 | ") == 1
    verdicts = {(t["scenario"], t["measure"]): t["pass"] for t in document["targets"]}
    assert ("6", "slowest page shape (of every filter and cursor)") in verdicts
    assert ("5", "CPU s per 1,000 deliveries, installation") in verdicts
    assert ("10", "CPU with no traffic, installation") in verdicts
    for minutes in (5, 60):
        for label in ("1 writer", "3 writers"):
            assert ("11", f"activityStats, 24 h, bucketMinutes {minutes}, counters of "
                    f"{label}") in verdicts
    for processes in (1, 2):
        assert ("1", "CPU s per 1,000 deliveries, batched burst, installation "
                f"(worker --processes {processes})") in verdicts
        assert ("9", "highest rate kept with p99 ≤ 50 ms "
                f"(worker --processes {processes})") in verdicts
    judged = [t for t in document["targets"] if not t.get("informational")]
    assert ("12", "healthy action's p99 while 100 retries of a hanging one (same tenant) "
            "are due") in verdicts
    ran = [t for t in judged if t["scenario"] in ("1", "4", "10", "11", "12")]
    assert ran and all(t["pass"] in (True, False) for t in ran)
    assert all(t["pass"] is None for t in judged if t["scenario"] in "235678")


def test_bench_with_trace_exports_every_processes_spans_to_its_collector(
        mongo: Any, redis_client: Any, tmp_path: Path) -> None:
    """``--trace``: the API and worker export over OTLP to the bench's own collector,
    which counts what it got (at least a trigger's spans and each delivery's two)."""
    out = tmp_path / "result.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--scenarios", "1", "--no-profile",
         "--worker-processes", "1", "--trace", "--output", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    document = json.loads(out.read_text())
    got = document["options"]["tracing"]["spans_exported"]
    delivered = document["scenarios"]["1"]["received"]
    assert got["spans"] >= 2 * delivered > 0, (got, delivered)
    assert got["requests"] > 0 and got["bytes"] > 0
    assert f"Tracing on: {got['spans']:,} spans exported" in done.stdout
