"""Intake (scenario 4): how many triggers one API process takes.

``triggerEvent`` over HTTP at concurrency 32 (requests/s), then ``triggerEvents`` in
batches of 100 (events/s, ``BATCH_CONCURRENCY`` batches at a time), from a PBX key into
a tenant whose HANGUP event has one action. The worker is stopped meanwhile, so the
numbers are the API's and the database's alone; afterwards the queued messages and the
rows they name are dropped, and the worker starts again.

Then ``triggerEvent`` again at the same concurrency, the calls going to two API
processes in turn (a second ``event-manager serve`` started for it, as on a second
host; a round-robin in the load generator stands for the proxy): the same tenant, the
same database and Redis. Reported beside the first with each process's CPU.

Two ceilings of the same API process at the same concurrency put the numbers in scale:
``GET /healthz`` (the HTTP server alone) and ``{ __typename }`` with the key (GraphQL
and the key's look-up, no trigger).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from bench import load
from bench.context import Bench
from bench.probes import CpuMeter
from bench.profile import Profiler
from tests.support import free_port

CONCURRENCY = 32
BATCH = 100
BATCH_CONCURRENCY = 4
TRIGGER_EVENT = ("mutation($i: TriggerInput!) { triggerEvent(input: $i) "
                 "{ accepted } }")
TRIGGER_EVENTS = ("mutation($i: [TriggerInput!]!) { triggerEvents(inputs: $i) "
                  "{ accepted } }")


async def measure(bench: Bench, total: int, concurrency: int, call: load.Call,
                  profile: str | None = None) -> tuple[dict[str, Any], float]:
    stack = bench.stack
    meter = CpuMeter(stack.pids()).start()
    profiler = None
    if profile and stack.api is not None:
        profiler = Profiler(stack.api.pid, bench.results / profile, seconds=10)
    elapsed, latencies = await load.closed_loop(call, total, concurrency)
    result = {"seconds": round(elapsed, 2), "concurrency": concurrency,
              "latency_ms": load.summary_ms(latencies), "cpu_cores": meter.stop()}
    if profiler is not None:
        result["api_profile"] = profiler.stop()
    return result, elapsed


async def scenario_4(bench: Bench) -> dict[str, Any]:
    stack, sizes = bench.stack, bench.sizes
    assert stack.http is not None
    tenant = await stack.make_tenant(bench.code("s4"), [bench.receiver.url("/s4/a0")])
    headers = {"Authorization": f"Bearer {tenant.key}"}
    graphql = f"{stack.api_url}/graphql"
    failures = 0

    async def post(body: dict[str, Any]) -> dict[str, Any]:
        nonlocal failures
        async with stack.http.post(graphql, json=body, headers=headers) as reply:
            doc = await reply.json(content_type=None)
        if reply.status != 200 or doc.get("errors"):
            failures += 1
        return doc

    async def healthz(i: int) -> None:
        async with stack.http.get(f"{stack.api_url}/healthz") as reply:
            await reply.read()

    async def typename(i: int) -> None:
        await post({"query": "{ __typename }"})

    def trigger(i: int) -> dict[str, Any]:
        return {"event": "HANGUP", "params": {"seq": i, "caller_id": "+38761111222"}}

    async def single(i: int) -> None:
        await post({"query": TRIGGER_EVENT, "variables": {"i": trigger(i)}})

    async def batch(i: int) -> None:
        await post({"query": TRIGGER_EVENTS,
                    "variables": {"i": [trigger(i * BATCH + j) for j in range(BATCH)]}})

    if stack.worker is not None:
        await asyncio.to_thread(stack.worker.stop)
    try:
        requests = sizes.intake_requests
        health, took = await measure(bench, requests, CONCURRENCY, healthz)
        health["requests_per_s"] = round(requests / took, 1)
        bare, took = await measure(bench, requests, CONCURRENCY, typename)
        bare["requests_per_s"] = round(requests / took, 1)
        singles, took = await measure(bench, requests, CONCURRENCY, single,
                                      "api-profile.svg" if bench.profile else None)
        singles["requests_per_s"] = round(requests / took, 1)
        two = await two_apis(bench, requests, tenant.key, trigger)
        batches = max(1, sizes.intake_events // BATCH)
        batched, took = await measure(bench, batches, BATCH_CONCURRENCY, batch)
        batched.update(batch=BATCH, events=batches * BATCH,
                       events_per_s=round(batches * BATCH / took, 1))
    finally:
        await drop_backlog(bench, tenant.code)
        await stack.start_worker()
    return {"trigger_event": singles, "trigger_event_two_apis": two,
            "trigger_events": batched, "failures": failures,
            "ceiling_healthz": health, "ceiling_typename": bare,
            "note": "worker stopped during intake; its messages and rows dropped afterwards"}


async def two_apis(bench: Bench, requests: int, key: str,
                   trigger: Callable[[int], dict[str, Any]]) -> dict[str, Any]:
    """``triggerEvent`` at ``CONCURRENCY``, call ``i`` to API ``i % 2``: requests/s and
    each process's CPU; the second API is stopped after."""
    stack = bench.stack
    assert stack.http is not None
    second = stack._spawn("api-2", "serve", "--port", str(port := free_port()))
    url = f"http://127.0.0.1:{port}"
    try:
        await stack._wait(second, f"{url}/healthz")
        urls = [f"{stack.api_url}/graphql", f"{url}/graphql"]
        failures = 0

        async def single(i: int) -> None:
            nonlocal failures
            async with stack.http.post(urls[i % 2], headers={"Authorization": f"Bearer {key}"},
                                       json={"query": TRIGGER_EVENT,
                                             "variables": {"i": trigger(10_000_000 + i)}}
                                       ) as reply:
                doc = await reply.json(content_type=None)
            if reply.status != 200 or doc.get("errors"):
                failures += 1

        await load.closed_loop(single, min(requests, 200), CONCURRENCY)  # warm: keys, plans
        meter = CpuMeter({**stack.pids(), "api_2": second.pid}).start()
        elapsed, latencies = await load.closed_loop(single, requests, CONCURRENCY)
        return {"seconds": round(elapsed, 2), "concurrency": CONCURRENCY,
                "requests_per_s": round(requests / elapsed, 1), "failures": failures,
                "latency_ms": load.summary_ms(latencies), "cpu_cores": meter.stop()}
    finally:
        await asyncio.to_thread(second.stop)


async def drop_backlog(bench: Bench, code: str) -> None:
    """Forget what intake queued: the queue's messages, and the rows (which recovery
    would otherwise queue again once a worker runs)."""
    started = time.monotonic()
    bench.stack.purge_queue()

    def drop() -> None:
        with bench.stack.mongo() as client:
            bench.stack.activity(client, code).drop()

    await asyncio.to_thread(drop)
    if time.monotonic() - started > 30:
        print(f"  (dropping the intake backlog took {time.monotonic() - started:.0f} s)")
