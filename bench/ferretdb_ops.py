"""What one database operation of the delivery path costs the server, measured alone.

    .venv/bin/python -m bench.ferretdb_ops [--url mongodb://127.0.0.1:27017] [--pid N]

Each operation is made ``--count`` times on activity-shaped rows of a scratch
collection, ``--concurrency`` at once (the worker's database gate): operations per
second, and the server's CPU time per operation, read from ``/proc/<pid>/stat`` (the
pid of the local FerretDB from ``.state/run/ferretdb.pid`` unless given). Used for the
before/after figures of FerretDB's settings in the README.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from bson import ObjectId
from pymongo import AsyncMongoClient, ReturnDocument

from tenants.activity import ACTIVITY_INDEXES
from tenants.database import GroupedInserts, GroupedWrites

ROOT = Path(__file__).resolve().parent.parent


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def activity_row(row_id: ObjectId) -> dict:
    moment = datetime.now(UTC)
    return {"_id": row_id, "trigger_id": str(ObjectId()), "event": "HANGUP",
            "source": "SYSTEM", "action_id": str(ObjectId()), "action_name": "CRM hangup",
            "status": "QUEUED", "message": "queued", "attempts": 0, "cycle_start": 0,
            "http_status": None, "request": None, "response_snippet": None,
            "unresolved_parameters": [], "params": {"caller_id": "+38761111222"},
            "occurred_at": moment, "created_at": moment, "updated_at": moment,
            "next_attempt_at": None}


async def measure(url: str, pid: int, count: int, concurrency: int, indexes: bool) -> None:
    client: AsyncMongoClient = AsyncMongoClient(url, tz_aware=True)
    rows = client["bench_ferretdb_ops"]["activity"]
    ids = [ObjectId() for _ in range(count)]
    gate = asyncio.Semaphore(concurrency)

    async def run(name: str, operation: Callable[[ObjectId], Awaitable[object]]) -> None:
        async def one(row_id: ObjectId) -> None:
            async with gate:
                await operation(row_id)

        used, started = cpu_seconds(pid), time.perf_counter()
        await asyncio.gather(*(one(i) for i in ids))
        elapsed, used = time.perf_counter() - started, cpu_seconds(pid) - used
        print(f"| {name} | {count / elapsed:,.0f} | {used / count * 1000:.3f} |")

    print("| operation | per second | server CPU ms per operation |\n|---|---|---|")
    try:
        await rows.insert_one({"_id": "first"})  # the collection exists before timing
        if indexes:
            for name, keys in ACTIVITY_INDEXES.items():
                await rows.create_index(keys, name=name)
        await run("insert_one", lambda i: rows.insert_one(activity_row(i)))
        await run("find_one by _id", lambda i: rows.find_one({"_id": i}))
        await run("update_one by _id", lambda i: rows.update_one(
            {"_id": i}, {"$set": {"status": "SENDING", "attempts": 1,
                                  "updated_at": datetime.now(UTC)}}))
        await run("find_one_and_update by _id", lambda i: rows.find_one_and_update(
            {"_id": i}, {"$set": {"status": "SUCCEEDED", "updated_at": datetime.now(UTC)}},
            return_document=ReturnDocument.AFTER))
        await run("delete_one by _id", lambda i: rows.delete_one({"_id": i}))
        # The same, grouped as the worker groups them (tenants.database): the claims of
        # deliveries that start together, the outcomes and deletes of those that end so.
        claims = client["bench_ferretdb_ops"]["claims"]
        inserts, updates, deletes = (GroupedInserts(claims), GroupedWrites(rows),
                                     GroupedWrites(rows))
        await run("insert, grouped (insert_many)", lambda i: inserts.insert(
            {"_id": f"{i}:1", "at": datetime.now(UTC), "owner": "bench"}))
        await rows.insert_many([activity_row(i) for i in ids])
        await run("update by _id, grouped (bulk_write)", lambda i: updates.update(
            i, {"status": "SUCCEEDED", "updated_at": datetime.now(UTC)}))
        await run("delete by _id, grouped (bulk_write)", lambda i: deletes.delete(i))
    finally:
        await client.drop_database("bench_ferretdb_ops")
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="mongodb://127.0.0.1:27017")
    parser.add_argument("--pid", type=int, help="the server's pid (default: the local one)")
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--indexes", action="store_true",
                        help="give the scratch collection the Activity Monitor's indexes")
    args = parser.parse_args()
    pid = args.pid or int((ROOT / ".state" / "run" / "ferretdb.pid").read_text())
    asyncio.run(measure(args.url, pid, args.count, args.concurrency, args.indexes))


if __name__ == "__main__":
    main()
