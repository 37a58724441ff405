"""Tenant isolation: a key of tenant A can neither read nor change anything of tenant B.

Tenant A (``tenant``) attacks tenant B (``other_tenant``) with B's action id, parameter
tag, API key ids and code, under each of A's roles. Every reply is either A's own data
or NOT_FOUND / FORBIDDEN; B's documents are byte-identical afterwards; and no reply
carries anything of B that the request did not itself send.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import bson
import pytest
from bson import ObjectId
from graphql import build_schema, parse

from tests.conftest import Client, Reply, TenantHandle

CREATE_ACTION = "mutation($input: ActionInput!) { createAction(input: $input) { id name } }"
CREATE_PARAMETER = ("mutation($input: ParameterInput!) { createParameter(input: $input) "
                    "{ tag value } }")
ACTIONS = "{ actions { id name } }"
ME = "{ me { tenant role } }"
REFUSALS = {"NOT_FOUND", "FORBIDDEN"}


def unique(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(6)}"


def client_for(t: TenantHandle, role: str) -> Client:
    return t.admin if role == "TENANT_ADMIN" else t.key(role)


@dataclass
class Victim:
    """Tenant B and what it holds."""

    handle: TenantHandle
    action_id: str
    action_name: str
    secret_action_name: str
    tag: str
    value: str
    secret_tag: str
    secret_value: str
    key_ids: list[str]
    activity_ids: list[str]
    trigger_ids: list[str]

    @property
    def markers(self) -> list[str]:
        """Every string of B that must never come back to A unasked."""
        return [self.action_id, self.action_name, self.secret_action_name, self.tag,
                self.value, self.secret_tag, self.secret_value, *self.key_ids,
                *self.activity_ids, *self.trigger_ids]


def b_state(b: TenantHandle, mongo: Any, settings: Any) -> list[bytes]:
    """B's documents and B's API keys, as BSON bytes."""
    docs = [doc for kind in b.snapshot().values() for doc in kind]
    keys = mongo[settings.system_database]["api_keys"]
    docs += list(keys.find({"tenant": b.code}).sort("_id", 1))
    docs += list(mongo[settings.system_database]["tenants"].find({"code": b.code}))
    return [bson.encode(doc) for doc in docs]


def key_ids_of(code: str, mongo: Any, settings: Any) -> set[str]:
    keys = mongo[settings.system_database]["api_keys"]
    return {str(d["_id"]) for d in keys.find({"tenant": code})}


@pytest.fixture
def victim(other_tenant: TenantHandle, mongo: Any, settings: Any) -> Victim:
    b = other_tenant
    name, secret_name = unique("b-action-"), unique("b-hidden-")
    action_id = b.admin(CREATE_ACTION, input={
        "name": name, "url": "http://127.0.0.1:9/b", "description": unique("b-desc-"),
    }).data["createAction"]["id"]
    b.admin(CREATE_ACTION, input={"name": secret_name, "url": "http://127.0.0.1:9/b2"}).data
    b.admin("""mutation($ids: [ID!]) { updateEvent(type: INCOMING_CALL,
               input: {active: true, actionIds: $ids}) { active } }""", ids=[action_id]).data
    tag, value = unique("b_tag_"), unique("b-value-")
    secret_tag, secret_value = unique("b_secret_"), unique("b-secret-value-")
    b.admin(CREATE_PARAMETER, input={"tag": tag, "value": value}).data
    b.admin(CREATE_PARAMETER, input={"tag": secret_tag, "value": secret_value,
                                     "secret": True}).data
    b.key("VIEWER")
    b.key("PBX")
    skipped = b.admin("mutation { triggerEvent(input: {event: INCOMING_CALL}) "
                      "{ triggerId activities { id } } }").data["triggerEvent"]
    failed = failed_row(b, action_id, name)
    return Victim(b, action_id, name, secret_name, tag, value, secret_tag, secret_value,
                  sorted(key_ids_of(b.code, mongo, settings)),
                  [skipped["activities"][0]["id"], str(failed["_id"])],
                  [skipped["triggerId"], failed["trigger_id"]])


def failed_row(t: TenantHandle, action_id: str, name: str) -> dict[str, Any]:
    """A FAILED delivery, written directly: what retryActivity takes."""
    moment = datetime.now(UTC)
    row = {"_id": ObjectId(), "trigger_id": str(ObjectId()), "event": "INCOMING_CALL",
           "source": "SYSTEM", "action_id": action_id, "action_name": name, "status": "FAILED",
           "message": "HTTP 404", "attempts": 1, "cycle_start": 0, "http_status": 404,
           "request": None, "response_snippet": None, "unresolved_parameters": [],
           "params": {}, "occurred_at": moment, "created_at": moment, "updated_at": moment,
           "next_attempt_at": None}
    t.collection("activity").insert_one(row)
    return row


def attacks(v: Victim) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, query, variables): every served operation, aimed at B where it can be."""
    other = v.handle.code
    out: list[tuple[str, str, dict[str, Any]]] = [
        ("me", ME, {}),
        ("events", "{ events { type active actions { id name } } }", {}),
        ("event", "{ event(type: INCOMING_CALL) { type active actions { id name url } } }", {}),
        ("settings", "{ settings { actionsEnabled timezone } }", {}),
        ("actions", "{ actions { id name description url } }", {}),
        ("actions by B's name", "query($s: String) { actions(search: $s) { id name } }",
         {"s": v.action_name}),
        ("action by B's id", "query($id: ID!) { action(id: $id) { id name url } }",
         {"id": v.action_id}),
        ("parameters", "{ parameters { tag value secret } }", {}),
        ("parameters by B's tag", "query($s: String) { parameters(search: $s) { tag value } }",
         {"s": v.tag}),
        ("parameters by B's value",
         "query($s: String) { parameters(search: $s) { tag value } }", {"s": v.value}),
        ("tenants", "{ tenants { code name } }", {}),
        ("apiKeys", "{ apiKeys { id tenant role label prefix } }", {}),
        ("updateSettings", """mutation { updateSettings(input: {actionsEnabled: true})
                               { actionsEnabled } }""", {}),
        ("updateEvent with B's action",
         """mutation($ids: [ID!]) { updateEvent(type: INCOMING_CALL,
            input: {actionIds: $ids}) { actions { id name } } }""", {"ids": [v.action_id]}),
        ("updateAction of B", """mutation($id: ID!, $input: ActionInput!) {
            updateAction(id: $id, input: $input) { id name } }""",
         {"id": v.action_id, "input": {"name": unique("a-took-"), "url": "http://127.0.0.1:9/"}}),
        ("deleteAction of B", "mutation($id: ID!) { deleteAction(id: $id) }",
         {"id": v.action_id}),
        ("setActionEnabled of B", """mutation($id: ID!) {
            setActionEnabled(id: $id, enabled: false) { id health { state } } }""",
         {"id": v.action_id}),
        ("updateParameter of B", """mutation($tag: String!, $input: ParameterInput!) {
            updateParameter(tag: $tag, input: $input) { tag value } }""",
         {"tag": v.tag, "input": {"tag": v.tag, "value": "overwritten"}}),
        ("updateParameter of B's secret", """mutation($tag: String!, $input: ParameterInput!) {
            updateParameter(tag: $tag, input: $input) { tag value } }""",
         {"tag": v.secret_tag, "input": {"tag": v.secret_tag, "value": "overwritten"}}),
        ("deleteParameter of B", "mutation($tag: String!) { deleteParameter(tag: $tag) }",
         {"tag": v.tag}),
        ("createTenant", "mutation($c: String!) { createTenant(code: $c, name: $c) { code } }",
         {"c": unique("t")}),
        ("setEventManagerEnabled of B", """mutation($c: String!) {
            setEventManagerEnabled(code: $c, enabled: false) { code } }""", {"c": other}),
    ]
    collection = json.dumps({
        "info": {"name": "a", "schema": "https://schema.getpostman.com/json/collection/v2.1.0/"},
        "item": [{"name": unique("a-import-"), "request": {"url": "http://127.0.0.1:9/a"}}]})
    out += [
        ("activity", "{ activity { items { id triggerId actionId actionName } } }", {}),
        ("activity of B's trigger", """query($t: ID) { activity(filter: {triggerId: $t}) {
            items { id actionName } } }""", {"t": v.trigger_ids[1]}),
        ("activity of B's action", """query($a: ID) { activity(filter: {actionId: $a}) {
            items { id actionName } } }""", {"a": v.action_id}),
        ("retryActivity of B", "mutation($id: ID!) { retryActivity(id: $id) { id status } }",
         {"id": v.activity_ids[1]}),
        ("activityStats", """query($s: DateTime!) { activityStats(since: $s) {
            buckets { succeeded failed skipped } actions { actionId actionName } } }""",
         {"s": (datetime.now(UTC) - timedelta(hours=23)).isoformat()}),
        ("triggerEvent", """mutation { triggerEvent(input: {event: INCOMING_CALL}) {
            accepted reason activities { actionName } } }""", {}),
        ("triggerEvents", """mutation { triggerEvents(inputs: [{event: INCOMING_CALL}]) {
            accepted activities { actionName } } }""", {}),
        ("testEvent with B's action", """mutation($ids: [ID!]) { testEvent(event: HANGUP,
            actionIds: $ids) { activities { actionName } } }""", {"ids": [v.action_id]}),
        ("masterActions", "{ masterActions { id name } }", {}),
        ("auditLog", """{ auditLog(first: 200) { items { operation target { id name }
            changes { field before after } } } }""", {}),
        ("createAction", CREATE_ACTION,
         {"input": {"name": unique("a-action-"), "url": "http://127.0.0.1:9/a"}}),
        ("createParameter", CREATE_PARAMETER,
         {"input": {"tag": unique("a_tag_"), "value": "a-value"}}),
        ("postmanRequests", "query($c: String!) { postmanRequests(collection: $c) { name } }",
         {"c": collection}),
        ("postmanCollection", """query($c: String!) { postmanCollection(collection: $c) {
            requests { name } newVariables { key } } }""", {"c": collection}),
        ("importPostmanCollection", """mutation($c: String!) { importPostmanCollection(
            collection: $c) { imported { id name } } }""", {"c": collection}),
        ("importMasterActions of B's action", """mutation($ids: [ID!]!) {
            importMasterActions(ids: $ids) { imported { id name } } }""", {"ids": [v.action_id]}),
    ]
    for role in ("SYSTEM_ADMIN", "TENANT_ADMIN", "PBX", "VIEWER"):
        out.append((f"createApiKey {role} in B", """mutation($r: Role!, $t: String) {
            createApiKey(role: $r, label: "x", tenant: $t) { key info { id tenant } } }""",
                    {"r": role, "t": other}))
    for key_id in v.key_ids:
        out.append((f"revokeApiKey {key_id} of B", "mutation($id: ID!) { revokeApiKey(id: $id) }",
                    {"id": key_id}))
    return out


