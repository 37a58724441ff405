"""The audit trail: each successful change through the API writes one entry (who, what,
fields before and after, secrets masked), a refused one none; TENANT_ADMIN and
SYSTEM_ADMIN read it with ``auditLog``, others may not; housekeeping removes entries
past the activity's retention."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import schema  # noqa: F401 - first: the API imports resolvers.audit through it
from dispatch.recovery import housekeep
from event_manager.config import Settings
from resolvers.audit import audit_query
from schema.audit import AuditFilter
from tenants.activity import decode_cursor, row_id
from tenants.audit import AuditLog, matches
from tenants.database import Database, now
from tests.conftest import Client, TenantHandle, run_cli
from tests.test_imports import collection, master_action, request

ENTRIES = """query($first: Int, $after: String, $filter: AuditFilter) {
  auditLog(first: $first, after: $after, filter: $filter) {
    items { id at operation target { kind id name } actor { keyId label role }
            changes { field before after cut } }
    nextCursor } }"""
CREATE_ACTION = ("mutation($i: ActionInput!) { createAction(input: $i) { id name } }")
UPDATE_ACTION = ("mutation($id: ID!, $i: ActionInput!) { updateAction(id: $id, input: $i) "
                 "{ id } }")


def entries(client: Client, **variables: Any) -> list[dict[str, Any]]:
    return client(ENTRIES, **variables).data["auditLog"]["items"]


def only(client: Client, operation: str, target_id: str | None = None) -> dict[str, Any]:
    """The one entry of ``operation`` (on ``target_id``): there must be exactly one."""
    found = [e for e in entries(client, first=200) if e["operation"] == operation
             and target_id in (None, e["target"]["id"])]
    assert len(found) == 1, found
    return found[0]


def by_field(entry: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["field"]: c for c in entry["changes"]}


def admin_key_id(tenant: TenantHandle) -> str:
    return tenant.admin("{ apiKeys { id label role } }").data["apiKeys"][-1]["id"]


def test_action_changes_are_recorded_with_the_actor_and_secrets_masked(
        tenant: TenantHandle) -> None:
    made = tenant.admin(CREATE_ACTION, i={
        "name": "crm", "url": "https://crm.test/hook",
        "authorization": {"type": "BEARER_TOKEN", "token": "tok-secret-1"}}).data
    action_id = made["createAction"]["id"]
    tenant.admin(UPDATE_ACTION, id=action_id, i={
        "name": "crm", "url": "https://crm.test/v2",
        "authorization": {"type": "BEARER_TOKEN", "token": "tok-secret-2"}}).data
    tenant.admin("mutation($id: ID!) { deleteAction(id: $id) }", id=action_id).data

    created = only(tenant.admin, "createAction")
    assert created["target"] == {"kind": "action", "id": action_id, "name": "crm"}
    assert created["actor"] == {"keyId": admin_key_id(tenant), "label": "admin",
                                "role": "TENANT_ADMIN"}
    assert by_field(created)["auth.token"]["after"] == "********"
    updated = by_field(only(tenant.admin, "updateAction"))
    assert updated["url"] == {"field": "url", "before": "https://crm.test/hook",
                              "after": "https://crm.test/v2", "cut": False}
    assert updated["auth.token"]["before"] == updated["auth.token"]["after"] == "********"
    assert "name" not in updated
    deleted = only(tenant.admin, "deleteAction")
    assert by_field(deleted)["url"]["before"] == "https://crm.test/v2"
    assert by_field(deleted)["url"]["after"] is None
    text = str(tenant.collection("audit").find_one({"operation": "updateAction"}))
    assert "tok-secret" not in text
    assert [e["operation"] for e in entries(tenant.admin)][:3] == [
        "deleteAction", "updateAction", "createAction"]


def test_event_settings_and_parameters_are_recorded(tenant: TenantHandle) -> None:
    action_id = tenant.admin(CREATE_ACTION, i={"name": "a", "url": "https://a.test"}
                             ).data["createAction"]["id"]
    tenant.admin("mutation($ids: [ID!]) { updateEvent(type: HANGUP, "
                 "input: {active: true, actionIds: $ids}) { type } }", ids=[action_id]).data
    tenant.admin('mutation { updateSettings(input: {timezone: "Europe/Berlin"}) '
                 "{ timezone } }").data
    tenant.admin('mutation { createParameter(input: {tag: "pin", value: "1234", '
                 "secret: true}) { tag } }").data
    tenant.admin('mutation { updateParameter(tag: "pin", input: {tag: "pin", '
                 'value: "5678", secret: true}) { tag } }').data

    event = only(tenant.admin, "updateEvent")
    assert event["target"]["kind"] == "event" and event["target"]["id"] == "HANGUP"
    assert by_field(event)["actionIds"]["before"] == []
    assert by_field(event)["actionIds"]["after"] == [action_id]
    assert by_field(event)["active"]["after"] is True
    settings = by_field(only(tenant.admin, "updateSettings"))
    assert settings["timezone"]["before"] == "UTC"
    assert settings["timezone"]["after"] == "Europe/Berlin"
    created = by_field(only(tenant.admin, "createParameter"))
    assert created["value"]["after"] == "********" and created["secret"]["after"] is True
    updated = by_field(only(tenant.admin, "updateParameter"))
    assert updated["value"] == {"field": "value", "before": "********",
                                "after": "********", "cut": False}
    assert "1234" not in str(list(tenant.collection("audit").find({})))


def test_keys_and_tenant_switches_are_recorded_with_their_actor(
        tenant: TenantHandle) -> None:
    made = tenant.admin('mutation { createApiKey(role: PBX, label: "pbx one") '
                        "{ key info { id } } }").data["createApiKey"]
    key_id = made["info"]["id"]
    tenant.admin("mutation($id: ID!) { revokeApiKey(id: $id) }", id=key_id).data
    tenant.system("mutation($c: String!) { setEventManagerEnabled(code: $c, enabled: false) "
                  "{ code } }", c=tenant.code).data

    created = only(tenant.admin, "createApiKey", key_id)
    assert created["target"] == {"kind": "apiKey", "id": key_id, "name": "pbx one"}
    assert by_field(created)["hash"]["after"] == "********"
    assert by_field(created)["role"]["after"] == "PBX"
    assert made["key"] not in str(created)
    revoked = only(tenant.admin, "revokeApiKey")
    assert by_field(revoked)["revoked"] == {"field": "revoked", "before": False,
                                            "after": True, "cut": False}
    # readable while the tenant is switched off: who switched it off is in it
    switched = entries(tenant.admin)[0]  # the first one switched it on (the fixture)
    assert switched["operation"] == "setEventManagerEnabled"
    assert switched["actor"]["role"] == "SYSTEM_ADMIN"
    assert switched["actor"]["label"] == "tests"
    assert by_field(switched)["eventManagerEnabled"]["before"] is True
    assert by_field(switched)["eventManagerEnabled"]["after"] is False


def test_a_refused_or_failed_mutation_records_nothing(tenant: TenantHandle) -> None:
    tenant.admin(CREATE_ACTION, i={"name": "crm", "url": "https://crm.test"}).data
    viewer = tenant.key("VIEWER")
    before = entries(tenant.admin, first=200)
    assert tenant.admin(CREATE_ACTION, i={"name": "crm", "url": "https://x.test"}
                        ).code == "CONFLICT"
    assert tenant.admin(CREATE_ACTION, i={"name": "bad", "url": "ftp://x"}).code == "BAD_USER_INPUT"
    assert viewer('mutation { updateSettings(input: {timezone: "UTC"}) '
                                "{ timezone } }").code == "FORBIDDEN"
    assert tenant.admin('mutation { deleteParameter(tag: "nope") }').code == "NOT_FOUND"
    assert entries(tenant.admin, first=200) == before


def test_only_admins_read_and_only_their_own_tenant(tenant: TenantHandle,
                                                    other_tenant: TenantHandle) -> None:
    other_tenant.admin(CREATE_ACTION, i={"name": "theirs", "url": "https://b.test"}).data
    assert "theirs" not in str(entries(tenant.admin, first=200))
    assert only(other_tenant.system, "createAction")["target"]["name"] == "theirs"
    assert tenant.key("PBX")(ENTRIES).code == "FORBIDDEN"
    assert tenant.key("VIEWER")(ENTRIES).code == "FORBIDDEN"
    assert tenant.system.acting_in("nosuchtenant")(ENTRIES).field == "X-Tenant"
    # without X-Tenant a SYSTEM_ADMIN key reads the system's trail, not a tenant's
    assert "theirs" not in str(entries(tenant.system.acting_in(""), first=200))
    names = [f["name"] for f in tenant.admin(
        "{ __schema { mutationType { fields { name } } } }"
    ).data["__schema"]["mutationType"]["fields"]]
    assert not [n for n in names if "audit" in n.casefold()]


def test_pages_and_filters(tenant: TenantHandle) -> None:
    for i in range(5):
        tenant.admin(CREATE_ACTION, i={"name": f"a{i}", "url": "https://a.test"}).data
    tenant.admin('mutation { updateSettings(input: {actionsEnabled: true}) '
                 "{ actionsEnabled } }").data
    seen, after = [], None
    for _ in range(20):  # 9 entries: 5 pages
        page = tenant.admin(ENTRIES, first=2, after=after).data["auditLog"]
        assert len(page["items"]) <= 2
        seen += page["items"]
        after = page["nextCursor"]
        if after is None:
            break
    assert seen == entries(tenant.admin, first=200)
    assert [e["operation"] for e in seen[:6]] == ["updateSettings"] + ["createAction"] * 5
    filtered = entries(tenant.admin, filter={"operations": ["createAction"]})
    assert [e["target"]["name"] for e in filtered] == ["a4", "a3", "a2", "a1", "a0"]
    one = filtered[2]["target"]["id"]
    assert [e["target"]["name"] for e in
            entries(tenant.admin, filter={"targetKind": "action", "targetId": one})] == ["a2"]
    system_made = entries(tenant.admin, filter={"actorKeyId": admin_key_id(tenant)})
    assert {e["operation"] for e in system_made} == {"createAction", "updateSettings"}
    assert entries(tenant.admin, filter={"since": (now() + timedelta(hours=1)).isoformat()}
                   ) == []
    assert len(entries(tenant.admin, filter={"since": (now() - timedelta(hours=1)).isoformat(),
                                             "operations": ["createAction"]})) == 5
    assert entries(tenant.admin, filter={"until": (now() - timedelta(hours=1)).isoformat()}
                   ) == []
    window = {"since": now().isoformat(), "until": (now() - timedelta(hours=1)).isoformat()}
    assert tenant.admin(ENTRIES, filter=window).field == "filter.until"
    assert tenant.admin(ENTRIES, filter={"targetId": "x" * 201}).field == "filter.targetId"
    assert tenant.admin(ENTRIES, first=0).field == "first"
    assert tenant.admin(ENTRIES, first=201).field == "first"
    assert tenant.admin(ENTRIES, after="nonsense!").field == "after"


def test_long_values_are_cut_saying_so(tenant: TenantHandle) -> None:
    body = "x" * 5000
    tenant.admin(CREATE_ACTION, i={"name": "big", "url": "https://a.test",
                                   "bodyType": "RAW", "rawBody": body}).data
    change = by_field(only(tenant.admin, "createAction"))["rawBody"]
    assert change["cut"] is True
    assert change["after"].endswith("[cut, 5,002 bytes in all]")
    assert len(change["after"]) < 1100


def test_entries_past_the_retention_are_removed(tenant: TenantHandle,
                                                settings: Settings) -> None:
    tenant.admin('mutation { updateSettings(input: {actionsEnabled: true}) '
                 "{ actionsEnabled } }").data
    old = now() - timedelta(days=31)
    tenant.collection("audit").insert_one(
        {"_id": row_id(old), "at": old, "operation": "updateSettings",
         "target": {"kind": "settings", "id": None, "name": None},
         "actor": {"key_id": None, "label": "old", "role": None}, "changes": []})
    before = entries(tenant.admin, first=200)
    assert before[-1]["actor"]["label"] == "old"

    async def go() -> int:
        db = Database(settings)
        try:
            return await housekeep(db, 30)
        finally:
            await db.close()
    assert asyncio.run(go()) >= 1
    assert entries(tenant.admin, first=200) == before[:-1]


def test_imports_are_one_entry_each(tenant: TenantHandle, master: TenantHandle) -> None:
    text = collection(request("Create card"), request("Close card"), name="Cards")
    tenant.admin('mutation($c: String!) { importPostmanCollection(collection: $c) '
                 "{ imported { name } } }", c=text).data
    made = master_action(master)
    tenant.admin("mutation($ids: [ID!]!) { importMasterActions(ids: $ids) "
                 "{ imported { name } } }", ids=[made["id"]]).data

    postman = only(tenant.admin, "importPostmanCollection")
    assert postman["target"] == {"kind": "import", "id": None, "name": "Cards"}
    assert by_field(postman)["imported"]["after"] == ["Create card", "Close card"]
    catalog = only(tenant.admin, "importMasterActions")
    assert by_field(catalog)["imported"]["after"] == [made["name"]]
    assert not [e for e in entries(tenant.admin, first=200) if e["operation"] == "createAction"]


def test_a_key_made_on_the_command_line_is_recorded_as_cli(tenant: TenantHandle,
                                                           env: dict[str, str]) -> None:
    run_cli(env, "create-key", "--role", "VIEWER", "--label", "wallboard",
            "--tenant", tenant.code)
    # By name: the tenant's admin key may have been made in the same second, and entries
    # of one second written by two processes have no order between them.
    [made] = [e for e in entries(tenant.admin, filter={"operations": ["createApiKey"]})
              if e["target"]["name"] == "wallboard"]
    assert made["actor"] == {"keyId": None, "label": "cli", "role": None}


def test_system_admin_keys_are_recorded_in_the_systems_own_trail(
        tenant: TenantHandle, system: Client, env: dict[str, str], settings: Settings) -> None:
    made = system('mutation { createApiKey(role: SYSTEM_ADMIN, label: "ops two") '
                  "{ key info { id } } }").data["createApiKey"]
    key_id = made["info"]["id"]
    system("mutation($id: ID!) { revokeApiKey(id: $id) }", id=key_id).data
    run_cli(env, "create-key", "--role", "SYSTEM_ADMIN", "--label", "ops three")

    mine = [e for e in entries(system, first=200) if e["target"]["id"] == key_id]
    assert [e["operation"] for e in mine] == ["revokeApiKey", "createApiKey"]
    assert mine[1]["actor"]["label"] == "tests" and mine[1]["actor"]["role"] == "SYSTEM_ADMIN"
    assert by_field(mine[1])["role"]["after"] == "SYSTEM_ADMIN"
    assert by_field(mine[1])["hash"]["after"] == "********"
    assert made["key"] not in str(mine)
    assert by_field(mine[0])["revoked"]["after"] is True
    [cli] = [e for e in entries(system, filter={"operations": ["createApiKey"]}, first=200)
             if e["target"]["name"] == "ops three"]
    assert cli["actor"] == {"keyId": None, "label": "cli", "role": None}
    # no tenant sees them, and a tenant's key changes stay in the tenant's trail
    assert key_id not in str(entries(tenant.admin, first=200))
    assert key_id not in str(entries(system.acting_in(tenant.code), first=200))
    tenant.admin('mutation { createApiKey(role: VIEWER, label: "wall") { key } }').data
    assert "wall" not in str(entries(system, first=200))

    async def go() -> int:  # the worker's housekeeping prunes the system's trail too
        db = Database(settings)
        try:
            old = now() - timedelta(days=31)
            await db.system_audit.insert_one(
                {"_id": row_id(old), "at": old, "operation": "createApiKey",
                 "target": {"kind": "apiKey", "id": "gone", "name": "old"},
                 "actor": {"key_id": None, "label": "cli", "role": None}, "changes": []})
            return await housekeep(db, 30)
        finally:
            await db.close()
    assert asyncio.run(go()) >= 1
    assert "gone" not in str(entries(system, first=200))


def test_a_filter_reads_a_chunk_at_a_time_and_goes_on_from_its_cursor(
        tenant: TenantHandle, settings: Settings) -> None:
    """A filter no index answers reads the trail a chunk at a time: with no time to
    spare a page looks at its first chunk only and says how far back it looked, and
    following the cursors finds every match once, newest first. Through the API a page
    that is complete carries no note."""
    start = now() - timedelta(days=2)
    made = [{"_id": row_id(start + timedelta(minutes=15 * n)),
             "at": start + timedelta(minutes=15 * n),
             "operation": "deleteAction" if n % 40 == 0 else "updateAction",
             "target": {"kind": "action", "id": str(n), "name": f"a{n}"},
             "actor": {"key_id": None, "label": "old", "role": None}, "changes": []}
            for n in range(192)]
    tenant.collection("audit").insert_many(made)
    hits = [e["_id"] for e in reversed(made) if e["operation"] == "deleteAction"]

    async def go() -> tuple[list[Any], int]:
        db = Database(settings)
        try:
            trail = AuditLog.of(db, tenant.code)
            found, after, pages = [], None, 0
            while True:
                docs, cursor, searched_to = await trail.page(
                    {"operation": {"$in": ["deleteAction"]}}, 2, after, seconds=0, chunk=20)
                found += [d["_id"] for d in docs]
                pages += 1
                if cursor is None:
                    return found, pages
                after = decode_cursor(cursor)
                if searched_to is not None:
                    assert searched_to == after.generation_time
        finally:
            await db.close()

    found, pages = asyncio.run(go())
    assert found == hits and pages >= 192 // 20  # chunk by chunk, not one read of all
    page = tenant.admin(ENTRIES.replace("nextCursor", "nextCursor note"), first=10,
                        filter={"operations": ["deleteAction"]}).data["auditLog"]
    assert [e["target"]["id"] for e in page["items"]] == ["160", "120", "80", "40", "0"]
    assert page["nextCursor"] is None and page["note"] is None
    none = tenant.admin(ENTRIES.replace("nextCursor", "nextCursor note"), first=10,
                        filter={"operations": ["importMasterActions"]}).data["auditLog"]
    assert none["items"] == []
    assert none["note"] is None or none["note"].startswith("searched the entries made since ")


def test_the_filters_own_check_finds_what_the_server_finds(tenant: TenantHandle) -> None:
    """``tenants.audit.matches`` (a filtered page checks each entry it reads) against
    the server's own find, for each kind of filter ``auditLog`` takes, alone and
    together, over entries that differ in each field."""
    base = now() - timedelta(hours=5)
    made = [{"_id": row_id(base + timedelta(minutes=n)), "at": base + timedelta(minutes=n),
             "operation": ("createAction", "updateAction", "revokeApiKey")[n % 3],
             "target": {"kind": ("action", "apiKey")[n % 2], "id": str(n % 4), "name": None},
             "actor": {"key_id": (None, "k1", "k2")[n % 3 - 1 if n % 5 else 0],
                       "label": "x", "role": None}, "changes": []}
            for n in range(60)]
    audit = tenant.collection("audit")
    audit.delete_many({})
    audit.insert_many(made)
    filters = [
        {"operations": ["updateAction"]}, {"operations": ["createAction", "revokeApiKey"]},
        {"operations": []}, {"targetKind": "apiKey"}, {"targetId": "3"},
        {"targetKind": "action", "targetId": "2"}, {"actorKeyId": "k1"},
        {"since": (base + timedelta(minutes=20)).isoformat()},
        {"until": (base + timedelta(minutes=20)).isoformat(), "operations": ["updateAction"]},
        {"since": (base + timedelta(minutes=10)).isoformat(), "actorKeyId": "k2",
         "until": (base + timedelta(minutes=50)).isoformat(), "targetKind": "action"},
    ]
    for filter_ in filters:
        query = audit_query(AuditFilter(**{
            {"targetKind": "target_kind", "targetId": "target_id",
             "actorKeyId": "actor_key_id"}.get(k, k): (datetime.fromisoformat(v)
                                                       if k in ("since", "until") else v)
            for k, v in filter_.items()}))
        by_server = [d["_id"] for d in audit.find(query).sort("_id", -1)]
        by_check = [d["_id"] for d in sorted(audit.find({}), key=lambda d: d["_id"],
                                             reverse=True) if matches(query, d)]
        assert by_check == by_server, filter_
        by_api = [e["id"] for e in entries(tenant.admin, first=200, filter=filter_)]
        assert by_api == [str(i) for i in by_server], filter_
    assert len({tuple(d["_id"] for d in audit.find(audit_query(AuditFilter(**f))))
                for f in ({"operations": ["updateAction"]}, {"target_kind": "apiKey"},
                          {"actor_key_id": "k1"})}) == 3  # the entries tell them apart
