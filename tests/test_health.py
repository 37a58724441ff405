"""Action health: failures in a row, the last success and failure, the automatic disable
after ``autoDisableAfterHours`` of failures only, and ``setActionEnabled``; with a real
worker and receiver. The rule's clock is moved by writing the streak's start
(``failing_since``) back through the database, never by waiting."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bson import ObjectId

from dispatch.health import SUCCESS_EVERY_SECONDS, Ends, HealthRecorder
from dispatch.view import Views
from event_manager.config import Settings
from tenants.database import now
from tests.conftest import TenantHandle, wait_until
from tests.receiver import Receiver, Reply
from tests.support import times_said
from tests.test_delivery import attach, enable, in_zone, make_action, rows, settled, trigger
from tests.test_tenant_view import with_views

HEALTH = """health { state consecutiveFailures lastSuccessAt lastFailureAt disabledAt
    disabledReason }"""


def health(tenant: TenantHandle, action_id: str) -> dict[str, Any]:
    reply = tenant.admin(f"query($id: ID!) {{ action(id: $id) {{ {HEALTH} }} }}", id=action_id)
    return reply.data["action"]["health"]


def set_hours(tenant: TenantHandle, hours: int | None) -> dict[str, Any]:
    return tenant.admin("mutation($h: Int) { updateSettings(input: {autoDisableAfterHours: $h})"
                        " { autoDisableAfterHours } }", h=hours).body


def set_enabled(client: Any, action_id: str, enabled: bool) -> Any:
    return client(f"mutation($id: ID!, $on: Boolean!) {{ setActionEnabled(id: $id, enabled: $on)"
                  f" {{ id name {HEALTH} }} }}", id=action_id, on=enabled)


def failing_action(tenant: TenantHandle, receiver: Receiver, name: str = "CRM") -> str:
    """An action whose receiver answers 400 (FAILED at once, no retry) twenty times."""
    path = f"/{tenant.code}/{name.lower()}"
    receiver.script(path, *[Reply(400, "no such customer")] * 20)
    return make_action(tenant, name=name, url=f"{receiver.url}{path}")


def ended(tenant: TenantHandle, event: str = "ANSWERED_CALL") -> list[dict[str, Any]]:
    return settled(tenant, trigger(tenant, event)["triggerId"])


def move_streak_back(tenant: TenantHandle, action_id: str, hours: float) -> None:
    moved = tenant.collection("health").update_one(
        {"_id": ObjectId(action_id)},
        {"$set": {"failing_since": datetime.now(UTC) - timedelta(hours=hours)}})
    assert moved.matched_count == 1


@pytest.mark.usefixtures("worker")
def test_failures_in_a_row_are_counted_and_a_success_resets_them(
        tenant: TenantHandle, receiver: Receiver) -> None:
    path = f"/{tenant.code}/flaky"
    receiver.script(path, Reply(400), Reply(404), Reply(400))  # then 200
    action = make_action(tenant, name="Flaky", url=f"{receiver.url}{path}")
    attach(tenant, "ANSWERED_CALL", action)
    enable(tenant)
    assert health(tenant, action) == {"state": "ENABLED", "consecutiveFailures": 0,
                                      "lastSuccessAt": None, "lastFailureAt": None,
                                      "disabledAt": None, "disabledReason": None}
    for _ in range(3):
        [row] = ended(tenant)
        assert row["status"] == "FAILED"
    failing = wait_until(lambda: (h := health(tenant, action))["consecutiveFailures"] == 3 and h,
                         what="three failures counted")
    assert failing["lastFailureAt"] == row["updatedAt"] and failing["lastSuccessAt"] is None

    [row] = ended(tenant)
    assert row["status"] == "SUCCEEDED"
    healthy = wait_until(lambda: (h := health(tenant, action))["consecutiveFailures"] == 0 and h,
                         what="the count reset by a success")
    assert healthy["lastSuccessAt"] == row["updatedAt"]
    assert healthy["lastFailureAt"] == failing["lastFailureAt"]
    assert healthy["state"] == "ENABLED"


@pytest.mark.usefixtures("worker")
def test_routine_successes_are_written_once_a_minute_and_never_stamp_the_config(
        tenant: TenantHandle, receiver: Receiver, redis_client: Any, settings: Settings) -> None:
    """A delivery costs no health write of its own while its action keeps succeeding, and
    counters never make workers and APIs reload the tenant's configuration."""
    action = make_action(tenant, name="CRM", url=f"{receiver.url}/{tenant.code}/ok")
    attach(tenant, "ANSWERED_CALL", action)
    enable(tenant)
    stamp = redis_client.get(f"{settings.database}:config:{tenant.code}")
    [first] = ended(tenant)
    wait_until(lambda: health(tenant, action)["lastSuccessAt"], what="the first success")
    later = [ended(tenant)[0] for _ in range(3)]
    assert {r["status"] for r in [first, *later]} == {"SUCCEEDED"}
    assert health(tenant, action)["lastSuccessAt"] == first["updatedAt"]
    assert redis_client.get(f"{settings.database}:config:{tenant.code}") == stamp