def leaks(v: Victim, reply: Reply, variables: dict[str, Any]) -> list[str]:
    """B's strings in the reply, except an error message echoing what the request sent."""
    body = json.dumps(reply.body)
    data = json.dumps(reply.body.get("data"))
    sent = json.dumps(variables)
    return [m for m in v.markers if m in body and (m in data or m not in sent)]


def verdict(label: str, reply: Reply) -> str | None:
    """Why the reply is not acceptable, or None: A's own data, NOT_FOUND or FORBIDDEN."""
    errors = reply.body.get("errors")
    if not errors:
        return None
    code = errors[0].get("extensions", {}).get("code")
    if code in REFUSALS:
        return None
    field = errors[0].get("extensions", {}).get("field", "")
    if (label, code, field) in {("updateEvent with B's action", "BAD_USER_INPUT",
                                 "input.actionIds[0]"),
                                ("testEvent with B's action", "BAD_USER_INPUT", "actionIds[0]")}:
        return None  # B's id is as unknown in A as any made-up id
    return f"{label}: {code} {errors[0].get('message')}"


def test_the_attacks_cover_every_served_operation() -> None:
    from schema import schema

    served = build_schema(schema.as_str())
    names = set(served.query_type.fields) | set(served.mutation_type.fields)
    v = Victim(make_handle_stub(), *["x"] * 7, ["k"], ["a", "b"], ["t", "u"])
    aimed = {selection.name.value for _, query, _ in attacks(v)
             for definition in parse(query).definitions
             for selection in definition.selection_set.selections}
    assert names - aimed == set()


