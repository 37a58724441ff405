"""The Activity Monitor at size: each tenant's activity gets the indexes its pages read
(at creation, and for older tenants when a worker starts); a time window and a trigger's
rows are ranges of ``_id``; a text search answers within its time budget and says how far
back it looked; the retention clean-up deletes in batches. Against the real server."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

import pytest
from bson import ObjectId
from pymongo import ASCENDING, DESCENDING

from event_manager.config import Settings
from tenants.activity import (
    ACTIVITY_INDEXES,
    ID_SLACK,
    RETIRED_INDEXES,
    ActivityLog,
    decode_cursor,
    row_id,
)
from tenants.database import PUSHDOWN_RELEASE, Database, now
from tenants.registry import TenantRegistry
from tests.conftest import TenantHandle
from tests.scratch_log import with_log

pytestmark = pytest.mark.services


def row(created: Any, **changes: Any) -> dict[str, Any]:
    """A finished row as the service writes it (``_id`` from its creation time)."""
    return {"_id": row_id(created), "trigger_id": str(row_id(created)), "event": "HANGUP",
            "source": "SYSTEM", "action_id": None, "action_name": "crm", "status": "SUCCEEDED",
            "message": "200 OK", "attempts": 1, "cycle_start": 0, "http_status": 200,
            "request": None, "response_snippet": None, "unresolved_parameters": [],
            "params": {}, "occurred_at": created, "created_at": created, "updated_at": created,
            "next_attempt_at": None, **changes}


def with_db(settings: Settings, test: Any) -> Any:
    async def run() -> Any:
        db = Database(settings)
        try:
            return await test(db)
        finally:
            await db.close()

    return asyncio.run(run())


def test_our_server_build_reads_field_indexes(settings: Settings) -> None:
    """The local server is our FerretDB build: its version says so, and the service then
    gives activity its indexes (an unpatched FerretDB would only pay for them)."""
    async def check(db: Database) -> tuple[str, bool, bool]:
        info = await db.client.admin.command("buildInfo")
        return info["ferretdbVersion"], await db.reads_field_indexes(), \
            await db.reads_range_indexes()

    version, fields, ranges = with_db(settings, check)
    assert version.endswith(PUSHDOWN_RELEASE)
    assert (fields, ranges) == (True, False)


def test_a_new_tenant_gets_the_activity_indexes(tenant: TenantHandle) -> None:
    names = set(tenant.collection("activity").index_information())
    assert names == {"_id_", *ACTIVITY_INDEXES}


def test_older_tenants_are_indexed_once_at_start(tenant: TenantHandle, settings: Settings,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """A tenant of an earlier version (retired indexes, new ones missing, the ``open``
    collection of its rows in flight) is brought up to date by ``index_all``, with a log
    line; a second run changes nothing."""
    activity = tenant.collection("activity")
    activity.drop_indexes()
    activity.create_index([("created_at", DESCENDING), ("_id", DESCENDING)])
    activity.create_index([("status", ASCENDING), ("updated_at", ASCENDING)])
    activity.create_index([("trigger_id", ASCENDING)])
    assert set(RETIRED_INDEXES) <= set(activity.index_information())
    tenant.collection("open").insert_one({"_id": row_id(now())})

    async def twice(db: Database) -> tuple[list[str], int]:
        registry = TenantRegistry(db)
        with caplog.at_level(logging.INFO, logger="tenants.registry"):
            await registry.index_all()
        return await registry.index_activity(tenant.code), await registry.index_all()

    again, changed = with_db(settings, twice)
    assert set(activity.index_information()) == {"_id_", *ACTIVITY_INDEXES}
    assert again == [] and changed == 0
    line = next(r.getMessage() for r in caplog.records if tenant.code in r.getMessage())
    assert all(f"+{name}" in line for name in ACTIVITY_INDEXES)
    assert all(f"-{name}" in line for name in RETIRED_INDEXES)
    assert f"-t_{tenant.code}_open" in line
    assert f"t_{tenant.code}_open" not in tenant.db.list_collection_names()


def test_a_row_id_carries_its_creation_second() -> None:
    created = now()
    ids = [row_id(created) for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert {i.generation_time for i in ids} == {created.replace(microsecond=0)}


def test_time_windows_and_triggers_find_exactly_their_rows(tenant: TenantHandle) -> None:
    """since/until and triggerId read an _id range; the answer is still exactly the rows
    of the filter, also for rows of an earlier version whose _id came a moment after
    their creation time."""
    start = now() - timedelta(days=3)
    rows = [row(start + timedelta(minutes=10 * n)) for n in range(300)]
    late = row(start + timedelta(hours=20), action_name="legacy")
    late["_id"] = ObjectId.from_datetime(late["created_at"] + ID_SLACK / 2)  # an older version's
    rows.append(late)
    tenant.collection("activity").insert_many(rows)

    def ids(**filter: Any) -> list[str]:
        reply = tenant.admin("""query($f: ActivityFilter) { activity(first: 200, filter: $f) {
            items { id } } }""", f=filter)
        return [item["id"] for item in reply.data["activity"]["items"]]

    since, until = start + timedelta(hours=10), start + timedelta(hours=30)
    expected = sorted((r for r in rows if since <= r["created_at"] < until),
                      key=lambda r: r["_id"], reverse=True)
    assert ids(since=since.isoformat(), until=until.isoformat()) == [
        str(r["_id"]) for r in expected]
    assert str(late["_id"]) in ids(since=since.isoformat(), until=until.isoformat())
    assert ids(triggerId=rows[42]["trigger_id"]) == [str(rows[42]["_id"])]
    assert ids(triggerId=late["trigger_id"]) == [str(late["_id"])]


def test_a_trigger_id_that_is_no_trigger_id_is_refused(tenant: TenantHandle) -> None:
    reply = tenant.admin('{ activity(filter: {triggerId: "nope"}) { items { id } } }')
    assert reply.code == "BAD_USER_INPUT" and reply.field == "filter.triggerId"


def test_a_search_answers_in_time_and_goes_on_from_its_cursor(settings: Settings) -> None:
    """With no time to spare, a search page looks at its first window only, says how far
    back it looked, and its cursor goes on below that: following the cursors finds every
    match once, newest first."""
    async def test(log: ActivityLog) -> None:
        start = now() - timedelta(days=2)
        rows = [row(start + timedelta(minutes=15 * n), message=f"{n} {'x' if n % 40 else 'hit'}")
                for n in range(192)]
        await log.rows.insert_many(rows)
        query = {"$or": [{"message": {"$regex": "hit"}}]}
        found, after, pages = [], None, 0
        while True:
            docs, cursor, searched_to = await log.search_page(query, 2, after, seconds=0)
            found += docs
            pages += 1
            if cursor is None:
                break
            after = decode_cursor(cursor)
            if searched_to is not None:
                assert after == ObjectId.from_datetime(searched_to)
        hits = [r["_id"] for r in reversed(rows) if "hit" in r["message"]]
        assert [d["_id"] for d in found] == hits
        assert pages > 3  # windows and pages, not one read of everything

        docs, cursor, searched_to = await log.search_page(query, 10, None)
        assert [d["_id"] for d in docs] == hits and cursor is None and searched_to is None

    with_log(settings, test, label="pages", indexed=True)


def test_a_search_page_says_how_far_back_it_looked(tenant: TenantHandle) -> None:
    tenant.collection("activity").insert_many(
        [row(now() - timedelta(days=d)) for d in range(0, 20)])
    reply = tenant.admin("""{ activity(first: 5, filter: {search: "no such text"}) {
        items { id } nextCursor note } }""")
    page = reply.data["activity"]
    assert page["items"] == []
    if page["nextCursor"] is None:  # every window answered within the budget
        assert page["note"] is None
    else:
        assert page["note"].startswith("searched the rows created since ")


def test_the_retention_clean_up_deletes_in_batches(settings: Settings) -> None:
    async def test(log: ActivityLog) -> None:
        old = now() - timedelta(days=40)
        gone = [row(old + timedelta(seconds=n)) for n in range(1100)]
        kept = [row(old, status="RETRYING"), row(now() - timedelta(days=1))]
        await log.rows.insert_many(gone + kept)
        calls: list[int] = []
        delete_many = log.rows.delete_many

        async def counted(query: dict[str, Any]) -> Any:
            calls.append(len(query["_id"]["$in"]))
            return await delete_many(query)

        log.rows.delete_many = counted  # type: ignore[method-assign]
        assert await log.prune(now() - timedelta(days=30), batch=500, pause=0.5) == 1100
        assert calls == [500, 500, 100]
        assert {d["_id"] for d in await log.rows.find({}).to_list(None)} == {
            r["_id"] for r in kept}

    with_log(settings, test, label="pages", indexed=True)


def test_windows_beyond_what_an_id_holds(tenant: TenantHandle) -> None:
    """An id holds a time from 1970 to 2106; a window outside still answers right."""
    tenant.collection("activity").insert_one(row(now()))

    def count(**filter: Any) -> int:
        reply = tenant.admin("""query($f: ActivityFilter) { activity(filter: $f) {
            items { id } } }""", f=filter)
        return len(reply.data["activity"]["items"])

    assert count(since="2999-01-01T00:00:00Z") == 0
    assert count(until="2999-01-01T00:00:00Z") == 1
    assert count(since="1900-01-01T00:00:00Z") == 1
    assert count(until="1900-01-01T00:00:00Z") == 0
    assert count(since="1900-01-01T00:00:00Z", search="200 OK") == 1
