"""Delivery throughput (scenarios 1-3): the worker sends to the receiver (scenario 1 at
each ``--processes`` of ``Sizes.worker_processes``, 2 and 3 with the worker as it runs:
one process).

Triggers are fed *concurrently* with delivery: ``triggerEvents`` batches of about 100
deliveries' worth (100 triggers at 1 action per event, 2 at 50), sent as fast as the API
takes them while at most ``Sizes.window`` deliveries are triggered but not yet received.
The window keeps the queue short, so no row waits long enough for recovery
(``EVENT_MANAGER_RECOVERY_SECONDS``) to queue it a second time. The clock runs from the
first trigger sent to the last request received. (The trigger → receipt latencies of
these scenarios are mostly the window's queue, by Little's law; scenario 5 measures
latency.) ``rows_settled_after_s`` is when every row was SUCCEEDED: the worker records a
delivery after its answer, so rows lag the requests. ``cpu_s_per_1000`` is the CPU of
each process of the installation (with its children) from the first trigger to the last
request received, per 1,000 deliveries: scenario 1's is the cost of a batched burst.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

from bench import load
from bench.context import Bench
from bench.database import database_ceiling
from bench.probes import CpuMeter
from bench.profile import Profiler
from bench.stack import Stack, Tenant

TRIGGER_EVENTS = ("mutation($i: [TriggerInput!]!) { triggerEvents(inputs: $i) "
                  "{ accepted } }")


FEEDERS = 4
"""``triggerEvents`` calls in flight at once while feeding: one at a time, the API's
answer time (about 60 ms per 100 deliveries) capped the feed below what the worker
delivers."""


async def feed(stack: Stack, bench: Bench, tenant: Tenant, triggers: int, fanout: int,
               window: int, first_seq: int = 0) -> dict[str, Any]:
    """Send ``triggers`` HANGUP triggers, ``FEEDERS`` batches at a time, keeping at most
    ``window`` deliveries sent but not yet received; what the API took and how fast."""
    per_batch = max(1, math.ceil(100 / fanout))
    sent = 0
    api_ms: list[float] = []
    started = time.perf_counter()

    async def feeder() -> None:
        nonlocal sent
        while sent < triggers:
            while (sent * fanout) - (await bench.receiver.stats())["count"] > window:
                await asyncio.sleep(0.02)
            if sent >= triggers:
                return
            batch = min(per_batch, triggers - sent)
            first, sent = sent, sent + batch
            stamp = str(time.monotonic_ns())
            inputs = [{"event": "HANGUP", "params": {"seq": first_seq + first + i,
                                                     "sent": stamp,
                                                     "caller_id": "+38761111222"}}
                      for i in range(batch)]
            began = time.perf_counter()
            data = await stack.gql(TRIGGER_EVENTS, key=tenant.key, i=inputs)
            api_ms.append((time.perf_counter() - began) * 1000)
            if not all(r["accepted"] for r in data["triggerEvents"]):
                raise RuntimeError("a bench trigger was not accepted")

    await asyncio.gather(*(feeder() for _ in range(FEEDERS)))
    elapsed = time.perf_counter() - started
    return {"triggers": triggers, "batch": per_batch, "feeders": FEEDERS,
            "seconds": round(elapsed, 2), "triggers_per_s": round(triggers / elapsed, 1),
            "batch_latency_ms": load.summary_ms(api_ms)}


async def settled_rows(bench: Bench, code: str, expected: int,
                       timeout: float = 60.0) -> tuple[int, int]:
    """SUCCEEDED rows of the tenant once all ``expected`` are (or ``timeout`` seconds
    pass without one more), and ``time.monotonic_ns()`` when that was seen. A request
    arrives before its row is recorded: the worker records after the answer."""
    progress_at, last = time.monotonic(), -1

    def count() -> int:
        with bench.stack.mongo() as client:
            return bench.stack.activity(client, code).count_documents({"status": "SUCCEEDED"})

    while True:
        done = await asyncio.to_thread(count)
        if done >= expected:
            return done, time.monotonic_ns()
        if done != last:
            progress_at, last = time.monotonic(), done
        elif time.monotonic() - progress_at > timeout:
            return done, time.monotonic_ns()
        await asyncio.sleep(1.0)


async def throughput(bench: Bench, *, name: str, deliveries: int, fanout: int,
                     delay_ms: int = 0, profile: bool = False,
                     database: bool = False) -> dict[str, Any]:
    """Deliveries per second, first trigger → last request received; with ``database``
    also the database ceiling (``bench/database.py``)."""
    stack, receiver = bench.stack, bench.receiver
    code = bench.code(name)
    tenant = await stack.make_tenant(code, [receiver.url(f"/{code}/a{i}", delay_ms)
                                            for i in range(fanout)])
    triggers = math.ceil(deliveries / fanout)
    expected = triggers * fanout
    await receiver.reset()
    meter = CpuMeter(stack.pids()).start()
    profiler = Profiler(stack.worker_pid(), bench.results / "worker-profile.svg",
                        seconds=10) if profile else None
    t0 = time.monotonic_ns()
    fed = await feed(stack, bench, tenant, triggers, fanout, max(bench.sizes.window, 2 * fanout))
    stats = await receiver.wait_for(expected, timeout=60)
    cpu = meter.stop()
    profiled = profiler.stop() if profiler else None
    latencies = (await receiver.stats(latencies=True))["latencies_us"]
    elapsed = max((stats["last_ns"] - t0) / 1e9, 1e-6)
    rate = stats["unique"] / elapsed
    succeeded, settled_ns = await settled_rows(bench, code, expected)

    await receiver.reset()
    ceiling = await load.raw_ceiling(
        receiver.url(f"/{code}/raw", delay_ms),
        max(bench.sizes.ceiling_requests, 3 * bench.concurrency if delay_ms else 0),
        bench.concurrency)
    result = {
        "deliveries_per_s": round(rate, 1), "expected": expected,
        "received": stats["count"], "unique": stats["unique"],
        "duplicates": stats["count"] - stats["unique"], "rows_succeeded": succeeded,
        "rows_settled_after_s": round((settled_ns - t0) / 1e9, 2),
        "seconds": round(elapsed, 2), "fanout": fanout, "receiver_delay_ms": delay_ms,
        "first_delivery_after_s": round((stats["first_ns"] - t0) / 1e9, 3),
        "feed": {"mode": "concurrent triggerEvents batches", **fed},
        "peak_in_flight_at_receiver": stats["peak_in_flight"],
        "connections_at_receiver": stats["connections"],
        "trigger_to_receipt_ms": load.summary_ms([us / 1000 for _, us in latencies]),
        "raw_ceiling": ceiling,
        "ratio_to_ceiling": round(rate / ceiling["requests_per_s"], 3),
        "worker_processes": stack.worker_processes, "cpu_cores": cpu,
        "cpu_s_per_1000": meter.per_thousand(stats["unique"]),
    }
    if database:
        with stack.mongo() as client:
            template = stack.activity(client, code).find_one({"status": "SUCCEEDED"})
        if template is not None:
            result["database_ceiling"] = await database_ceiling(
                stack, template, bench.sizes.ceiling_requests)
    if profiled:
        result["worker_profile"] = profiled
    return result


async def scenario_1(bench: Bench) -> dict[str, Any]:
    """Fast receiver, 1 action per event, at each worker ``--processes`` in turn: the
    first (1, as ``up`` starts it) is the result, with the profile and the database
    ceiling; the others under ``other_worker_processes``, by their number."""
    stack = bench.stack
    started_with = stack.worker_processes
    runs = []
    try:
        for processes in bench.sizes.worker_processes:
            await stack.restart_worker(processes)
            first = not runs
            runs.append(await throughput(bench, name="s1", deliveries=bench.sizes.deliveries,
                                         fanout=1, profile=bench.profile and first,
                                         database=first))
    finally:
        await stack.restart_worker(started_with)
    return {**runs[0], "other_worker_processes": {str(r["worker_processes"]): r
                                                  for r in runs[1:]}}


async def scenario_2(bench: Bench) -> dict[str, Any]:
    """The same with 50 actions per event (fan-out)."""
    return await throughput(bench, name="s2", deliveries=bench.sizes.deliveries, fanout=50)


async def scenario_3(bench: Bench) -> dict[str, Any]:
    """A slow receiver (200 ms per request)."""
    return await throughput(bench, name="s3", deliveries=min(bench.sizes.deliveries, 5_000),
                            fanout=1, delay_ms=200)
