"""A tenant with a long history (scenario 6).

The rows are written straight into the tenant's activity collection with
``insert_many`` (batches of ``BATCH``), copies of a row that a real delivery left (so
they have the shape the service writes): 90 % SUCCEEDED, 5 % FAILED, 5 % SKIPPED, the
five events in turn, created over the past week with ids in the same order. The target
is 1,000,000 rows; the default (``--rows``) is smaller so that the insert finishes in
minutes on FerretDB/SQLite.

Measured against an empty tenant set up the same way: the first page of
``activity(first: 50)`` (cold, then warm), the next page, a filtered page (FAILED and
one event), ``triggerEvent``'s latency (sequential, the two tenants in turn), the
recovery sweep's query (through the ``open`` collection), and for comparison a query
for unfinished rows by status (FerretDB only uses an index for a filter on ``_id``
alone, so that one reads the whole history).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import struct
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import AsyncMongoClient

from bench import load, probes
from bench.context import Bench
from bench.stack import Stack, Tenant
from tenants.activity import ActivityLog

BATCH = 1_000
EVENTS = ("INCOMING_CALL", "ANSWERED_CALL", "UNANSWERED_CALL", "HANGUP", "RINGING")
PAGE_FIELDS = ("items { id event actionName status attempts httpStatus message createdAt "
               "request { method url } } nextCursor")
PAGE = "query($f: ActivityFilter, $a: String) { activity(first: 50, filter: $f, after: $a) { %s } }"
TRIGGER_EVENT = "mutation($i: TriggerInput!) { triggerEvent(input: $i) { accepted } }"
REPEATS = 5
PROGRESS = 20_000
"""From this many rows on, the insert prints its progress."""
SLOW_MS = 1_000.0
"""When the first page takes longer than this, each page is timed once only (the first
page twice: cold, then warm): on FerretDB/SQLite one takes a minute at 100,000 rows."""
PAGE_TIMEOUT = 3_600.0


MESSAGES = {"SUCCEEDED": "200 OK in 12 ms", "FAILED": "404 Not Found",
            "SKIPPED": "the Hangup event is not active"}


def history(first: int, count: int, total: int, start: datetime,
            template: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows ``first`` … ``first + count - 1`` of ``total`` finished rows spread over the
    week after ``start``, oldest first, made from ``template`` (a SUCCEEDED row)."""
    step = timedelta(days=7) / max(total, 1)
    salt = os.urandom(5)
    rows = []
    for n in range(first, first + count):
        at = start + n * step
        at = at.replace(microsecond=at.microsecond // 1000 * 1000)
        roll = n % 20
        status = "FAILED" if roll == 0 else "SKIPPED" if roll == 1 else "SUCCEEDED"
        row = {**template, "_id": ObjectId(struct.pack(">I", int(at.timestamp())) + salt
                                           + struct.pack(">I", n)[1:]),
               "trigger_id": str(ObjectId()), "event": EVENTS[n % len(EVENTS)],
               "status": status, "message": MESSAGES[status], "occurred_at": at,
               "created_at": at, "updated_at": at,
               "http_status": {"SUCCEEDED": 200, "FAILED": 404}.get(status)}
        if status == "SKIPPED":
            row.update(action_id=None, action_name=None, attempts=0, request=None,
                       response_snippet=None, http_status=None)
        rows.append(row)
    return rows


def fill(stack: Stack, code: str, count: int, template: dict[str, Any]) -> float:
    """Insert ``count`` rows; seconds taken."""
    started = time.perf_counter()
    with stack.mongo() as client:
        rows = stack.activity(client, code)
        done = 0
        start = datetime.now(UTC) - timedelta(days=7)
        while done < count:
            batch = history(done, min(BATCH, count - done), count, start, template)
            rows.insert_many(batch, ordered=False)
            done += len(batch)
            if count >= PROGRESS and done % (count // 10) < BATCH:
                print(f"  scenario 6: {done:,} of {count:,} rows "
                      f"({time.perf_counter() - started:.0f} s)", flush=True)
    return time.perf_counter() - started


async def delivered_row(bench: Bench, tenant: Tenant) -> dict[str, Any]:
    """A SUCCEEDED row of ``tenant``, from one real trigger: the rows' template."""
    await bench.stack.gql(TRIGGER_EVENT, key=tenant.key, i={
        "event": "HANGUP", "params": {"seq": -1, "caller_id": "+38761111222"}})
    deadline = time.monotonic() + 60

    def find() -> dict[str, Any] | None:
        with bench.stack.mongo() as client:
            return bench.stack.activity(client, tenant.code).find_one({"status": "SUCCEEDED"})

    while (row := await asyncio.to_thread(find)) is None:
        if time.monotonic() > deadline:
            raise RuntimeError("the template delivery of scenario 6 did not succeed in 60 s")
        await asyncio.sleep(0.2)
    return row


async def timed(call: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    value = await call
    return (time.perf_counter() - started) * 1000, value


async def pages(stack: Stack, tenant: Tenant) -> dict[str, Any]:
    """Cold and warm times of the first page, the next page and a filtered page."""
    key = tenant.admin_key
    filtered = {"statuses": ["FAILED"], "events": ["HANGUP"]}
    def page(**variables: Any) -> Any:
        return timed(stack.gql(PAGE % PAGE_FIELDS, key=key, timeout=PAGE_TIMEOUT, **variables))

    took, first = await page()
    first_ms = [took]
    slow = took > SLOW_MS
    for _ in range(1 if slow else REPEATS - 1):
        first_ms.append((await page())[0])
    cursor = first["activity"]["nextCursor"]
    next_ms = [(await page(a=cursor))[0] for _ in range(0 if not cursor else 1 if slow
                                                         else REPEATS)]
    filtered_ms = [(await page(f=filtered))[0] for _ in range(1 if slow else REPEATS)]

    def shape(values: list[float]) -> dict[str, Any]:
        if not values:
            return {}
        return {"cold_ms": round(values[0], 1),
                "warm_median_ms": round(statistics.median(values[1:] or values), 1),
                "max_ms": round(max(values), 1)}

    return {"first_page": shape(first_ms), "next_page": shape(next_ms),
            "filtered_page": shape(filtered_ms)}


def status_scan_ms(stack: Stack, code: str) -> float:
    """The median time of a query for unfinished rows by status (what the recovery sweep
    asked before it kept the ``open`` collection) on the tenant's rows (of up to 3
    tries, one only when it is slow)."""
    with stack.mongo() as client:
        rows = stack.activity(client, code)
        took: list[float] = []
        while len(took) < 3 and sum(took) < SLOW_MS:
            started = time.perf_counter()
            rows.find({"status": {"$in": ["QUEUED", "RETRYING", "SENDING"]},
                       "updated_at": {"$lt": datetime.now(UTC) - timedelta(seconds=60)}},
                      {"_id": 1}).limit(1000).to_list()
            took.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(took), 1)


async def sweep_query_ms(stack: Stack, code: str) -> float:
    """The median of 3 runs of the recovery sweep's own query on the tenant
    (``ActivityLog.unfinished``: the ``open`` entries, then each of their rows by _id)."""
    client: AsyncMongoClient = AsyncMongoClient(stack.settings.mongodb_url, tz_aware=True)
    data = client[stack.settings.tenant_database]
    log = ActivityLog(*(data[f"t_{code}_{kind}"]
                        for kind in ("activity", "idempotency", "claims", "open")))
    took: list[float] = []
    try:
        for _ in range(3):
            started = time.perf_counter()
            await log.unfinished(datetime.now(UTC) - timedelta(seconds=60))
            took.append((time.perf_counter() - started) * 1000)
    finally:
        await client.close()
    return round(statistics.median(took), 1)


def drop_rows(stack: Stack, code: str) -> None:
    with stack.mongo() as client:
        stack.activity(client, code).drop()


async def measure(bench: Bench, big: Tenant, empty: Tenant,
                  template: dict[str, Any]) -> dict[str, Any]:
    stack, sizes = bench.stack, bench.sizes
    ferretdb = stack.pids().get("ferretdb")
    seconds = await asyncio.to_thread(fill, stack, big.code, sizes.rows, template)
    result: dict[str, Any] = {"rows": sizes.rows, "target_rows": 1_000_000,
                              "insert_seconds": round(seconds, 1),
                              "insert_rows_per_s": round(sizes.rows / seconds, 1)}
    result["big"] = await pages(stack, big)
    result["empty"] = await pages(stack, empty)
    costs: dict[str, list[float]] = {"big": [], "empty": []}
    for n in range(sizes.trigger_samples):
        for name, tenant in (("big", big), ("empty", empty)):
            took, _ = await timed(stack.gql(TRIGGER_EVENT, key=tenant.key, i={
                "event": "HANGUP", "params": {"seq": n, "caller_id": "+38761111222"}}))
            costs[name].append(took)
    shown = result["trigger_event_ms"] = {name: load.summary_ms(v) for name, v in costs.items()}
    result["trigger_cost_ratio"] = round(shown["big"]["p50"] / shown["empty"]["p50"], 3)
    result["recovery_query_ms"] = {
        "big": await sweep_query_ms(stack, big.code),
        "empty": await sweep_query_ms(stack, empty.code),
        "status_scan_big": await asyncio.to_thread(status_scan_ms, stack, big.code)}
    if ferretdb is not None:
        result["ferretdb_peak_rss_mb"] = round(
            probes.memory_kb(ferretdb).get("VmHWM", 0) / 1024, 1)
    return result


async def scenario_6(bench: Bench) -> dict[str, Any]:
    stack = bench.stack
    big = await stack.make_tenant(bench.code("s6big"), [bench.receiver.url("/s6/big")])
    empty = await stack.make_tenant(bench.code("s6empty"), [bench.receiver.url("/s6/empty")])
    template = await delivered_row(bench, big)
    try:
        return await measure(bench, big, empty, template)
    finally:  # later scenarios should not pay for the worker's sweeps of these rows
        await asyncio.to_thread(drop_rows, stack, big.code)
