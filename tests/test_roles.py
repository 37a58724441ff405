"""The role matrix: every served operation × every role, and how a request is authenticated.

Who may do what (design.md, "Access"; the contract's comments):
    me                                              any role
    events, event, settings, actions, action,
    parameters, apiKeys                             SYSTEM_ADMIN, TENANT_ADMIN, VIEWER
    tenants, createTenant, setEventManagerEnabled   SYSTEM_ADMIN
    every other mutation                            SYSTEM_ADMIN, TENANT_ADMIN
A SYSTEM_ADMIN acts inside a tenant through ``X-Tenant``. The expectations are spelled
out here rather than imported from the resolvers, so that a change there shows up here.

Each operation is a small function that prepares what it needs in the tenant (with the
admin key) and returns the call to make with the role's client, so that a refused call
can be checked against a snapshot taken right before it.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import bson
import pytest
from bson import ObjectId

from tests.conftest import Client, Reply, TenantHandle

COLLECTION_SCHEMA = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"

SYSTEM_ADMIN, TENANT_ADMIN, PBX, VIEWER = "SYSTEM_ADMIN", "TENANT_ADMIN", "PBX", "VIEWER"
ROLES = (SYSTEM_ADMIN, TENANT_ADMIN, PBX, VIEWER)
ANYONE = frozenset(ROLES)
READERS = frozenset({SYSTEM_ADMIN, TENANT_ADMIN, VIEWER})
WRITERS = frozenset({SYSTEM_ADMIN, TENANT_ADMIN})
SYSTEM_ONLY = frozenset({SYSTEM_ADMIN})
TRIGGERERS = frozenset({SYSTEM_ADMIN, TENANT_ADMIN, PBX})

Call = Callable[[Client], Reply]
Prepare = Callable[[TenantHandle], Call]


class Operation:
    def __init__(self, name: str, allowed: frozenset[str], prepare: Prepare, tenant_data: bool):
        self.name = name
        self.allowed = allowed
        self.prepare = prepare
        self.tenant_data = tenant_data
        """True when the operation reads or writes the data of the tenant acted in."""


OPERATIONS: dict[str, Operation] = {}


def operation(name: str, allowed: frozenset[str], *, tenant_data: bool = True):
    def register(prepare: Prepare) -> Prepare:
        OPERATIONS[name] = Operation(name, allowed, prepare, tenant_data)
        return prepare
    return register


def unique(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(4)}"


def action_input(name: str | None = None) -> dict[str, Any]:
    return {"name": name or unique("action-"), "url": "http://127.0.0.1:9/hook"}


def parameter_input(tag: str | None = None) -> dict[str, Any]:
    return {"tag": tag or unique("tag_"), "value": unique("value-")}


CREATE_ACTION = "mutation($input: ActionInput!) { createAction(input: $input) { id name } }"
CREATE_PARAMETER = ("mutation($input: ParameterInput!) { createParameter(input: $input) "
                    "{ tag value } }")
CREATE_KEY = """mutation($role: Role!, $tenant: String) {
    createApiKey(role: $role, label: "roles", tenant: $tenant) { key info { id tenant role } } }"""
REVOKE_KEY = "mutation($id: ID!) { revokeApiKey(id: $id) }"
ME = "{ me { tenant role } }"


def new_action(t: TenantHandle) -> str:
    return t.admin(CREATE_ACTION, input=action_input()).data["createAction"]["id"]


def new_parameter(t: TenantHandle) -> str:
    return t.admin(CREATE_PARAMETER, input=parameter_input()).data["createParameter"]["tag"]


def new_key(t: TenantHandle, role: str = VIEWER) -> tuple[str, str]:
    """A key of the tenant, made by the system key: (key, id)."""
    made = t.system(CREATE_KEY, role=role, tenant=t.code).data["createApiKey"]
    return made["key"], made["info"]["id"]


# queries ---------------------------------------------------------------------

@operation("me", ANYONE, tenant_data=False)
def op_me(t: TenantHandle) -> Call:
    return lambda c: c(ME)


@operation("events", READERS)
def op_events(t: TenantHandle) -> Call:
    return lambda c: c("{ events { type active effectiveActive actions { id } } }")


@operation("event", READERS)
def op_event(t: TenantHandle) -> Call:
    return lambda c: c("{ event(type: INCOMING_CALL) { type active actions { id } } }")


@operation("settings", READERS)
def op_settings(t: TenantHandle) -> Call:
    return lambda c: c("{ settings { actionsEnabled timezone } }")


@operation("actions", READERS)
def op_actions(t: TenantHandle) -> Call:
    new_action(t)
    return lambda c: c("{ actions { id name } }")


@operation("action", READERS)
def op_action(t: TenantHandle) -> Call:
    action_id = new_action(t)
    return lambda c: c("query($id: ID!) { action(id: $id) { id name } }", id=action_id)


@operation("parameters", READERS)
def op_parameters(t: TenantHandle) -> Call:
    new_parameter(t)
    return lambda c: c("{ parameters { tag value system } }")


@operation("tenants", SYSTEM_ONLY, tenant_data=False)
def op_tenants(t: TenantHandle) -> Call:
    return lambda c: c("{ tenants { code eventManagerEnabled } }")


@operation("apiKeys", READERS, tenant_data=False)
def op_api_keys(t: TenantHandle) -> Call:
    return lambda c: c("{ apiKeys { id tenant role revoked } }")


@operation("auditLog", WRITERS, tenant_data=False)
def op_audit_log(t: TenantHandle) -> Call:
    """Readable while the tenant is switched off (who switched it off is in it); its
    X-Tenant checks are in tests/test_audit.py."""
    return lambda c: c("{ auditLog { items { operation actor { label } } nextCursor } }")


# mutations -------------------------------------------------------------------

@operation("updateSettings", WRITERS)
def op_update_settings(t: TenantHandle) -> Call:
    return lambda c: c("""mutation { updateSettings(input: {actionsEnabled: true,
                          timezone: "Europe/Berlin"}) { actionsEnabled timezone } }""")


@operation("updateEvent", WRITERS)
def op_update_event(t: TenantHandle) -> Call:
    action_id = new_action(t)
    return lambda c: c("""mutation($ids: [ID!]) { updateEvent(type: INCOMING_CALL,
                          input: {active: true, actionIds: $ids}) { active actions { id } } }""",
                       ids=[action_id])


@operation("createAction", WRITERS)
def op_create_action(t: TenantHandle) -> Call:
    return lambda c: c(CREATE_ACTION, input=action_input())


@operation("updateAction", WRITERS)
def op_update_action(t: TenantHandle) -> Call:
    action_id = new_action(t)
    return lambda c: c("""mutation($id: ID!, $input: ActionInput!) {
                          updateAction(id: $id, input: $input) { id name } }""",
                       id=action_id, input=action_input())


@operation("deleteAction", WRITERS)
def op_delete_action(t: TenantHandle) -> Call:
    action_id = new_action(t)
    return lambda c: c("mutation($id: ID!) { deleteAction(id: $id) }", id=action_id)


@operation("setActionEnabled", WRITERS)
def op_set_action_enabled(t: TenantHandle) -> Call:
    action_id = new_action(t)
    return lambda c: c("""mutation($id: ID!) { setActionEnabled(id: $id, enabled: false) {
                          health { state } } }""", id=action_id)


@operation("createParameter", WRITERS)
def op_create_parameter(t: TenantHandle) -> Call:
    return lambda c: c(CREATE_PARAMETER, input=parameter_input())


@operation("updateParameter", WRITERS)
def op_update_parameter(t: TenantHandle) -> Call:
    tag = new_parameter(t)
    return lambda c: c("""mutation($tag: String!, $input: ParameterInput!) {
                          updateParameter(tag: $tag, input: $input) { tag value } }""",
                       tag=tag, input=parameter_input(tag))


@operation("deleteParameter", WRITERS)
def op_delete_parameter(t: TenantHandle) -> Call:
    tag = new_parameter(t)
    return lambda c: c("mutation($tag: String!) { deleteParameter(tag: $tag) }", tag=tag)


@operation("createTenant", SYSTEM_ONLY, tenant_data=False)
def op_create_tenant(t: TenantHandle) -> Call:
    code = unique("t")
    return lambda c: c("mutation($c: String!) { createTenant(code: $c, name: $c) { code } }",
                       c=code)


@operation("setEventManagerEnabled", SYSTEM_ONLY, tenant_data=False)
def op_set_event_manager_enabled(t: TenantHandle) -> Call:
    return lambda c: c("""mutation($c: String!) { setEventManagerEnabled(code: $c,
                          enabled: false) { code eventManagerEnabled } }""", c=t.code)


@operation("createApiKey", WRITERS, tenant_data=False)
def op_create_api_key(t: TenantHandle) -> Call:
    return lambda c: c(CREATE_KEY, role=VIEWER, tenant=t.code)


@operation("revokeApiKey", WRITERS, tenant_data=False)
def op_revoke_api_key(t: TenantHandle) -> Call:
    _, key_id = new_key(t)
    return lambda c: c(REVOKE_KEY, id=key_id)


@operation("activity", READERS)
def op_activity(t: TenantHandle) -> Call:
    return lambda c: c("{ activity(first: 5) { items { id status } nextCursor } }")


@operation("activityStats", READERS)
def op_activity_stats(t: TenantHandle) -> Call:
    return lambda c: c('{ activityStats(since: "2026-01-01T00:00:00Z", '
                       'until: "2026-01-01T01:00:00Z") { since buckets { start succeeded } '
                       'actions { actionId } } }')


@operation("triggerEvent", TRIGGERERS)
def op_trigger_event(t: TenantHandle) -> Call:
    return lambda c: c("""mutation { triggerEvent(input: {event: HANGUP,
                          params: {caller_id: "100"}}) { triggerId accepted } }""")


@operation("triggerEvents", TRIGGERERS)
def op_trigger_events(t: TenantHandle) -> Call:
    return lambda c: c("""mutation { triggerEvents(inputs: [{event: HANGUP}, {event: RINGING}])
                          { triggerId event } }""")


@operation("testEvent", WRITERS)
def op_test_event(t: TenantHandle) -> Call:
    return lambda c: c("mutation { testEvent(event: RINGING) { triggerId source } }")


@operation("retryActivity", WRITERS)
def op_retry_activity(t: TenantHandle) -> Call:
    """A FAILED row written directly: the matrix must not depend on a worker."""
    now = datetime.now(UTC)
    row_id = ObjectId()
    t.collection("activity").insert_one({
        "_id": row_id, "trigger_id": str(ObjectId()), "event": "HANGUP", "source": "SYSTEM",
        "action_id": new_action(t), "action_name": "a", "status": "FAILED",
        "message": "404 Not Found; not retried", "attempts": 1, "cycle_start": 0,
        "http_status": 404, "request": None, "response_snippet": None,
        "unresolved_parameters": [], "params": {}, "occurred_at": now, "created_at": now,
        "updated_at": now, "next_attempt_at": None})
    return lambda c: c("mutation($id: ID!) { retryActivity(id: $id) { id status } }",
                       id=str(row_id))


POSTMAN = json.dumps({
    "info": {"name": "roles", "schema": COLLECTION_SCHEMA},
    "item": [{"name": "ping", "request": {"method": "POST", "url": "http://127.0.0.1:9/{{x}}"}}],
    "variable": [{"key": "x", "value": "ping"}],
})


@operation("postmanRequests", READERS)
def op_postman_requests(t: TenantHandle) -> Call:
    return lambda c: c("query($c: String!) { postmanRequests(collection: $c) { ref name } }",
                       c=POSTMAN)


@operation("postmanCollection", READERS)
def op_postman_collection(t: TenantHandle) -> Call:
    return lambda c: c("query($c: String!) { postmanCollection(collection: $c) "
                       "{ name requests { ref } newVariables { key } } }", c=POSTMAN)


@operation("importPostmanCollection", WRITERS)
def op_import_postman(t: TenantHandle) -> Call:
    return lambda c: c("mutation($c: String!) { importPostmanCollection(collection: $c, "
                       "onConflict: RENAME) { imported { id name origin } } }", c=POSTMAN)


@operation("masterActions", READERS)
def op_master_actions(t: TenantHandle) -> Call:
    return lambda c: c("{ masterActions { id name } }")


@operation("importMasterActions", WRITERS)
def op_import_master_actions(t: TenantHandle) -> Call:
    """An action of the Master tenant (which the autouse ``master`` fixture makes sure of)."""
    system = Client(t.system.url, t.system.key, None, t.system.http)
    [code] = [x["code"] for x in system("{ tenants { code master } }").data["tenants"]
              if x["master"]]
    action_id = system.acting_in(code)(CREATE_ACTION, input=action_input()).data[
        "createAction"]["id"]
    return lambda c: c("mutation($ids: [ID!]!) { importMasterActions(ids: $ids, "
                       "onConflict: RENAME) { imported { id origin } } }", ids=[action_id])


@pytest.fixture(autouse=True)
def _master_exists(master: TenantHandle) -> None:
    """importMasterActions needs a Master tenant; there is one per run."""


TENANT_DATA = [name for name, op in OPERATIONS.items() if op.tenant_data]
ALLOWED = [(name, role) for name, op in OPERATIONS.items() for role in ROLES
           if role in op.allowed]
REFUSED = [(name, role) for name, op in OPERATIONS.items() for role in ROLES
           if role not in op.allowed]


def cell_id(cell: tuple[str, str]) -> str:
    return f"{cell[0]}-{cell[1]}"


# helpers ---------------------------------------------------------------------

def client_for(t: TenantHandle, role: str) -> Client:
    """The role's client acting in the tenant: the system key with X-Tenant, else a key of it."""
    if role == SYSTEM_ADMIN:
        return t.system
    if role == TENANT_ADMIN:
        return t.admin
    return t.key(role)