def make_handle_stub() -> TenantHandle:
    return TenantHandle("b", None, None, None, None)  # type: ignore[arg-type]


@pytest.mark.parametrize("role", ["TENANT_ADMIN", "VIEWER", "PBX"])
def test_tenant_key_cannot_reach_another_tenant(
    tenant: TenantHandle, victim: Victim, mongo: Any, settings: Any, role: str
) -> None:
    client = client_for(tenant, role)
    before = b_state(victim.handle, mongo, settings)
    problems: list[str] = []
    for label, query, variables in attacks(victim):
        reply = client(query, **variables)
        if (why := verdict(label, reply)) is not None:
            problems.append(why)
        if found := leaks(victim, reply, variables):
            problems.append(f"{label} leaked {found}: {reply.body}")
    assert problems == []
    assert b_state(victim.handle, mongo, settings) == before
    assert victim.handle.admin(ME).data["me"]["tenant"] == victim.handle.code


@pytest.mark.parametrize("role", ["TENANT_ADMIN", "VIEWER", "PBX"])
def test_x_tenant_of_another_tenant_does_not_move_a_tenant_key(
    tenant: TenantHandle, victim: Victim, role: str
) -> None:
    client = client_for(tenant, role)
    me = client.acting_in(victim.handle.code)(ME).data["me"]
    assert me == {"tenant": tenant.code, "role": role}


