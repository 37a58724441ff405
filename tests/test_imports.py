"""Imports over the API: Postman collections (every fixture file) and the Master tenant's
actions; conflict policies, partial selection, refusals that write nothing, and a request
imported from a real collection delivered with the call's data filled in."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest

from dispatch.template import is_only_placeholders
from resolvers.postman import parse_collection
from tests.conftest import SHARED, TenantHandle
from tests.receiver import Receiver

FIXTURES = SHARED / "fixtures" / "postman"
FILES = sorted(FIXTURES.glob("*.json"))
CARDS = FIXTURES / "transferwise-cards-api.v2.1.json"
SCHEMA_V21 = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"

ACTION = """id name description method url query { key value enabled }
    headers { key value enabled } bodyType bodyFields { key value enabled } rawBody
    rawContentType authorization { type apiKeyName apiKeyValue apiKeyIn username password
    token } origin"""
IMPORT = f"""mutation($c: String!, $refs: [String!], $p: ConflictPolicy) {{
    importPostmanCollection(collection: $c, refs: $refs, onConflict: $p) {{
        imported {{ {ACTION} }} skipped renamed errors warnings newVariables {{ key value }}
        createdParameters {{ tag }}
    }} }}"""
REQUESTS = """query($c: String!) { postmanRequests(collection: $c) {
    ref name folder method url } }"""
MASK = "********"


def collection(*items: dict[str, Any], **top: Any) -> str:
    return json.dumps({"info": {"name": top.pop("name", "inline"), "schema": SCHEMA_V21},
                       "item": list(items), **top})


def request(name: str, method: str = "POST", url: str = "https://example.com/{{x}}",
            **fields: Any) -> dict[str, Any]:
    return {"name": name, "request": {"method": method, "url": url, **fields}}


def import_collection(tenant: TenantHandle, text: str, refs: list[str] | None = None,
                      policy: str = "SKIP") -> dict[str, Any]:
    return tenant.admin(IMPORT, c=text, refs=refs, p=policy).data["importPostmanCollection"]


def stored_actions(tenant: TenantHandle) -> dict[str, dict[str, Any]]:
    return {a["name"]: a for a in tenant.admin(f"{{ actions {{ {ACTION} }} }}").data["actions"]}


def expected_action(parsed: dict[str, Any]) -> dict[str, Any]:
    """The parser's action as the API shows it: secrets masked, defaults filled in."""
    auth = dict(parsed["authorization"])
    for secret in ("apiKeyValue", "password", "token"):
        if auth[secret] and not is_only_placeholders(auth[secret]):  # {{token}} is no secret
            auth[secret] = MASK
    if auth["type"] != "API_KEY":
        auth["apiKeyIn"] = None
    return {**parsed, "authorization": auth}


def shown(action: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in action.items() if k not in ("id", "origin")}


# --- Postman: listing ------------------------------------------------------------------

def test_requests_are_listed_with_stable_refs_folders_methods_and_urls(
        tenant: TenantHandle) -> None:
    text = CARDS.read_text()
    listed = tenant.admin(REQUESTS, c=text).data["postmanRequests"]
    parsed = parse_collection(text).requests
    assert len(listed) == len(parsed) == 42
    assert len({r["ref"] for r in listed}) == 42
    assert listed == tenant.admin(REQUESTS, c=text).data["postmanRequests"]  # stable
    first = listed[0]
    assert (first["name"], first["folder"], first["method"], first["url"]) == (
        "1. Authentication / Generate tokens from authorization code", "1. Authentication",
        "POST", "{{host}}/oauth/token")
    assert {r["method"] for r in listed} == {"GET", "POST", "PUT", "PATCH", "DELETE"}


