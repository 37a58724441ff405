"""Call events become HTTP requests: the whole path with a real worker process and a real
receiver on 127.0.0.1."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import bson
import pytest
from bson import ObjectId

from tests.conftest import Client, TenantHandle, wait_until
from tests.receiver import Receiver, Reply
from tests.support import times_said

pytestmark = pytest.mark.usefixtures("worker")

ROW = """id triggerId event source actionId actionName status message attempts httpStatus
    request { method url headers { key value } } responseSnippet unresolvedParameters
    emptyParameters createdAt updatedAt"""


def make_action(tenant: TenantHandle, **fields: Any) -> str:
    reply = tenant.admin("mutation($i: ActionInput!) { createAction(input: $i) { id } }",
                         i=fields)
    return reply.data["createAction"]["id"]


def attach(tenant: TenantHandle, event: str, *action_ids: str) -> None:
    tenant.admin("mutation($t: EventType!, $ids: [ID!]) { updateEvent(type: $t, input: "
                 "{active: true, actionIds: $ids}) { type } }", t=event, ids=list(action_ids)).data


def enable(tenant: TenantHandle) -> None:
    tenant.admin("mutation { updateSettings(input: {actionsEnabled: true}) "
                 "{ actionsEnabled } }").data


def trigger(tenant: TenantHandle, event: str, **params: Any) -> dict[str, Any]:
    reply = tenant.admin(f"""mutation($e: EventType!, $p: JSON) {{
        triggerEvent(input: {{event: $e, params: $p}}) {{
            triggerId event source accepted reason activities {{ {ROW} }} }} }}""",
                         e=event, p=params)
    return reply.data["triggerEvent"]


def rows(tenant: TenantHandle, trigger_id: str) -> list[dict[str, Any]]:
    reply = tenant.admin(f"""query($t: ID) {{ activity(filter: {{triggerId: $t}}) {{
        items {{ {ROW} }} }} }}""", t=trigger_id)
    return reply.data["activity"]["items"]


def settled(tenant: TenantHandle, trigger_id: str, timeout: float = 30.0) -> list[dict]:
    """The trigger's rows once every one is SUCCEEDED or FAILED."""
    return wait_until(lambda: (found := rows(tenant, trigger_id)) and all(
        r["status"] in ("SUCCEEDED", "FAILED") for r in found) and found, timeout)


def test_answered_and_unanswered_calls_reach_the_crm(tenant: TenantHandle,
                                                     receiver: Receiver) -> None:
    """The manual's scenario: both events active, each with a POST action."""
    tenant.admin('mutation { createParameter(input: {tag: "crm_team", value: "support"}) '
                 '{ tag } }').data
    body = ('{"caller": "{{caller_id}}", "called": "{{called_number}}", '
            '"duration": {{duration}}, "date": "{{date}}", "team": "{{crm_team}}"}')
    for event, path in (("ANSWERED_CALL", "answered"), ("UNANSWERED_CALL", "unanswered")):
        action = make_action(tenant, name=f"CRM {path}", url=f"{receiver.url}/{tenant.code}/"
                             f"{path}", bodyType="RAW", rawBody=body,
                             rawContentType="application/json")
        attach(tenant, event, action)
    enable(tenant)

    answered = trigger(tenant, "ANSWERED_CALL", caller_id="+381111", called_number="200",
                       duration=42)
    unanswered = trigger(tenant, "UNANSWERED_CALL", caller_id="+381222", called_number="201",
                         duration=0)
    assert answered["accepted"] and [a["status"] for a in answered["activities"]] == ["QUEUED"]

    today = datetime.now(UTC).strftime("%Y-%m-%d")
    got = json.loads(receiver.wait_for(f"/{tenant.code}/answered")[0].body)
    assert got == {"caller": "+381111", "called": "200", "duration": 42, "date": today,
                   "team": "support"}
    got = json.loads(receiver.wait_for(f"/{tenant.code}/unanswered")[0].body)
    assert got == {"caller": "+381222", "called": "201", "duration": 0, "date": today,
                   "team": "support"}

    for result in (answered, unanswered):
        [row] = settled(tenant, result["triggerId"])
        assert row["status"] == "SUCCEEDED"
        assert row["httpStatus"] == 200 and row["attempts"] == 1
        assert row["message"].startswith("200 OK in ") and row["message"].endswith(" ms")
        assert row["request"]["method"] == "POST"
        assert row["responseSnippet"] == "ok"
    monitor = tenant.admin("{ activity { items { actionName status message } } }").data
    assert [i["actionName"] for i in monitor["activity"]["items"]] == [
        "CRM unanswered", "CRM answered"]


