"""Tenants share the worker (scenario 8): a light tenant's latency while another is heavy.

Tenant B sends a steady stream of light triggers (one fast action each) at
``RATE_B`` per second; the receiver times each one from the ``sent`` stamp to its
arrival (one monotonic clock). First B alone for ``QUIET_SECONDS`` (its quiet latency),
then again for ``LOADED_SECONDS`` right after tenant A triggered ``HEAVY`` deliveries of
one kind:

- ``slow``: the receiver answers A after 8 s;
- ``huge``: A's raw body is ``{{big}}`` × 36,000 with a 300-character custom
  parameter, about 10.8 MB rendered (as far as the render limits let it be);
- ``failing``: the receiver answers A 503 after 3 s, and A's deliveries are retried;
- ``crowd``: ``CROWD`` deliveries answered after 8 s, more than a worker process's
  slots (``EVENT_MANAGER_WORKER_IN_FLIGHT``, 1,000): A's share of them is what is left.

B's latency under A's load should stay within twice its quiet latency (issue 14):
``ratio_p50`` and ``ratio_p95`` are loaded / quiet. A's requests carry no ``sent``, so
only B's are timed.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench import load
from bench.context import Bench
from bench.stack import Stack, Tenant

HEAVY = 20
CROWD = 1_500
RATE_B = 5.0
QUIET_SECONDS = 6.0
LOADED_SECONDS = 10.0
SLOW_MS = 8000
FAILING_MS = 3000
BIG_TAG_REPEATS = 36_000
BIG_VALUE_CHARS = 300
TRIGGER_EVENT = "mutation($i: TriggerInput!) { triggerEvent(input: $i) { accepted } }"
TRIGGER_EVENTS = "mutation($i: [TriggerInput!]!) { triggerEvents(inputs: $i) { accepted } }"


async def heavy_tenant(bench: Bench, kind: str) -> Tenant:
    """Tenant A, whose HANGUP sends one heavy action of ``kind``."""
    stack, receiver = bench.stack, bench.receiver
    code = bench.code(f"s8{kind}")
    if kind in ("slow", "crowd"):
        return await stack.make_tenant(code, [receiver.url(f"/{code}/a", SLOW_MS)])
    if kind == "failing":
        return await stack.make_tenant(code, [receiver.url(f"/{code}/a", FAILING_MS, 503)])
    tenant = await stack.make_tenant(code, [receiver.url(f"/{code}/a")])
    await stack.gql('mutation($v: String!) { createParameter(input: {tag: "big", value: $v}) '
                    '{ tag } }', tenant=code, v="x" * BIG_VALUE_CHARS)
    await stack.gql('mutation($id: ID!, $i: ActionInput!) { updateAction(id: $id, input: $i) '
                    '{ id } }', tenant=code, id=tenant.action_ids[0],
                    i={"name": "bench 0", "url": receiver.url(f"/{code}/a"),
                       "bodyType": "RAW", "rawContentType": "text/plain",
                       "rawBody": "{{big}}" * BIG_TAG_REPEATS})
    return tenant


async def stream(stack: Stack, bench: Bench, tenant: Tenant, seconds: float,
                 first_seq: int) -> dict[str, Any]:
    """B's triggers at ``RATE_B`` for ``seconds``; trigger → receipt latencies."""
    await bench.receiver.reset()

    async def one(i: int) -> None:
        await stack.gql(TRIGGER_EVENT, key=tenant.key, i={"event": "HANGUP", "params": {
            "seq": first_seq + i, "sent": str(time.monotonic_ns()),
            "caller_id": "+38761111222"}})

    paced = await load.open_loop(one, RATE_B, seconds)
    total = len(paced.latencies) + paced.errors
    deadline = time.monotonic() + 30  # A's requests arrive too: count B's, timed ones
    while (await bench.receiver.stats())["latency_count"] < total \
            and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    stats = await bench.receiver.stats(latencies=True)
    latencies = [us / 1000 for seq, us in stats["latencies_us"] if seq >= first_seq]
    return {"triggers": total, "errors": paced.errors, "received": len(latencies),
            "latency_ms": load.summary_ms(latencies)}


def ratio(loaded: dict[str, Any], quiet: dict[str, Any], key: str) -> float | None:
    a, b = loaded["latency_ms"][key], quiet["latency_ms"][key]
    return round(a / b, 2) if a is not None and b else None


async def one_kind(bench: Bench, light: Tenant, kind: str, seq: int) -> dict[str, Any]:
    stack = bench.stack
    heavy = await heavy_tenant(bench, kind)
    quiet = await stream(stack, bench, light, QUIET_SECONDS, seq)
    started = time.perf_counter()
    count = CROWD if kind == "crowd" else HEAVY
    for first in range(0, count, 100):
        await stack.gql(TRIGGER_EVENTS, key=heavy.key, i=[
            {"event": "HANGUP", "params": {"seq": -1 - i}}
            for i in range(first, min(count, first + 100))])
    triggered_ms = (time.perf_counter() - started) * 1000
    loaded = await stream(stack, bench, light, LOADED_SECONDS, seq + 100_000)
    return {"heavy_deliveries": count, "quiet": quiet, "loaded": loaded,
            "heavy_trigger_ms": round(triggered_ms, 1),
            "ratio_p50": ratio(loaded, quiet, "p50"), "ratio_p95": ratio(loaded, quiet, "p95"),
            "ratio_max": ratio(loaded, quiet, "max")}


async def scenario_8(bench: Bench, kinds: tuple[str, ...] = ("slow", "huge", "failing",
                                                            "crowd")) -> dict[str, Any]:
    """For each kind of heavy load: B quiet, then B while A's ``HEAVY`` deliveries run."""
    light = await bench.stack.make_tenant(bench.code("s8light"),
                                          [bench.receiver.url("/s8light/b")])
    results: dict[str, Any] = {"heavy_deliveries": HEAVY, "rate_b": RATE_B}
    for number, kind in enumerate(kinds):
        results[kind] = await one_kind(bench, light, kind, number * 1_000_000)
        await asyncio.sleep(2.0)  # A's last answers, before the next kind's quiet phase
    worst = [results[k]["ratio_p95"] for k in kinds if results[k]["ratio_p95"] is not None]
    results["worst_ratio_p95"] = max(worst, default=None)
    return results
