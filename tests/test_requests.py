"""Every method × body type × authorization type reaches the receiver exactly as a user
of Postman would expect: path, query, headers and body, with parameters rendered.

One trigger fans out to all 100 combinations (an event's limit); each is then checked
as a test of its own.
"""

from __future__ import annotations

import base64
import itertools
import json
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.conftest import TenantHandle, make_tenant
from tests.receiver import Received, Receiver

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
BODIES = ["NONE", "FORM_DATA", "X_WWW_FORM_URLENCODED", "RAW"]
AUTHS = ["NO_AUTH", "API_KEY_HEADER", "API_KEY_QUERY", "BASIC_AUTH", "BEARER_TOKEN"]
COMBINATIONS = list(itertools.product(METHODS, BODIES, AUTHS))
CALL = {"caller_id": "+381 11/22", "call_id": "c-7", "duration": 61}
CLIENT_HEADERS = {"host", "accept", "accept-encoding", "content-length", "user-agent"}

AUTH_INPUT = {
    "NO_AUTH": {"type": "NO_AUTH"},
    "API_KEY_HEADER": {"type": "API_KEY", "apiKeyName": "X-Api-Key",
                       "apiKeyValue": "key-{{call_id}}",
                       "apiKeyIn": "HEADER"},
    "API_KEY_QUERY": {"type": "API_KEY", "apiKeyName": "api_key", "apiKeyValue": "k&1",
                      "apiKeyIn": "QUERY"},
    "BASIC_AUTH": {"type": "BASIC_AUTH", "username": "pbx", "password": "pä:ss"},
    "BEARER_TOKEN": {"type": "BEARER_TOKEN", "token": "tok-{{call_id}}"},
}
BODY_INPUT: dict[str, dict[str, Any]] = {
    "NONE": {},
    "FORM_DATA": {"bodyFields": [{"key": "caller", "value": "{{caller_id}}"},
                                 {"key": "off", "value": "x", "enabled": False},
                                 {"key": "note", "value": "a&b=c"}]},
    "X_WWW_FORM_URLENCODED": {"bodyFields": [{"key": "caller", "value": "{{caller_id}}"},
                                             {"key": "off", "value": "x", "enabled": False},
                                             {"key": "note", "value": "a&b=c"}]},
    "RAW": {"rawBody": '{"caller": "{{caller_id}}", "seconds": {{duration}}}',
            "rawContentType": "application/json"},
}


def path_of(method: str, body: str, auth: str) -> str:
    return f"/{method}-{body}-{auth}".lower()


@pytest.fixture(scope="module")
def delivered(system: Any, mongo: Any, settings: Any, receiver: Receiver,
              worker: Any) -> dict[tuple[str, str, str], Received]:
    tenant: TenantHandle = make_tenant(system, mongo, settings)
    ids = []
    for method, body, auth in COMBINATIONS:
        reply = tenant.admin("mutation($i: ActionInput!) { createAction(input: $i) { id } }", i={
            "name": f"{method} {body} {auth}", "method": method,
            "url": f"{receiver.url}/{tenant.code}{path_of(method, body, auth)}/{{{{caller_id}}}}"
                   "?static=1",
            "query": [{"key": "who", "value": "{{caller_id}}"},
                      {"key": "off", "value": "x", "enabled": False}],
            "headers": [{"key": "X-Call", "value": "{{call_id}}"},
                        {"key": "X-Off", "value": "x", "enabled": False}],
            "bodyType": body, **BODY_INPUT[body], "authorization": AUTH_INPUT[auth],
        })
        ids.append(reply.data["createAction"]["id"])
    tenant.admin("mutation($ids: [ID!]) { updateEvent(type: HANGUP, input: {active: true, "
                 "actionIds: $ids}) { type } }", ids=ids).data
    tenant.admin("mutation { updateSettings(input: {actionsEnabled: true}) { timezone } }").data
    result = tenant.admin("mutation($p: JSON) { triggerEvent(input: {event: HANGUP, params: $p})"
                          " { accepted activities { status } } }", p=CALL).data["triggerEvent"]
    assert result["accepted"] and len(result["activities"]) == 100
    arrived = {}
    for combination in COMBINATIONS:
        path = f"/{tenant.code}{path_of(*combination)}/+381 11/22"
        [arrived[combination]] = receiver.wait_for(path, timeout=60)
    return arrived


def multipart(boundary: str, fields: list[tuple[str, str]]) -> bytes:
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
             for k, v in fields]
    return ("".join(parts) + f"--{boundary}--\r\n").encode()


@pytest.mark.parametrize("method, body, auth", COMBINATIONS,
                         ids=["-".join(c) for c in COMBINATIONS])
def test_request_arrives_as_described(delivered: dict, method: str, body: str,
                                      auth: str) -> None:
    got: Received = delivered[(method, body, auth)]
    assert got.method == method
    # The path placeholder is percent-encoded, "/" included; query rows follow the URL's own.
    assert got.raw_path.split("?")[0].endswith("/%2B381%2011%2F22")
    query = "static=1&who=%2B381%2011/22"  # "/" is allowed in a query (RFC 3986)
    if auth == "API_KEY_QUERY":
        query += "&api_key=k%261"
    assert got.query == query

    expected = {"x-call": "c-7", "user-agent": "EventManager/1.0"}
    if body == "FORM_DATA":
        content_type = got.header("Content-Type")
        assert content_type.startswith("multipart/form-data; boundary=")
        boundary = content_type.split("boundary=", 1)[1]
        assert got.body == multipart(boundary, [("caller", "+381 11/22"), ("note", "a&b=c")])
        expected["content-type"] = content_type
    elif body == "X_WWW_FORM_URLENCODED":
        assert got.body == b"caller=%2B381+11%2F22&note=a%26b%3Dc"
        expected["content-type"] = "application/x-www-form-urlencoded"
    elif body == "RAW":
        assert json.loads(got.body) == {"caller": "+381 11/22", "seconds": 61}
        assert got.body == b'{"caller": "+381 11/22", "seconds": 61}'
        expected["content-type"] = "application/json"
    else:
        assert got.body == b""
        assert got.header("Content-Type") is None

    if auth == "API_KEY_HEADER":
        expected["x-api-key"] = "key-c-7"
    elif auth == "BASIC_AUTH":
        expected["authorization"] = "Basic " + base64.b64encode("pbx:pä:ss".encode()).decode()
    elif auth == "BEARER_TOKEN":
        expected["authorization"] = "Bearer tok-c-7"
    for name, value in expected.items():
        assert got.header(name) == value, name
    sent = {k.lower() for k, _ in got.headers}
    assert sent - CLIENT_HEADERS == set(expected) - {"user-agent"}
    assert urlsplit(f"http://x{got.raw_path}").fragment == ""