def hook(tenant: TenantHandle, receiver: Receiver, name: str, event: str = "HANGUP",
         **fields: Any) -> str:
    """An action POSTing to the receiver at /<tenant>/<name>, attached and enabled."""
    fields.setdefault("url", f"{receiver.url}/{tenant.code}/{name}")
    action = make_action(tenant, name=name, **fields)
    attach(tenant, event, action)
    enable(tenant)
    return action


def test_503_twice_then_200_succeeds_on_the_third_attempt(tenant: TenantHandle,
                                                         receiver: Receiver) -> None:
    receiver.script(f"/{tenant.code}/flaky", Reply(503), Reply(503))
    hook(tenant, receiver, "flaky")
    [row] = settled(tenant, trigger(tenant, "HANGUP")["triggerId"])
    assert (row["status"], row["attempts"], row["httpStatus"]) == ("SUCCEEDED", 3, 200)
    assert len(receiver.received(f"/{tenant.code}/flaky")) == 3


def in_zone(tenant: TenantHandle, timezone: str) -> None:
    tenant.admin("mutation($tz: String) { updateSettings(input: {timezone: $tz}) "
                 "{ timezone } }", tz=timezone).data


def test_retrying_row_says_what_happened_and_when_next_in_the_tenants_zone(
        tenant: TenantHandle, receiver: Receiver) -> None:
    in_zone(tenant, "Asia/Tokyo")  # UTC+9: a time told in UTC would be 9 hours off
    receiver.script(f"/{tenant.code}/slow-down", Reply(503, headers={"Retry-After": "2"}))
    hook(tenant, receiver, "slow-down")
    trigger_id = trigger(tenant, "HANGUP")["triggerId"]
    row = wait_until(lambda: next((r for r in rows(tenant, trigger_id)
                                   if r["status"] == "RETRYING"), None))
    assert row["message"].startswith("503 Service Unavailable, retry 1 of 2 at ")
    assert row["message"].endswith(" (Asia/Tokyo)") and row["httpStatus"] == 503
    [at] = times_said(row["message"], "Asia/Tokyo")
    ahead = (at - datetime.fromisoformat(row["updatedAt"])).total_seconds()
    assert 0 < ahead < 4  # Retry-After: 2 s after the attempt (to the second)


def test_429_retry_after_is_honoured(tenant: TenantHandle, receiver: Receiver) -> None:
    path = f"/{tenant.code}/limited"
    receiver.script(path, Reply(429, headers={"Retry-After": "2"}))
    hook(tenant, receiver, "limited")
    [row] = settled(tenant, trigger(tenant, "HANGUP")["triggerId"])
    assert (row["status"], row["attempts"]) == ("SUCCEEDED", 2)
    first, second = receiver.received(path)
    # The schedule says 0.2 s; Retry-After says 2 s (Dramatiq observes delays in ~1 s steps).
    assert second.at - first.at >= 1.9


