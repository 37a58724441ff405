"""Tenants, the Event Manager switch, API keys and the caller's identity."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId

from event_manager.config import Settings
from tests.conftest import Client, TenantHandle

TENANT_FIELDS = "code name master eventManagerEnabled createdAt"


def test_create_tenant_starts_disabled_and_is_listed(system: Client, mongo: Any,
                                                     settings: Any) -> None:
    code = f"t{secrets.token_hex(4)}"
    reply = system(f"mutation($c: String!) {{ createTenant(code: $c, name: \"Acme Ltd\") "
                   f"{{ {TENANT_FIELDS} }} }}", c=code)
    tenant = reply.data["createTenant"]
    assert (tenant["code"], tenant["name"], tenant["master"], tenant["eventManagerEnabled"]) == (
        code, "Acme Ltd", False, False)
    listed = system(f"{{ tenants {{ {TENANT_FIELDS} }} }}").data["tenants"]
    assert tenant in listed
    names = mongo[settings.tenant_database].list_collection_names()
    assert {f"t_{code}_{k}" for k in ("events", "settings", "actions", "parameters",
                                      "activity", "idempotency")} <= set(names)


def test_tenant_indexes_are_made_at_creation(tenant: TenantHandle) -> None:
    actions = tenant.collection("actions").index_information()
    assert any(i.get("unique") and i["key"] == [("name_key", 1)] for i in actions.values())
    params = tenant.collection("parameters").index_information()
    assert any(i.get("unique") and i["key"] == [("tag_key", 1)] for i in params.values())


def test_activity_is_indexed_only_where_the_server_reads_the_indexes(
        tenant: TenantHandle, mongo: Any, settings: Settings) -> None:
    """FerretDB on SQLite filters only by _id in storage (explain: filterPushdown false);
    there an index on another field is never read and only slows each write."""
    plan = mongo[settings.system_database].command(
        "explain", {"find": "tenants", "filter": {"code": "?"}})
    used = plan.get("filterPushdown", True)
    activity = {tuple(i["key"]) for i in tenant.collection("activity").index_information()
                .values()}
    claims = {tuple(i["key"]) for i in tenant.collection("claims").index_information().values()}
    assert ((("created_at", -1), ("_id", -1)) in activity) is used
    assert ((("trigger_id", 1),) in activity) is used
    assert ((("at", 1),) in claims) is used
    assert {f"t_{tenant.code}_{k}" for k in ("activity", "idempotency", "claims")} <= set(
        mongo[settings.tenant_database].list_collection_names())


def test_tenant_codes_are_validated(system: Client) -> None:
    for bad in ("", "UPPER", "-dash-first", "a" * 33, "has space", "dot.ted", "t_$x"):
        reply = system("mutation($c: String!) { createTenant(code: $c, name: \"x\") { code } }",
                       c=bad)
        assert reply.code == "BAD_USER_INPUT" and reply.error["extensions"]["field"] == "code"


def test_duplicate_tenant_code_is_a_conflict(system: Client, tenant: TenantHandle) -> None:
    reply = system("mutation($c: String!) { createTenant(code: $c, name: \"x\") { code } }",
                   c=tenant.code)
    assert reply.code == "CONFLICT"


def test_only_one_master_tenant(system: Client, mongo: Any, settings: Any) -> None:
    existing = system("{ tenants { master } }").data["tenants"]
    if not any(t["master"] for t in existing):
        code = f"m{secrets.token_hex(4)}"
        reply = system("mutation($c: String!) { createTenant(code: $c, name: \"Master\", "
                       "master: true) { master } }", c=code)
        assert reply.data["createTenant"]["master"] is True
    reply = system("mutation($c: String!) { createTenant(code: $c, name: \"M2\", master: true) "
                   "{ code } }", c=f"m{secrets.token_hex(4)}")
    assert reply.code == "CONFLICT" and reply.error["extensions"]["field"] == "master"


def test_enabling_and_disabling_the_event_manager(tenant: TenantHandle) -> None:
    set_enabled = "mutation($c: String!, $e: Boolean!) { setEventManagerEnabled(code: $c, " \
                  "enabled: $e) { eventManagerEnabled } }"
    reply = tenant.system(set_enabled, c=tenant.code, e=False)
    assert reply.data["setEventManagerEnabled"]["eventManagerEnabled"] is False
    assert tenant.admin("{ events { type } }").code == "FEATURE_DISABLED"
    tenant.system(set_enabled, c=tenant.code, e=True).data
    assert len(tenant.admin("{ events { type } }").data["events"]) == 5
    assert tenant.system(set_enabled, c="nosuchtenant", e=True).code == "NOT_FOUND"


def test_me_names_role_and_tenant(tenant: TenantHandle, system: Client) -> None:
    assert tenant.admin("{ me { role tenant } }").data["me"] == {
        "role": "TENANT_ADMIN", "tenant": tenant.code}
    assert system("{ me { role tenant } }").data["me"] == {"role": "SYSTEM_ADMIN",
                                                         "tenant": None}
    assert tenant.key("PBX")("{ me { role } }").data["me"]["role"] == "PBX"


def test_a_new_key_is_shown_once_and_stored_as_a_hash(tenant: TenantHandle, mongo: Any,
                                                      settings: Any) -> None:
    reply = tenant.admin('mutation { createApiKey(role: VIEWER, label: "wallboard") '
                         '{ key info { id tenant role label prefix revoked createdAt } } }')
    created = reply.data["createApiKey"]
    key, info = created["key"], created["info"]
    assert key.startswith("em_") and len(key) > 40
    assert info["tenant"] == tenant.code and info["role"] == "VIEWER"
    assert info["prefix"] == key[:10] and info["revoked"] is False
    stored = list(mongo[settings.system_database]["api_keys"].find({"label": "wallboard",
                                                                    "tenant": tenant.code}))
    assert len(stored) == 1 and key not in str(stored[0])
    listed = tenant.admin("{ apiKeys { id prefix label } }").body
    assert key not in str(listed) and info["prefix"] in str(listed)


def test_a_revoked_key_stops_working_at_once(tenant: TenantHandle) -> None:
    reply = tenant.admin('mutation { createApiKey(role: PBX, label: "pbx-1") { key info { id } } }')
    created = reply.data["createApiKey"]
    pbx = Client(tenant.admin.url, created["key"])
    assert pbx("{ me { role } }").data["me"]["role"] == "PBX"
    assert tenant.admin("mutation($id: ID!) { revokeApiKey(id: $id) }",
                        id=created["info"]["id"]).data["revokeApiKey"] is True
    assert pbx("{ me { role } }").code == "UNAUTHENTICATED"
    keys = tenant.admin("{ apiKeys { id revoked } }").data["apiKeys"]
    assert {"id": created["info"]["id"], "revoked": True} in keys


def test_create_api_key_checks_role_and_tenant(tenant: TenantHandle, system: Client) -> None:
    reply = system('mutation { createApiKey(role: SYSTEM_ADMIN, label: "x", tenant: "abc") '
                   '{ key } }')
    assert reply.code == "BAD_USER_INPUT" and reply.error["extensions"]["field"] == "tenant"
    reply = system('mutation { createApiKey(role: PBX, label: "x") { key } }')
    assert reply.code == "BAD_USER_INPUT" and reply.error["extensions"]["field"] == "tenant"
    reply = system('mutation { createApiKey(role: PBX, label: "x", tenant: "nosuch") { key } }')
    assert reply.code == "NOT_FOUND"
    reply = system('mutation($t: String) { createApiKey(role: PBX, label: "  ", tenant: $t) '
                   '{ key } }', t=tenant.code)
    assert reply.code == "BAD_USER_INPUT" and reply.error["extensions"]["field"] == "label"


def test_a_system_key_acts_in_a_tenant_through_x_tenant(tenant: TenantHandle,
                                                        system: Client) -> None:
    tenant.admin('mutation { createAction(input: {name: "Mine", url: "https://e.com"}) '
                 '{ id } }').data
    assert system.acting_in(tenant.code)("{ actions { name } }").data["actions"] == [
        {"name": "Mine"}]
    reply = system("{ actions { name } }")
    assert reply.code == "BAD_USER_INPUT" and reply.error["extensions"]["field"] == "X-Tenant"
    assert system.acting_in("nosuchtenant")("{ actions { name } }").code == "NOT_FOUND"


def test_a_key_made_before_the_hash_index_still_works_and_revokes(
        tenant: TenantHandle, mongo: Any, settings: Any) -> None:
    created = tenant.admin('mutation { createApiKey(role: PBX, label: "old pbx") '
                           '{ key info { id } } }').data["createApiKey"]
    hashes = mongo[settings.system_database]["api_key_hashes"]
    [entry] = hashes.find({"key_id": ObjectId(created["info"]["id"])})
    hashes.delete_one({"_id": entry["_id"]})  # as if made by an earlier version
    pbx = Client(tenant.admin.url, created["key"])
    assert pbx("{ me { role } }").data["me"]["role"] == "PBX"
    assert hashes.find_one({"_id": entry["_id"]})["revoked"] is False  # indexed on use
    hashes.delete_one({"_id": entry["_id"]})
    tenant.admin("mutation($id: ID!) { revokeApiKey(id: $id) }", id=created["info"]["id"]).data
    assert pbx("{ me { role } }").code == "UNAUTHENTICATED"


def test_a_tenant_registered_by_an_earlier_version_is_still_found(
        system: Client, mongo: Any, settings: Any) -> None:
    """Tenants once had ObjectId ids; now their code is the id (an indexed lookup)."""
    code = f"legacy{secrets.token_hex(3)}"
    mongo[settings.system_database]["tenants"].insert_one({
        "_id": ObjectId(), "code": code, "name": "Legacy", "master": False,
        "event_manager_enabled": False, "created_at": datetime.now(UTC)})
    reply = system("mutation($c: String!) { setEventManagerEnabled(code: $c, enabled: true) "
                   "{ code eventManagerEnabled } }", c=code)
    assert reply.data["setEventManagerEnabled"] == {"code": code, "eventManagerEnabled": True}
    settings_ = system.acting_in(code)("{ settings { timezone } }").data["settings"]
    assert settings_ == {"timezone": "UTC"}


def test_the_api_keeps_an_accepted_key_until_a_key_is_revoked(
        tenant: TenantHandle, mongo: Any, settings: Settings, redis_client: Any) -> None:
    """A request reads no key from the database once its key was accepted: a change
    made behind the API's back shows only when the API_KEYS stamp changes, as
    revokeApiKey changes it (test_a_revoked_key_stops_working_at_once)."""
    created = tenant.admin('mutation { createApiKey(role: PBX, label: "kept") '
                           '{ key info { id } } }').data["createApiKey"]
    pbx = Client(tenant.admin.url, created["key"])
    assert pbx("{ me { role } }").data["me"]["role"] == "PBX"
    mongo[settings.system_database]["api_key_hashes"].update_one(
        {"key_id": ObjectId(created["info"]["id"])}, {"$set": {"revoked": True}})

    assert pbx("{ me { role } }").data["me"]["role"] == "PBX"  # kept
    redis_client.set(f"{settings.database}:config:#api-keys", secrets.token_hex(8))
    assert pbx("{ me { role } }").code == "UNAUTHENTICATED"


def test_the_api_keeps_a_tenants_registration_until_it_changes(
        tenant: TenantHandle, system: Client, mongo: Any, settings: Settings,
        redis_client: Any) -> None:
    """As the keys: read once, then again after a stamp (setEventManagerEnabled's)."""
    assert tenant.admin("{ settings { timezone } }").data["settings"] == {"timezone": "UTC"}
    mongo[settings.system_database]["tenants"].update_one(
        {"_id": tenant.code}, {"$set": {"event_manager_enabled": False}})

    assert tenant.admin("{ settings { timezone } }").data["settings"] == {"timezone": "UTC"}
    redis_client.set(f"{settings.database}:config:{tenant.code}", secrets.token_hex(8))
    assert tenant.admin("{ settings { timezone } }").code == "FEATURE_DISABLED"

    system("mutation($c: String!) { setEventManagerEnabled(code: $c, enabled: true) "
           "{ code } }", c=tenant.code).data
    assert tenant.admin("{ settings { timezone } }").data["settings"] == {"timezone": "UTC"}
    system("mutation($c: String!) { setEventManagerEnabled(code: $c, enabled: false) "
           "{ code } }", c=tenant.code).data
    assert tenant.admin("{ settings { timezone } }").code == "FEATURE_DISABLED"