def test_every_request_is_listed_with_whether_it_can_be_imported_and_why(
        tenant: TenantHandle) -> None:
    """An ftp:// URL was listed as importable and refused by the import; HEAD, OPTIONS and
    a request without a URL were left out of the list without a word."""
    text = collection(request("ok"), request("head", "HEAD"), request("options", "OPTIONS"),
                      request("ftp", "GET", url="ftp://files.example.com/calls.csv"),
                      {"name": "no url", "request": {"method": "POST"}},
                      request("upload", body={"mode": "file", "file": {"src": "a.bin"}}))
    ftp = ("url must start with http:// or https:// and a host, or with a {{parameter}} "
           "(input.url)")
    listed = tenant.admin("""query($c: String!) { postmanRequests(collection: $c) {
        name method writtenMethod url importable reason } }""", c=text).data["postmanRequests"]
    assert listed == [
        {"name": "ok", "method": "POST", "writtenMethod": "POST",
         "url": "https://example.com/{{x}}", "importable": True, "reason": None},
        {"name": "head", "method": "GET", "writtenMethod": "HEAD",
         "url": "https://example.com/{{x}}", "importable": False,
         "reason": "method HEAD is not supported"},
        {"name": "options", "method": "GET", "writtenMethod": "OPTIONS",
         "url": "https://example.com/{{x}}", "importable": False,
         "reason": "method OPTIONS is not supported"},
        {"name": "ftp", "method": "GET", "writtenMethod": "GET",
         "url": "ftp://files.example.com/calls.csv", "importable": False, "reason": ftp},
        {"name": "no url", "method": "POST", "writtenMethod": "POST", "url": "",
         "importable": False, "reason": "no URL"},
        {"name": "upload", "method": "POST", "writtenMethod": "POST",
         "url": "https://example.com/{{x}}", "importable": False,
         "reason": "file bodies are not supported"},
    ]
    everything = tenant.admin("""query($c: String!) { postmanCollection(collection: $c) {
        requests { name importable problem } } }""", c=text).data["postmanCollection"]
    assert everything["requests"] == [
        {"name": r["name"], "importable": r["importable"], "problem": r["reason"]}
        for r in listed]
    result = import_collection(tenant, text)
    assert [a["name"] for a in result["imported"]] == ["ok"]
    assert result["errors"] == [f"{r['name']}: {r['reason']}" for r in listed[1:]]


def test_requests_of_the_same_name_are_reported_renamed(tenant: TenantHandle) -> None:
    text = collection(request("Same"), request("Other"), request("same"))
    result = import_collection(tenant, text)
    assert [a["name"] for a in result["imported"]] == ["Same", "Other", "same (2)"]
    assert result["renamed"] == ["same → same (2)"]
    again = import_collection(tenant, text, policy="RENAME")
    assert again["renamed"] == ["Same → Same (3)", "Other → Other (2)", "same → same (2) (2)"]


# --- Postman: every fixture ---------------------------------------------------------------

@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_every_fixture_imports_as_the_parser_reads_it(tenant: TenantHandle, path: Path) -> None:
    """What is stored is what Postman would send (the parser's tests check that against
    each file); here: all of it arrives, secrets masked, with origin and reasons."""
    text = path.read_text(encoding="utf-8-sig")
    parsed = parse_collection(text)
    importable = [r for r in parsed.requests if r.action is not None]
    result = import_collection(tenant, text)
    assert result["skipped"] == result["renamed"] == []
    assert len(result["imported"]) + len(result["errors"]) == len(parsed.requests)
    assert len(result["imported"]) == len(importable)
    stored = stored_actions(tenant)
    assert set(stored) == {r.name for r in importable}
    for r in importable:
        assert shown(stored[r.name]) == expected_action(r.action), r.name
        assert stored[r.name]["origin"] == f"postman:{parsed.name}"
    assert [shown(a) for a in result["imported"]] == [expected_action(r.action)
                                                      for r in importable]


def test_the_v1_and_v2_forms_of_a_collection_import_the_same_actions(
        tenant: TenantHandle, other_tenant: TenantHandle) -> None:
    import_collection(tenant, (FIXTURES / "newman-multi-level-folders.v1.json").read_text())
    import_collection(other_tenant,
                      (FIXTURES / "newman-multi-level-folders.v2.0.json").read_text())
    v1, v2 = stored_actions(tenant), stored_actions(other_tenant)
    assert len(v1) >= 4
    assert {n: shown(a) for n, a in v1.items()} == {n: shown(a) for n, a in v2.items()}