def state(t: TenantHandle, mongo: Any, settings: Any) -> list[bytes]:
    """Every document of the tenant, plus the registry and all API keys, as BSON bytes."""
    system = mongo[settings.system_database]
    docs = [doc for kind in t.snapshot().values() for doc in kind]
    docs += list(system["tenants"].find({}).sort("_id", 1))
    docs += list(system["api_keys"].find({}).sort("_id", 1))
    return [bson.encode(doc) for doc in docs]


def set_enabled(t: TenantHandle, enabled: bool) -> None:
    t.system("""mutation($c: String!, $e: Boolean!) { setEventManagerEnabled(code: $c,
                enabled: $e) { code } }""", c=t.code, e=enabled).data


def no_key(t: TenantHandle) -> Client:
    return Client(t.admin.url, None)


# the matrix ------------------------------------------------------------------

def test_matrix_covers_every_served_operation() -> None:
    from graphql import build_schema

    from schema import schema

    served = build_schema(schema.as_str())
    names = set(served.query_type.fields) | set(served.mutation_type.fields)
    assert names == set(OPERATIONS), "add new operations to the role matrix"


@pytest.mark.parametrize(("name", "role"), ALLOWED, ids=map(cell_id, ALLOWED))
def test_role_may_call_operation(tenant: TenantHandle, name: str, role: str) -> None:
    client = client_for(tenant, role)
    call = OPERATIONS[name].prepare(tenant)
    reply = call(client)
    assert not reply.body.get("errors"), f"{name} as {role}: {reply.body['errors']}"
    assert reply.data[name] is not None


