"""Call events become HTTP requests: the whole path with a real worker process and a real
receiver on 127.0.0.1."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.conftest import TenantHandle, wait_until
from tests.receiver import Receiver, Reply

pytestmark = pytest.mark.usefixtures("worker")

ROW = """id triggerId event source actionId actionName status message attempts httpStatus
    request { method url headers { key value } } responseSnippet unresolvedParameters
    createdAt updatedAt"""


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
