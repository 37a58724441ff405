"""Expiry (``policy.expireAfterSeconds``): a delivery not sent within that many seconds of
its event ends EXPIRED, saying how late it was, and is never sent afterwards, not by a
retry, not by recovery, not by ``retryActivity``. Real API, worker and receiver."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bson import ObjectId

from dispatch import policy
from tests.conftest import TenantHandle, wait_until
from tests.receiver import Receiver, Reply
from tests.support import times_said
from tests.test_delivery import ROW, attach, enable, in_zone, make_action, rows

pytestmark = pytest.mark.usefixtures("worker")

POLICY = "policy { expireAfterSeconds }"


def expiring(tenant: TenantHandle, receiver: Receiver, name: str, seconds: int | None) -> str:
    """An action POSTing to the receiver at /<tenant>/<name>, expiring after ``seconds``,
    attached to HANGUP and enabled."""
    action = make_action(tenant, name=name, url=f"{receiver.url}/{tenant.code}/{name}",
                         policy={"expireAfterSeconds": seconds})
    attach(tenant, "HANGUP", action)
    enable(tenant)
    return action


def trigger_at(tenant: TenantHandle, occurred: datetime | None) -> str:
    reply = tenant.admin("""mutation($i: TriggerInput!) { triggerEvent(input: $i) {
        triggerId } }""", i={"event": "HANGUP", "params": {"call_id": "c1"},
                              **({"occurredAt": occurred.isoformat()} if occurred else {})})
    return reply.data["triggerEvent"]["triggerId"]


def ended(tenant: TenantHandle, trigger_id: str) -> dict[str, Any]:
    [row] = wait_until(lambda: (found := rows(tenant, trigger_id)) and all(
        r["status"] in ("SUCCEEDED", "FAILED", "EXPIRED") for r in found) and found)
    return row


def test_a_delivery_whose_event_is_older_than_its_expiry_is_not_sent(
        tenant: TenantHandle, receiver: Receiver) -> None:
    expiring(tenant, receiver, "popup", 60)
    row = ended(tenant, trigger_at(tenant, datetime.now(UTC) - timedelta(minutes=10)))
    assert row["status"] == "EXPIRED" and row["attempts"] == 1
    assert row["message"].startswith("not sent: 9 min late (the action allows 60 s after "
                                     "the event at ")
    assert receiver.received(f"/{tenant.code}/popup") == []


def test_a_delivery_in_time_is_sent_and_one_without_expiry_is_never_expired(
        tenant: TenantHandle, receiver: Receiver) -> None:
    fresh = expiring(tenant, receiver, "fresh", 30)
    assert ended(tenant, trigger_at(tenant, None))["status"] == "SUCCEEDED"
    never = make_action(tenant, name="never", url=f"{receiver.url}/{tenant.code}/never")
    attach(tenant, "HANGUP", fresh, never)
    trigger_id = trigger_at(tenant, datetime.now(UTC) - timedelta(days=2))
    statuses = wait_until(lambda: (found := rows(tenant, trigger_id)) and all(
        r["status"] in ("SUCCEEDED", "EXPIRED") for r in found) and
        {r["actionName"]: r["status"] for r in found})
    assert statuses == {"fresh": "EXPIRED", "never": "SUCCEEDED"}
    assert len(receiver.received(f"/{tenant.code}/never")) == 1


def test_a_retry_that_would_come_after_the_expiry_ends_the_delivery_expired_at_once(
        tenant: TenantHandle, receiver: Receiver) -> None:
    """The receiver asks for 2 minutes; the action allows 20 s: no retry is planned. Both
    times are told in the tenant's zone, naming it."""
    in_zone(tenant, "Asia/Tokyo")
    path = f"/{tenant.code}/busy"
    receiver.script(path, Reply(503, headers={"Retry-After": "120"}))
    expiring(tenant, receiver, "busy", 20)
    row = ended(tenant, trigger_at(tenant, None))
    assert row["status"] == "EXPIRED" and row["httpStatus"] == 503
    assert row["message"].startswith("503 Service Unavailable; not retried: the next attempt, "
                                     "at ")
    assert "(Asia/Tokyo), would be after the delivery expires at " in row["message"]
    assert row["message"].endswith(" (Asia/Tokyo) (20 s after the event)")
    planned, ends = times_said(row["message"], "Asia/Tokyo")
    attempted = datetime.fromisoformat(row["updatedAt"])
    assert 118 < (planned - attempted).total_seconds() <= 120
    assert 10 < (ends - attempted).total_seconds() <= 20
    assert len(receiver.received(path)) == 1