@pytest.mark.parametrize(("name", "role"), REFUSED, ids=map(cell_id, REFUSED))
def test_role_is_forbidden_and_changes_nothing(
    tenant: TenantHandle, mongo: Any, settings: Any, name: str, role: str
) -> None:
    client = client_for(tenant, role)
    call = OPERATIONS[name].prepare(tenant)
    before = state(tenant, mongo, settings)
    reply = call(client)
    assert reply.code == "FORBIDDEN", reply.body
    assert reply.body["data"] is None
    assert state(tenant, mongo, settings) == before


def test_me_names_the_role_and_tenant(tenant: TenantHandle) -> None:
    for role in ROLES:
        me = client_for(tenant, role)(ME).data["me"]
        assert me == {"role": role, "tenant": None if role == SYSTEM_ADMIN else tenant.code}


# createApiKey and revokeApiKey for a TENANT_ADMIN ----------------------------

@pytest.mark.parametrize("own_code", [False, True], ids=["tenant-omitted", "tenant-own"])
@pytest.mark.parametrize("role", [TENANT_ADMIN, PBX, VIEWER])
def test_tenant_admin_creates_keys_of_its_own_tenant(
    tenant: TenantHandle, role: str, own_code: bool
) -> None:
    made = tenant.admin(CREATE_KEY, role=role,
                        tenant=tenant.code if own_code else None).data["createApiKey"]
    assert made["info"]["tenant"] == tenant.code
    assert made["info"]["role"] == role
    new = Client(tenant.admin.url, made["key"])
    assert new(ME).data["me"] == {"tenant": tenant.code, "role": role}


