"""Memory (scenario 7): peak RSS of the API and the worker after N deliveries, and
whether it still grows in the second half.

Both processes are started afresh (VmHWM, the peak, counts from a process's start),
then N deliveries are fed as in scenario 1 while ``/proc/<pid>/status`` is read every
``EVERY`` seconds. *Flat* means the highest RSS of the second half (by deliveries
received) is at most ``FLAT`` above the highest of the first half; the second half's
least-squares slope (MB per 10,000 deliveries) shows a slow, steady growth that the peak
comparison would call flat. The worker is the
forked Dramatiq process that runs the deliveries; its parent only supervises.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from bench import probes
from bench.context import Bench
from bench.delivery import feed
from bench.probes import CpuMeter

EVERY = 0.5
FLAT = 0.05
"""Growth of the second half's peak over the first half's, as a fraction, still flat."""
KEEP = 120
"""Samples kept in the result (evenly thinned)."""


def analyse(samples: list[dict[str, Any]], name: str, total: int) -> dict[str, Any]:
    points = [(s["delivered"], s[name]) for s in samples if s.get(name)]
    first = [m["VmRSS"] for d, m in points if d <= total / 2]
    second = [m["VmRSS"] for d, m in points if d > total / 2]
    peak = max((m.get("VmHWM", 0) for _, m in points), default=0)
    out: dict[str, Any] = {"peak_mb": round(peak / 1024, 1),
                           "start_mb": round(points[0][1]["VmRSS"] / 1024, 1) if points else None,
                           "end_mb": round(points[-1][1]["VmRSS"] / 1024, 1) if points else None}
    if first and second:
        growth = max(second) - max(first)
        out.update(first_half_peak_mb=round(max(first) / 1024, 1),
                   second_half_peak_mb=round(max(second) / 1024, 1),
                   second_half_growth_mb=round(growth / 1024, 1),
                   second_half_mb_per_10k=slope([(d, m["VmRSS"]) for d, m in points
                                                 if d > total / 2]),
                   flat=growth <= FLAT * max(first))
    return out


def slope(points: list[tuple[int, int]]) -> float | None:
    """Least-squares growth of RSS in MB per 10,000 deliveries (points: deliveries, kB)."""
    if len(points) < 2:
        return None
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if not spread:
        return None
    kb_per_delivery = sum((x - mean_x) * (y - mean_y) for x, y in points) / spread
    return round(kb_per_delivery * 10_000 / 1024, 2)


async def scenario_7(bench: Bench) -> dict[str, Any]:
    stack, receiver, total = bench.stack, bench.receiver, bench.sizes.memory_deliveries
    for process in (stack.worker, stack.api):
        if process is not None:
            await asyncio.to_thread(process.stop)
    await stack.start_api(int(stack.api_url.rsplit(":", 1)[1]))
    await stack.start_worker()
    assert stack.api is not None and stack.worker is not None
    pids = {"api": stack.api.pid, "worker": stack.worker_pid(), "worker_main": stack.worker.pid}
    tenant = await stack.make_tenant(bench.code("s7"), [receiver.url("/s7/a0")])
    await receiver.reset()
    samples: list[dict[str, Any]] = []
    began = time.monotonic()

    async def sample() -> None:
        while True:
            delivered = (await receiver.stats())["count"]
            samples.append({"t": round(time.monotonic() - began, 1), "delivered": delivered,
                            **{name: probes.memory_kb(pid) for name, pid in pids.items()}})
            await asyncio.sleep(EVERY)

    sampler = asyncio.create_task(sample())
    meter = CpuMeter(stack.pids()).start()
    try:
        await feed(stack, bench, tenant, total, 1, bench.sizes.window)
        stats = await receiver.wait_for(total, timeout=60)
        cpu = meter.stop()
        await asyncio.sleep(2 * EVERY)  # a sample or two after the last delivery
    finally:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
    thinned = samples[::max(1, len(samples) // KEEP)]
    return {"deliveries": total, "received": stats["count"],
            "seconds": round(time.monotonic() - began, 1), "target_deliveries": 100_000,
            "cpu_cores": cpu,
            **{name: analyse(samples, name, total) for name in pids},
            "samples": [{"t": s["t"], "delivered": s["delivered"],
                         **{n: round(s[n].get("VmRSS", 0) / 1024, 1) for n in pids}}
                        for s in thinned]}