def test_retries_within_the_expiry_go_on_as_before(tenant: TenantHandle,
                                                   receiver: Receiver) -> None:
    path = f"/{tenant.code}/flaky"
    receiver.script(path, Reply(503), Reply(503))
    expiring(tenant, receiver, "flaky", 60)
    row = ended(tenant, trigger_at(tenant, None))
    assert (row["status"], row["attempts"]) == ("SUCCEEDED", 3)


def test_recovery_never_sends_an_expired_delivery(tenant: TenantHandle,
                                                  receiver: Receiver) -> None:
    """A QUEUED row whose message was lost, found by the worker's sweep after its event
    expired: it ends EXPIRED, unsent."""
    from tenants.database import now

    action = expiring(tenant, receiver, "lost", 5)
    created, row_id = now(), ObjectId()
    tenant.collection("activity").insert_one({
        "_id": row_id, "trigger_id": str(ObjectId()), "event": "HANGUP", "source": "SYSTEM",
        "action_id": action, "action_name": "lost", "status": "QUEUED", "message": "queued",
        "attempts": 0, "cycle_start": 0, "http_status": None, "request": None,
        "response_snippet": None, "unresolved_parameters": [], "params": {},
        "occurred_at": created - timedelta(seconds=60), "created_at": created,
        "updated_at": created, "next_attempt_at": None})
    row = wait_until(lambda: (doc := tenant.collection("activity").find_one({"_id": row_id}))
                     and doc["status"] != "QUEUED" and doc)
    assert row["status"] == "EXPIRED" and row["message"].startswith("not sent: ")
    assert receiver.received(f"/{tenant.code}/lost") == []


def test_retry_activity_refuses_an_expired_delivery_saying_why(
        tenant: TenantHandle, receiver: Receiver) -> None:
    expiring(tenant, receiver, "old", 10)
    row = ended(tenant, trigger_at(tenant, datetime.now(UTC) - timedelta(hours=1)))
    reply = tenant.admin("mutation($id: ID!) { retryActivity(id: $id) { status } }", id=row["id"])
    assert reply.code == "BAD_USER_INPUT" and reply.error["extensions"]["field"] == "id"
    assert reply.error["message"].startswith("an EXPIRED delivery is not sent again: it was "
                                             "meant for the event at ")
    [meant] = times_said(reply.error["message"], "UTC")  # the tenant's zone: UTC by default
    assert abs((meant - datetime.now(UTC)).total_seconds() + 3600) < 60
    assert rows(tenant, row["triggerId"])[0]["status"] == "EXPIRED"


def test_a_failed_delivery_retried_by_hand_has_a_fresh_expiry(tenant: TenantHandle,
                                                              receiver: Receiver) -> None:
    """The event is older than the expiry allows, but an admin asked to send it now."""
    path = f"/{tenant.code}/late"
    receiver.script(path, Reply(400))
    action = expiring(tenant, receiver, "late", None)
    row = ended(tenant, trigger_at(tenant, datetime.now(UTC) - timedelta(hours=1)))
    assert row["status"] == "FAILED"
    tenant.admin("""mutation($id: ID!, $i: ActionInput!) { updateAction(id: $id, input: $i)
        { id } }""", id=action, i={"name": "late", "url": f"{receiver.url}{path}",
                                   "policy": {"expireAfterSeconds": 60}}).data
    tenant.admin("mutation($id: ID!) { retryActivity(id: $id) { status } }", id=row["id"]).data
    again = ended(tenant, row["triggerId"])
    assert (again["status"], again["attempts"]) == ("SUCCEEDED", 2)
    assert len(receiver.received(path)) == 2