@pytest.mark.parametrize("own_code", [False, True], ids=["tenant-omitted", "tenant-own"])
def test_tenant_admin_cannot_create_a_system_admin_key(
    tenant: TenantHandle, mongo: Any, settings: Any, own_code: bool
) -> None:
    before = state(tenant, mongo, settings)
    reply = tenant.admin(CREATE_KEY, role=SYSTEM_ADMIN, tenant=tenant.code if own_code else None)
    assert reply.code == "FORBIDDEN", reply.body
    assert state(tenant, mongo, settings) == before


@pytest.mark.parametrize("role", [TENANT_ADMIN, PBX, VIEWER])
def test_tenant_admin_cannot_create_keys_for_another_tenant(
    tenant: TenantHandle, other_tenant: TenantHandle, mongo: Any, settings: Any, role: str
) -> None:
    before = state(other_tenant, mongo, settings)
    reply = tenant.admin(CREATE_KEY, role=role, tenant=other_tenant.code)
    assert reply.code == "FORBIDDEN", reply.body
    assert state(other_tenant, mongo, settings) == before


def test_tenant_admin_revokes_a_key_of_its_own_tenant(tenant: TenantHandle) -> None:
    key, key_id = new_key(tenant, PBX)
    assert Client(tenant.admin.url, key)(ME).data["me"]["role"] == PBX
    assert tenant.admin(REVOKE_KEY, id=key_id).data["revokeApiKey"] is True
    assert Client(tenant.admin.url, key)(ME).code == "UNAUTHENTICATED"