def test_a_retry_waits_on_the_later_queue_not_before_first_attempts(
        tenant: TenantHandle, receiver: Receiver, settings: Any, redis_client: Any) -> None:
    """A planned retry is a ``deliver_later`` message on the queue workers serve after
    the first attempts' (``Settings.later_queue_name``): a thousand retries due at once
    never stand before a new trigger's first attempt."""
    path = f"/{tenant.code}/later"
    receiver.script(path, Reply(503, headers={"Retry-After": "3"}))
    hook(tenant, receiver, "later")
    trigger_id = trigger(tenant, "HANGUP")["triggerId"]
    row = wait_until(lambda: next((r for r in rows(tenant, trigger_id)
                                   if r["status"] == "RETRYING"), None))

    def waiting_in(queue: str) -> list[dict[str, Any]]:
        found = redis_client.hvals(f"dramatiq:{queue}.DQ.msgs")
        return [m for m in map(json.loads, found) if row["id"] in m["args"][1]]

    [message] = wait_until(lambda: waiting_in(settings.later_queue_name), timeout=3)
    assert message["actor_name"] == "deliver_later"
    assert waiting_in(settings.queue_name) == []
    [ended] = settled(tenant, trigger_id)
    assert (ended["status"], ended["attempts"]) == ("SUCCEEDED", 2)


def test_404_fails_at_once(tenant: TenantHandle, receiver: Receiver) -> None:
    receiver.script(f"/{tenant.code}/gone", Reply(404, body="no such hook"))
    hook(tenant, receiver, "gone")
    [row] = settled(tenant, trigger(tenant, "HANGUP")["triggerId"])
    assert (row["status"], row["attempts"], row["httpStatus"]) == ("FAILED", 1, 404)
    assert row["message"] == "404 Not Found; not retried"
    assert row["responseSnippet"] == "no such hook"


def test_unreachable_port_fails_after_the_whole_schedule(tenant: TenantHandle,
                                                         receiver: Receiver) -> None:
    from tests.conftest import free_port

    hook(tenant, receiver, "nobody", url=f"http://127.0.0.1:{free_port()}/hook")
    [row] = settled(tenant, trigger(tenant, "HANGUP")["triggerId"])
    assert (row["status"], row["attempts"]) == ("FAILED", 3)
    assert row["message"] == "connection refused; gave up after 3 attempts"
    assert row["httpStatus"] is None


def test_timeout_is_retried_then_fails(tenant: TenantHandle, receiver: Receiver) -> None:
    path = f"/{tenant.code}/hangs"
    receiver.script(path, *[Reply(delay=3)] * 3)
    hook(tenant, receiver, "hangs", timeoutSeconds=0.5)
    [row] = settled(tenant, trigger(tenant, "HANGUP")["triggerId"])
    assert (row["status"], row["attempts"]) == ("FAILED", 3)
    assert row["message"] == "timed out after 0.5 s; gave up after 3 attempts"


def test_redirects_are_not_followed(tenant: TenantHandle, receiver: Receiver) -> None:
    target = f"{receiver.url}/{tenant.code}/elsewhere"
    receiver.script(f"/{tenant.code}/moved", Reply(302, headers={"Location": target}))
    hook(tenant, receiver, "moved")
    [row] = settled(tenant, trigger(tenant, "HANGUP")["triggerId"])
    assert (row["status"], row["httpStatus"]) == ("FAILED", 302)
    assert receiver.received(f"/{tenant.code}/elsewhere") == []


@pytest.mark.parametrize("url", ["http://0.0.0.0:PORT/x", "http://[::1]:PORT/x",
                                 "{{target}}/x"])
def test_destinations_outside_the_allow_list_are_refused(tenant: TenantHandle,
                                                         receiver: Receiver, url: str) -> None:
    """The test worker allows 127.0.0.0/8 only; these are local but outside it."""
    tenant.admin('mutation { createParameter(input: {tag: "target", value: '
                 f'"http://0.0.0.0:{receiver.port}"}}) {{ tag }} }}').data
    hook(tenant, receiver, "refused", url=url.replace("PORT", str(receiver.port)))
    [row] = settled(tenant, trigger(tenant, "HANGUP")["triggerId"])
    assert (row["status"], row["attempts"]) == ("FAILED", 1)
    assert row["message"].startswith("destination refused: ")
    assert receiver.received("/x") == []