def test_dropped_parts_are_warned_and_new_variables_offered(tenant: TenantHandle) -> None:
    text = (FIXTURES / "schemas-formdata-body.v2.1.json").read_text()
    result = import_collection(tenant, text)
    assert any("formdata file row" in w for w in result["warnings"]), result["warnings"]
    cards = CARDS.read_text()
    variables = json.loads(cards).get("variable") or []
    text = collection(request("uses vars", url="{{base}}/calls/{{caller_id}}"),
                      variable=[*variables, {"key": "base", "value": "https://crm.test"},
                                {"key": "caller_id", "value": "x"},
                                {"key": "known", "value": "v"}])
    tenant.admin('mutation { createParameter(input: {tag: "known", value: "k"}) { tag } }').data
    result = import_collection(tenant, text)
    offered = result["newVariables"]
    assert {"key": "base", "value": "https://crm.test"} in offered
    assert not {v["key"] for v in offered} & {"caller_id", "known"}  # system / defined
    assert result["createdParameters"] == []  # only offered, unless asked for
    assert "base" not in {p["tag"] for p in tenant.admin("{ parameters { tag } }").data[
        "parameters"]}


def test_create_parameters_makes_the_new_variables_of_collection_folders_and_requests(
        tenant: TenantHandle) -> None:
    folder = {"name": "CRM", "variable": [{"key": "crm_path", "value": "/v2/calls"},
                                          {"key": "base", "value": "https://other.test"}],
              "item": [{**request("Create call", url="{{base}}{{crm_path}}/{{token}}"),
                        "variable": [{"key": "token", "value": "t-1"}]}]}
    text = collection(folder, variable=[{"key": "base", "value": "https://crm.test"},
                                        {"key": "known", "value": "new value"},
                                        {"key": "caller_id", "value": "x"},
                                        {"key": "huge", "value": "h" * 5000},
                                        {"key": "empty"}])
    tenant.admin('mutation { createParameter(input: {tag: "known", value: "k"}) { tag } }').data
    offered = tenant.admin("""query($c: String!) { postmanCollection(collection: $c) {
        warnings newVariables { key } } }""", c=text).data["postmanCollection"]
    assert [v["key"] for v in offered["newVariables"]] == [
        "base", "huge", "empty", "crm_path", "token"]
    assert offered["warnings"] == [
        "folder 'CRM': variable 'base' has another value than before; the first is kept"]

    result = tenant.admin("""mutation($c: String!) { importPostmanCollection(collection: $c,
        createParameters: true) { imported { name } errors newVariables { key }
        createdParameters { tag value secret description } } }""", c=text).data[
        "importPostmanCollection"]
    assert result["imported"] == [{"name": "CRM / Create call"}]
    made = "from the Postman collection 'inline'"
    assert result["createdParameters"] == [
        {"tag": "base", "value": "https://crm.test", "secret": False, "description": made},
        {"tag": "empty", "value": "", "secret": False, "description": made},
        {"tag": "crm_path", "value": "/v2/calls", "secret": False, "description": made},
        {"tag": "token", "value": "t-1", "secret": False, "description": made}]
    [error] = result["errors"]
    assert error.startswith("variable 'huge': ") and error.endswith("(input.value)")
    assert result["newVariables"] == [{"key": "huge"}]  # still to be added by hand
    stored = {p["tag"]: p["value"] for p in tenant.admin(
        "{ parameters { tag value system } }").data["parameters"] if not p["system"]}
    assert stored == {"base": "https://crm.test", "empty": "", "crm_path": "/v2/calls",
                      "token": "t-1", "known": "k"}  # an existing parameter is left alone
    action = tenant.admin("{ actions { undefinedParameters } }").data["actions"]
    assert action == [{"undefinedParameters": []}]



def test_a_variable_naming_a_parameter_in_other_case_is_not_offered(
        tenant: TenantHandle) -> None:
    """``TEAM`` is parameter ``team`` and ``CALLER_ID`` the system ``caller_id``: offering
    them would end in CONFLICT (tags are unique regardless of case)."""
    tenant.admin('mutation { createParameter(input: {tag: "team", value: "k"}) { tag } }').data
    text = collection(request("uses vars", url="https://crm.test/{{TEAM}}/{{CALLER_ID}}"),
                      variable=[{"key": "TEAM", "value": "v"}, {"key": "CALLER_ID", "value": "x"},
                                {"key": "Base", "value": "https://crm.test"}])
    offered = import_collection(tenant, text)["newVariables"]
    assert offered == [{"key": "Base", "value": "https://crm.test"}]

# --- Postman: selection, conflicts, refusals ------------------------------------------------

