"""Before/after of two lookups on FerretDB, run by hand::

    .venv/bin/python bench/lookups.py

The API key of every request: by a ``hash`` field (before) or by ``_id`` in the hash
index collection (after). Recovery's unfinished rows: a filter on status over the whole
activity history (before) or the open-rows collection (after). FerretDB 1.24 on SQLite
uses an index only for a filter on ``_id`` alone, which is what both changes exploit.
A scratch database (``mb_lookups``) is dropped at the end.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from datetime import UTC, datetime, timedelta

from bson import ObjectId
from pymongo import AsyncMongoClient

KEYS, PROBES, ROWS, LIVE = 1_000, 200, 100_000, 20


async def keys(db) -> str:  # noqa: ANN001
    docs = [{"_id": ObjectId(), "hash": secrets.token_hex(32), "role": "PBX"}
            for _ in range(KEYS)]
    await db.api_keys.insert_many(docs)
    await db.api_key_hashes.insert_many([{"_id": d["hash"], "key_id": d["_id"]} for d in docs])
    probes = [d["hash"] for d in docs[-PROBES:]]
    started = time.perf_counter()
    for digest in probes:
        await db.api_keys.find_one({"hash": digest})
    before = PROBES / (time.perf_counter() - started)
    started = time.perf_counter()
    for digest in probes:
        await db.api_key_hashes.find_one({"_id": digest})
    after = PROBES / (time.perf_counter() - started)
    return f"API key lookup, {KEYS:,} keys: by hash field {before:,.0f}/s, by _id {after:,.0f}/s"


async def unfinished(db) -> str:  # noqa: ANN001
    moment = datetime.now(UTC)
    done = [{"_id": ObjectId(), "status": "SUCCEEDED", "updated_at": moment,
             "payload": "x" * 400} for _ in range(ROWS)]
    live = [{"_id": ObjectId(), "status": "QUEUED", "updated_at": moment - timedelta(minutes=5),
             "payload": "x" * 400} for _ in range(LIVE)]
    for i in range(0, ROWS, 5000):
        await db.activity.insert_many(done[i:i + 5000])
    await db.activity.insert_many(live)
    await db.open.insert_many([{"_id": r["_id"]} for r in live])
    started = time.perf_counter()
    scanned = await db.activity.find({"status": {"$in": ["QUEUED", "RETRYING", "SENDING"]},
                                      "updated_at": {"$lt": moment}}).to_list(None)
    before = time.perf_counter() - started
    started = time.perf_counter()
    entries = await db.open.find({}).to_list(None)
    found = [await db.activity.find_one({"_id": e["_id"]}) for e in entries]
    after = time.perf_counter() - started
    return (f"unfinished rows among {ROWS + LIVE:,}: status scan {before * 1000:,.0f} ms "
            f"({len(scanned)} found), open collection {after * 1000:,.0f} ms ({len(found)})")


async def main() -> None:
    client: AsyncMongoClient = AsyncMongoClient("mongodb://127.0.0.1:27017", tz_aware=True)
    await client.drop_database("mb_lookups")
    try:
        db = client["mb_lookups"]
        print(await keys(db))
        print(await unfinished(db))
    finally:
        await client.drop_database("mb_lookups")
        await client.close()


if __name__ == "__main__":
    asyncio.run(main())