def test_json_body_stays_valid_whatever_a_parameter_holds(tenant: TenantHandle,
                                                          receiver: Receiver) -> None:
    hostile = 'He said "hi"\\ \n\t</script> \u2028 ☎ "}, "x": {"'
    hook(tenant, receiver, "json", bodyType="RAW", rawContentType="application/json",
         rawBody='{"caller": "{{caller_id}}", "raw": {{caller_id}}}')
    trigger(tenant, "HANGUP", caller_id=hostile)
    got = json.loads(receiver.wait_for(f"/{tenant.code}/json")[0].body)
    assert got == {"caller": hostile, "raw": hostile}


def test_a_parameter_with_cr_lf_cannot_add_a_header(tenant: TenantHandle,
                                                    receiver: Receiver) -> None:
    hook(tenant, receiver, "crlf", headers=[{"key": "X-Caller", "value": "{{caller_id}}"}])
    trigger(tenant, "HANGUP", caller_id="123\r\nX-Injected: yes\r\n\r\nbody")
    [got] = receiver.wait_for(f"/{tenant.code}/crlf")
    assert got.header("X-Injected") is None
    assert "\r" not in got.header("X-Caller") and "\n" not in got.header("X-Caller")


def test_unknown_tags_stay_as_written_and_are_listed(tenant: TenantHandle,
                                                     receiver: Receiver) -> None:
    hook(tenant, receiver, "unknown", bodyType="RAW", rawBody="a={{ nope }} b={{extension}}")
    trigger_id = trigger(tenant, "HANGUP")["triggerId"]
    assert receiver.wait_for(f"/{tenant.code}/unknown")[0].body == b"a={{ nope }} b="
    [row] = settled(tenant, trigger_id)
    assert row["unresolvedParameters"] == ["nope"]


def test_secrets_are_masked_in_the_activity_row(tenant: TenantHandle,
                                                receiver: Receiver) -> None:
    hook(tenant, receiver, "secret", authorization={"type": "BEARER_TOKEN", "token": "t0p-s3cret"},
         query=[{"key": "k", "value": "{{crm_key}}"}])
    tenant.admin('mutation { createParameter(input: {tag: "crm_key", value: "p4ram-s3cret", '
                 'secret: true}) { tag } }').data
    [row] = settled(tenant, trigger(tenant, "HANGUP")["triggerId"])
    assert row["status"] == "SUCCEEDED"
    assert "t0p-s3cret" not in str(row) and "p4ram-s3cret" not in str(row)
    assert {"key": "Authorization", "value": "Bearer ********"} in row["request"]["headers"]


def test_a_repeated_idempotency_key_sends_once(tenant: TenantHandle, receiver: Receiver) -> None:
    hook(tenant, receiver, "once")
    query = ('mutation { triggerEvent(input: {event: HANGUP, idempotencyKey: "call-1-hangup"}) '
             '{ triggerId accepted activities { id } } }')
    first = tenant.admin(query).data["triggerEvent"]
    second = tenant.admin(query).data["triggerEvent"]
    assert first["triggerId"] == second["triggerId"]
    assert first["activities"] == second["activities"] and first["accepted"]
    settled(tenant, first["triggerId"])
    assert len(receiver.received(f"/{tenant.code}/once")) == 1


