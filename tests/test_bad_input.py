"""Bad input: each case is refused with BAD_USER_INPUT naming the field, and nothing is
written (the tenant's documents are the same before and after)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.conftest import TenantHandle

CREATE_ACTION = "mutation($input: ActionInput!) { createAction(input: $input) { id } }"
CREATE_PARAMETER = "mutation($input: ParameterInput!) { createParameter(input: $input) { tag } }"
UPDATE_SETTINGS = "mutation($input: SettingsInput!) { updateSettings(input: $input) { timezone } }"
TRIGGER = "mutation($input: TriggerInput!) { triggerEvent(input: $input) { triggerId } }"
TRIGGERS = "mutation($inputs: [TriggerInput!]!) { triggerEvents(inputs: $inputs) { triggerId } }"
ACTIVITY = "query($first: Int) { activity(first: $first) { items { id } } }"


def action(**fields: Any) -> dict[str, Any]:
    return {"input": {"name": "Hook", "url": "https://example.com/hook", **fields}}


def param(**fields: Any) -> dict[str, Any]:
    return {"input": {"tag": "crm", "value": "x", **fields}}


CASES: list[tuple[str, str, dict[str, Any], str]] = [
    ("empty name", CREATE_ACTION, action(name="   "), "input.name"),
    ("name too long", CREATE_ACTION, action(name="n" * 101), "input.name"),
    ("name with a line break", CREATE_ACTION, action(name="a\nb"), "input.name"),
    ("empty url", CREATE_ACTION, action(url=""), "input.url"),
    ("ftp scheme", CREATE_ACTION, action(url="ftp://example.com/x"), "input.url"),
    ("javascript scheme", CREATE_ACTION, action(url="javascript:alert(1)"), "input.url"),
    ("relative url", CREATE_ACTION, action(url="/just/a/path"), "input.url"),
    ("url without host", CREATE_ACTION, action(url="https:///path"), "input.url"),
    ("url with credentials", CREATE_ACTION, action(url="https://u:p@example.com"), "input.url"),
    ("url with a space", CREATE_ACTION, action(url="https://example.com/a b"), "input.url"),
    ("url too long", CREATE_ACTION, action(url="https://e.com/" + "a" * 2100), "input.url"),
    ("invalid method", CREATE_ACTION, action(method="TRACE"), "input.method"),
    ("empty query key", CREATE_ACTION, action(query=[{"key": "", "value": "v"}]),
     "input.query[0].key"),
    ("header name with a space", CREATE_ACTION,
     action(headers=[{"key": "ok", "value": "1"}, {"key": "X Bad", "value": "v"}]),
     "input.headers[1].key"),
    ("header value with CR/LF", CREATE_ACTION,
     action(headers=[{"key": "X-A", "value": "v\r\nX-Injected: 1"}]), "input.headers[0].value"),
    ("Host header", CREATE_ACTION, action(headers=[{"key": "Host", "value": "evil"}]),
     "input.headers[0].key"),
    ("Content-Length header", CREATE_ACTION,
     action(headers=[{"key": "content-length", "value": "0"}]), "input.headers[0].key"),
    ("too many headers", CREATE_ACTION,
     action(headers=[{"key": f"X-{i}", "value": "v"} for i in range(101)]), "input.headers"),
    ("body fields with NONE", CREATE_ACTION, action(bodyFields=[{"key": "a", "value": "b"}]),
     "input.bodyFields"),
    ("raw body with NONE", CREATE_ACTION, action(rawBody="{}"), "input.rawBody"),
    ("RAW without a body", CREATE_ACTION, action(bodyType="RAW"), "input.rawBody"),
    ("bad content type", CREATE_ACTION,
     action(bodyType="RAW", rawBody="x", rawContentType="json"), "input.rawContentType"),
    ("content type with CR/LF", CREATE_ACTION,
     action(bodyType="RAW", rawBody="x", rawContentType="text/plain\r\nX-A: 1"),
     "input.rawContentType"),
    ("raw body too large", CREATE_ACTION,
     action(bodyType="RAW", rawBody="x" * (256 * 1024 + 1)), "input.rawBody"),
    ("API key without name", CREATE_ACTION,
     action(authorization={"type": "API_KEY", "apiKeyValue": "v"}),
     "input.authorization.apiKeyName"),
    ("API key without value", CREATE_ACTION,
     action(authorization={"type": "API_KEY", "apiKeyName": "k"}),
     "input.authorization.apiKeyValue"),
    ("basic auth without username", CREATE_ACTION,
     action(authorization={"type": "BASIC_AUTH", "password": "p"}),
     "input.authorization.username"),
    ("basic auth username with colon", CREATE_ACTION,
     action(authorization={"type": "BASIC_AUTH", "username": "a:b", "password": "p"}),
     "input.authorization.username"),
    ("bearer without token", CREATE_ACTION, action(authorization={"type": "BEARER_TOKEN"}),
     "input.authorization.token"),
    ("token with NO_AUTH", CREATE_ACTION,
     action(authorization={"type": "NO_AUTH", "token": "t"}), "input.authorization.token"),
    ("unknown auth type", CREATE_ACTION, action(authorization={"type": "DIGEST"}),
     "input.authorization.type"),
    ("timeout zero", CREATE_ACTION, action(timeoutSeconds=0), "input.timeoutSeconds"),
    ("timeout too long", CREATE_ACTION, action(timeoutSeconds=3600), "input.timeoutSeconds"),
    ("timeout not a number", CREATE_ACTION, action(timeoutSeconds="soon"),
     "input.timeoutSeconds"),
    ("name not a string", CREATE_ACTION, action(name={"$gt": ""}), "input.name"),
    ("missing url", CREATE_ACTION, {"input": {"name": "x"}}, "input.url"),
    ("parameter tag with braces", CREATE_PARAMETER, param(tag="{{crm}}"), "input.tag"),
    ("parameter tag with operator", CREATE_PARAMETER, param(tag="$where"), "input.tag"),
    ("parameter tag empty", CREATE_PARAMETER, param(tag=""), "input.tag"),
    ("parameter shadowing a system tag", CREATE_PARAMETER, param(tag="duration"), "input.tag"),
    ("parameter value too long", CREATE_PARAMETER, param(value="v" * 4097), "input.value"),
    ("parameter value with NUL", CREATE_PARAMETER, param(value="a\x00b"), "input.value"),
    ("unknown time zone", UPDATE_SETTINGS, {"input": {"timezone": "Europe/Atlantis"}},
     "input.timezone"),
    ("hours out of bounds", UPDATE_SETTINGS, {"input": {"autoDisableAfterHours": 0}},
     "input.autoDisableAfterHours"),
    ("description with NUL", CREATE_ACTION, action(description="a\x00b"),
     "input.description"),
    ("expiry of zero", CREATE_ACTION, action(policy={"expireAfterSeconds": 0}),
     "input.policy.expireAfterSeconds"),
    ("rate limit of zero", CREATE_ACTION, action(policy={"maxRequestsPerSecond": 0}),
     "input.policy.maxRequestsPerSecond"),
    ("params not an object", TRIGGER, {"input": {"event": "HANGUP", "params": [1]}},
     "input.params"),
    ("empty idempotency key", TRIGGER, {"input": {"event": "HANGUP", "idempotencyKey": ""}},
     "input.idempotencyKey"),
    ("second trigger of a batch", TRIGGERS, {"inputs": [
        {"event": "HANGUP"}, {"event": "HANGUP", "params": "x"}]}, "inputs[1].params"),
    ("page of zero rows", ACTIVITY, {"first": 0}, "first"),
]


def names_its_field_as_the_form_does(message: str, field: str) -> bool:
    """The style of every BAD_USER_INPUT message (``event_manager.errors.named``): one that
    begins with the field's name begins with its path within the argument
    ("headers[2].key must not be empty" for ``input.headers[2].key``, "name must …" for
    ``input.name``), never with the argument ("input.name must …") nor a bare last part
    ("key must …", "expireAfterSeconds must …") where more of the path is needed."""
    within = field.split(".", 1)[1] if "." in field else field
    first = message.split(" ", 1)[0].rstrip(":")
    parts = set(re.split(r"[.\[\]]+", field)) - {""}
    if not set(re.split(r"[.\[\]]+", first)) & parts:
        return True  # it begins with something else: "'X Bad' is not a valid header name"
    return first == within


@pytest.mark.parametrize("query, variables, field",
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_names_the_field_and_writes_nothing(
    tenant: TenantHandle, query: str, variables: dict[str, Any], field: str
) -> None:
    before = tenant.snapshot()
    reply = tenant.admin(query, **variables)
    assert reply.code == "BAD_USER_INPUT", reply.error
    assert reply.error["extensions"].get("field") == field, reply.error
    assert names_its_field_as_the_form_does(reply.error["message"], field), reply.error
    assert "Traceback" not in str(reply.body)
    assert tenant.snapshot() == before


def test_the_style_rule_tells_the_forms_apart() -> None:
    for message, field in [("name must not be empty", "input.name"),
                           ("headers[2].key must not be empty", "input.headers[2].key"),
                           ("policy.expireAfterSeconds must be between", "input.policy."
                            "expireAfterSeconds"),
                           ("'X Bad' is not a valid header name", "input.headers[1].key"),
                           ("first must be between 1 and 500", "first")]:
        assert names_its_field_as_the_form_does(message, field), message
    for message, field in [("input.name must not be empty", "input.name"),
                           ("key must not be empty", "input.headers[2].key"),
                           ("expireAfterSeconds must be", "input.policy.expireAfterSeconds")]:
        assert not names_its_field_as_the_form_does(message, field), message


def test_the_catalogue_has_at_least_20_distinct_cases() -> None:
    assert len({c[0] for c in CASES}) >= 20


def test_malformed_graphql_is_bad_input(tenant: TenantHandle) -> None:
    reply = tenant.admin("mutation { createAction(input: {name: ")
    assert reply.code == "BAD_USER_INPUT"
    assert "Syntax Error" in reply.error["message"]
