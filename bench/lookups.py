"""Before/after of two lookups on FerretDB, run by hand::

    .venv/bin/python bench/lookups.py

The API key of every request: by a ``hash`` field (before) or by ``_id`` in the hash
index collection (after). Recovery's unfinished rows: a filter on status over an activity
history without an index on status (what released FerretDB 1.24 does with any filter but
one on ``_id`` alone), the ``{_id: row id}`` entries of a collection of the rows in
flight (``open``, kept by earlier versions for that reason) each followed by its row,
and the same filter on status answered from the activity's ``(status, _id)`` index (as
the sweep asks now; our FerretDB build and MongoDB read that index). A scratch database
(``mb_lookups``) is dropped at the end.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from datetime import UTC, datetime, timedelta

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient

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
    query = {"status": {"$in": ["QUEUED", "RETRYING", "SENDING"]},
             "updated_at": {"$lt": moment}}
    started = time.perf_counter()
    scanned = await db.activity.find(query).limit(1000).to_list(None)
    scan = time.perf_counter() - started
    started = time.perf_counter()
    entries = await db.open.find({}).to_list(None)
    listed = [await db.activity.find_one({"_id": e["_id"]}) for e in entries]
    open_rows = time.perf_counter() - started
    await db.activity.create_index([("status", ASCENDING), ("_id", DESCENDING)])
    started = time.perf_counter()
    indexed = await db.activity.find(query).limit(1000).to_list(None)
    index = time.perf_counter() - started
    return (f"unfinished rows among {ROWS + LIVE:,}: status scan {scan * 1000:,.0f} ms "
            f"({len(scanned)} found), open collection {open_rows * 1000:,.0f} ms "
            f"({len(listed)}), status index {index * 1000:,.1f} ms ({len(indexed)})")


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
