"""The database ceiling: how many deliveries per second the MongoDB-compatible server
allows for the database calls that one delivery makes, with nothing else around them
(no broker, no rendering, no HTTP).

Per delivery, as the worker makes them (``tenants/activity.py``): the claim inserted
(with the claims of the deliveries that start at the same moment, ``GroupedInserts``)
and the outcome set (with those of the deliveries that end together, ``GroupedWrites``).
The row itself is not read (the message carries it) nor marked SENDING (an attempt
answered within a second is not). ``CONCURRENCY`` deliveries at once, as the worker's
database gate allows. The rows are copies of a row the service wrote, in a scratch
collection of the bench's database.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pymongo import AsyncMongoClient

from bench import load
from bench.stack import Stack
from tenants.database import GroupedInserts, GroupedWrites

CONCURRENCY = 16
CALLS = 2


async def database_ceiling(stack: Stack, template: dict[str, Any], total: int) -> dict[str, Any]:
    client: AsyncMongoClient = AsyncMongoClient(stack.settings.mongodb_url, tz_aware=True)
    db = client[stack.settings.tenant_database]
    rows, claims = db["bench_ceiling_activity"], db["bench_ceiling_claims"]
    grouped = GroupedInserts(claims)
    outcomes = GroupedWrites(rows)
    try:
        ids = [ObjectId() for _ in range(total)]
        for start in range(0, total, 1000):
            await rows.insert_many([{**template, "_id": i, "status": "QUEUED", "attempts": 0}
                                    for i in ids[start:start + 1000]])

        async def deliver(n: int) -> None:
            row_id = ids[n]
            await grouped.insert({"_id": f"{row_id}:1", "at": datetime.now(UTC),
                                  "owner": "bench"})
            await outcomes.update(row_id, {
                "status": "SUCCEEDED", "attempts": 1, "http_status": 200,
                "message": "200 OK in 1 ms", "updated_at": datetime.now(UTC)})

        elapsed, latencies = await load.closed_loop(deliver, total, CONCURRENCY)
    finally:
        for collection in (rows, claims):
            await collection.drop()
        await client.close()
    return {"deliveries_per_s": round(total / elapsed, 1),
            "calls_per_s": round(CALLS * total / elapsed, 1), "deliveries": total,
            "concurrency": CONCURRENCY, "delivery_db_ms": load.summary_ms(latencies)}
