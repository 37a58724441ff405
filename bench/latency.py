"""End-to-end latency at a steady rate, as a client sees it: trigger sent → request
received (scenario 5 at 200/s; the sweep, scenario 9, at several rates).

One ``triggerEvent`` per call (as a PBX sends a call's event), started on a fixed
schedule whatever the answers do (open loop). Each trigger carries ``sent`` (the bench's
``time.monotonic_ns()`` just before the request); the receiver, on the same machine and
clock, subtracts it from the arrival time. The tenant's action signs each request with a
``signingSecret`` (``SIGNING_SECRET``), as a client's would.

``Sizes.warm_up_events`` triggers go first, at the same rate and in the same stream:
they are left out of the latencies and of the CPU, which are measured from the first
trigger after them (the measured window) to the arrival of the last delivery. CPU is
that of every process of the installation (API, worker, FerretDB, Redis, each with its
children), per 1,000 deliveries of the window (``cpu_s_per_1000``).

A rate counts as *kept* when every trigger was started on time (≥ 95 % of the rate),
every delivery arrived, and the last one arrived within ``KEPT_DRAIN`` of the last
trigger: a system that falls behind builds a backlog that drains after the sending
stops, and its latency grows: the median of the window's last quarter may be at most
twice its first quarter's (or 100 ms more). An attempt whose API falls ``MAX_BEHIND``
seconds behind stops sending at once. Scenario 5, when 200/s is not kept, tries again
at 80 % of the delivery rate it saw, up to ``ATTEMPTS`` times, and reports every attempt.
"""

from __future__ import annotations

import time
from typing import Any

from bench import load
from bench.context import Bench
from bench.probes import CpuMeter
from bench.stack import Tenant

TRIGGER_EVENT = "mutation($i: TriggerInput!) { triggerEvent(input: $i) { accepted } }"
SIGNING_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
KEPT_DRAIN = 1.0
ATTEMPTS = 4
MAX_BEHIND = 2.0
"""Seconds' worth of triggers unanswered by the API after which an attempt stops early."""


async def signed_tenant(bench: Bench, name: str) -> Tenant:
    """A tenant whose HANGUP sends one signed request to the receiver."""
    code = bench.code(name)
    return await bench.stack.make_tenant(code, [bench.receiver.url(f"/{code}/a0")],
                                         signing_secret=SIGNING_SECRET)


async def at_rate(bench: Bench, tenant: Tenant, rate: float, seconds: float,
                  warm_up: int) -> dict[str, Any]:
    """``warm_up`` triggers, then ``seconds`` measured, at ``rate`` triggers/s."""
    stack, receiver = bench.stack, bench.receiver
    await receiver.reset()
    meter = CpuMeter(stack.pids())
    window_ns = last_sent = 0

    async def one(i: int) -> None:
        nonlocal window_ns, last_sent
        if i == warm_up:
            meter.start()
            window_ns = time.monotonic_ns()
        last_sent = time.monotonic_ns()
        await stack.gql(TRIGGER_EVENT, key=tenant.key, i={"event": "HANGUP", "params": {
            "seq": i, "sent": str(last_sent), "caller_id": "+38761111222"}})

    measured = max(1, round(rate * seconds))
    paced = await load.open_loop(one, rate, (warm_up + measured) / rate,
                                 max_outstanding=round(rate * MAX_BEHIND))
    total = len(paced.latencies) + paced.errors
    stats = await receiver.wait_for(total, timeout=30)
    if not window_ns:  # stopped during the warm-up: nothing was measured
        meter.start()
        window_ns = time.monotonic_ns()
    cpu = meter.stop()
    arrivals = [(seq, us / 1000) for seq, us in
                (await receiver.stats(latencies=True))["latencies_us"] if seq >= warm_up]
    latencies = [ms for _, ms in arrivals]
    delivered = len({seq for seq, _ in arrivals})
    drain = (stats["last_ns"] - last_sent) / 1e9
    delivered_rate = delivered / max((stats["last_ns"] - window_ns) / 1e9, 1e-6)
    quarter = max(1, len(latencies) // 4)
    early = load.percentile(latencies[:quarter], 50) or 0.0
    late = load.percentile(latencies[-quarter:], 50) or 0.0
    kept = (not paced.aborted and paced.rate >= 0.95 * rate and stats["unique"] >= total
            and drain <= KEPT_DRAIN and not paced.errors and late <= max(2 * early, early + 100))
    return {
        "target_rate": round(rate, 1), "started_rate": round(paced.rate, 1),
        "delivered_rate": round(delivered_rate, 1), "kept": kept,
        "stopped_early": paced.aborted, "errors": paced.errors,
        "warm_up_triggers": warm_up, "triggers": total, "received": stats["count"],
        "unique": stats["unique"], "measured_deliveries": delivered,
        "drain_after_last_trigger_s": round(drain, 3),
        "latency_ms": load.summary_ms(latencies),
        "median_first_quarter_ms": early, "median_last_quarter_ms": late,
        "trigger_event_ms": load.summary_ms(paced.latencies[warm_up:]),
        "window_s": round(meter.wall, 2), "cpu_cores": cpu,
        "cpu_s_per_1000": meter.per_thousand(delivered),
    }


async def scenario_5(bench: Bench) -> dict[str, Any]:
    sizes = bench.sizes
    tenant = await signed_tenant(bench, "s5")
    attempts = []
    rate = sizes.latency_rate
    for _ in range(ATTEMPTS):
        attempt = await at_rate(bench, tenant, rate, sizes.latency_seconds,
                                sizes.warm_up_events)
        attempts.append(attempt)
        if attempt["kept"]:
            break
        rate = max(1.0, 0.8 * min(attempt["delivered_rate"], attempt["started_rate"]))
    await bench.receiver.reset()
    floor = await load.raw_latency(bench.receiver.url("/s5/raw"), sizes.latency_rate,
                                   min(sizes.latency_seconds, 10.0))
    final = attempts[-1]
    return {"kept_target_rate": attempts[0]["kept"], "measured_at_rate": final["target_rate"],
            "latency_ms": final["latency_ms"], "cpu_s_per_1000": final["cpu_s_per_1000"],
            "worker_processes": bench.stack.worker_processes, "signing": True,
            "attempts": attempts, "raw_floor": floor}