@pytest.mark.usefixtures("worker")
def test_an_action_failing_for_the_set_hours_is_disabled_and_triggers_skip_it(
        tenant: TenantHandle, receiver: Receiver) -> None:
    crm = failing_action(tenant, receiver)
    fine = make_action(tenant, name="Log", url=f"{receiver.url}/{tenant.code}/log")
    attach(tenant, "ANSWERED_CALL", crm, fine)
    enable(tenant)
    in_zone(tenant, "Asia/Tokyo")
    assert set_hours(tenant, None)["data"]["updateSettings"]["autoDisableAfterHours"] is None
    ended(tenant)
    wait_until(lambda: health(tenant, crm)["consecutiveFailures"] == 1, what="a failure")
    move_streak_back(tenant, crm, 2)
    ended(tenant)
    wait_until(lambda: health(tenant, crm)["consecutiveFailures"] == 2, what="two failures")
    assert health(tenant, crm)["state"] == "ENABLED", "null: never disabled"

    set_hours(tenant, 1)
    ended(tenant)
    disabled = wait_until(lambda: (h := health(tenant, crm))["state"] == "DISABLED" and h,
                          what="the action disabled")
    assert disabled["consecutiveFailures"] == 3
    assert disabled["disabledReason"] == (
        "failed 3 times in a row over 1 hour; last: 400 Bad Request; not retried")
    assert disabled["disabledAt"] is not None
    assert health(tenant, fine)["state"] == "ENABLED"

    sent = len(receiver.received(f"/{tenant.code}/crm"))
    result = trigger(tenant, "ANSWERED_CALL")
    assert result["accepted"] and result["reason"] is None
    by_action = {row["actionName"]: row for row in result["activities"]}
    assert by_action["Log"]["status"] == "QUEUED"
    skipped = by_action["CRM"]
    assert skipped["status"] == "SKIPPED" and skipped["actionId"] == crm
    assert skipped["message"].startswith("action CRM disabled on ")
    [at] = times_said(skipped["message"], "Asia/Tokyo")  # with its date, in the zone
    disabled_at = datetime.fromisoformat(disabled["disabledAt"])
    assert at == disabled_at.replace(microsecond=0)
    assert skipped["message"].startswith(
        f"action CRM disabled on {at:%Y-%m-%d %H:%M:%S} (Asia/Tokyo): ")
    assert "failed 3 times in a row over 1 hour" in skipped["message"]
    wait_until(lambda: {r["actionName"]: r["status"] for r in rows(
        tenant, result["triggerId"])} == {"Log": "SUCCEEDED", "CRM": "SKIPPED"},
               what="the healthy action sent, the disabled one skipped")
    assert len(receiver.received(f"/{tenant.code}/crm")) == sent


@pytest.mark.usefixtures("worker")
def test_set_action_enabled_turns_an_action_off_by_hand_and_back_on(
        tenant: TenantHandle, receiver: Receiver) -> None:
    action = failing_action(tenant, receiver)
    attach(tenant, "ANSWERED_CALL", action)
    enable(tenant)
    ended(tenant)
    wait_until(lambda: health(tenant, action)["consecutiveFailures"] == 1, what="a failure")

    off = set_enabled(tenant.admin, action, False).data["setActionEnabled"]["health"]
    assert off["state"] == "DISABLED" and off["disabledReason"] == "disabled by admin"
    result = trigger(tenant, "ANSWERED_CALL")
    assert not result["accepted"]
    assert result["reason"] == "every action attached to Answered Call is disabled"
    [row] = result["activities"]
    assert row["status"] == "SKIPPED" and row["actionId"] == action
    assert "disabled by admin" in row["message"]
    again = set_enabled(tenant.admin, action, False).data["setActionEnabled"]["health"]
    assert again["disabledAt"] == off["disabledAt"], "the first reason stays"

    tested = tenant.admin('mutation { testEvent(event: ANSWERED_CALL) { triggerId activities '
                          '{ status } } }').data["testEvent"]
    assert [r["status"] for r in tested["activities"]] == ["QUEUED"], "a test still sends to it"
    assert [r["status"] for r in settled(tenant, tested["triggerId"])] == ["FAILED"]
    wait_until(lambda: health(tenant, action)["consecutiveFailures"] == 2, what="2 failures")

    on = set_enabled(tenant.admin, action, True).data["setActionEnabled"]["health"]
    assert on["state"] == "ENABLED" and on["disabledReason"] is None
    assert on["consecutiveFailures"] == 0, "the streak forgotten"
    result = trigger(tenant, "ANSWERED_CALL")
    assert result["accepted"] and [r["status"] for r in result["activities"]] == ["QUEUED"]