def test_a_pbx_key_replaying_its_key_gets_ids_and_statuses_only(
        tenant: TenantHandle, receiver: Receiver) -> None:
    """A PBX key may not read activity; replaying an idempotency key after the delivery
    must not show it what was sent and received (headers, snippet, message)."""
    receiver.script(f"/{tenant.code}/told", Reply(400, "crm says: secret-detail"))
    hook(tenant, receiver, "told", headers=[{"key": "X-Crm", "value": "header-detail"}])
    made = tenant.system('mutation($t: String) { createApiKey(role: PBX, label: "pbx", '
                         'tenant: $t) { key } }', t=tenant.code).data["createApiKey"]
    pbx = Client(tenant.admin.url, made["key"])
    query = ('mutation { triggerEvent(input: {event: HANGUP, idempotencyKey: "call-9"}) '
             '{ triggerId accepted activities { id status message actionName httpStatus '
             'responseSnippet request { url headers { key value } } } } }')
    first = pbx(query).data["triggerEvent"]
    [row] = settled(tenant, first["triggerId"])
    assert row["status"] == "FAILED" and "secret-detail" in str(row)
    again = pbx(query).data["triggerEvent"]
    assert again["triggerId"] == first["triggerId"] and again["accepted"]
    [replayed] = again["activities"]
    assert replayed["id"] == row["id"] and replayed["status"] == "FAILED"
    assert (replayed["request"], replayed["responseSnippet"], replayed["httpStatus"],
            replayed["actionName"]) == (None, None, None, None)
    assert "secret-detail" not in str(again) and "header-detail" not in str(again)
    assert "sent earlier" in replayed["message"]
    # a key that may read activity gets the whole row back
    [whole] = tenant.admin(query).data["triggerEvent"]["activities"]
    assert whole["responseSnippet"] and "header-detail" in str(whole["request"])


def test_test_event_runs_while_actions_are_disabled(tenant: TenantHandle,
                                                    receiver: Receiver) -> None:
    action = make_action(tenant, name="tested", url=f"{receiver.url}/{tenant.code}/tested")
    reply = tenant.admin("mutation($ids: [ID!]) { testEvent(event: RINGING, params: "
                         '{extension: "204"}, actionIds: $ids) { triggerId source accepted } }',
                         ids=[action])
    result = reply.data["testEvent"]
    assert result["source"] == "TEST" and result["accepted"]
    [row] = settled(tenant, result["triggerId"])
    assert row["status"] == "SUCCEEDED" and row["source"] == "TEST"


def test_retry_activity_sends_a_failed_delivery_again(tenant: TenantHandle,
                                                      receiver: Receiver) -> None:
    receiver.script(f"/{tenant.code}/later", Reply(400))
    hook(tenant, receiver, "later")
    [row] = settled(tenant, trigger(tenant, "HANGUP")["triggerId"])
    assert row["status"] == "FAILED"
    again = tenant.admin("mutation($id: ID!) { retryActivity(id: $id) { status attempts } }",
                         id=row["id"]).data["retryActivity"]
    assert again == {"status": "QUEUED", "attempts": 1}
    [row] = settled(tenant, row["triggerId"])
    assert (row["status"], row["attempts"]) == ("SUCCEEDED", 2)
    reply = tenant.admin("mutation($id: ID!) { retryActivity(id: $id) { status } }", id=row["id"])
    assert reply.code == "BAD_USER_INPUT" and reply.error["extensions"]["field"] == "id"


def test_a_delivery_whose_message_was_lost_is_recovered(tenant: TenantHandle,
                                                        receiver: Receiver) -> None:
    """A QUEUED row that never reached the broker: the worker's sweep queues it again."""
    from bson import ObjectId

    from tenants.database import now

    action = hook(tenant, receiver, "lost")
    created = now()
    row_id = ObjectId()
    tenant.collection("activity").insert_one({
        "_id": row_id, "trigger_id": str(ObjectId()), "event": "HANGUP", "source": "SYSTEM",
        "action_id": action, "action_name": "lost", "status": "QUEUED", "message": "queued",
        "attempts": 0, "cycle_start": 0, "http_status": None, "request": None,
        "response_snippet": None, "unresolved_parameters": [], "params": {},
        "occurred_at": created, "created_at": created, "updated_at": created,
        "next_attempt_at": None})
    receiver.wait_for(f"/{tenant.code}/lost", timeout=30)
    row = wait_until(lambda: (doc := tenant.collection("activity").find_one({"_id": row_id}))
                     and doc["status"] == "SUCCEEDED" and doc)
    assert row["attempts"] == 1


