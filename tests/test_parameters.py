"""Parameters: the 13 system ones and custom tenant constants."""

from __future__ import annotations

from tests.conftest import TenantHandle

SYSTEM_TAGS = ["called_number", "caller_id", "calling_name", "call_cost", "call_id",
               "call_rating_duration", "date", "direction", "duration", "extension", "tenant",
               "time", "unix_time"]
LIST = "query($s: String) { parameters(search: $s) { tag value system secret description } }"
CREATE = "mutation($i: ParameterInput!) { createParameter(input: $i) { tag value secret " \
         "system description } }"
UPDATE = "mutation($t: String!, $i: ParameterInput!) { updateParameter(tag: $t, input: $i) " \
         "{ tag value secret } }"


def test_the_13_system_parameters_come_first_read_only(tenant: TenantHandle) -> None:
    params = tenant.admin(LIST).data["parameters"]
    assert [p["tag"] for p in params] == SYSTEM_TAGS
    assert all(p["system"] and p["description"] and p["value"] == "" for p in params)
    by_tag = {p["tag"]: p for p in params}
    assert by_tag["date"]["description"] == "Always generated, Date when event triggered [Y-m-d]"


def test_custom_parameters_follow_sorted_by_tag(tenant: TenantHandle) -> None:
    for tag in ("zeta", "Alpha", "crm_url"):
        tenant.admin(CREATE, i={"tag": tag, "value": f"v-{tag}", "description": "d"}).data
    params = tenant.admin(LIST).data["parameters"]
    custom = [p for p in params if not p["system"]]
    assert [p["tag"] for p in custom] == ["Alpha", "crm_url", "zeta"]
    assert custom[0] == {"tag": "Alpha", "value": "v-Alpha", "system": False, "secret": False,
                         "description": "d"}


def test_search_matches_tag_or_value_ignoring_case(tenant: TenantHandle) -> None:
    tenant.admin(CREATE, i={"tag": "crm_url", "value": "https://CRM.example.com"}).data
    tenant.admin(CREATE, i={"tag": "region", "value": "eu-west"}).data
    assert [p["tag"] for p in tenant.admin(LIST, s="crm").data["parameters"]] == ["crm_url"]
    assert [p["tag"] for p in tenant.admin(LIST, s="EU-").data["parameters"]] == ["region"]
    found = [p["tag"] for p in tenant.admin(LIST, s="call_").data["parameters"]]
    assert found == ["call_cost", "call_id", "call_rating_duration"]
    assert tenant.admin(LIST, s=".*").data["parameters"] == []


def test_secret_values_are_masked_and_never_searched(tenant: TenantHandle) -> None:
    created = tenant.admin(CREATE, i={"tag": "api_token", "value": "tok-9876", "secret": True})
    assert created.data["createParameter"]["value"] == "********"
    listed = tenant.admin(LIST).body
    assert "tok-9876" not in str(listed)
    assert tenant.admin(LIST, s="9876").data["parameters"] == []


def test_update_can_rename_and_keeps_a_masked_secret(tenant: TenantHandle) -> None:
    tenant.admin(CREATE, i={"tag": "token", "value": "t-1", "secret": True}).data
    reply = tenant.admin(UPDATE, t="token", i={"tag": "crm_token", "value": "********",
                                                "secret": True})
    assert reply.data["updateParameter"] == {"tag": "crm_token", "value": "********",
                                             "secret": True}
    stored = tenant.collection("parameters").find_one({"tag": "crm_token"})
    assert stored["value"].startswith("enc:v1:")  # sealed at rest
    assert tenant.vault.open(stored["value"]) == "t-1"
    assert tenant.collection("parameters").count_documents({}) == 1


def test_delete_removes_a_custom_parameter(tenant: TenantHandle) -> None:
    tenant.admin(CREATE, i={"tag": "gone", "value": "x"}).data
    assert tenant.admin('mutation { deleteParameter(tag: "gone") }').data["deleteParameter"]
    assert tenant.admin('mutation { deleteParameter(tag: "gone") }').code == "NOT_FOUND"


def test_system_parameters_cannot_be_edited_or_deleted(tenant: TenantHandle) -> None:
    reply = tenant.admin(UPDATE, t="caller_id", i={"tag": "caller_id", "value": "x"})
    assert reply.code == "BAD_USER_INPUT" and reply.error["extensions"]["field"] == "tag"
    reply = tenant.admin('mutation { deleteParameter(tag: "caller_id") }')
    assert reply.code == "BAD_USER_INPUT"


def test_a_custom_tag_cannot_shadow_a_system_tag(tenant: TenantHandle) -> None:
    for tag in ("caller_id", "Caller_ID", "UNIX_TIME"):
        reply = tenant.admin(CREATE, i={"tag": tag, "value": "x"})
        assert reply.code == "BAD_USER_INPUT"
        assert reply.error["extensions"]["field"] == "input.tag"
    assert tenant.collection("parameters").count_documents({}) == 0


def test_tags_are_unique_ignoring_case(tenant: TenantHandle) -> None:
    tenant.admin(CREATE, i={"tag": "crm", "value": "a"}).data
    reply = tenant.admin(CREATE, i={"tag": "CRM", "value": "b"})
    assert reply.code == "CONFLICT" and reply.error["extensions"]["field"] == "input.tag"
    tenant.admin(CREATE, i={"tag": "other", "value": "b"}).data
    assert tenant.admin(UPDATE, t="other", i={"tag": "Crm", "value": "b"}).code == "CONFLICT"


def test_update_and_delete_find_a_tag_in_any_case(tenant: TenantHandle) -> None:
    """As ``{{TEAM}}`` finds the parameter ``team``, so do updateParameter and
    deleteParameter; a system tag in capitals is still read-only."""
    tenant.admin(CREATE, i={"tag": "team", "value": "sales"}).data
    reply = tenant.admin(UPDATE, t="TEAM", i={"tag": "team", "value": "support"})
    assert reply.data["updateParameter"] == {"tag": "team", "value": "support", "secret": False}
    assert tenant.admin('mutation { deleteParameter(tag: "Team") }').data["deleteParameter"]
    assert tenant.collection("parameters").count_documents({}) == 0
    reply = tenant.admin('mutation { deleteParameter(tag: "CALLER_ID") }')
    assert reply.code == "BAD_USER_INPUT" and reply.error["extensions"]["field"] == "tag"