def test_the_policy_is_stored_kept_on_update_and_replaced_when_given(
        tenant: TenantHandle, receiver: Receiver) -> None:
    action = make_action(tenant, name="p", url=f"{receiver.url}/p",
                         policy={"expireAfterSeconds": 30})
    update = f"""mutation($id: ID!, $i: ActionInput!) {{ updateAction(id: $id, input: $i)
        {{ {POLICY} }} }}"""
    kept = tenant.admin(update, id=action, i={"name": "p", "url": f"{receiver.url}/p"})
    assert kept.data["updateAction"]["policy"] == {"expireAfterSeconds": 30}
    cleared = tenant.admin(update, id=action, i={"name": "p", "url": f"{receiver.url}/p",
                                                 "policy": {}})
    assert cleared.data["updateAction"]["policy"] == {"expireAfterSeconds": None}
    fresh = make_action(tenant, name="q", url=f"{receiver.url}/q")
    shown = tenant.admin(f"query($id: ID!) {{ action(id: $id) {{ {POLICY} }} }}", id=fresh)
    assert shown.data["action"]["policy"] == {"expireAfterSeconds": None}


@pytest.mark.parametrize("seconds", [0, -5, policy.MAX_EXPIRE_SECONDS + 1])
def test_an_expiry_out_of_bounds_is_refused_naming_the_field(tenant: TenantHandle,
                                                             seconds: int) -> None:
    reply = tenant.admin("mutation($i: ActionInput!) { createAction(input: $i) { id } }",
                         i={"name": "bad", "url": "http://127.0.0.1:9/x",
                            "policy": {"expireAfterSeconds": seconds}})
    assert reply.code == "BAD_USER_INPUT"
    assert reply.error["extensions"]["field"] == "input.policy.expireAfterSeconds"
    assert tenant.collection("actions").count_documents({}) == 0


def test_the_activity_filter_finds_expired_rows(tenant: TenantHandle,
                                                receiver: Receiver) -> None:
    expiring(tenant, receiver, "f", 1)
    trigger_id = trigger_at(tenant, datetime.now(UTC) - timedelta(minutes=1))
    ended(tenant, trigger_id)
    found = tenant.admin(f"""query {{ activity(filter: {{statuses: [EXPIRED]}}) {{
        items {{ {ROW} }} }} }}""").data["activity"]["items"]
    assert [r["triggerId"] for r in found] == [trigger_id]


# --- the rules alone ------------------------------------------------------------------

AT = datetime(2026, 12, 3, 10, 0, 0, tzinfo=UTC)


def test_expiry_counts_from_the_event_or_from_a_retry_by_hand() -> None:
    action = {"policy": {"expire_after_seconds": 30}}
    row = {"occurred_at": AT}
    assert policy.deadline(row, action) == AT + timedelta(seconds=30)
    assert policy.deadline({**row, "cycle_at": AT + timedelta(hours=1)}, action) == \
        AT + timedelta(hours=1, seconds=30)
    assert policy.deadline(row, {}) is None and policy.deadline(row, {"policy": None}) is None
    assert policy.expired(row, action, "Asia/Tokyo", AT + timedelta(seconds=29)) is None
    assert policy.expired(row, action, "Asia/Tokyo", AT + timedelta(seconds=72))["message"] == (
        "not sent: 42 s late (the action allows 30 s after the event at 19:00:00 (Asia/Tokyo))")
    next_day = AT + timedelta(days=1)  # a time not today is told with its date
    assert policy.expired(row, action, "UTC", next_day)["message"].endswith(
        "after the event at 2026-12-03 10:00:00 (UTC))")


def test_only_a_retry_planned_after_the_deadline_expires_the_row() -> None:
    action = {"policy": {"expire_after_seconds": 60}}
    row = {"occurred_at": AT}
    soon = {"status": "RETRYING", "message": "503 Service Unavailable, retry 1 of 5 at "
            "10:00:30 UTC", "next_attempt_at": AT + timedelta(seconds=30)}
    assert policy.within(soon, row, action, "Asia/Tokyo", AT) is soon
    late = {**soon, "next_attempt_at": AT + timedelta(seconds=90)}
    assert policy.within(late, row, action, "Asia/Tokyo", AT) == {
        **late, "status": "EXPIRED", "next_attempt_at": None, "message": (
            "503 Service Unavailable; not retried: the next attempt, at 19:01:30 (Asia/Tokyo), "
            "would be after the delivery expires at 19:01:00 (Asia/Tokyo) (60 s after the "
            "event)")}
    done = {"status": "SUCCEEDED", "message": "200 OK in 3 ms", "next_attempt_at": None}
    assert policy.within(done, row, action, "Asia/Tokyo", AT) is done
