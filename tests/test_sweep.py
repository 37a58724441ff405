"""Recovery's sweep finds the rows not final by their status, through the activity's index
on ``(status, _id)`` (``ActivityLog.unfinished``), against the real server: every row
QUEUED, RETRYING or SENDING that nobody touched since a moment, whatever wrote it; on our
FerretDB build without reading a final row, as on MongoDB."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
import redis.asyncio as aioredis
from pymongo import AsyncMongoClient, MongoClient
from pymongo.errors import OperationFailure

from dispatch.recovery import Liveness, Recovery
from event_manager import services
from event_manager.config import Settings
from event_manager.errors import ServiceError
from tenants.activity import (
    ACTIVITY_INDEXES,
    FINAL,
    ROW_STATE,
    UNFINISHED,
    ActivityLog,
    row_id,
)
from tenants.database import Database, now
from tenants.registry import TenantRegistry
from tenants.store import TenantStore
from tests.command_log import Commands
from tests.scratch_log import with_log
from tests.support import free_port

pytestmark = pytest.mark.services

STALE, FRESH = timedelta(minutes=5), timedelta(0)
BEFORE = timedelta(minutes=1)
"""The sweep asks for rows untouched for a minute: stale rows were touched five minutes
ago, fresh ones just now."""


def row(status: str, untouched: timedelta, **changes: Any) -> dict[str, Any]:
    """A row as the service writes it, last changed ``untouched`` ago."""
    created = now() - untouched - timedelta(seconds=10)
    touched = now() - untouched
    return {"_id": row_id(created), "trigger_id": str(row_id(created)), "event": "HANGUP",
            "source": "SYSTEM", "action_id": None, "action_name": "crm", "status": status,
            "message": status.lower(), "attempts": 0, "cycle_start": 0, "http_status": None,
            "request": None, "response_snippet": None, "unresolved_parameters": [],
            "params": {}, "occurred_at": created, "created_at": created,
            "updated_at": touched,
            "next_attempt_at": touched if status == "RETRYING" else None, **changes}


def every_kind() -> dict[tuple[str, timedelta], dict[str, Any]]:
    """One row of each status, stale and fresh (a SENDING row's attempt is counted)."""
    return {(status, age): row(status, age, attempts=int(status == "SENDING"))
            for status in (*UNFINISHED, *FINAL) for age in (STALE, FRESH)}


@pytest.mark.parametrize("indexed", [True, False], ids=["status-index", "no-index"])
def test_rows_not_final_and_untouched_since_the_moment_are_found(settings: Settings,
                                                                  indexed: bool) -> None:
    """Written straight into the activity (no other record of them): QUEUED, RETRYING and
    SENDING rows untouched for longer are found, each with the fields recovery reads;
    fresh ones and final ones are not. The same answer without the index (what the
    activity of a tenant on released FerretDB has); at most ``limit`` rows."""
    rows = every_kind()

    async def test(log: ActivityLog) -> tuple[list[dict[str, Any]], int]:
        await log.rows.insert_many(list(rows.values()))
        found = await log.unfinished(now() - BEFORE)
        return found, len(await log.unfinished(now() - BEFORE, limit=2))

    found, limited = with_log(settings, test, label="sweep", indexed=indexed)
    assert sorted(r["_id"] for r in found) == sorted(
        rows[(status, STALE)]["_id"] for status in UNFINISHED)
    assert all(set(r) == {"_id", *ROW_STATE} for r in found)
    assert limited == 2


def test_a_sweep_queues_again_rows_left_by_a_worker_that_died(settings: Settings) -> None:
    """A row left QUEUED (its message lost, or its worker gone before it claimed it),
    RETRYING past its time, QUEUED with a claim (its worker gone before the attempt took
    a second) or SENDING (gone mid-send) is queued again by the sweep; the last two are
    handed back RETRYING, their attempt counted. Fresh and final rows stay as they are.
    In a database of its own, which no other worker sweeps."""
    rows = every_kind()
    claimed = row("QUEUED", timedelta(hours=2))
    stuck = [rows[(status, STALE)]["_id"] for status in ("QUEUED", "RETRYING")]
    handed_back = [claimed["_id"], rows[("SENDING", STALE)]["_id"]]

    async def sweep() -> tuple[list[str], dict[Any, tuple[str, int]]]:
        own = settings.model_copy(update={"database": f"{settings.database}_sweep"
                                                      f"{uuid4().hex[:6]}"})
        db = Database(own)
        broker = aioredis.Redis.from_url(own.redis_url)
        queued: list[str] = []

        async def enqueue(code: str, ids: list[str], delay: float, known: Any) -> None:
            queued.extend(ids)

        try:
            tenant = await TenantRegistry(db).create("sweep", "sweep", False)
            log = TenantStore(db, tenant).log
            await log.rows.insert_many([*rows.values(), claimed])
            await log.claims.insert_one({"_id": f"{claimed['_id']}:1",
                                         "at": now() - timedelta(hours=2), "owner": "gone"})
            # Live workers say what they hold: one holds nothing (the one that died is
            # no longer listed), and that is known once a whole period has passed.
            liveness = Liveness(broker, f"{own.database}:holding:", ttl=0.05)
            await liveness.publish("alive", [])
            await asyncio.sleep(0.1)
            await liveness.publish("alive", [])
            await Recovery(db, enqueue, 2.0, liveness).sweep()
            states = {r["_id"]: (r["status"], r["attempts"])
                      for r in await log.rows.find({}).to_list(None)}
            return queued, states
        finally:
            await db.client.drop_database(own.system_database)
            await db.client.drop_database(own.tenant_database)
            await db.close()
            await broker.aclose()

    queued, states = asyncio.run(sweep())
    assert sorted(queued) == sorted(str(i) for i in stuck + handed_back)
    assert [states[i] for i in handed_back] == [("RETRYING", 1), ("RETRYING", 1)]
    assert all(states[doc["_id"]] == (doc["status"], doc["attempts"])
               for doc in rows.values() if doc["_id"] not in handed_back)


# Our FerretDB build answers the sweep's query from the status index


@pytest.fixture(scope="module")
def own_ferretdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A FerretDB of our build (as ``event-manager services start`` runs it) on a free
    port with a state folder of its own, whose SQLite files this module may write: its
    URL and its SQLite folder."""
    state = tmp_path_factory.mktemp("ferretdb")
    port = free_port()
    url = f"mongodb://127.0.0.1:{port}"
    server = services.FerretDB("FerretDB of test_sweep", "ferretdb", url, "127.0.0.1", port,
                               state)
    try:
        server.start(echo=lambda line: None)
    except ServiceError as exc:
        pytest.skip(f"ferretdb cannot run here: {exc}")
    try:
        yield url, server.data_dir / "sqlite"
    finally:
        server.stop(echo=lambda line: None)


TRAP = '{"_id":"trap","status":"SUCCEEDED"}'
"""A final row that FerretDB cannot read (no "$s", the types of its fields): any query
that reads it fails. SQLite itself reads its status, so that indexes hold it."""


def test_one_worker_process_sweeps_at_a_time(settings: Settings) -> None:
    """Each worker process wakes to sweep every half recovery period; the one that takes
    the turn sweeps, the others skip that round, and the turn is free again after it."""
    async def turns() -> list[bool]:
        broker = aioredis.Redis.from_url(settings.redis_url)
        key = f"{settings.database}:sweeping:{uuid4().hex[:6]}"
        try:
            first, second = (Liveness(broker, f"{settings.database}:holding:", ttl=1.0)
                             for _ in range(2))
            taken = [await first.turn(key, "w1", 0.3), await second.turn(key, "w2", 0.3),
                     await first.turn(key, "w1", 0.3)]
            await asyncio.sleep(0.4)
            return [*taken, await second.turn(key, "w2", 0.3)]
        finally:
            await broker.aclose()

    assert asyncio.run(turns()) == [True, False, False, True]


def test_the_sweep_reads_no_final_row_on_our_ferretdb(
        own_ferretdb: tuple[str, Path]) -> None:
    """The sweep's query reads, through the status index, only rows QUEUED, RETRYING or
    SENDING: with a final row that FerretDB fails to read, it answers, while a query that
    reads the whole collection, or the final rows through the same index, fails on it.
    Were the filter on status not answered from the index, the sweep would read every
    row of the history, as the query on ``updated_at`` alone does."""
    url, files = own_ferretdb
    rows = every_kind()

    async def test() -> tuple[list[Any], dict[str, str]]:
        client: AsyncMongoClient = AsyncMongoClient(url, tz_aware=True)
        data = client["trap"]
        log = ActivityLog(data["activity"], data["idempotency"], data["claims"])
        try:
            for name, keys in ACTIVITY_INDEXES.items():
                await log.rows.create_index(keys, name=name)
            await log.rows.insert_many(list(rows.values()))
            with sqlite3.connect(files / "trap.sqlite") as raw:
                (table,) = raw.execute("SELECT table_name FROM _ferretdb_collections "
                                       "WHERE name = 'activity'").fetchone()
                raw.execute(f'INSERT INTO "{table}" (_ferretdb_sjson) VALUES (?)', (TRAP,))
            found = [r["_id"] for r in await log.unfinished(now() - BEFORE)]
            failures = {}
            for name, query in [("whole collection", {}),
                                ("final rows by status", {"status": {"$in": list(FINAL)}}),
                                ("by updated_at", {"updated_at": {"$lt": now()}})]:
                try:
                    await log.rows.find(query).to_list(None)
                except OperationFailure as error:
                    failures[name] = str(error)
            return found, failures
        finally:
            await client.drop_database("trap")
            await client.close()

    found, failures = asyncio.run(test())
    assert sorted(found) == sorted(rows[(status, STALE)]["_id"] for status in UNFINISHED)
    assert set(failures) == {"whole collection", "final rows by status", "by updated_at"}


def test_the_sweep_reads_the_status_index_on_mongodb(settings: Settings,
                                                     mongo: MongoClient) -> None:
    """MongoDB's plan for the query ``unfinished`` sends (seen by command monitoring): a
    scan of the ``(status, _id)`` index, the rows it gives checked for ``updated_at``,
    never a collection scan. (FerretDB's explain does not show what our build reads:
    ``test_the_sweep_reads_no_final_row_on_our_ferretdb`` shows it.)"""
    if "ferretdbVersion" in mongo.admin.command("buildInfo"):
        pytest.skip("the server under test is FerretDB, not MongoDB")
    commands = Commands()

    async def sent() -> dict[str, Any]:
        client: AsyncMongoClient = AsyncMongoClient(settings.mongodb_url, tz_aware=True,
                                                    event_listeners=[commands])
        data = client[f"{settings.database}_plan{uuid4().hex[:6]}"]
        log = ActivityLog(data["activity"], data["idempotency"], data["claims"])
        try:
            for name, keys in ACTIVITY_INDEXES.items():
                await log.rows.create_index(keys, name=name)
            await log.rows.insert_many(list(every_kind().values()))
            await log.unfinished(now() - BEFORE)
            [find] = [c.document for c in commands.seen if c.name == "find"]
            query = {k: v for k, v in find.items() if k in ("find", "filter", "projection",
                                                             "limit", "sort")}
            return await data.command("explain", query)
        finally:
            await client.drop_database(data.name)
            await client.close()

    plan = asyncio.run(sent())
    text = str(plan["queryPlanner"]["winningPlan"])
    assert "'indexName': 'status_1__id_-1'" in text and "COLLSCAN" not in text, text