def test_only_the_chosen_refs_are_imported(tenant: TenantHandle) -> None:
    text = CARDS.read_text()
    listed = tenant.admin(REQUESTS, c=text).data["postmanRequests"]
    chosen = [listed[3]["ref"], listed[12]["ref"]]
    result = import_collection(tenant, text, refs=chosen + chosen[:1])  # a repeat counts once
    assert [a["name"] for a in result["imported"]] == [listed[3]["name"], listed[12]["name"]]
    assert set(stored_actions(tenant)) == {listed[3]["name"], listed[12]["name"]}


def test_an_unknown_ref_refuses_the_import_and_writes_nothing(tenant: TenantHandle) -> None:
    text = CARDS.read_text()
    good = tenant.admin(REQUESTS, c=text).data["postmanRequests"][0]["ref"]
    before = tenant.snapshot()
    reply = tenant.admin(IMPORT, c=text, refs=[good, "no-such-ref"], p="SKIP")
    assert reply.code == "BAD_USER_INPUT" and reply.field == "refs[1]"
    assert tenant.snapshot() == before


def test_skip_rename_and_overwrite(tenant: TenantHandle) -> None:
    text = collection(request("Create call", url="https://crm.test/calls"),
                      request("Close call", "PUT", url="https://crm.test/calls/{{call_id}}"))
    first = {a["name"]: a for a in import_collection(tenant, text)["imported"]}
    tenant.admin("mutation($id: ID!) { updateAction(id: $id, input: {name: \"Create call\", "
                 "url: \"https://changed.test\"}) { id } }", id=first["Create call"]["id"]).data
    event = ("mutation($ids: [ID!]) { updateEvent(type: HANGUP, input: {actionIds: $ids}) "
             "{ type } }")
    tenant.admin(event, ids=[first["Create call"]["id"]]).data

    skipped = import_collection(tenant, text, policy="SKIP")
    assert (skipped["imported"], skipped["skipped"]) == ([], ["Create call", "Close call"])

    renamed = import_collection(tenant, text, policy="RENAME")
    assert [a["name"] for a in renamed["imported"]] == ["Create call (2)", "Close call (2)"]
    assert renamed["renamed"] == ["Create call → Create call (2)", "Close call → Close call (2)"]
    again = import_collection(tenant, text, policy="RENAME")
    assert [a["name"] for a in again["imported"]] == ["Create call (3)", "Close call (3)"]

    overwritten = import_collection(tenant, text, policy="OVERWRITE")
    by_name = {a["name"]: a for a in overwritten["imported"]}
    assert by_name["Create call"]["id"] == first["Create call"]["id"]  # same action…
    assert by_name["Create call"]["url"] == "https://crm.test/calls"   # …its request restored
    attached = tenant.admin("{ event(type: HANGUP) { actions { id } } }").data
    assert attached["event"]["actions"] == [{"id": first["Create call"]["id"]}]
    assert len(stored_actions(tenant)) == 6


@pytest.mark.parametrize("text, message", [
    ('{"info": {"name": "x",\n "item": [}', "line 2, column"),
    ("[1, 2]", "not a JSON object"),
    ('{"_postman_variable_scope": "environment", "values": []}', "environment"),
    ('{"info": {"name": "x", "schema": "https://example.com/v9"}, "item": []}', "unknown schema"),
    ("\ufeff" + collection(), "no requests to import"),
])
def test_a_file_that_is_not_an_importable_collection_is_refused(
        tenant: TenantHandle, text: str, message: str) -> None:
    before = tenant.snapshot()
    reply = tenant.admin(IMPORT, c=text, refs=None, p="SKIP")
    assert reply.code == "BAD_USER_INPUT" and reply.field == "collection", reply.body
    assert message in reply.error["message"]
    assert tenant.snapshot() == before


def test_a_collection_over_10_mb_is_refused(tenant: TenantHandle) -> None:
    big = collection(request("big", body={"mode": "raw", "raw": "x" * (10 * 1024 * 1024)}))
    reply = tenant.admin(REQUESTS, c=big)
    assert reply.code == "BAD_USER_INPUT" and "10 MB" in reply.error["message"]


