"""Housekeeping: idempotency keys and claims expire after 24 h, finished activity rows
after the retention period; rows still in flight are never dropped."""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta

from dispatch.recovery import housekeep
from event_manager.config import Settings
from tenants.activity import UNFINISHED, row_id
from tenants.database import Database, now
from tenants.stats import folded_id, hour_id, hour_of
from tests.conftest import TenantHandle


def row(status: str, age: timedelta) -> dict:
    """A row as the service writes it: its ``_id`` carries its creation time. A row in
    flight was touched just now and its next step is an hour away, so that the session
    worker's recovery (which finds it by its status) leaves it be."""
    created = now() - age
    touched = now() + timedelta(hours=1) if status in UNFINISHED else created
    return {"_id": row_id(created), "trigger_id": str(row_id(created)), "event": "HANGUP",
            "source": "SYSTEM", "action_id": None, "action_name": None, "status": status,
            "message": status.lower(), "attempts": 0, "cycle_start": 0, "http_status": None,
            "request": None, "response_snippet": None, "unresolved_parameters": [],
            "params": {}, "occurred_at": created, "created_at": created,
            "updated_at": touched,
            "next_attempt_at": touched if status == "RETRYING" else None}


def run_housekeeping(settings: Settings, retention_days: int) -> int:
    async def go() -> int:
        db = Database(settings)
        try:
            return await housekeep(db, retention_days)
        finally:
            await db.close()
    return asyncio.run(go())


def test_old_finished_rows_expired_keys_and_claims_go(tenant: TenantHandle,
                                                      settings: Settings) -> None:
    old, fresh = timedelta(days=31), timedelta(days=29)
    rows = {"old ok": row("SUCCEEDED", old), "old failed": row("FAILED", old),
            "old skipped": row("SKIPPED", old), "old queued": row("QUEUED", old),
            "old retrying": row("RETRYING", old), "fresh ok": row("SUCCEEDED", fresh)}
    tenant.collection("activity").insert_many(list(rows.values()))
    day = timedelta(hours=24, minutes=1)
    tenant.collection("idempotency").insert_many([
        {"_id": "old", "trigger_id": "x", "created_at": now() - day},
        {"_id": "new", "trigger_id": "y", "created_at": now()}])
    tenant.collection("claims").insert_many([
        {"_id": "a:1", "at": now() - day}, {"_id": "b:1", "at": now()}])

    dropped = run_housekeeping(settings, retention_days=30)

    kept = {d["_id"] for d in tenant.collection("activity").find({})}
    assert kept == {rows[k]["_id"] for k in ("old queued", "old retrying", "fresh ok")}
    assert [d["_id"] for d in tenant.collection("idempotency").find({})] == ["new"]
    # The worker's recovery may claim the old QUEUED and RETRYING rows meanwhile.
    assert [d["_id"] for d in tenant.collection("claims").find({})
            if d["_id"] in ("a:1", "b:1")] == ["b:1"]
    assert dropped >= 5  # other tests' tenants may add their own expired documents


def test_an_idempotency_key_older_than_a_day_starts_afresh(tenant: TenantHandle) -> None:
    trigger = ('mutation { triggerEvent(input: {event: HANGUP, idempotencyKey: "call-7"}) '
               "{ triggerId } }")
    first = tenant.admin(trigger).data["triggerEvent"]["triggerId"]
    assert tenant.admin(trigger).data["triggerEvent"]["triggerId"] == first
    tenant.collection("idempotency").update_one(
        {"_id": "call-7"}, {"$set": {"created_at": now() - timedelta(hours=25)}})
    again = tenant.admin(trigger).data["triggerEvent"]["triggerId"]
    assert again != first
    assert tenant.admin(trigger).data["triggerEvent"]["triggerId"] == again


def test_the_dashboards_counters_follow_the_activity_retention(tenant: TenantHandle,
                                                               settings: Settings) -> None:
    """The counters' hours (``tenants.stats``) older than the retention go with the rows."""
    hours = {age: hour_of(now() - timedelta(days=age)) for age in (31, 29)}
    tenant.collection("stats").insert_many([
        {"_id": hour_id(hour, os.urandom(8)), "t": {"0": {"s": 1}}} for hour in hours.values()]
        + [{"_id": folded_id(hours[31]), "gen": 1, "of": [], "t": "{}", "a": "{}", "p": "{}"}])

    run_housekeeping(settings, retention_days=30)

    assert [d["_id"].generation_time for d in tenant.collection("stats").find({})] == [
        hours[29]]
