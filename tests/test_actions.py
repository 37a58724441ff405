"""Actions: create, read, update, delete, search, secrets, undefined parameters."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import TenantHandle

FIELDS = """id name description method url bodyType rawBody rawContentType timeoutSeconds
    query { key value enabled } headers { key value enabled } bodyFields { key value enabled }
    authorization { type apiKeyName apiKeyValue apiKeyIn username password token }
    events undefinedParameters origin createdAt updatedAt"""
CREATE = f"mutation($input: ActionInput!) {{ createAction(input: $input) {{ {FIELDS} }} }}"
UPDATE = f"""mutation($id: ID!, $input: ActionInput!) {{
    updateAction(id: $id, input: $input) {{ {FIELDS} }} }}"""


def create(tenant: TenantHandle, **fields: Any) -> dict[str, Any]:
    return tenant.admin(CREATE, input={"name": "Hook", "url": "https://example.com/h",
                                       **fields}).data["createAction"]


def test_create_action_applies_the_contract_defaults(tenant: TenantHandle) -> None:
    action = create(tenant)
    assert action["method"] == "POST"
    assert action["description"] == ""
    assert action["bodyType"] == "NONE"
    assert action["timeoutSeconds"] == 10
    assert action["authorization"]["type"] == "NO_AUTH"
    assert action["query"] == action["headers"] == action["bodyFields"] == []
    assert action["events"] == [] and action["origin"] is None
    assert action["createdAt"] == action["updatedAt"]


def test_create_action_keeps_every_field(tenant: TenantHandle) -> None:
    action = create(
        tenant, name="Answered to CRM", description="posts the call", method="PUT",
        url="https://crm.example.com/calls/{{call_id}}",
        query=[{"key": "src", "value": "pbx"}, {"key": "off", "value": "1", "enabled": False}],
        headers=[{"key": "X-Call", "value": "{{call_id}}"}],
        bodyType="RAW", rawBody='{"caller": "{{caller_id}}"}', rawContentType="application/json",
        authorization={"type": "API_KEY", "apiKeyName": "X-Api-Key", "apiKeyValue": "k-123",
                       "apiKeyIn": "HEADER"},
        timeoutSeconds=2.5,
    )
    assert action["method"] == "PUT"
    assert action["url"] == "https://crm.example.com/calls/{{call_id}}"
    assert action["query"] == [{"key": "src", "value": "pbx", "enabled": True},
                               {"key": "off", "value": "1", "enabled": False}]
    assert action["headers"] == [{"key": "X-Call", "value": "{{call_id}}", "enabled": True}]
    assert action["rawBody"] == '{"caller": "{{caller_id}}"}'
    assert action["rawContentType"] == "application/json"
    assert action["authorization"]["apiKeyName"] == "X-Api-Key"
    assert action["authorization"]["apiKeyIn"] == "HEADER"
    assert action["timeoutSeconds"] == 2.5
    fetched = tenant.admin(f"query($id: ID!) {{ action(id: $id) {{ {FIELDS} }} }}",
                           id=action["id"]).data["action"]
    assert fetched == action


def test_raw_body_without_content_type_is_text_plain(tenant: TenantHandle) -> None:
    action = create(tenant, bodyType="RAW", rawBody="hello")
    assert action["rawContentType"] == "text/plain"


def test_form_bodies_keep_their_fields(tenant: TenantHandle) -> None:
    for body_type in ("FORM_DATA", "X_WWW_FORM_URLENCODED"):
        action = create(tenant, name=body_type, bodyType=body_type,
                        bodyFields=[{"key": "caller", "value": "{{caller_id}}"}])
        assert action["bodyType"] == body_type
        assert action["bodyFields"] == [{"key": "caller", "value": "{{caller_id}}",
                                         "enabled": True}]


@pytest.mark.parametrize("auth, secret_field", [
    ({"type": "API_KEY", "apiKeyName": "key", "apiKeyValue": "s3cr3t-value", "apiKeyIn": "QUERY"},
     "apiKeyValue"),
    ({"type": "BASIC_AUTH", "username": "pbx", "password": "s3cr3t-value"}, "password"),
    ({"type": "BEARER_TOKEN", "token": "s3cr3t-value"}, "token"),
])
def test_secrets_are_masked_in_every_output(tenant: TenantHandle, auth: dict,
                                            secret_field: str) -> None:
    action = create(tenant, authorization=auth)
    assert action["authorization"][secret_field] == "********"
    listed = tenant.admin(f"{{ actions {{ {FIELDS} }} }}").body
    assert "s3cr3t-value" not in str(listed) and "s3cr3t-value" not in str(action)
    event = tenant.admin("mutation($id: ID!) { updateEvent(type: HANGUP, input: {actionIds: [$id]})"
                         " { actions { authorization { apiKeyValue password token } } } }",
                         id=action["id"]).body
    assert "s3cr3t-value" not in str(event)


def test_a_secret_made_of_placeholders_is_shown(tenant: TenantHandle) -> None:
    action = create(tenant, authorization={"type": "BEARER_TOKEN", "token": "{{crm_token}}"})
    assert action["authorization"]["token"] == "{{crm_token}}"
    assert action["undefinedParameters"] == ["crm_token"]


def test_update_with_null_or_masked_secret_keeps_the_stored_one(tenant: TenantHandle) -> None:
    action = create(tenant, authorization={"type": "BEARER_TOKEN", "token": "first-token"})
    for token in (None, "********"):
        updated = tenant.admin(UPDATE, id=action["id"], input={
            "name": "Hook", "url": "https://example.com/h",
            "authorization": {"type": "BEARER_TOKEN", "token": token}}).data["updateAction"]
        assert updated["authorization"]["token"] == "********"
        stored = tenant.collection("actions").find_one({"name": "Hook"})
        assert stored["auth"]["token"].startswith("enc:v1:")  # sealed at rest
        assert tenant.vault.open(stored["auth"]["token"]) == "first-token"


def test_changing_auth_type_needs_the_new_secret(tenant: TenantHandle) -> None:
    action = create(tenant, authorization={"type": "BEARER_TOKEN", "token": "t"})
    reply = tenant.admin(UPDATE, id=action["id"], input={
        "name": "Hook", "url": "https://example.com/h",
        "authorization": {"type": "API_KEY", "apiKeyName": "k"}})
    assert reply.code == "BAD_USER_INPUT"
    assert reply.error["extensions"]["field"] == "input.authorization.apiKeyValue"


def test_update_replaces_fields_and_moves_updated_at(tenant: TenantHandle) -> None:
    action = create(tenant)
    updated = tenant.admin(UPDATE, id=action["id"], input={
        "name": "Renamed", "url": "https://other.example.com/x", "method": "DELETE",
    }).data["updateAction"]
    assert (updated["name"], updated["url"], updated["method"]) == (
        "Renamed", "https://other.example.com/x", "DELETE")
    assert updated["createdAt"] == action["createdAt"]
    assert updated["updatedAt"] > action["updatedAt"]


def test_names_are_unique_ignoring_case(tenant: TenantHandle) -> None:
    create(tenant, name="CRM hook")
    reply = tenant.admin(CREATE, input={"name": "crm HOOK", "url": "https://e.com"})
    assert reply.code == "CONFLICT"
    assert reply.error["extensions"]["field"] == "input.name"
    assert tenant.collection("actions").count_documents({}) == 1


def test_renaming_onto_a_taken_name_is_a_conflict(tenant: TenantHandle) -> None:
    create(tenant, name="One")
    two = create(tenant, name="Two")
    reply = tenant.admin(UPDATE, id=two["id"], input={"name": "ONE", "url": "https://e.com"})
    assert reply.code == "CONFLICT"
    assert tenant.collection("actions").find_one({"name": "Two"}) is not None


def test_the_same_name_in_two_tenants_is_fine(tenant: TenantHandle,
                                              other_tenant: TenantHandle) -> None:
    create(tenant, name="Shared name")
    create(other_tenant, name="Shared name")


def test_unknown_action_id_is_not_found(tenant: TenantHandle) -> None:
    for bad_id in ("000000000000000000000000", "not-an-id", "{\"$ne\": null}"):
        reply = tenant.admin("query($id: ID!) { action(id: $id) { id } }", id=bad_id)
        assert reply.code == "NOT_FOUND"
        reply = tenant.admin("mutation($id: ID!) { deleteAction(id: $id) }", id=bad_id)
        assert reply.code == "NOT_FOUND"


def test_delete_detaches_the_action_from_every_event(tenant: TenantHandle) -> None:
    keep, gone = create(tenant, name="Keep"), create(tenant, name="Gone")
    for event in ("ANSWERED_CALL", "HANGUP"):
        tenant.admin("mutation($t: EventType!, $ids: [ID!]) { updateEvent(type: $t, "
                     "input: {actionIds: $ids}) { type } }", t=event,
                     ids=[gone["id"], keep["id"]]).data
    assert tenant.admin("mutation($id: ID!) { deleteAction(id: $id) }", id=gone["id"]).data
    events = tenant.admin("{ events { type actions { name } } }").data["events"]
    attached = {e["type"]: [a["name"] for a in e["actions"]] for e in events}
    assert attached["ANSWERED_CALL"] == attached["HANGUP"] == ["Keep"]
    stored = tenant.collection("events").find_one({"_id": "HANGUP"})
    assert stored["action_ids"] == [keep["id"]]


def test_action_lists_the_events_it_is_attached_to(tenant: TenantHandle) -> None:
    action = create(tenant)
    for event in ("RINGING", "INCOMING_CALL"):
        tenant.admin("mutation($t: EventType!, $ids: [ID!]) { updateEvent(type: $t, "
                     "input: {actionIds: $ids}) { type } }", t=event, ids=[action["id"]]).data
    fetched = tenant.admin("query($id: ID!) { action(id: $id) { events } }", id=action["id"])
    assert fetched.data["action"]["events"] == ["INCOMING_CALL", "RINGING"]


def test_search_matches_name_description_or_url_ignoring_case(tenant: TenantHandle) -> None:
    create(tenant, name="Salesforce", url="https://sf.example.com")
    create(tenant, name="Slack", description="Posts to the SUPPORT channel",
           url="https://hooks.slack.example.com")
    create(tenant, name="Zendesk", url="https://api.zendesk.example.com/tickets")

    def names(search: str) -> list[str]:
        reply = tenant.admin("query($s: String) { actions(search: $s) { name } }", s=search)
        return [a["name"] for a in reply.data["actions"]]

    assert names("sales") == ["Salesforce"]
    assert names("support") == ["Slack"]
    assert names("TICKETS") == ["Zendesk"]
    assert names("") == ["Salesforce", "Slack", "Zendesk"]


@pytest.mark.parametrize("search", [".*", "(a+)+$", "[", "\\", "^S", "$where", "{\"$gt\": \"\"}"])
def test_search_text_is_never_a_pattern_or_operator(tenant: TenantHandle, search: str) -> None:
    create(tenant, name="Plain")
    reply = tenant.admin("query($s: String) { actions(search: $s) { name } }", s=search)
    assert reply.data["actions"] == []


def test_search_finds_regex_characters_literally(tenant: TenantHandle) -> None:
    create(tenant, name="Price (EUR) [beta]+")
    reply = tenant.admin('{ actions(search: "(eur) [beta]+") { name } }')
    assert [a["name"] for a in reply.data["actions"]] == ["Price (EUR) [beta]+"]


def test_undefined_parameters_lists_tags_from_every_part(tenant: TenantHandle) -> None:
    action = create(
        tenant, url="https://{{host}}/x?a={{ in_url }}",
        query=[{"key": "{{q_key}}", "value": "{{q_value}}"}],
        headers=[{"key": "X-A", "value": "{{h_value}}"}],
        bodyType="FORM_DATA", bodyFields=[{"key": "f", "value": "{{f_value}}"}],
        authorization={"type": "BASIC_AUTH", "username": "{{user}}", "password": "{{pass}}"},
    )
    assert action["undefinedParameters"] == [
        "host", "in_url", "q_key", "q_value", "h_value", "f_value", "user", "pass"]
    raw = create(tenant, name="Raw", bodyType="RAW", rawBody="{{caller_id}} {{raw_tag}}")
    assert raw["undefinedParameters"] == ["raw_tag"]


def test_tags_used_only_in_rows_switched_off_are_not_undefined(tenant: TenantHandle) -> None:
    action = create(
        tenant, url="https://e.com/x",
        query=[{"key": "q", "value": "{{off_q}}", "enabled": False},
               {"key": "p", "value": "{{on_q}}"}],
        headers=[{"key": "X-Off", "value": "{{off_h}}", "enabled": False}],
        bodyType="FORM_DATA", bodyFields=[{"key": "f", "value": "{{off_f}}", "enabled": False}],
    )
    assert action["undefinedParameters"] == ["on_q"]


def test_defining_a_parameter_removes_it_from_undefined(tenant: TenantHandle) -> None:
    action = create(tenant, url="https://e.com/{{crm}}/{{caller_id}}/{{other}}")
    assert action["undefinedParameters"] == ["crm", "other"]
    tenant.admin('mutation { createParameter(input: {tag: "crm", value: "acme"}) { tag } }').data
    fetched = tenant.admin("query($id: ID!) { action(id: $id) { undefinedParameters } }",
                           id=action["id"])
    assert fetched.data["action"]["undefinedParameters"] == ["other"]


def test_tags_name_parameters_whatever_their_case(tenant: TenantHandle) -> None:
    """``{{TEAM}}`` is parameter ``team`` and ``{{CALLER_ID}}`` the system ``caller_id``:
    neither is undefined (adding ``TEAM`` would be a CONFLICT with ``team``); a tag
    without a parameter is listed once, as first written."""
    tenant.admin('mutation { createParameter(input: {tag: "team", value: "support"}) '
                 '{ tag } }').data
    action = create(tenant, url="https://e.com/{{TEAM}}/{{CALLER_ID}}/{{Ghost}}/{{ghost}}",
                    headers=[{"key": "X-Team", "value": "{{Team}}"}])
    assert action["undefinedParameters"] == ["Ghost"]
    again = tenant.admin('mutation { createParameter(input: {tag: "TEAM", value: "x"}) '
                         '{ tag } }')
    assert again.code == "CONFLICT"


def test_a_header_name_may_hold_placeholders_as_query_and_body_keys_do(
        tenant: TenantHandle) -> None:
    """The name it renders to is checked when it is sent (tests/test_delivery.py)."""
    action = create(tenant, headers=[{"key": "X-{{team}}", "value": "1"}],
                    query=[{"key": "{{q}}", "value": "1"}],
                    authorization={"type": "API_KEY", "apiKeyName": "X-{{ key_name }}",
                                   "apiKeyValue": "k", "apiKeyIn": "HEADER"})
    assert action["headers"] == [{"key": "X-{{team}}", "value": "1", "enabled": True}]
    assert action["authorization"]["apiKeyName"] == "X-{{ key_name }}"
    assert action["undefinedParameters"] == ["q", "team", "key_name"]
    spaced = tenant.admin(CREATE, input={"name": "Spaced", "url": "https://example.com/h",
                                         "headers": [{"key": "X {{team}}", "value": "1"}]})
    assert (spaced.code, spaced.field) == ("BAD_USER_INPUT", "input.headers[0].key")
    assert spaced.error["message"] == "'X {{team}}' is not a valid header name"