def test_a_request_the_service_cannot_accept_is_reported_with_the_field(
        tenant: TenantHandle) -> None:
    text = collection(request("ok"),
                      request("smuggles", header=[{"key": "Content-Length", "value": "1"}]))
    result = import_collection(tenant, text)
    assert [a["name"] for a in result["imported"]] == ["ok"]
    [error] = result["errors"]
    assert error.startswith("smuggles: the Content-Length header")
    assert "input.headers[0].key" in error


# --- Postman: end to end -------------------------------------------------------------------

@pytest.mark.usefixtures("worker")
def test_an_imported_request_is_delivered_as_the_collection_describes(
        tenant: TenantHandle, receiver: Receiver) -> None:
    """"Set a card status" from Wise's real collection: PUT, bearer {{token}}, raw JSON,
    URL built from {{host}}, {{profile_id}} and {{card_token}}. The tenant defines host,
    profile_id and token; the PBX sends card_token with the call."""
    text = CARDS.read_text()
    [ref] = [r["ref"] for r in tenant.admin(REQUESTS, c=text).data["postmanRequests"]
             if r["name"] == "3. Card Management / Set a card status"]
    [action] = import_collection(tenant, text, refs=[ref])["imported"]
    assert sorted(tenant.admin("query($id: ID!) { action(id: $id) { undefinedParameters } }",
                               id=action["id"]).data["action"]["undefinedParameters"]) == [
        "card_token", "host", "profile_id", "token"]
    token = secrets.token_hex(8)
    for tag, value in (("host", f"{receiver.url}/{tenant.code}"), ("profile_id", "P-7"),
                       ("token", token)):
        tenant.admin("mutation($t: String!, $v: String!) { createParameter(input: "
                     "{tag: $t, value: $v}) { tag } }", t=tag, v=value).data
    tenant.admin("mutation($ids: [ID!]) { updateEvent(type: ANSWERED_CALL, input: "
                 "{active: true, actionIds: $ids}) { type } updateSettings(input: "
                 "{actionsEnabled: true}) { actionsEnabled } }", ids=[action["id"]]).data
    tenant.admin('mutation { triggerEvent(input: {event: ANSWERED_CALL, params: '
                 '{card_token: "ct-42"}}) { accepted } }').data
    path = f"/{tenant.code}/v3/spend/profiles/P-7/cards/ct-42/status"
    [got] = receiver.wait_for(path)
    assert got.method == "PUT"
    assert got.header("Authorization") == f"Bearer {token}"
    assert got.header("Content-Type") == "application/json"
    assert got.body == b'{ "status": "ACTIVE" }'


# --- Master ------------------------------------------------------------------------------------

MASTER_IMPORT = """mutation($ids: [ID!]!, $p: ConflictPolicy) {
    importMasterActions(ids: $ids, onConflict: $p) {
        imported { id name origin authorization { type token } url } skipped renamed errors
    } }"""


def master_action(master: TenantHandle, **fields: Any) -> dict[str, Any]:
    fields.setdefault("name", f"Catalog {secrets.token_hex(3)}")
    fields.setdefault("url", "https://crm.test/{{caller_id}}")
    return master.admin(f"mutation($i: ActionInput!) {{ createAction(input: $i) "
                        f"{{ {ACTION} }} }}", i=fields).data["createAction"]


def test_master_actions_are_offered_with_secrets_masked(
        tenant: TenantHandle, master: TenantHandle) -> None:
    made = master_action(master, authorization={"type": "BEARER_TOKEN", "token": "s3cret"})
    offered = tenant.admin("query($s: String) { masterActions(search: $s) "
                           "{ id name authorization { token } } }", s=made["name"]).data
    assert offered["masterActions"] == [
        {"id": made["id"], "name": made["name"], "authorization": {"token": MASK}}]