@pytest.mark.parametrize("role", ["TENANT_ADMIN", "VIEWER"])
def test_tenant_key_lists_own_actions_despite_x_tenant(
    tenant: TenantHandle, victim: Victim, role: str
) -> None:
    own = tenant.admin(CREATE_ACTION, input={"name": unique("a-action-"),
                                             "url": "http://127.0.0.1:9/a"}).data["createAction"]
    client = client_for(tenant, role).acting_in(victim.handle.code)
    assert client(ACTIONS).data["actions"] == [own]


def test_tenant_admin_writes_in_own_tenant_despite_x_tenant(
    tenant: TenantHandle, victim: Victim, mongo: Any, settings: Any
) -> None:
    before = b_state(victim.handle, mongo, settings)
    made = tenant.admin.acting_in(victim.handle.code)(CREATE_ACTION, input={
        "name": unique("a-action-"), "url": "http://127.0.0.1:9/a"}).data["createAction"]
    assert tenant.admin(ACTIONS).data["actions"] == [made]
    assert b_state(victim.handle, mongo, settings) == before


@pytest.mark.parametrize("role", ["TENANT_ADMIN", "VIEWER"])
def test_api_keys_lists_only_own_tenant_keys(
    tenant: TenantHandle, victim: Victim, mongo: Any, settings: Any, role: str
) -> None:
    client = client_for(tenant, role)
    keys = client("{ apiKeys { id tenant } }").data["apiKeys"]
    assert {k["tenant"] for k in keys} == {tenant.code}
    assert {k["id"] for k in keys} == key_ids_of(tenant.code, mongo, settings)


def test_same_action_name_and_parameter_tag_in_two_tenants_do_not_conflict(
    tenant: TenantHandle, victim: Victim, mongo: Any, settings: Any
) -> None:
    before = b_state(victim.handle, mongo, settings)
    tenant.admin(CREATE_ACTION, input={"name": victim.action_name,
                                       "url": "http://127.0.0.1:9/a"}).data
    tenant.admin(CREATE_PARAMETER, input={"tag": victim.tag, "value": "a-value"}).data
    assert [a["name"] for a in tenant.admin(ACTIONS).data["actions"]] == [victim.action_name]
    assert b_state(victim.handle, mongo, settings) == before
