"""A tenant with a long history (scenario 6).

The rows are written straight into the tenant's activity collection (which has its
indexes, as every tenant's has) with ``insert_many`` (batches of ``BATCH``), made from a
row that a real delivery left, so they have the shape the service writes. The history is
a realistic mix (``history``): calls of four events each (Ringing, Incoming, Answered or
Unanswered, Hangup), one row per action of the tenant (three), 5 % of triggers skipped,
4 % of deliveries FAILED and 0.5 % RETRYING, 2 % of triggers sent as TEST, spread over
30 days with ids that carry their creation time, as the service's do. The target is
1,000,000 rows; the default (``--rows``) is smaller so that the insert takes a minute.

Measured against an empty tenant set up the same way: every page shape the Activity
Monitor asks (``PAGE_SHAPES``: the first page, a page 20 cursors deep, each single filter
of the contract, each combination the console offers, and combinations that match
nothing), each cold and then warm (median of ``REPEATS``); FerretDB's memory before and
after the pages; a text search that matches nothing and one that matches often (answered
within about a second, or with a note saying how far back it looked);
``triggerEvent``'s latency (sequential, the two tenants in turn), and the recovery
sweep's query (unfinished rows by status, through the activity's status index).
"""

from __future__ import annotations

import asyncio
import itertools
import random
import statistics
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import AsyncMongoClient

from bench import load, probes
from bench.context import Bench
from bench.stack import Stack, Tenant
from tenants.activity import ActivityLog, row_id

BATCH = 1_000
EVENTS = ("INCOMING_CALL", "ANSWERED_CALL", "UNANSWERED_CALL", "HANGUP", "RINGING")
PAGE_FIELDS = ("items { id event actionName status attempts httpStatus message createdAt "
               "request { method url } } nextCursor note")
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
            "RETRYING": "503 Service Unavailable; retry 2 of 5", "SKIPPED":
            "the Unanswered Call event is not active"}
CALLS = (("RINGING", "INCOMING_CALL", "ANSWERED_CALL", "HANGUP"),
         ("RINGING", "INCOMING_CALL", "UNANSWERED_CALL", "HANGUP"))
DAYS = 30


