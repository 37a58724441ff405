"""Per-call order (``policy.order: PER_CALL``): one action's deliveries for one call go out
one at a time, in the order their triggers were accepted; a later one is HELD until the
one before has ended (SUCCEEDED, FAILED or EXPIRED). Real API, worker and receiver."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bson import ObjectId

from dispatch import order
from tenants.calls import MAX_WAITING, queue_key
from tests.conftest import TenantHandle, wait_until
from tests.receiver import Receiver, Reply
from tests.test_delivery import ROW, enable, make_action

pytestmark = pytest.mark.usefixtures("worker")

EVENTS = ("RINGING", "ANSWERED_CALL", "HANGUP")
ENDED = ("SUCCEEDED", "FAILED", "EXPIRED")


def ordered_action(tenant: TenantHandle, receiver: Receiver, name: str,
                   order_: str = "PER_CALL", **policy: Any) -> str:
    """An action GETting /<tenant>/<name>?step={{step}}, attached to the three events of a
    call, actions enabled."""
    action = make_action(tenant, name=name, method="GET",
                         url=f"{receiver.url}/{tenant.code}/{name}?step={{{{step}}}}",
                         policy={"order": order_, **policy})
    for event in EVENTS:
        tenant.admin("mutation($t: EventType!, $ids: [ID!]) { updateEvent(type: $t, input: "
                     "{active: true, actionIds: $ids}) { type } }", t=event, ids=[action]).data
    enable(tenant)
    return action


def send(tenant: TenantHandle, event: str, step: str, call_id: str | None = "c1",
         occurred: datetime | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"step": step}
    if call_id is not None:
        params["call_id"] = call_id
    reply = tenant.admin(f"""mutation($i: TriggerInput!) {{ triggerEvent(input: $i) {{
        triggerId activities {{ {ROW} }} }} }}""", i={
        "event": event, "params": params,
        **({"occurredAt": occurred.isoformat()} if occurred else {})})
    return reply.data["triggerEvent"]


def steps(receiver: Receiver, path: str) -> list[str]:
    return [r.query.removeprefix("step=") for r in receiver.received(path)]


def all_rows(tenant: TenantHandle) -> list[dict[str, Any]]:
    return tenant.admin(f"query {{ activity(first: 100) {{ items {{ {ROW} }} }} }}"
                        ).data["activity"]["items"]


def settled(tenant: TenantHandle, count: int) -> list[dict[str, Any]]:
    """Every row, oldest first, once ``count`` rows have ended."""
    return wait_until(lambda: (found := all_rows(tenant)) and len(found) == count and all(
        r["status"] in ENDED for r in found) and found[::-1], timeout=60, what="rows ended")


def test_a_calls_deliveries_go_out_one_at_a_time_in_order(tenant: TenantHandle,
                                                          receiver: Receiver) -> None:
    path = f"/{tenant.code}/crm"
    receiver.script(path, Reply(delay=3.0))  # the first answers slowly
    ordered_action(tenant, receiver, "crm")
    first = send(tenant, "RINGING", "1")["activities"][0]
    second = send(tenant, "ANSWERED_CALL", "2")["activities"][0]
    third = send(tenant, "HANGUP", "3")["activities"][0]
    assert first["status"] == "QUEUED"
    assert (second["status"], second["message"]) == (
        "HELD", "waiting for the Ringing delivery of this call")
    assert (third["status"], third["message"]) == (
        "HELD", "waiting for the Answered Call delivery of this call")
    rows = settled(tenant, 3)
    assert [r["status"] for r in rows] == ["SUCCEEDED"] * 3
    received = receiver.received(path)
    assert steps(receiver, path) == ["1", "2", "3"]
    assert received[1].at - received[0].at >= 2.9  # not before the first had its answer


def test_the_next_waits_through_the_retries_of_the_one_before(tenant: TenantHandle,
                                                              receiver: Receiver) -> None:
    path = f"/{tenant.code}/flaky"
    receiver.script(path, Reply(503), Reply(503))
    ordered_action(tenant, receiver, "flaky")
    send(tenant, "RINGING", "1")
    send(tenant, "ANSWERED_CALL", "2")
    rows = settled(tenant, 2)
    assert [(r["status"], r["attempts"]) for r in rows] == [("SUCCEEDED", 3), ("SUCCEEDED", 1)]
    assert steps(receiver, path) == ["1", "1", "1", "2"]
    released = rows[1]
    assert released["status"] == "SUCCEEDED"


def test_a_failed_or_expired_delivery_releases_the_next(tenant: TenantHandle,
                                                        receiver: Receiver) -> None:
    path = f"/{tenant.code}/gone"
    receiver.script(path, Reply(404))
    ordered_action(tenant, receiver, "gone", expireAfterSeconds=60)
    send(tenant, "RINGING", "0", occurred=datetime.now(UTC) - timedelta(hours=1))  # expires
    send(tenant, "ANSWERED_CALL", "1")  # fails: 404
    send(tenant, "HANGUP", "2")
    rows = settled(tenant, 3)
    assert [r["status"] for r in rows] == ["EXPIRED", "FAILED", "SUCCEEDED"]
    assert steps(receiver, path) == ["1", "2"]


def test_other_calls_triggers_without_call_id_and_any_order_never_wait(
        tenant: TenantHandle, receiver: Receiver) -> None:
    path = f"/{tenant.code}/slow"
    # The four first deliveries may reach the receiver in any order: each is slow, so c1-1
    # is still in flight when c1-2 is accepted whichever arrives first.
    receiver.script(path, *[Reply(delay=5.0)] * 4)
    ordered_action(tenant, receiver, "slow")
    send(tenant, "RINGING", "c1-1", call_id="c1")
    assert send(tenant, "RINGING", "c2-1", call_id="c2")["activities"][0]["status"] == "QUEUED"
    assert send(tenant, "RINGING", "none-1", call_id=None)["activities"][0]["status"] == "QUEUED"
    assert send(tenant, "RINGING", "empty", call_id="")["activities"][0]["status"] == "QUEUED"
    held = send(tenant, "ANSWERED_CALL", "c1-2", call_id="c1")["activities"][0]
    assert held["status"] == "HELD"
    receiver.wait_for(path, count=4, timeout=30)
    assert sorted(steps(receiver, path)[:4]) == ["c1-1", "c2-1", "empty", "none-1"]
    settled(tenant, 5)
    assert steps(receiver, path)[-1] == "c1-2"


def test_an_action_in_any_order_is_never_held(tenant: TenantHandle,
                                              receiver: Receiver) -> None:
    path = f"/{tenant.code}/any"
    receiver.script(path, Reply(delay=2.0))
    ordered_action(tenant, receiver, "any", order_="ANY")
    send(tenant, "RINGING", "1")
    assert send(tenant, "ANSWERED_CALL", "2")["activities"][0]["status"] == "QUEUED"
    receiver.wait_for(path, count=2, timeout=30)
    received = receiver.received(path)
    assert received[1].at - received[0].at < 1.5  # the second did not wait for the first
    assert tenant.collection("calls").count_documents({}) == 0


def test_a_held_delivery_whose_predecessor_was_left_behind_is_released_by_recovery(
        tenant: TenantHandle, receiver: Receiver) -> None:
    """An API stopped between joining a call's queue and writing its row: the queue is
    headed by an entry with no row. The delivery behind it is sent after the recovery
    period, not never."""
    path = f"/{tenant.code}/mend"
    action = ordered_action(tenant, receiver, "mend")
    ghost = ObjectId.from_datetime(datetime.now(UTC) - timedelta(seconds=30))
    key = queue_key(action, "c1")
    tenant.collection("calls").insert_one({"_id": key, "waiting": [f"{ghost}:RINGING"],
                                           "updated_at": datetime.now(UTC)})
    held = send(tenant, "ANSWERED_CALL", "2")["activities"][0]
    assert held["status"] == "HELD"
    receiver.wait_for(path, timeout=30)
    [row] = settled(tenant, 1)
    assert row["status"] == "SUCCEEDED"
    # The worker leaves the queue just after writing the outcome.
    wait_until(lambda: tenant.collection("calls").find_one({"_id": key})["waiting"] == [],
               timeout=30, what="the call's queue emptied")


def test_a_held_delivery_whose_predecessor_ended_unannounced_is_released(
        tenant: TenantHandle, receiver: Receiver) -> None:
    """A worker killed after writing an outcome, before taking its row out of the queue:
    the row ahead has ended, but it still heads the queue."""
    path = f"/{tenant.code}/killed"
    action = ordered_action(tenant, receiver, "killed")
    send(tenant, "RINGING", "1")
    [first] = settled(tenant, 1)
    key = queue_key(action, "c1")
    wait_until(lambda: tenant.collection("calls").find_one({"_id": key})["waiting"] == [],
               timeout=30, what="the worker left the call's queue")
    tenant.collection("calls").update_one(  # as if the worker had stopped before leaving
        {"_id": key}, {"$push": {"waiting": f"{first['id']}:RINGING"}})
    assert send(tenant, "ANSWERED_CALL", "2")["activities"][0]["status"] == "HELD"
    rows = settled(tenant, 2)
    assert [r["status"] for r in rows] == ["SUCCEEDED", "SUCCEEDED"]
    assert steps(receiver, path) == ["1", "2"]


def test_the_policy_order_is_stored_and_shown(tenant: TenantHandle, receiver: Receiver) -> None:
    action = ordered_action(tenant, receiver, "shown", expireAfterSeconds=30)
    shown = tenant.admin("query($id: ID!) { action(id: $id) { policy { order "
                         "expireAfterSeconds } } }", id=action).data["action"]["policy"]
    assert shown == {"order": "PER_CALL", "expireAfterSeconds": 30}
    plain = make_action(tenant, name="plain", url=f"{receiver.url}/plain")
    shown = tenant.admin("query($id: ID!) { action(id: $id) { policy { order } } }",
                         id=plain).data["action"]["policy"]
    assert shown == {"order": "ANY"}


def test_the_activity_filter_finds_held_rows(tenant: TenantHandle, receiver: Receiver) -> None:
    receiver.script(f"/{tenant.code}/f", Reply(delay=5.0))
    ordered_action(tenant, receiver, "f")
    send(tenant, "RINGING", "1")
    held = send(tenant, "ANSWERED_CALL", "2")
    found = tenant.admin(f"""query {{ activity(filter: {{statuses: [HELD]}}) {{
        items {{ {ROW} }} }} }}""").data["activity"]["items"]
    assert [r["triggerId"] for r in found] == [held["triggerId"]]
    settled(tenant, 2)


def test_a_full_call_queue_refuses_the_trigger_naming_call_id(
        tenant: TenantHandle, receiver: Receiver) -> None:
    """A PBX repeating one call_id endlessly: past MAX_WAITING deliveries waiting in one
    call, its triggers are refused (nothing recorded), other calls go on."""
    action = ordered_action(tenant, receiver, "full")
    key = queue_key(action, "c1")
    waiting = [f"{ObjectId()}:RINGING" for _ in range(MAX_WAITING)]
    tenant.collection("calls").insert_one({"_id": key, "waiting": waiting,
                                           "updated_at": datetime.now(UTC)})
    reply = tenant.admin("mutation($i: TriggerInput!) { triggerEvent(input: $i) { triggerId } }",
                         i={"event": "HANGUP", "params": {"call_id": "c1", "step": "x"}})
    assert reply.code == "BAD_USER_INPUT" and reply.field == "input.params.call_id"
    assert f"{MAX_WAITING} deliveries of one action wait in this call" in reply.error["message"]
    assert tenant.collection("calls").find_one({"_id": key})["waiting"] == waiting
    assert all_rows(tenant) == []
    send(tenant, "RINGING", "other", call_id="c2")
    receiver.wait_for(f"/{tenant.code}/full", timeout=30)
    [row] = settled(tenant, 1)
    assert row["status"] == "SUCCEEDED"


# --- the rules alone ------------------------------------------------------------------

def test_which_deliveries_join_a_calls_queue() -> None:
    action = {"_id": "a1", "policy": {"order": "PER_CALL"}}
    assert order.call_key(action, {"call_id": "c1"}, "SYSTEM") == "a1:c1"
    assert order.call_key(action, {"call_id": 42}, "SYSTEM") == "a1:42"
    assert order.call_key(action, {"call_id": "c1"}, "TEST") is None
    for absent in ({}, {"call_id": ""}, {"call_id": None}, {"call_id": True}):
        assert order.call_key(action, absent, "SYSTEM") is None
    assert order.call_key({"_id": "a1"}, {"call_id": "c1"}, "SYSTEM") is None
    long = order.call_key(action, {"call_id": "x" * 5000}, "SYSTEM")
    assert long is not None and long.startswith("a1:sha256:") and len(long) < 100