def test_a_delivery_keeps_no_list_of_rows_in_flight(tenant: TenantHandle,
                                                   receiver: Receiver) -> None:
    """Recovery finds the rows not final by their status (tests/test_sweep.py), so a
    delivery writes its row and its claim and nothing else: no entry in a list of the rows
    in flight (the ``open`` collection of earlier versions), neither while it is sent nor
    after."""
    receiver.script(f"/{tenant.code}/tracked", Reply(200, delay=2.0))
    hook(tenant, receiver, "tracked")
    fired = trigger(tenant, "HANGUP")
    receiver.wait_for(f"/{tenant.code}/tracked", timeout=30)  # answered 2 s later
    kinds = {"events", "settings", "actions", "parameters", "activity", "idempotency",
             "claims", "health", "stats", "audit"}
    written = {n for n in tenant.db.list_collection_names() if n.startswith(f"t_{tenant.code}_")}
    assert written <= {f"t_{tenant.code}_{kind}" for kind in kinds}
    [row] = settled(tenant, fired["triggerId"])
    assert row["status"] == "SUCCEEDED"
    written = {n for n in tenant.db.list_collection_names() if n.startswith(f"t_{tenant.code}_")}
    assert written == {f"t_{tenant.code}_{kind}" for kind in kinds}


def test_a_row_is_written_sending_only_while_an_attempt_takes_long(
        tenant: TenantHandle, receiver: Receiver) -> None:
    """An attempt answered within a second goes from QUEUED to its outcome in one write
    (the live stream still shows SENDING, test_subscription); a longer one shows SENDING
    in the database meanwhile. Either way the attempt is counted."""
    receiver.script(f"/{tenant.code}/quick", Reply(200, delay=0.3))
    receiver.script(f"/{tenant.code}/slow", Reply(200, delay=3.0))
    quick = hook(tenant, receiver, "quick")
    row_id = ObjectId(trigger(tenant, "HANGUP")["activities"][0]["id"])
    seen = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        seen.append(tenant.collection("activity").find_one({"_id": row_id})["status"])
        if seen[-1] == "SUCCEEDED":
            break
        time.sleep(0.02)
    assert seen[-1] == "SUCCEEDED" and set(seen) == {"QUEUED", "SUCCEEDED"}, seen
    assert tenant.collection("activity").find_one({"_id": row_id})["attempts"] == 1

    tenant.admin("mutation($id: ID!) { deleteAction(id: $id) }", id=quick).data
    hook(tenant, receiver, "slow")
    fired = trigger(tenant, "HANGUP")
    row_id = ObjectId(fired["activities"][0]["id"])
    sending = wait_until(lambda: (doc := tenant.collection("activity").find_one(
        {"_id": row_id})) and doc["status"] == "SENDING" and doc, timeout=10)
    assert sending["attempts"] == 1
    [row] = settled(tenant, fired["triggerId"])
    assert (row["status"], row["attempts"]) == ("SUCCEEDED", 1)


