"""Steady-rate sweep (scenario 9): one ``triggerEvent`` per request, open loop, at each
rate of ``Sizes.sweep_rates`` (50, 200, 500 and 1,000 triggers/s), for each worker
``--processes`` of ``Sizes.worker_processes`` (1, then 2) in turn.

Each rate is ``latency.at_rate``: ``Sizes.warm_up_events`` triggers, then
``Sizes.sweep_seconds`` measured, to a tenant whose action signs its requests, with
the rules of scenario 5 for whether the rate was kept, and no second try at a lower
rate: a rate not kept is reported as such. Per rate: latency trigger sent → request
received (p50/p95/p99), the ``triggerEvent`` answer's, CPU seconds per 1,000
deliveries of the installation and of each of its processes.

``highest_kept_rate``: per worker processes, the highest rate kept with a p99 of at most
``P99_LIMIT_MS``; None when none was.
"""

from __future__ import annotations

from typing import Any

from bench.context import Bench
from bench.latency import at_rate, signed_tenant

P99_LIMIT_MS = 50.0


def highest_kept_rate(runs: list[dict[str, Any]], processes: int) -> float | None:
    """The highest target rate of ``processes`` kept with p99 ≤ ``P99_LIMIT_MS``."""
    good = [run["target_rate"] for run in runs if run["worker_processes"] == processes
            and run["kept"] and (run["latency_ms"]["p99"] or 0) <= P99_LIMIT_MS
            and run["latency_ms"]["n"]]
    return max(good, default=None)


async def scenario_9(bench: Bench) -> dict[str, Any]:
    stack, sizes = bench.stack, bench.sizes
    tenant = await signed_tenant(bench, "s9")
    started_with = stack.worker_processes
    runs: list[dict[str, Any]] = []
    try:
        for processes in sizes.worker_processes:
            await stack.restart_worker(processes)
            for rate in sizes.sweep_rates:
                result = await at_rate(bench, tenant, rate, sizes.sweep_seconds,
                                       sizes.warm_up_events)
                runs.append({"worker_processes": processes, **result})
    finally:
        await stack.restart_worker(started_with)
    return {"rates": list(sizes.sweep_rates), "seconds_per_rate": sizes.sweep_seconds,
            "warm_up_triggers": sizes.warm_up_events,
            "worker_processes": list(sizes.worker_processes), "signing": True,
            "p99_limit_ms": P99_LIMIT_MS,
            "highest_kept_rate": {str(n): highest_kept_rate(runs, n)
                                  for n in sizes.worker_processes},
            "runs": runs}
