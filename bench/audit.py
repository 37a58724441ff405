"""What the audit trail costs: its entry on every mutation, and reading a filtered page.

    .venv/bin/python -m bench.audit [--mutations 500] [--sizes 1000,10000,100000]

Starts its own API and worker (database prefix ``bench_<random>``), as ``python -m bench``
does, with one tenant and one action, then:

1. ``updateAction`` through the API ``--mutations`` times, one after another (an admin at
   the console), each changing the URL: latency, and CPU of each process per 1,000.
2. The entry alone: ``AuditLog.record`` of an ``updateAction``-shaped entry as many times
   on the same server, one after another: latency, and the server's CPU per 1,000.
3. Reading: the trail filled to each of ``--sizes`` entries (shaped as the API writes
   them, one second apart), then ``auditLog(first: 50)`` timed 20 times each with no
   filter, with a filter on an operation 1 entry in 100 has, and with one that no entry
   matches (every entry is read: the worst case of a filter checked entry by entry).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import timedelta
from typing import Any

from pymongo import AsyncMongoClient

from bench import load
from bench.context import Sizes
from bench.probes import CpuMeter
from bench.run import numbers, system
from tenants.activity import row_id
from tenants.audit import AuditLog
from tenants.database import now

UPDATE = ("mutation($id: ID!, $i: ActionInput!) { updateAction(id: $id, input: $i) "
          "{ id } }")
PAGE = ("query($f: AuditFilter) { auditLog(first: 50, filter: $f) "
        "{ items { id operation changes { field } } nextCursor } }")
READS = 20


def entry(n: int, at: Any) -> dict[str, Any]:
    """An ``updateAction`` entry as the API writes one (every 100th a ``deleteAction``)."""
    return {"_id": row_id(at), "at": at,
            "operation": "deleteAction" if n % 100 == 0 else "updateAction",
            "target": {"kind": "action", "id": f"{n:024x}", "name": f"CRM {n}"},
            "actor": {"key_id": "6750c0ffee0000000000beef", "label": "admin",
                      "role": "TENANT_ADMIN"},
            "changes": [{"field": "url", "before": f"https://crm.test/{n}",
                         "after": f"https://crm.test/{n + 1}", "cut": False}]}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mutations", type=int, default=500)
    parser.add_argument("--sizes", type=numbers(int), default=(1_000, 10_000, 100_000))
    args = parser.parse_args()
    async with system(Sizes(), profile=False) as bench:
        stack = bench.stack
        tenant = await stack.make_tenant(bench.code("au"), [bench.receiver.url("/au/0")])
        [action] = tenant.action_ids

        async def update(n: int) -> None:
            await stack.gql(UPDATE, key=tenant.admin_key, id=action,
                            i={"name": "bench 0", "url": bench.receiver.url(f"/au/{n}")})

        meter = CpuMeter(stack.pids()).start()
        elapsed, latencies = await load.closed_loop(update, args.mutations, 1)
        meter.stop()
        cost = meter.per_thousand(args.mutations)
        print(f"updateAction × {args.mutations:,} through the API, one at a time: "
              f"{args.mutations / elapsed:,.0f}/s, latency ms {load.summary_ms(latencies)}; "
              f"CPU s per 1,000: {cost}", flush=True)

        client: AsyncMongoClient = AsyncMongoClient(stack.settings.mongodb_url, tz_aware=True)
        data = client[stack.settings.tenant_database_of(tenant.code)]
        scratch = AuditLog(data[f"t_{tenant.code}_audit_bench"])
        await scratch.entries.insert_one({"_id": "first"})  # exists before timing
        changes = [{"field": "url", "before": "https://crm.test/a",
                    "after": "https://crm.test/b", "cut": False}]
        target = {"kind": "action", "id": action, "name": "bench 0"}
        actor = {"key_id": None, "label": "bench", "role": "TENANT_ADMIN"}

        async def record(n: int) -> None:
            await scratch.record("updateAction", target, actor, changes)

        meter = CpuMeter(stack.pids()).start()
        elapsed, latencies = await load.closed_loop(record, args.mutations, 1)
        meter.stop()
        server = meter.per_thousand(args.mutations)["ferretdb"]
        print(f"the entry alone (AuditLog.record) × {args.mutations:,}: "
              f"latency ms {load.summary_ms(latencies)}; server CPU s per 1,000: {server}",
              flush=True)
        await scratch.entries.drop()

        trail = data[f"t_{tenant.code}_audit"]
        filled = await trail.count_documents({})
        start = now() - timedelta(days=20)
        for size in sorted(args.sizes):
            batch = [entry(n, start + timedelta(seconds=n)) for n in range(filled, size)]
            for i in range(0, len(batch), 5_000):
                await trail.insert_many(batch[i:i + 5_000], ordered=False)
            filled = max(filled, size)
            shown = []
            for name, filter_ in (("no filter", None),
                                  ("deleteAction (1 in 100)", {"operations": ["deleteAction"]}),
                                  ("matching none", {"operations": ["importMasterActions"]})):
                took = []
                for _ in range(READS):
                    began = time.perf_counter()
                    await stack.gql(PAGE, key=tenant.admin_key, f=filter_)
                    took.append((time.perf_counter() - began) * 1000)
                summary = load.summary_ms(took)
                shown.append(f"{name} p50 {summary['p50']} ms, max {summary['max']} ms")
            print(f"auditLog(first: 50) over {filled:,} entries: {'; '.join(shown)}",
                  flush=True)
        await client.close()


if __name__ == "__main__":
    asyncio.run(main())