def test_a_request_over_a_render_limit_fails_at_once_and_its_row_stays_small(
        tenant: TenantHandle, receiver: Receiver) -> None:
    """The issue's cases: 256 KiB of {{a}} with a 4 KiB ``a`` (204.8 MiB rendered: the old
    worker built it and the receiver refused it, 413), and three headers of 1,638 {{a}}
    (a 20.1 MB row). Neither is built or sent, nor tried again."""
    tenant.admin('mutation($v: String!) { createParameter(input: {tag: "a", value: $v}) '
                 '{ tag } }', v="x" * 4096).data
    body = make_action(tenant, name="huge body", url=f"{receiver.url}/{tenant.code}/huge",
                       bodyType="RAW", rawBody="{{a}}" * (256 * 1024 // 5),
                       rawContentType="text/plain")
    headers = make_action(tenant, name="huge headers", url=f"{receiver.url}/{tenant.code}/huge",
                          headers=[{"key": f"X-{i}", "value": "{{a}}" * 1638} for i in range(3)])
    attach(tenant, "HANGUP", body, headers)
    enable(tenant)
    rows = {r["actionName"]: r for r in settled(tenant, trigger(tenant, "HANGUP")["triggerId"])}
    assert {name: (r["status"], r["attempts"]) for name, r in rows.items()} == {
        "huge body": ("FAILED", 1), "huge headers": ("FAILED", 1)}
    assert rows["huge body"]["message"] == (
        "cannot build the request: rendered body is 204.8 MiB, over the 1 MiB limit by "
        "203.8 MiB")
    assert rows["huge headers"]["message"] == (
        "cannot build the request: rendered header 'X-0' is 6.4 MiB, over the 8 KiB limit "
        "by 6.4 MiB")
    assert receiver.received(f"/{tenant.code}/huge") == []
    for doc in tenant.collection("activity").find({}):
        assert len(bson.encode(doc)) < 16 * 1024


def test_snippets_and_messages_are_cut_and_say_so(tenant: TenantHandle,
                                                  receiver: Receiver) -> None:
    receiver.script(f"/{tenant.code}/chatty", Reply(200, body="z" * 100_000))
    tenant.admin('mutation { createParameter(input: {tag: "port", value: "x"}) { tag } }').data
    tenant.admin('mutation($v: String!) { createParameter(input: {tag: "long", value: $v}) '
                 '{ tag } }', v="y" * 4000).data
    chatty = make_action(tenant, name="chatty", url=f"{receiver.url}/{tenant.code}/chatty")
    invalid = make_action(tenant, name="invalid", url="http://127.0.0.1:{{port}}/{{long}}")
    attach(tenant, "HANGUP", chatty, invalid)
    enable(tenant)
    rows = {r["actionName"]: r for r in settled(tenant, trigger(tenant, "HANGUP")["triggerId"])}
    snippet = rows["chatty"]["responseSnippet"]
    assert len(snippet) == 1024 and snippet.endswith("z… [cut, 97.7 KiB in all]")
    message = rows["invalid"]["message"]
    assert message.startswith("destination refused: 'http://127.0.0.1:x/yyy")
    assert message.endswith("y… [cut, 4.0 KiB in all]; not retried"), message
    assert len(message) < 2100


def test_a_delivery_queued_again_says_after_how_many_attempts(tenant: TenantHandle,
                                                             receiver: Receiver) -> None:
    """"after 1 attempt", not "after 1 attempts" (and "2 attempts" for two)."""
    receiver.script(f"/{tenant.code}/once", Reply(400), Reply(400))
    hook(tenant, receiver, "once")
    [row] = settled(tenant, trigger(tenant, "HANGUP")["triggerId"])
    again = tenant.admin("mutation($id: ID!) { retryActivity(id: $id) { message } }",
                         id=row["id"]).data["retryActivity"]
    assert again["message"] == "queued again after 1 attempt"
    [row] = wait_until(lambda: [r for r in rows(tenant, row["triggerId"])
                                if r["status"] == "FAILED" and r["attempts"] == 2])
    again = tenant.admin("mutation($id: ID!) { retryActivity(id: $id) { message } }",
                         id=row["id"]).data["retryActivity"]
    assert again["message"] == "queued again after 2 attempts"


def test_a_host_with_a_parameter_without_value_fails_at_once(tenant: TenantHandle) -> None:
    """``http://{{nohost}}/x`` with no nohost parameter: no attempt can reach it, so the
    delivery fails at once, saying why, instead of retrying DNS lookups of "{{nohost}}"."""
    action = make_action(tenant, name="nohost", url="http://{{nohost}}/x")
    attach(tenant, "HANGUP", action)
    enable(tenant)
    [row] = settled(tenant, trigger(tenant, "HANGUP")["triggerId"])
    assert (row["status"], row["attempts"]) == ("FAILED", 1)
    assert row["message"] == ("cannot build the request: the URL's host '{{nohost}}' holds "
                              "a parameter without a value")


def test_a_tag_in_capitals_is_sent_with_its_parameters_value(tenant: TenantHandle,
                                                            receiver: Receiver) -> None:
    """``{{TEAM}}`` is parameter ``team``, ``{{CALLER_ID}}`` the call's ``caller_id``."""
    tenant.admin('mutation { createParameter(input: {tag: "team", value: "support"}) '
                 '{ tag } }').data
    hook(tenant, receiver, "capitals", bodyType="RAW", rawContentType="text/plain",
         rawBody="{{TEAM}} {{CALLER_ID}}")
    [row] = settled(tenant, trigger(tenant, "HANGUP", caller_id="+381111")["triggerId"])
    assert receiver.wait_for(f"/{tenant.code}/capitals")[0].body == b"support +381111"
    assert (row["status"], row["unresolvedParameters"]) == ("SUCCEEDED", [])


def test_a_header_name_is_rendered_and_fails_the_delivery_when_unusable(
        tenant: TenantHandle, receiver: Receiver) -> None:
    """``X-{{queue}}`` is sent as ``X-Sales``; rendered as ``X-a b`` it cannot be sent:
    the delivery fails at once, naming the header."""
    hook(tenant, receiver, "header-tag", headers=[{"key": "X-{{queue}}", "value": "1"}])
    [sent] = settled(tenant, trigger(tenant, "HANGUP", queue="Sales")["triggerId"])
    assert sent["status"] == "SUCCEEDED"
    assert receiver.wait_for(f"/{tenant.code}/header-tag")[0].header("X-Sales") == "1"
    [failed] = settled(tenant, trigger(tenant, "HANGUP", queue="a b")["triggerId"])
    assert (failed["status"], failed["attempts"]) == ("FAILED", 1)
    assert failed["message"] == ("cannot build the request: the header name 'X-{{queue}}' "
                                 "does not render to a usable name: 'X-a b' is not a valid "
                                 "header name")
    assert len(receiver.received(f"/{tenant.code}/header-tag")) == 1


def test_the_row_shows_the_url_as_the_receiver_got_it(tenant: TenantHandle,
                                                     receiver: Receiver) -> None:
    """Byte for byte what went on the request line (aiohttp's yarl leaves "&" and "!"
    bare in a path, where the action wrote %26 and %21), a secret still masked."""
    tenant.admin('mutation { createParameter(input: {tag: "token", value: "s3&cr=t é", '
                 'secret: true}) { tag } }').data
    hook(tenant, receiver, "wire", url=f"{receiver.url}/{tenant.code}/wire/a%26b%21/{{{{part}}}}"
         "?fixed=%7E1", query=[{"key": "note", "value": "{{note}}"},
                               {"key": "t", "value": "{{token}}"}])
    note = "a&b=c d é/?"
    [row] = settled(tenant, trigger(tenant, "HANGUP", part="x y", note=note)["triggerId"])
    [got] = receiver.wait_for(f"/{tenant.code}/wire/a&b!/x y")
    assert parse_qsl(got.query) == [("fixed", "~1"), ("note", note), ("t", "s3&cr=t é")]
    shown, _, secret = got.raw_path.rpartition("&t=")
    assert row["request"]["url"] == f"{receiver.url}{shown}&t=********"
    assert secret and "s3" not in row["request"]["url"]


def test_the_row_names_the_call_parameters_sent_empty(tenant: TenantHandle,
                                                     receiver: Receiver) -> None:
    """An Incoming Call without call_id and duration: they are sent empty, and the row
    says which; a trigger that gives them says none."""
    hook(tenant, receiver, "empty", event="INCOMING_CALL", bodyType="RAW",
         rawBody="{{caller_id}}|{{call_id}}|{{duration}}|{{CALL_ID}}")
    [row] = settled(tenant, trigger(tenant, "INCOMING_CALL", caller_id="+381")["triggerId"])
    assert receiver.wait_for(f"/{tenant.code}/empty")[0].body == b"+381|||"
    assert (row["status"], row["emptyParameters"]) == ("SUCCEEDED", ["call_id", "duration"])
    assert row["unresolvedParameters"] == []
    [full] = settled(tenant, trigger(tenant, "INCOMING_CALL", caller_id="+381", call_id="c1",
                                     duration=0)["triggerId"])
    assert full["emptyParameters"] == []
