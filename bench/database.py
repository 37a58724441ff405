"""The database ceiling: how many deliveries per second the MongoDB-compatible server
allows for the database calls that one delivery makes, with nothing else around them
(no broker, no rendering, no HTTP).

Per delivery, as the worker makes them (``tenants/activity.py``): the row read by
``_id``, the claim inserted, the row marked SENDING, and the outcome recorded with
``find_one_and_update``. ``CONCURRENCY`` calls at once, as the worker's database gate
allows. The rows are copies of a row the service wrote, in a scratch collection of the
bench's database.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pymongo import AsyncMongoClient, ReturnDocument

from bench import load
from bench.stack import Stack

CONCURRENCY = 16
CALLS = 4


async def database_ceiling(stack: Stack, template: dict[str, Any], total: int) -> dict[str, Any]:
    client: AsyncMongoClient = AsyncMongoClient(stack.settings.mongodb_url, tz_aware=True)
    db = client[stack.settings.tenant_database]
    rows, claims = db["bench_ceiling_activity"], db["bench_ceiling_claims"]
    try:
        ids = [ObjectId() for _ in range(total)]
        for start in range(0, total, 1000):
            await rows.insert_many([{**template, "_id": i, "status": "QUEUED", "attempts": 0}
                                    for i in ids[start:start + 1000]])

        async def deliver(n: int) -> None:
            row_id = ids[n]
            await rows.find_one({"_id": row_id})
            await claims.insert_one({"_id": f"{row_id}:1", "at": datetime.now(UTC),
                                     "owner": "bench"})
            await rows.update_one({"_id": row_id}, {"$set": {
                "status": "SENDING", "attempts": 1, "updated_at": datetime.now(UTC)}})
            await rows.find_one_and_update({"_id": row_id}, {"$set": {
                "status": "SUCCEEDED", "http_status": 200, "message": "200 OK in 1 ms",
                "updated_at": datetime.now(UTC)}}, return_document=ReturnDocument.AFTER)

        elapsed, latencies = await load.closed_loop(deliver, total, CONCURRENCY)
    finally:
        await rows.drop()
        await claims.drop()
        await client.close()
    return {"deliveries_per_s": round(total / elapsed, 1),
            "calls_per_s": round(CALLS * total / elapsed, 1), "deliveries": total,
            "concurrency": CONCURRENCY, "delivery_db_ms": load.summary_ms(latencies)}