def test_tenant_admin_cannot_revoke_another_tenants_key(
    tenant: TenantHandle, other_tenant: TenantHandle, mongo: Any, settings: Any
) -> None:
    key, key_id = new_key(other_tenant, TENANT_ADMIN)
    before = state(other_tenant, mongo, settings)
    reply = tenant.admin(REVOKE_KEY, id=key_id)
    assert reply.code == "NOT_FOUND", reply.body
    assert state(other_tenant, mongo, settings) == before
    assert Client(tenant.admin.url, key)(ME).data["me"]["tenant"] == other_tenant.code


def test_tenant_admin_cannot_revoke_a_system_key(
    tenant: TenantHandle, system: Client, mongo: Any, settings: Any
) -> None:
    made = system(CREATE_KEY, role=SYSTEM_ADMIN, tenant=None).data["createApiKey"]
    before = state(tenant, mongo, settings)
    reply = tenant.admin(REVOKE_KEY, id=made["info"]["id"])
    assert reply.code == "NOT_FOUND", reply.body
    assert state(tenant, mongo, settings) == before
    assert Client(system.url, made["key"])(ME).data["me"]["role"] == SYSTEM_ADMIN


# authentication --------------------------------------------------------------

@pytest.mark.parametrize("name", list(OPERATIONS))
def test_no_key_is_unauthenticated(
    tenant: TenantHandle, mongo: Any, settings: Any, name: str
) -> None:
    call = OPERATIONS[name].prepare(tenant)
    before = state(tenant, mongo, settings)
    reply = call(no_key(tenant))
    assert reply.code == "UNAUTHENTICATED", reply.body
    assert state(tenant, mongo, settings) == before


@pytest.mark.parametrize("key", [
    "em_" + "A" * 43,
    "em_",
    "not-an-api-key",
    "em_" + "x" * 500,
], ids=["well-formed-unknown", "prefix-only", "no-prefix", "too-long"])
def test_garbage_key_is_unauthenticated(tenant: TenantHandle, key: str) -> None:
    client = Client(tenant.admin.url, key)
    assert client(ME).code == "UNAUTHENTICATED"
    assert client("{ actions { id } }").code == "UNAUTHENTICATED"


INTROSPECTIONS = [
    "{ __schema { queryType { name } } }",
    '{ __type(name: "Action") { fields { name } } }',
    "{ me { role } ...F } fragment F on Query { __schema { types { name } } }",
    "query { __typename a: __type(name: \"Query\") { name } }",
]


@pytest.mark.parametrize("query", INTROSPECTIONS)
@pytest.mark.parametrize("key", [None, "em_" + "C" * 43], ids=["no-key", "unknown-key"])
def test_introspection_needs_a_key(tenant: TenantHandle, query: str, key: str | None) -> None:
    """The schema describes itself only to a caller with a valid key, however the
    document asks (fragment, alias, beside other fields); ``__typename`` alone tells
    nothing and is answered, as it is with a key."""
    reply = Client(tenant.admin.url, key)(query)
    assert reply.code == "UNAUTHENTICATED", reply.body
    assert reply.body.get("data") is None
    assert Client(tenant.admin.url, key)("{ __typename }").body == {"data": {"__typename": "Query"}}
    assert "errors" not in tenant.admin(query).body


