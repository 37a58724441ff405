"""The benchmark runs end to end: ``python -m bench --quick --scenarios 1,4`` against the
real services, and its result file has the expected keys and sane values.

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
    """One quick run of scenarios 1 and 4; its JSON document and its standard output."""
    out = tmp_path_factory.mktemp("bench") / "result.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--scenarios", "1,4", "--no-profile",
         "--output", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return json.loads(out.read_text()), done.stdout


def positive(value: Any) -> bool:
    return isinstance(value, int | float) and value > 0


def test_bench_reports_scenarios_run_and_what_was_measured(bench_run: Any) -> None:
    document, _ = bench_run
    assert set(document) >= {"date", "machine", "options", "scenarios", "targets"}
    assert document["options"]["scenarios"] == ["1", "4"]
    assert document["options"]["database"].startswith("bench_")
    assert set(document["scenarios"]) == {"1", "4"}
    assert document["machine"]["cpus"] >= 1


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


def test_bench_intake_scenario_measures_both_mutations(bench_run: Any) -> None:
    intake = bench_run[0]["scenarios"]["4"]
    assert "error" not in intake, intake
    assert intake["failures"] == 0
    assert positive(intake["trigger_event"]["requests_per_s"])
    assert intake["trigger_event"]["concurrency"] == 32
    assert positive(intake["trigger_events"]["events_per_s"])
    assert intake["trigger_events"]["batch"] == 100
    assert positive(intake["ceiling_healthz"]["requests_per_s"])


def test_bench_prints_the_target_table_with_a_verdict_per_target(bench_run: Any) -> None:
    document, stdout = bench_run
    assert "| # | measure | result | target | pass |" in stdout
    verdicts = {(t["scenario"], t["measure"]): t["pass"] for t in document["targets"]}
    assert len(verdicts) == 21
    assert ("6", "slowest page shape (of every filter and cursor)") in verdicts
    ran = [t for t in document["targets"] if t["scenario"] in ("1", "4")]
    assert ran and all(t["pass"] in (True, False) for t in ran)
    assert all(t["pass"] is None for t in document["targets"] if t["scenario"] in "235678")
