"""Triggers and the Activity Monitor's list: SKIPPED reasons, batches, bad params,
filters and cursor pages."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import TenantHandle

TRIGGER = """mutation($i: TriggerInput!) { triggerEvent(input: $i) {
    triggerId event source accepted reason activities { status message actionId } } }"""
PAGE = """query($f: ActivityFilter, $n: Int, $a: String) {
    activity(filter: $f, first: $n, after: $a)
    { items { id triggerId event status message source actionName } nextCursor } }"""


def action(tenant: TenantHandle, name: str = "A") -> str:
    return tenant.admin("mutation($n: String!) { createAction(input: {name: $n, "
                        'url: "http://127.0.0.1:9/x"}) { id } }', n=name).data["createAction"]["id"]


def test_skipped_while_actions_are_disabled(tenant: TenantHandle) -> None:
    result = tenant.admin(TRIGGER, i={"event": "HANGUP"}).data["triggerEvent"]
    assert result["accepted"] is False
    assert result["reason"] == "actions are disabled for all events in Settings"
    assert result["activities"] == [{"status": "SKIPPED", "message": result["reason"],
                                     "actionId": None}]


def test_skipped_while_the_event_is_inactive(tenant: TenantHandle) -> None:
    tenant.admin("mutation { updateSettings(input: {actionsEnabled: true}) { timezone } }").data
    result = tenant.admin(TRIGGER, i={"event": "RINGING"}).data["triggerEvent"]
    assert (result["accepted"], result["reason"]) == (False, "the Ringing event is not active")


def test_skipped_when_no_actions_are_attached(tenant: TenantHandle) -> None:
    tenant.admin("mutation { updateSettings(input: {actionsEnabled: true}) { timezone } }").data
    tenant.admin("mutation { updateEvent(type: HANGUP, input: {active: true}) { type } }").data
    result = tenant.admin(TRIGGER, i={"event": "HANGUP"}).data["triggerEvent"]
    assert (result["accepted"], result["reason"]) == (False, "no actions are attached to Hangup")
    assert len(tenant.collection("activity").find_one({})["trigger_id"]) == 24


def test_skipped_rows_are_listed_in_the_monitor(tenant: TenantHandle) -> None:
    tenant.admin(TRIGGER, i={"event": "HANGUP"}).data
    [item] = tenant.admin(PAGE).data["activity"]["items"]
    assert (item["status"], item["source"], item["event"]) == ("SKIPPED", "SYSTEM", "HANGUP")


def test_trigger_events_keeps_order(tenant: TenantHandle) -> None:
    events = ["RINGING", "INCOMING_CALL", "ANSWERED_CALL", "HANGUP"]
    reply = tenant.admin("mutation($i: [TriggerInput!]!) { triggerEvents(inputs: $i) "
                         "{ event } }", i=[{"event": e} for e in events])
    assert [r["event"] for r in reply.data["triggerEvents"]] == events


def test_a_bad_input_in_a_batch_writes_nothing(tenant: TenantHandle) -> None:
    before = tenant.snapshot()
    reply = tenant.admin("mutation($i: [TriggerInput!]!) { triggerEvents(inputs: $i) "
                         "{ event } }", i=[{"event": "HANGUP"},
                                           {"event": "HANGUP", "params": {"bad key": 1}}])
    assert reply.code == "BAD_USER_INPUT"
    assert reply.error["extensions"]["field"] == "inputs[1].params.bad key"
    assert tenant.snapshot() == before


def test_oversized_batches_are_refused(tenant: TenantHandle) -> None:
    reply = tenant.admin("mutation($i: [TriggerInput!]!) { triggerEvents(inputs: $i) "
                         "{ event } }", i=[{"event": "HANGUP"}] * 501)
    assert reply.code == "BAD_USER_INPUT" and reply.error["extensions"]["field"] == "inputs"


@pytest.mark.parametrize("params, field", [
    (["not", "an", "object"], "input.params"),
    ({"nested": {"a": 1}}, "input.params.nested"),
    ({"list": [1, 2]}, "input.params.list"),
    ({"{{x}}": "1"}, "input.params.{{x}}"),
    ({"big": "x" * 4097}, "input.params.big"),
    ({f"k{i}": i for i in range(101)}, "input.params"),
])
def test_params_must_be_one_flat_object(tenant: TenantHandle, params: Any, field: str) -> None:
    before = tenant.snapshot()
    reply = tenant.admin(TRIGGER, i={"event": "HANGUP", "params": params})
    assert reply.code == "BAD_USER_INPUT" and reply.error["extensions"]["field"] == field
    assert tenant.snapshot() == before


def test_idempotency_key_length_is_checked(tenant: TenantHandle) -> None:
    reply = tenant.admin(TRIGGER, i={"event": "HANGUP", "idempotencyKey": "k" * 201})
    assert reply.error["extensions"]["field"] == "input.idempotencyKey"


def test_test_event_with_unknown_action_is_refused(tenant: TenantHandle) -> None:
    reply = tenant.admin('mutation { testEvent(event: HANGUP, actionIds: ["nope"]) '
                         '{ accepted } }')
    assert reply.code == "BAD_USER_INPUT" and reply.error["extensions"]["field"] == "actionIds[0]"


def test_test_event_without_actions_is_skipped(tenant: TenantHandle) -> None:
    result = tenant.admin("mutation { testEvent(event: HANGUP) { accepted reason source } }")
    assert result.data["testEvent"] == {"accepted": False, "source": "TEST",
                                        "reason": "no actions are attached to Hangup"}


def test_retry_activity_of_unknown_row_is_not_found(tenant: TenantHandle) -> None:
    reply = tenant.admin('mutation { retryActivity(id: "0123456789abcdef01234567") { id } }')
    assert reply.code == "NOT_FOUND"


def test_pages_neither_skip_nor_repeat_while_rows_arrive(tenant: TenantHandle) -> None:
    for _ in range(7):
        tenant.admin(TRIGGER, i={"event": "HANGUP"}).data
    seen: list[str] = []
    page = tenant.admin(PAGE, n=3).data["activity"]
    while True:
        seen += [i["id"] for i in page["items"]]
        tenant.admin(TRIGGER, i={"event": "RINGING"}).data  # a new row while paging
        if page["nextCursor"] is None:
            break
        page = tenant.admin(PAGE, n=3, a=page["nextCursor"]).data["activity"]
    assert len(seen) == len(set(seen)) == 7
    everything = tenant.admin(PAGE, n=200).data["activity"]["items"]
    assert [i["id"] for i in everything][-7:] == seen  # newest first


def test_activity_filters(tenant: TenantHandle) -> None:
    hangup = tenant.admin(TRIGGER, i={"event": "HANGUP"}).data["triggerEvent"]
    tenant.admin(TRIGGER, i={"event": "RINGING"}).data
    tenant.admin("mutation { testEvent(event: HANGUP) { accepted } }").data

    def ids(f: dict[str, Any]) -> list[str]:
        return [i["event"] + "/" + i["source"]
                for i in tenant.admin(PAGE, f=f).data["activity"]["items"]]

    assert ids({"events": ["RINGING"]}) == ["RINGING/SYSTEM"]
    assert ids({"source": "TEST"}) == ["HANGUP/TEST"]
    assert ids({"triggerId": hangup["triggerId"]}) == ["HANGUP/SYSTEM"]
    assert ids({"statuses": ["SUCCEEDED"]}) == []
    assert len(ids({"statuses": ["SKIPPED"], "search": "DISABLED"})) == 2
    assert ids({"search": ".*"}) == []
    assert ids({"since": "2999-01-01T00:00:00Z"}) == []


@pytest.mark.parametrize("variables, field", [
    ({"n": 0}, "first"), ({"n": 201}, "first"), ({"a": "not-a-cursor"}, "after"),
    ({"f": {"search": "s" * 201}}, "filter.search"),
    ({"f": {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}}, "filter.until"),
])
def test_bad_page_requests_name_the_field(tenant: TenantHandle, variables: dict,
                                          field: str) -> None:
    reply = tenant.admin(PAGE, **variables)
    assert reply.code == "BAD_USER_INPUT" and reply.error["extensions"]["field"] == field


def test_whole_numbers_at_the_edges_of_64_bits_are_taken(tenant: TenantHandle) -> None:
    """The largest and smallest int64 are stored as they are (a larger one is refused
    with the field named: tests/test_catalogue.py)."""
    for value in (2**63 - 1, -(2**63)):
        reply = tenant.admin(TRIGGER, i={"event": "HANGUP", "params": {"duration": value}})
        assert reply.data["triggerEvent"]["triggerId"]


def test_params_at_every_limit_at_once_are_stored(tenant: TenantHandle) -> None:
    """100 names of 64 characters, each holding 4,096 four-byte characters: about 1.6 MB
    of BSON, well within the 16 MB a MongoDB document may hold; stored as sent."""
    params = {f"p{i:02d}" + "_" * 61: "\U0001f600" * 4096 for i in range(100)}
    reply = tenant.admin(TRIGGER, i={"event": "HANGUP", "params": params})
    trigger_id = reply.data["triggerEvent"]["triggerId"]
    [row] = tenant.collection("activity").find({"trigger_id": trigger_id})
    assert row["params"] == params
