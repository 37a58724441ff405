"""End-to-end latency (scenario 5): trigger sent → request received, at a steady rate.

One ``triggerEvent`` per call (as a PBX sends a call's event), started on a fixed
schedule whatever the answers do. Each trigger carries ``sent`` (the bench's
``time.monotonic_ns()`` just before the request); the receiver, on the same machine and
clock, subtracts it from the arrival time.

The first ``WARM_UP`` seconds are sent but left out of the latencies. A rate counts as
*kept* when every trigger was started on time (≥ 95 % of the rate), every delivery
arrived, and the last one arrived within ``KEPT_DRAIN`` of the last trigger: a system
that falls behind builds a backlog that drains after the sending stops, and its latency
grows: the median of the last quarter may be at most twice the first quarter's (or 100
ms more). An attempt whose API falls ``MAX_BEHIND`` seconds behind stops sending at
once. When a rate is not kept, the bench tries again at 80 % of the delivery rate it
saw, up to ``ATTEMPTS`` times, and reports every attempt.
"""

from __future__ import annotations

import time
from typing import Any

from bench import load
from bench.context import Bench
from bench.probes import CpuMeter
from bench.stack import Tenant

TRIGGER_EVENT = "mutation($i: TriggerInput!) { triggerEvent(input: $i) { accepted } }"
KEPT_DRAIN = 1.0
ATTEMPTS = 4
MAX_BEHIND = 2.0
"""Seconds' worth of triggers unanswered by the API after which an attempt stops early."""
WARM_UP = 1.0
"""Seconds sent at the rate before the measured window: the worker's first fetch after an
idle queue waits up to Dramatiq's idle poll (up to 1 s), which is not steady state."""


async def at_rate(bench: Bench, tenant: Tenant, rate: float, seconds: float) -> dict[str, Any]:
    stack, receiver = bench.stack, bench.receiver
    await receiver.reset()
    meter = CpuMeter(stack.pids()).start()
    first_ns = time.monotonic_ns()
    last_sent = 0

    async def one(i: int) -> None:
        nonlocal last_sent
        last_sent = time.monotonic_ns()
        await stack.gql(TRIGGER_EVENT, key=tenant.key, i={"event": "HANGUP", "params": {
            "seq": i, "sent": str(last_sent), "caller_id": "+38761111222"}})

    paced = await load.open_loop(one, rate, seconds + WARM_UP,
                                 max_outstanding=round(rate * MAX_BEHIND))
    total = len(paced.latencies) + paced.errors
    warm = round(rate * WARM_UP)
    stats = await receiver.wait_for(total, timeout=30)
    cpu = meter.stop()
    latencies = [us / 1000 for seq, us in (await receiver.stats(latencies=True))["latencies_us"]
                 if seq >= warm]
    drain = (stats["last_ns"] - last_sent) / 1e9
    delivered_rate = stats["unique"] / max((stats["last_ns"] - first_ns) / 1e9, 1e-6)
    quarter = max(1, len(latencies) // 4)
    early = load.percentile(latencies[:quarter], 50) or 0.0
    late = load.percentile(latencies[-quarter:], 50) or 0.0
    kept = (not paced.aborted and paced.rate >= 0.95 * rate and stats["unique"] >= total
            and drain <= KEPT_DRAIN and not paced.errors and late <= max(2 * early, early + 100))
    return {
        "target_rate": round(rate, 1), "started_rate": round(paced.rate, 1),
        "delivered_rate": round(delivered_rate, 1), "kept": kept,
        "stopped_early": paced.aborted, "errors": paced.errors,
        "triggers": total, "received": stats["count"], "unique": stats["unique"],
        "drain_after_last_trigger_s": round(drain, 3),
        "latency_ms": load.summary_ms(latencies),
        "median_first_quarter_ms": early, "median_last_quarter_ms": late,
        "trigger_event_ms": load.summary_ms(paced.latencies[warm:]), "warm_up_triggers": warm,
        "cpu_cores": cpu,
    }


async def scenario_5(bench: Bench) -> dict[str, Any]:
    sizes = bench.sizes
    tenant = await bench.stack.make_tenant(bench.code("s5"), [bench.receiver.url("/s5/a0")])
    attempts = []
    rate = sizes.latency_rate
    for _ in range(ATTEMPTS):
        attempt = await at_rate(bench, tenant, rate, sizes.latency_seconds)
        attempts.append(attempt)
        if attempt["kept"]:
            break
        rate = max(1.0, 0.8 * min(attempt["delivered_rate"], attempt["started_rate"]))
    await bench.receiver.reset()
    floor = await load.raw_latency(bench.receiver.url("/s5/raw"), sizes.latency_rate,
                                   min(sizes.latency_seconds, 10.0))
    final = attempts[-1]
    return {"kept_target_rate": attempts[0]["kept"], "measured_at_rate": final["target_rate"],
            "latency_ms": final["latency_ms"], "attempts": attempts, "raw_floor": floor}