def test_master_actions_are_copied_with_their_secrets(
        tenant: TenantHandle, master: TenantHandle) -> None:
    made = master_action(master, authorization={"type": "BEARER_TOKEN", "token": "s3cret"})
    result = tenant.admin(MASTER_IMPORT, ids=[made["id"]], p="SKIP").data["importMasterActions"]
    [copy] = result["imported"]
    assert copy["id"] != made["id"]
    assert (copy["name"], copy["origin"], copy["url"]) == (
        made["name"], f"master:{made['name']}", made["url"])
    assert copy["authorization"] == {"type": "BEARER_TOKEN", "token": MASK}
    stored = tenant.collection("actions").find_one({"name": made["name"]})
    original = master.collection("actions").find_one({"name": made["name"]})
    assert stored["auth"] == original["auth"]  # the secret itself came along

    again = tenant.admin(MASTER_IMPORT, ids=[made["id"]], p="SKIP").data["importMasterActions"]
    assert (again["imported"], again["skipped"]) == ([], [made["name"]])
    renamed = tenant.admin(MASTER_IMPORT, ids=[made["id"]], p="RENAME").data
    assert [a["name"] for a in renamed["importMasterActions"]["imported"]] == [
        f"{made['name']} (2)"]
    master.admin("mutation($id: ID!) { updateAction(id: $id, input: {name: $n, url: $u}) "
                 "{ id } }".replace("$n", json.dumps(made["name"])).replace(
                     "$u", '"https://crm.test/v2"'), id=made["id"]).data
    over = tenant.admin(MASTER_IMPORT, ids=[made["id"]], p="OVERWRITE").data
    [updated] = over["importMasterActions"]["imported"]
    assert (updated["id"], updated["url"]) == (copy["id"], "https://crm.test/v2")


def test_only_master_actions_can_be_imported(tenant: TenantHandle, other_tenant: TenantHandle,
                                             master: TenantHandle) -> None:
    made = master_action(master)
    foreign = other_tenant.admin("mutation { createAction(input: {name: \"theirs\", "
                                 "url: \"https://x.test\"}) { id } }").data["createAction"]["id"]
    before = tenant.snapshot()
    for ids in ([made["id"], foreign], [made["id"], "nonsense"]):
        reply = tenant.admin(MASTER_IMPORT, ids=ids, p="SKIP")
        assert reply.code == "NOT_FOUND" and reply.field == "ids[1]"
    assert tenant.snapshot() == before
    reply = master.admin(MASTER_IMPORT, ids=[made["id"]], p="RENAME")
    assert reply.code == "BAD_USER_INPUT" and "Master tenant" in reply.error["message"]


UPDATE = """mutation($id: ID!, $i: ActionInput!) { updateAction(id: $id, input: $i)
    { url authorization { token } } }"""


def test_an_imported_token_is_sent_only_where_the_master_sent_it(
        tenant: TenantHandle, master: TenantHandle) -> None:
    """Issue 14: a new URL and a null token (keep the stored one) sent the Master's token
    to the new host. Moving the copy elsewhere now needs the token again."""
    made = master_action(master, url="https://crm.test/calls",
                         authorization={"type": "BEARER_TOKEN", "token": "master-token"})
    result = tenant.admin(MASTER_IMPORT, ids=[made["id"]]).data["importMasterActions"]
    [copy] = result["imported"]
    keep = {"type": "BEARER_TOKEN", "token": None}
    before = tenant.snapshot()
    for url in ("https://attacker.test/calls", "http://crm.test/calls",
                "https://crm.test:8443/calls", "{{base_url}}/calls"):
        reply = tenant.admin(UPDATE, id=copy["id"], i={"name": made["name"], "url": url,
                                                       "authorization": keep})
        assert reply.code == "BAD_USER_INPUT" and reply.field == "input.authorization.token"
        assert "re-enter the token for the new destination" in reply.error["message"]
    assert tenant.snapshot() == before
    moved = tenant.admin(UPDATE, id=copy["id"], i={
        "name": made["name"], "url": "https://CRM.test:443/v2/calls", "authorization": keep})
    assert moved.data["updateAction"]["url"] == "https://CRM.test:443/v2/calls"  # same origin
    stored = tenant.collection("actions").find_one({"name": made["name"]})
    assert tenant.vault.open(stored["auth"]["token"]) == "master-token"
    given = tenant.admin(UPDATE, id=copy["id"], i={
        "name": made["name"], "url": "https://other.test/calls",
        "authorization": {"type": "BEARER_TOKEN", "token": "new-token"}})
    assert given.data["updateAction"]["authorization"] == {"token": "********"}
    # The Master's own action is bound the same way.
    reply = master.admin(UPDATE, id=made["id"], i={"name": made["name"],
                                                   "url": "https://attacker.test/calls",
                                                   "authorization": keep})
    assert reply.field == "input.authorization.token"