def history(total: int, start: datetime, template: dict[str, Any],
            action_ids: list[str], seed: int = 6) -> Iterator[dict[str, Any]]:
    """``total`` finished rows over the ``DAYS`` days after ``start``, oldest first, made
    from ``template`` (a SUCCEEDED row): the mix of the module's docstring. TEST triggers
    never fail here, so FAILED + TEST matches nothing while each alone matches many."""
    rnd = random.Random(seed)
    step = timedelta(days=DAYS) / max(total, 1)
    n = 0
    while True:
        for event in CALLS[rnd.random() < 0.3]:
            trigger_at = start + n * step
            trigger = str(row_id(trigger_at))
            source = "TEST" if rnd.random() < 0.02 else "SYSTEM"
            skipped = source == "SYSTEM" and rnd.random() < 0.05
            for action in [None] if skipped else action_ids:
                if n == total:
                    return
                at = start + n * step
                at = at.replace(microsecond=at.microsecond // 1000 * 1000)
                roll = rnd.random()
                status = ("SKIPPED" if skipped else "SUCCEEDED" if source == "TEST" else
                          "FAILED" if roll < 0.04 else "RETRYING" if roll < 0.045 else
                          "SUCCEEDED")
                row = {**template, "_id": row_id(at), "trigger_id": trigger, "event": event,
                       "source": source, "status": status, "message": MESSAGES[status],
                       "occurred_at": at, "created_at": at, "updated_at": at,
                       "action_id": action, "attempts": 1 if action else 0,
                       "http_status": {"SUCCEEDED": 200, "FAILED": 404,
                                       "RETRYING": 503}.get(status)}
                if skipped:
                    row.update(action_name=None, request=None, response_snippet=None)
                yield row
                n += 1


def fill(stack: Stack, tenant: Tenant, count: int, template: dict[str, Any]) -> float:
    """Insert ``count`` rows; seconds taken."""
    started = time.perf_counter()
    with stack.mongo() as client:
        rows = stack.activity(client, tenant.code)
        done = 0
        start = datetime.now(UTC) - timedelta(days=DAYS, minutes=10)
        made = history(count, start, template, tenant.action_ids)
        while batch := list(itertools.islice(made, BATCH)):
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


def page_shapes(tenant: Tenant, trigger_id: str) -> dict[str, dict[str, Any]]:
    """The filters of the pages measured, by name (a cursor 20 pages deep is added)."""
    week_ago = datetime.now(UTC) - timedelta(days=7)
    return {
        "first": {},
        "status FAILED": {"statuses": ["FAILED"]},
        "statuses FAILED, RETRYING": {"statuses": ["FAILED", "RETRYING"]},
        "event UNANSWERED_CALL": {"events": ["UNANSWERED_CALL"]},
        "action": {"actionId": tenant.action_ids[-1]},
        "trigger": {"triggerId": trigger_id},
        "source TEST": {"source": "TEST"},
        "since/until, a day a week ago": {"since": week_ago.isoformat(),
                                          "until": (week_ago + timedelta(days=1)).isoformat()},
        "status + event (FAILED, HANGUP)": {"statuses": ["FAILED"], "events": ["HANGUP"]},
        "status + source (SKIPPED, SYSTEM)": {"statuses": ["SKIPPED"], "source": "SYSTEM"},
        "event + source (RINGING, TEST)": {"events": ["RINGING"], "source": "TEST"},
        "status + event + source (RETRYING, HANGUP, SYSTEM)": {
            "statuses": ["RETRYING"], "events": ["HANGUP"], "source": "SYSTEM"},
        "nothing: status + event (QUEUED, HANGUP)": {"statuses": ["QUEUED"],
                                                     "events": ["HANGUP"]},
        "nothing: status + source (FAILED, TEST)": {"statuses": ["FAILED"], "source": "TEST"},
    }


def shape(values: list[float], rows: int) -> dict[str, Any]:
    return {"cold_ms": round(values[0], 1),
            "warm_median_ms": round(statistics.median(values[1:] or values), 1),
            "max_ms": round(max(values), 1), "rows": rows}


async def pages(stack: Stack, tenant: Tenant, trigger_id: str) -> dict[str, Any]:
    """Cold and warm times of every page shape (``page_shapes``), of a page 20 cursors
    deep, and of two text searches."""
    key = tenant.admin_key

    async def page(times: int, **variables: Any) -> tuple[list[float], Any]:
        took: list[float] = []
        while len(took) < times:
            ms, reply = await timed(stack.gql(PAGE % PAGE_FIELDS, key=key,
                                              timeout=PAGE_TIMEOUT, **variables))
            took.append(ms)
            if ms > SLOW_MS:  # a slow shape is timed once
                break
        return took, reply["activity"]

    result: dict[str, Any] = {}
    for name, filter in page_shapes(tenant, trigger_id).items():
        took, answer = await page(REPEATS, f=filter or None)
        result[name] = shape(took, len(answer["items"]))
    cursor, deep = None, {}
    for _ in range(20):
        _, deep = await page(1, a=cursor)
        cursor = deep["nextCursor"]
    took, answer = await page(REPEATS, a=cursor)
    result["20 cursors deep"] = shape(took, len(answer["items"]))
    for name, text in (("search, no match", "no such text"), ("search, 404", "404")):
        took, answer = await page(3, f={"search": text})
        result[name] = {**shape(took, len(answer["items"])), "note": answer.get("note")}
    return result


async def sweep_query_ms(stack: Stack, code: str) -> float:
    """The median of 3 runs of the recovery sweep's own query on the tenant
    (``ActivityLog.unfinished``: the rows not final, by status)."""
    client: AsyncMongoClient = AsyncMongoClient(stack.settings.mongodb_url, tz_aware=True)
    data = client[stack.settings.tenant_database]
    log = ActivityLog(*(data[f"t_{code}_{kind}"]
                        for kind in ("activity", "idempotency", "claims")))
    took: list[float] = []
    try:
        for _ in range(3):
            started = time.perf_counter()
            await log.unfinished(datetime.now(UTC) - timedelta(seconds=60))
            took.append((time.perf_counter() - started) * 1000)
    finally:
        await client.close()
    return round(statistics.median(took), 1)


async def some_trigger(stack: Stack, code: str) -> str:
    """The trigger of a row from the middle of the history."""
    def find() -> str:
        with stack.mongo() as client:
            middle = row_id(datetime.now(UTC) - timedelta(days=DAYS / 2))
            row = stack.activity(client, code).find_one({"_id": {"$lt": middle}},
                                                        sort=[("_id", -1)])
            return str(row["trigger_id"])
    return await asyncio.to_thread(find)


def drop_rows(stack: Stack, code: str) -> None:
    with stack.mongo() as client:
        stack.activity(client, code).drop()


async def measure(bench: Bench, big: Tenant, empty: Tenant,
                  template: dict[str, Any]) -> dict[str, Any]:
    stack, sizes = bench.stack, bench.sizes
    ferretdb = stack.pids().get("ferretdb")
    seconds = await asyncio.to_thread(fill, stack, big, sizes.rows, template)
    result: dict[str, Any] = {"rows": sizes.rows, "target_rows": 1_000_000,
                              "insert_seconds": round(seconds, 1),
                              "insert_rows_per_s": round(sizes.rows / seconds, 1)}
    before = probes.memory_kb(ferretdb).get("VmRSS", 0) if ferretdb else 0
    result["big"] = big_pages = await pages(stack, big, await some_trigger(stack, big.code))
    after = probes.memory_kb(ferretdb).get("VmRSS", 0) if ferretdb else 0
    result["ferretdb_rss_growth_mb"] = round((after - before) / 1024, 1)
    result["empty"] = await pages(stack, empty, str(template["trigger_id"]))
    big_pages["first_page"] = big_pages["first"]  # the names of earlier reports
    big_pages["filtered_page"] = big_pages["status + event (FAILED, HANGUP)"]
    shapes = {k: v for k, v in big_pages.items() if not k.startswith("search")
              and k not in ("first_page", "filtered_page")}
    slowest = max(shapes, key=lambda k: shapes[k]["warm_median_ms"])
    result["slowest_page"] = {"shape": slowest, **shapes[slowest]}
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
        "empty": await sweep_query_ms(stack, empty.code)}
    if ferretdb is not None:
        result["ferretdb_peak_rss_mb"] = round(
            probes.memory_kb(ferretdb).get("VmHWM", 0) / 1024, 1)
    return result


async def scenario_6(bench: Bench) -> dict[str, Any]:
    stack = bench.stack
    big = await stack.make_tenant(bench.code("s6big"),
                                  [bench.receiver.url(f"/s6/big/{n}") for n in range(3)])
    empty = await stack.make_tenant(bench.code("s6empty"),
                                    [bench.receiver.url(f"/s6/empty/{n}") for n in range(3)])
    template = await delivered_row(bench, big)
    try:
        return await measure(bench, big, empty, template)
    finally:  # later scenarios should not pay for the worker's sweeps of these rows
        await asyncio.to_thread(drop_rows, stack, big.code)
