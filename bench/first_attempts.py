"""First attempts first (scenario 12): a healthy action's latency while thousands of
retries of a hanging action are due, both in the same tenant (issue 16).

Tenant T's HANGUP sends H (a fast receiver; its requests are timed from the ``sent``
stamp to their arrival); T's RINGING sends F, whose receiver hangs past F's timeout
(``HANG_TIMEOUT`` s), so every attempt of F fails and is retried (the default
schedule: 5 s, 30 s, 120 s, …). In turn:

1. ``quiet``: H alone at ``fairness.RATE_B`` triggers/s for ``Sizes.first_seconds``.
2. ``first``: ``Sizes.failing`` RINGING triggers at once, then H for ``FIRST_SECONDS``
   while F's first attempts hang (for information: first attempts against first
   attempts).
3. Wait until F's first attempts have all failed (rows RETRYING or later): F's retries
   now come due by the thousand. Or, since the worker pauses an action whose endpoint
   keeps failing (``dispatch.breaker``), until F is paused and its rows that failed have
   stopped growing: the rest of its deliveries wait for probes, unattempted.
4. ``retries``: H for ``Sizes.first_seconds`` while those retries are due and hang (or
   wait, F paused: ``paused`` in the result).

``ratio_p99`` = ``retries`` p99 / ``quiet`` p99; the issue's goal is ≤ 1.5.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bson import ObjectId

from bench import load
from bench.context import Bench
from bench.fairness import RATE_B, TRIGGER_EVENTS, ratio, stream
from bench.probes import CpuMeter

FIRST_SECONDS = 6.0
HANG_TIMEOUT = 2.0
HANG_MS = 60_000


async def scenario_12(bench: Bench) -> dict[str, Any]:
    stack, receiver, sizes = bench.stack, bench.receiver, bench.sizes
    code = bench.code("s12")
    tenant = await stack.make_tenant(code, [receiver.url(f"/{code}/h")])
    made = await stack.gql(
        "mutation($i: ActionInput!) { createAction(input: $i) { id } }", tenant=code,
        i={"name": "hangs", "url": receiver.url(f"/{code}/f", HANG_MS),
           "timeoutSeconds": HANG_TIMEOUT})
    failing = made["createAction"]["id"]
    await stack.gql("mutation($ids: [ID!]) { updateEvent(type: RINGING, input: {active: true, "
                    "actionIds: $ids}) { type } }", tenant=code, ids=[failing])

    meter = CpuMeter(stack.pids()).start()
    quiet = await stream(stack, bench, tenant, sizes.first_seconds, 0)
    quiet_cpu = meter.stop()
    started = time.monotonic()
    for first in range(0, sizes.failing, 100):
        await stack.gql(TRIGGER_EVENTS, key=tenant.key, i=[
            {"event": "RINGING", "params": {"seq": -1 - i}}
            for i in range(first, min(sizes.failing, first + 100))])
    during_first = await stream(stack, bench, tenant, FIRST_SECONDS, 1_000_000)
    retrying = await wait_for_retries(bench, code, failing, sizes.failing)
    waited = time.monotonic() - started
    meter = CpuMeter(stack.pids()).start()
    during_retries = await stream(stack, bench, tenant, sizes.first_seconds, 2_000_000)
    retries_cpu = meter.stop()
    due = await count(bench, code, {"action_id": failing, "attempts": {"$gte": 2}})
    to_claim = await claim_delays(bench, code, tenant.action_ids[0], 2_000_000)
    return {
        "rate": RATE_B, "failing_deliveries": sizes.failing, "hang_timeout_s": HANG_TIMEOUT,
        "quiet": quiet, "first": during_first, "retries": during_retries,
        "retrying_when_measured": retrying, "seconds_to_retrying": round(waited, 1),
        "retried_by_end": due, "paused": await paused(bench, code, failing),
        "retries_accepted_to_claim_ms": to_claim,
        "quiet_cpu_cores": quiet_cpu, "cpu_cores": retries_cpu,
        "ratio_p50": ratio(during_retries, quiet, "p50"),
        "ratio_p99": ratio(during_retries, quiet, "p99"),
        "first_ratio_p99": ratio(during_first, quiet, "p99"),
    }


async def count(bench: Bench, code: str, query: dict[str, Any]) -> int:
    def counted() -> int:
        client = bench.stack.mongo()
        try:
            return bench.stack.activity(client, code).count_documents(query)
        finally:
            client.close()

    return await asyncio.to_thread(counted)


async def claim_delays(bench: Bench, code: str, action_id: str,
                       first_seq: int) -> dict[str, float | None]:
    """Where the healthy action's time went: from its row's acceptance by the API to its
    claim by a worker (broker, worker's shares, database gate), for the triggers from
    ``first_seq`` on."""
    def delays() -> list[float]:
        client = bench.stack.mongo()
        try:
            rows = bench.stack.activity(client, code)
            claims = rows.database[f"t_{code}_claims"]
            found = {str(r["_id"]): r["created_at"] for r in rows.find(
                {"action_id": action_id, "params.seq": {"$gte": first_seq}},
                {"created_at": 1})}
            at = {c["_id"].split(":")[0]: c["at"] for c in claims.find(
                {"_id": {"$in": [f"{i}:1" for i in found]}})}
            return [(at[i] - found[i]).total_seconds() * 1000 for i in found if i in at]
        finally:
            client.close()

    return load.summary_ms(await asyncio.to_thread(delays))


async def wait_for_retries(bench: Bench, code: str, action_id: str, total: int,
                           timeout: float = 300.0) -> int:
    """F's rows that failed an attempt at least once, once they are nearly all; or, F
    paused (``dispatch.breaker``: the rest wait, unattempted, for a probe), once their
    number has not grown for 2 s; or at ``timeout``."""
    deadline = time.monotonic() + timeout
    seen: list[int] = []
    while True:
        failed = await count(bench, code, {"action_id": action_id, "$or": [
            {"status": "RETRYING"}, {"attempts": {"$gte": 2}}]})
        seen.append(failed)
        steady = len(seen) > 4 and seen[-5] == failed and await paused(bench, code, action_id)
        if failed >= total * 0.95 or steady or time.monotonic() > deadline:
            return failed
        await asyncio.sleep(0.5)


async def paused(bench: Bench, code: str, action_id: str) -> bool:
    """Whether a worker process shows the action paused in its health."""
    def read() -> bool:
        client = bench.stack.mongo()
        try:
            health = bench.stack.activity(client, code).database[f"t_{code}_health"]
            doc = health.find_one({"_id": ObjectId(action_id)}, {"paused_until": 1})
            return bool(doc and doc.get("paused_until"))
        finally:
            client.close()

    return await asyncio.to_thread(read)
