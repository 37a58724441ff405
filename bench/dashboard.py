"""Dashboards over a long day (scenario 11): ``activityStats`` for 24 hours of a tenant
with 1,000,000 rows, answered from counters kept as rows end (``tenants/stats.py``).

The rows are written straight into the tenant's activity collection with
``insert_many`` (batches of ``BATCH``), spread evenly over the last 24 hours, each ended:
90 % SUCCEEDED, 4 % FAILED, 3 % SKIPPED (no action), 3 % EXPIRED, of ``ACTIONS``
actions, with 1 to 3 attempts and a latency (acceptance → end) drawn log-normally
around 150 ms. ``event-manager recount-stats`` then counts them (timed, as an upgrade
would), and the real API answers ``activityStats(since: 24 h ago)`` at bucketMinutes 5
and 60, ``QUERIES`` times each after a first one (p50 and p95; the first is given
apart). Recount writes each hour folded; a service writes one document per hour and
process that ends rows (its API and each worker process) until the hour is over and
folded, so the same queries are timed again with the counters written as ``WRITERS``
writers' documents (the figures tripled): the first query folds the hours that are
over, and each later one reads them folded, as a service does.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import random
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId

from bench import load
from bench.context import Bench
from bench.stack import CLI, ROOT, Stack, Tenant
from tenants.activity import row_id
from tenants.stats import SECTIONS

BATCH = 5_000
ACTIONS = 20
QUERIES = 50
WRITERS = 3
STATS = """query($s: DateTime!, $m: Int) { activityStats(since: $s, bucketMinutes: $m) {
    buckets { start succeeded failed skipped expired retried p50Ms p95Ms }
    actions { actionId actionName succeeded failed expired p95Ms lastStatus lastAt } } }"""
TARGET_MS = 100.0


def rows(total: int, end: datetime, action_ids: list[str],
         seed: int = 11) -> Iterator[dict[str, Any]]:
    """``total`` ended rows over the 24 hours before ``end``, oldest first (the mix of
    the module's docstring)."""
    rnd = random.Random(seed)
    start = end - timedelta(hours=24)
    step = timedelta(hours=24) / max(total, 1)
    for n in range(total):
        created = start + n * step
        created = created.replace(microsecond=created.microsecond // 1000 * 1000)
        roll = rnd.random()
        status = ("SKIPPED" if roll < 0.03 else "FAILED" if roll < 0.07 else
                  "EXPIRED" if roll < 0.10 else "SUCCEEDED")
        action = None if status == "SKIPPED" else rnd.choice(action_ids)
        attempts = 0 if action is None else rnd.choice((1, 1, 1, 1, 2, 3))
        latency = 0.0 if action is None else math.exp(rnd.gauss(math.log(150), 1.0))
        ended = min(created + timedelta(milliseconds=latency), end)
        yield {"_id": row_id(created), "trigger_id": str(row_id(created)), "event": "HANGUP",
               "source": "SYSTEM", "action_id": action,
               "action_name": None if action is None else f"bench {action[-4:]}",
               "status": status, "message": status.lower(), "attempts": attempts,
               "cycle_start": 0, "http_status": None, "request": None,
               "response_snippet": None, "unresolved_parameters": [], "params": {},
               "occurred_at": created, "created_at": created, "updated_at": ended,
               "next_attempt_at": None}


def fill(stack: Stack, code: str, count: int, end: datetime, action_ids: list[str]) -> float:
    """Insert ``count`` rows ending before ``end``; seconds taken."""
    started = time.perf_counter()
    with stack.mongo() as client:
        activity = stack.activity(client, code)
        made = rows(count, end, action_ids)
        done = 0
        while batch := list(itertools.islice(made, BATCH)):
            activity.insert_many(batch, ordered=False)
            done += len(batch)
            if count >= 100_000 and done % (count // 10) < BATCH:
                print(f"  scenario 11: {done:,} of {count:,} rows "
                      f"({time.perf_counter() - started:.0f} s)", flush=True)
    return time.perf_counter() - started


def recount(stack: Stack, code: str) -> float:
    """``event-manager recount-stats --tenant code``; seconds taken."""
    started = time.perf_counter()
    subprocess.run([*CLI, "recount-stats", "--tenant", code], cwd=ROOT, env=stack.env,
                   check=True, capture_output=True, text=True, timeout=3600)
    return time.perf_counter() - started


def copy_as_writers(stack: Stack, code: str, writers: int) -> int:
    """Each hour's folded counters written again as ``writers`` processes' documents (the
    same hour, other 8 bytes, as a process writes them), and
    the folded ones removed: what a service of ``writers`` processes has before its
    hours are folded. The first query folds the hours that are over again."""
    with stack.mongo() as client:
        stats = client[stack.settings.tenant_database][f"t_{code}_stats"]
        docs = list(stats.find({}))
        copies = [{"_id": ObjectId(doc["_id"].binary[:4] + os.urandom(8)), "n": 1,
                   **{section: doc[section] for section in SECTIONS}}
                  for doc in docs for _ in range(writers)]
        stats.delete_many({})
        if copies:
            stats.insert_many(copies)
        return len(copies)


async def timed_queries(stack: Stack, tenant: Tenant, end: datetime,
                        minutes: int, expected: int) -> dict[str, Any]:
    """``QUERIES`` times activityStats from 24 hours before ``end`` (the rows' last end)
    to now; each answer must count the ``expected`` rows (a fast wrong answer is no
    answer)."""
    since = (end - timedelta(hours=24)).isoformat()
    took: list[float] = []
    answer: dict[str, Any] = {}
    counts: set[int] = set()
    for _ in range(QUERIES + 1):
        started = time.perf_counter()
        answer = (await stack.gql(STATS, key=tenant.admin_key, s=since, m=minutes))[
            "activityStats"]
        took.append((time.perf_counter() - started) * 1000)
        counts.add(sum(b[k] for b in answer["buckets"]
                       for k in ("succeeded", "failed", "skipped", "expired")))
    summary = load.summary_ms(took[1:])
    right = counts == {expected}
    return {"latency_ms": summary, "first_ms": round(took[0], 1),
            "buckets": len(answer["buckets"]),
            "actions": len(answer["actions"]), "rows_counted": sorted(counts),
            "rows_expected": expected, "counts_right": right,
            "met": right and summary["p50"] < TARGET_MS}


async def scenario_11(bench: Bench) -> dict[str, Any]:
    stack, count = bench.stack, bench.sizes.dashboard_rows
    tenant = await stack.make_tenant(bench.code("s11"), [
        bench.receiver.url(f"/s11/{n}") for n in range(ACTIONS)])
    end = datetime.now(UTC)
    insert = await asyncio.to_thread(fill, stack, tenant.code, count, end, tenant.action_ids)
    recounted = await asyncio.to_thread(recount, stack, tenant.code)
    result: dict[str, Any] = {
        "rows": count, "target_rows": 1_000_000, "insert_seconds": round(insert, 1),
        "recount_seconds": round(recounted, 1),
        "recount_rows_per_s": round(count / recounted, 1), "queries": QUERIES,
        "target_ms": TARGET_MS,
        "one_writer": {f"bucket_{m}": await timed_queries(stack, tenant, end, m, count)
                       for m in (5, 60)},
    }
    result["writers"] = WRITERS
    result["stats_documents"] = await asyncio.to_thread(copy_as_writers, stack, tenant.code,
                                                        WRITERS)
    result["several_writers"] = {
        f"bucket_{m}": await timed_queries(stack, tenant, end, m, count * WRITERS)
        for m in (5, 60)}
    await asyncio.to_thread(drop_rows, stack, tenant.code)
    return result


def drop_rows(stack: Stack, code: str) -> None:
    with stack.mongo() as client:
        stack.activity(client, code).drop()