def test_set_action_enabled_is_for_those_who_edit_actions(tenant: TenantHandle) -> None:
    action = make_action(tenant, name="CRM", url="https://crm.example.com/calls")
    for role in ("VIEWER", "PBX"):
        assert set_enabled(tenant.key(role), action, False).code == "FORBIDDEN"
    assert set_enabled(tenant.admin, action, False).data  # the tenant's own admin may
    missing = set_enabled(tenant.admin, str(ObjectId()), True)
    assert missing.code == "NOT_FOUND" and missing.field == "id"
    by_system = set_enabled(tenant.system, action, True).data["setActionEnabled"]
    assert by_system["health"]["state"] == "ENABLED"


def test_auto_disable_after_hours_defaults_to_a_day_and_is_bounded(
        tenant: TenantHandle) -> None:
    read = "{ settings { autoDisableAfterHours } }"
    assert tenant.admin(read).data["settings"]["autoDisableAfterHours"] == 24
    for bad in (0, -1, 8761):
        reply = set_hours(tenant, bad)
        assert reply["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        assert reply["errors"][0]["extensions"]["field"] == "input.autoDisableAfterHours"
    assert set_hours(tenant, 8760)["data"]["updateSettings"]["autoDisableAfterHours"] == 8760
    assert set_hours(tenant, None)["data"]["updateSettings"]["autoDisableAfterHours"] is None
    tenant.admin("mutation { updateSettings(input: {timezone: \"Europe/Belgrade\"}) "
                 "{ timezone } }").data
    assert tenant.admin(read).data["settings"]["autoDisableAfterHours"] is None, \
        "left out: unchanged"


def test_failures_ending_at_once_in_a_process_are_each_counted_once(
        tenant: TenantHandle, settings: Settings) -> None:
    """Sixty deliveries of one action end FAILED within 30 ms in one worker process:
    their health writes go one at a time, each later one holding all that ended
    meanwhile, so none is lost (written each alone, FerretDB's own update path loses
    concurrent ``$inc`` of one document: 48 to 50 of 60 counted) and they cost a few
    writes, not sixty."""
    action = make_action(tenant, name="CRM", url="https://crm.example.com/calls")
    recorder = HealthRecorder()

    async def test(views: Views, redis: Any) -> None:
        view = await views.for_message(tenant.code).open()

        async def fail(i: int) -> None:
            await asyncio.sleep(i / 2000)  # ending while earlier writes are on their way
            await recorder.ended(view, {"action_id": action}, {
                "status": "FAILED", "updated_at": now(), "message": "connection refused"})

        await asyncio.gather(*(fail(i) for i in range(60)))

    with_views(settings, test)
    counters = tenant.collection("health").find_one({"_id": ObjectId(action)})
    assert counters["failures"] == 60 and counters["last_error"] == "connection refused"
    assert health(tenant, action)["consecutiveFailures"] == 60


def test_a_deleted_action_leaves_no_counters_behind(tenant: TenantHandle,
                                                     settings: Settings) -> None:
    """A delivery whose action was deleted before it was sent ends FAILED; its action's
    counters were deleted with it and are not made again."""
    gone = str(ObjectId())

    async def test(views: Views, redis: Any) -> None:
        view = await views.for_message(tenant.code).open()
        await HealthRecorder().ended(view, {"action_id": gone}, {
            "status": "FAILED", "updated_at": now(),
            "message": "the action was deleted before it was sent"})

    with_views(settings, test)
    assert tenant.collection("health").count_documents({}) == 0


# The worker's throttle, as a pure unit of logic (``dispatch.health.Ends``).

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_a_routine_success_is_due_once_a_minute() -> None:
    ends = Ends()
    ends.add("SUCCEEDED", T0, "200 OK")
    assert ends.due(clock=1000.0)
    assert ends.take(clock=1000.0) == {"$set": {"failures": 0, "last_success_at": T0},
                                       "$unset": {"failing_since": ""}}
    ends.add("SUCCEEDED", T0 + timedelta(seconds=1), "200 OK")
    assert not ends.due(clock=1000.0 + SUCCESS_EVERY_SECONDS - 1)
    assert ends.due(clock=1000.0 + SUCCESS_EVERY_SECONDS)


def test_failures_held_together_are_one_increment_and_a_success_after_them_ends_the_streak(
        ) -> None:
    ends = Ends()
    ends.add("FAILED", T0, "connection refused")
    ends.add("FAILED", T0 + timedelta(seconds=5), "timed out after 10 s")
    assert ends.take(clock=0.0) == {
        "$inc": {"failures": 2},
        "$set": {"last_failure_at": T0 + timedelta(seconds=5),
                 "last_error": "timed out after 10 s"},
        "$min": {"failing_since": T0}}
    ends.add("SUCCEEDED", T0 + timedelta(seconds=6), "200 OK")
    assert ends.due(clock=0.0), "the first success after a streak this process wrote"
    ends.add("FAILED", T0 + timedelta(seconds=7), "connection refused")
    assert ends.take(clock=0.0) == {"$set": {
        "last_failure_at": T0 + timedelta(seconds=7), "last_error": "connection refused",
        "failures": 1, "last_success_at": T0 + timedelta(seconds=6),
        "failing_since": T0 + timedelta(seconds=7)}}
