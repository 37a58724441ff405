"""The retention clean-up at size, beside deliveries: scenario 1's rate alone, then
again while ``ActivityLog.prune`` deletes a tenant's old history in its batches.

    .venv/bin/python -m bench.retention [--rows 1000000] [--deliveries 20000] [--rounds 2]

Starts its own API and worker (database prefix ``bench_<random>``), fills a tenant with
``--rows`` rows 40 to 70 days old (the mix of scenario 6; all past the 30-day retention),
then for each round measures deliveries/s of a second tenant (as scenario 1: first
trigger sent → last request received) with no clean-up running, and with the clean-up of
the old rows running meanwhile (started just before the deliveries). Prints each rate,
how many rows the clean-up deleted while the deliveries ran and at what rate, and the
ratio of the rates (the goal: within 20 %).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import AsyncMongoClient

from bench import activity
from bench.context import Sizes
from bench.delivery import throughput
from bench.run import system
from tenants.activity import ActivityLog


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--deliveries", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    async with system(Sizes(), profile=False) as bench:
        stack = bench.stack
        old = await stack.make_tenant(bench.code("s8old"),
                                      [bench.receiver.url(f"/s8/{n}") for n in range(3)])
        template = await activity.delivered_row(bench, old)
        started = time.perf_counter()
        await asyncio.to_thread(fill_old, stack, old, args.rows, template)
        print(f"filled {args.rows:,} rows in {time.perf_counter() - started:.0f} s", flush=True)
        client: AsyncMongoClient = AsyncMongoClient(stack.settings.mongodb_url, tz_aware=True)
        data = client[stack.settings.tenant_database]
        log = ActivityLog(*(data[f"t_{old.code}_{kind}"]
                            for kind in ("activity", "idempotency", "claims")))
        alone, beside, pruned = [], [], []
        deleted_so_far = [0]
        delete_many = log.rows.delete_many

        async def counted(query: dict[str, Any]) -> Any:  # the clean-up's progress
            result = await delete_many(query)
            deleted_so_far[0] += result.deleted_count
            return result

        log.rows.delete_many = counted  # type: ignore[method-assign]
        try:
            for n in range(args.rounds):
                alone.append(await rate(bench, f"s8a{n}", args.deliveries))
                prune = asyncio.create_task(timed_prune(log))
                await asyncio.sleep(0.5)  # the clean-up is under way
                deleted_before = deleted_so_far[0]
                t0 = time.perf_counter()
                beside.append(await rate(bench, f"s8b{n}", args.deliveries))
                took = time.perf_counter() - t0
                deleted = deleted_so_far[0] - deleted_before
                pruned.append(deleted / took)
                print(f"round {n + 1}: alone {alone[-1]:,.0f}/s, with the clean-up "
                      f"{beside[-1]:,.0f}/s ({deleted:,} rows deleted meanwhile, "
                      f"{deleted / took:,.0f} rows/s)", flush=True)
                prune.cancel()
                await asyncio.gather(prune, return_exceptions=True)
            ratio = statistics.median(beside) / statistics.median(alone)
            print(f"median alone {statistics.median(alone):,.0f}/s, with the clean-up "
                  f"{statistics.median(beside):,.0f}/s: {ratio:.2f} of the rate alone; "
                  f"clean-up {statistics.median(pruned):,.0f} rows/s")
            started = time.perf_counter()
            total = await log.prune(datetime.now(UTC) - timedelta(days=30))
            print(f"the rest of the clean-up alone: {total:,} rows in "
                  f"{time.perf_counter() - started:.0f} s ({deleted_so_far[0]:,} in all)")
        finally:
            await client.close()


def fill_old(stack: Any, tenant: Any, rows: int, template: dict[str, Any]) -> None:
    with stack.mongo() as client:
        collection = stack.activity(client, tenant.code)
        start = datetime.now(UTC) - timedelta(days=70)
        made = activity.history(rows, start, template, tenant.action_ids)
        while batch := [row for _, row in zip(range(activity.BATCH), made, strict=False)]:
            collection.insert_many(batch, ordered=False)


async def timed_prune(log: ActivityLog) -> int:
    return await log.prune(datetime.now(UTC) - timedelta(days=30))


async def rate(bench: Any, name: str, deliveries: int) -> float:
    result = await throughput(bench, name=name, deliveries=deliveries, fanout=1)
    return result["deliveries_per_s"]


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except asyncio.CancelledError:  # SIGTERM (bench.run.system)
        raise SystemExit("bench.retention: stopped by SIGTERM; what it started is "
                         "stopped") from None