def test_garbage_key_with_x_tenant_is_unauthenticated(tenant: TenantHandle) -> None:
    client = Client(tenant.admin.url, "em_" + "B" * 43, tenant.code)
    assert client("{ actions { id } }").code == "UNAUTHENTICATED"


@pytest.mark.parametrize("role", [TENANT_ADMIN, PBX, VIEWER])
def test_revoked_key_is_unauthenticated(
    tenant: TenantHandle, mongo: Any, settings: Any, role: str
) -> None:
    key, key_id = new_key(tenant, role)
    tenant.system(REVOKE_KEY, id=key_id).data
    client = Client(tenant.admin.url, key)
    before = state(tenant, mongo, settings)
    assert client(ME).code == "UNAUTHENTICATED"
    assert client("{ actions { id } }").code == "UNAUTHENTICATED"
    assert client(CREATE_ACTION, input=action_input()).code == "UNAUTHENTICATED"
    assert state(tenant, mongo, settings) == before


def test_revoked_system_key_is_unauthenticated(system: Client, tenant: TenantHandle) -> None:
    made = system(CREATE_KEY, role=SYSTEM_ADMIN, tenant=None).data["createApiKey"]
    system(REVOKE_KEY, id=made["info"]["id"]).data
    client = Client(system.url, made["key"], tenant.code)
    assert client(ME).code == "UNAUTHENTICATED"
    assert client("{ tenants { code } }").code == "UNAUTHENTICATED"


# X-Tenant for system keys ----------------------------------------------------

@pytest.mark.parametrize("name", TENANT_DATA)
def test_system_key_without_x_tenant_must_name_one(
    tenant: TenantHandle, system: Client, mongo: Any, settings: Any, name: str
) -> None:
    call = OPERATIONS[name].prepare(tenant)
    before = state(tenant, mongo, settings)
    reply = call(system)
    assert reply.code == "BAD_USER_INPUT", reply.body
    assert reply.error["extensions"]["field"] == "X-Tenant"
    assert state(tenant, mongo, settings) == before


@pytest.mark.parametrize("name", [*TENANT_DATA, "apiKeys"])
def test_system_key_with_unknown_x_tenant_is_not_found(
    tenant: TenantHandle, system: Client, mongo: Any, settings: Any, name: str
) -> None:
    call = OPERATIONS[name].prepare(tenant)
    before = state(tenant, mongo, settings)
    reply = call(system.acting_in(unique("nosuch")))
    assert reply.code == "NOT_FOUND", reply.body
    assert state(tenant, mongo, settings) == before


# a tenant with the Event Manager disabled ------------------------------------

DISABLED = [(name, role) for name in TENANT_DATA for role in ROLES
            if role in OPERATIONS[name].allowed]


@pytest.mark.parametrize(("name", "role"), DISABLED, ids=map(cell_id, DISABLED))
def test_disabled_tenant_refuses_tenant_data(
    tenant: TenantHandle, mongo: Any, settings: Any, name: str, role: str
) -> None:
    client = client_for(tenant, role)
    call = OPERATIONS[name].prepare(tenant)
    set_enabled(tenant, False)
    before = state(tenant, mongo, settings)
    reply = call(client)
    assert reply.code == "FEATURE_DISABLED", reply.body
    assert state(tenant, mongo, settings) == before


@pytest.mark.parametrize("role", ROLES)
def test_me_works_in_a_disabled_tenant(tenant: TenantHandle, role: str) -> None:
    client = client_for(tenant, role)
    set_enabled(tenant, False)
    me = client(ME).data["me"]
    assert me["role"] == role


def test_reenabled_tenant_serves_its_data_again(tenant: TenantHandle) -> None:
    action_id = new_action(tenant)
    set_enabled(tenant, False)
    assert tenant.admin("{ actions { id } }").code == "FEATURE_DISABLED"
    set_enabled(tenant, True)
    assert tenant.admin("{ actions { id } }").data["actions"] == [{"id": action_id}]
