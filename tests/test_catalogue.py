"""A catalogue of bad input, sent over HTTP to the real API and grouped by kind.

Each case is refused with a clear error: the contract's code, words that name the problem
(and the limit), and ``extensions.field`` where one input is at fault. The service stays
up, and nothing is written: the tenant's documents are the same before and after.
tests/test_bad_input.py holds the field-by-field checks of actions and parameters; the
cases here are other kinds. The limits themselves are in schema/limits.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from event_manager.config import Settings
from resolvers.postman import (
    MAX_FOLDER_DEPTH,
    MAX_REQUESTS,
    MAX_ROWS,
    MAX_VARIABLES,
    parse_collection,
)
from schema.limits import (
    MAX_ALIASES,
    MAX_BODY_BYTES,
    MAX_DEPTH,
    MAX_FIELDS,
    MAX_JSON_VALUES,
    MAX_QUERY_CHARS,
    MAX_TOKENS,
    MAX_WS_MESSAGE_CHARS,
)
from tests.conftest import SHARED, TenantHandle

MAX_HEADER_BYTES = Settings.model_fields["http_max_header_bytes"].default

CREATE_ACTION = "mutation($input: ActionInput!) { createAction(input: $input) { id } }"
CREATE_PARAMETER = "mutation($input: ParameterInput!) { createParameter(input: $input) { tag } }"
TRIGGER = "mutation($input: TriggerInput!) { triggerEvent(input: $input) { triggerId } }"
TRIGGERS = "mutation($inputs: [TriggerInput!]!) { triggerEvents(inputs: $inputs) { triggerId } }"
ACTIVITY = "query($first: Int, $filter: ActivityFilter) { activity(first: $first, " \
           "filter: $filter) { items { id } } }"
SEARCH = "query($s: String) { actions(search: $s) { id } }"
IMPORT = "mutation($c: String!) { importPostmanCollection(collection: $c) { errors } }"
V21 = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
ME = "{ me { role } }"


@dataclass(frozen=True)
class Case:
    """One bad request and the refusal it must get.

    ``body`` replaces the usual ``{"query", "variables"}`` JSON: raw bytes, or a function
    that makes them (or yields chunks, sent without a length). A GET sends the query and
    variables as URL parameters. ``variables`` may be a function of the seeded actions'
    ids by name (``seed``), for a case about one of them."""

    name: str
    query: str = ""
    variables: dict[str, Any] | Callable[[dict[str, str]], dict[str, Any]] = field(
        default_factory=dict)
    words: str = ""
    field: str | None = None
    code: str = "BAD_USER_INPUT"
    status: int = 200
    body: bytes | Callable[[], bytes | Iterator[bytes]] | None = None
    content_type: str = "application/json"
    method: str = "POST"
    headers: tuple[tuple[str, str], ...] = ()


def action(**fields: Any) -> dict[str, Any]:
    return {"input": {"name": "Hook 2", "url": "https://example.com/hook", **fields}}


def header(key: str, value: str = "v") -> dict[str, Any]:
    return action(headers=[{"key": key, "value": value}])


def api_key(name: str, value: str = "secret") -> dict[str, Any]:
    return action(authorization={"type": "API_KEY", "apiKeyName": name, "apiKeyValue": value})


def param(tag: Any, value: str = "x") -> dict[str, Any]:
    return {"input": {"tag": tag, "value": value}}


def trigger(**fields: Any) -> dict[str, Any]:
    return {"input": {"event": "HANGUP", **fields}}


def request(query: str, **variables: Any) -> bytes:
    """A request body as a client that escapes everything outside ASCII sends it."""
    return json.dumps({"query": query, "variables": variables}).encode()


def nested(levels: int) -> str:
    return "{ " + "me { " * levels + "role" + " }" * levels + " }"


def over_the_body_limit() -> bytes:
    return request(ME, pad="x" * MAX_BODY_BYTES)


def chunks_over_the_body_limit() -> Iterator[bytes]:
    for _ in range(MAX_BODY_BYTES // 2**20 + 1):
        yield b" " * 2**20


TRANSPORT = [
    Case("body is not JSON", body=b'{"query": ', status=400, words="not valid JSON"),
    Case("body is a JSON string", body=b'"{ me { role } }"', status=400,
         words="must be a JSON object, not a string"),
    Case("body is null", body=b"null", status=400, words="not null"),
    Case("body is a number", body=b"42", status=400, words="not a number"),
    Case("batch of operations", status=400, words="batching is not supported",
         body=b'[{"query": "{ me { role } }"}, {"query": "{ me { role } }"}]'),
    Case("body is not UTF-8", body=b'{"query": "{ me { role } }\xff"}', status=400,
         words="not UTF-8"),
    Case("surrogate encoded as UTF-8 bytes", body=b'{"query": "{ me { role } }\xed\xa0\x80"}',
         status=400, words="not UTF-8"),
    Case("NaN in variables", body=b'{"query": "{ me { role } }", "variables": {"x": NaN}}',
         status=400, words="NaN is not a JSON number"),
    Case("-Infinity as a timeout", status=400, words="-Infinity is not a JSON number",
         body=b'{"query": "mutation($i: ActionInput!) { createAction(input: $i) { id } }", '
              b'"variables": {"i": {"name": "n", "url": "https://e.com", '
              b'"timeoutSeconds": -Infinity}}}'),
    Case("JSON nested 100,000 deep", status=400, words="nested too deeply",
         body=b'{"query": "{ me { role } }", "variables": {"x": ' + b"[" * 100_000
              + b"]" * 100_000 + b"}}"),
    Case("integer of 5,000 digits", status=400, words="number is too long",
         body=b'{"query": "{ me { role } }", "variables": {"x": ' + b"7" * 5000 + b"}}"),
    Case("query is a number", body=b'{"query": 5}', status=400,
         words="`query` must be a string"),
    Case("variables is an array", body=b'{"query": "{ me { role } }", "variables": [1]}',
         status=400, words="`variables` must be an object"),
    Case("no query", body=b"{}", status=400, words="No GraphQL query found"),
    Case("unknown operationName", status=400, words='Unknown operation named "B"',
         body=b'{"query": "query A { me { role } }", "operationName": "B"}'),
    Case("subscription over POST", "subscription { activity { id } }", status=400,
         words="subscriptions are not allowed when using POST"),
    Case("mutation over GET", 'mutation { deleteParameter(tag: "crm") }', method="GET",
         status=400, words="mutations are not allowed when using GET"),
    Case("text/plain content type", body=request(ME), content_type="text/plain", status=400,
         words="Unsupported content type"),
    Case(f"more than {MAX_JSON_VALUES} JSON values", status=400,
         words=f"more than {MAX_JSON_VALUES} JSON values",
         body=lambda: request(ME, x=[0] * MAX_JSON_VALUES)),
    Case("body over the limit, declared", body=over_the_body_limit, status=413,
         words=f"larger than {MAX_BODY_BYTES // 2**20} MiB"),
    Case("body over the limit, chunked", body=chunks_over_the_body_limit, status=413,
         words=f"larger than {MAX_BODY_BYTES // 2**20} MiB"),
    Case("headers over the limit", ME, headers=(("X-Pad", "p" * MAX_HEADER_BYTES),), status=431,
         words=f"headers are larger than {MAX_HEADER_BYTES} bytes"),
]

MALFORMED_GRAPHQL = [
    Case("unclosed selection", "{ me { role }", words="Syntax Error"),
    Case("unknown field", "{ me { password } }", words="Cannot query field 'password'"),
    Case("unknown argument", '{ actions(where: "x") { id } }', words="Unknown argument 'where'"),
    Case("missing required argument", "{ action { id } }",
         words="'Query.action(id:)' of type 'ID!' is required"),
    Case("selection on a leaf", "{ me { role { x } } }", words="must not have a selection"),
    Case("object without selection", "{ me }", words="must have a selection of subfields"),
    Case("fragment spreads itself", "{ ...A } fragment A on Query { me { role } ...A }",
         words="Cannot spread fragment 'A' within itself"),
    Case("undefined variable", "query { actions(search: $s) { id } }",
         words="Variable '$s' is not defined", field="s"),
    Case("variable of the wrong type", "query($s: Int) { actions(search: $s) { id } }",
         words="used in position expecting type 'String'", field="s"),
    Case("two anonymous operations", "{ me { role } } { me { role } }",
         words="must be the only defined operation"),
    Case("string literal for an Int", '{ activity(first: "ten") { items { id } } }',
         words="Int cannot represent non-integer value"),
    Case("unknown enum value", "mutation { triggerEvent(input: {event: CALL_DROPPED}) "
                               "{ triggerId } }", words="'CALL_DROPPED' does not exist"),
    Case("GraphQL escape of a lone surrogate", '{ actions(search: "\\uD800") { id } }',
         words="Invalid Unicode escape sequence"),
]

WRONG_TYPES = [
    Case("input is an array", CREATE_ACTION, {"input": [{"name": "n"}]},
         words="'ActionInput' to be an object", field="input"),
    Case("enabled is a string", CREATE_ACTION,
         action(headers=[{"key": "X-A", "value": "1", "enabled": "yes"}]),
         words="Boolean cannot represent", field="input.headers[0].enabled"),
    Case("first is a float", ACTIVITY, {"first": 2.5}, words="non-integer value", field="first"),
    Case("first over 32 bits", ACTIVITY, {"first": 2**31}, words="non 32-bit", field="first"),
    Case("event in lower case", TRIGGER, {"input": {"event": "hangup"}},
         words="'hangup' does not exist", field="input.event"),
    Case("occurredAt is not a date", TRIGGER, trigger(occurredAt="yesterday"),
         words="yesterday", field="input.occurredAt"),
    Case("params is an array", TRIGGER, trigger(params=[1, 2]),
         words="one flat JSON object", field="input.params"),
    Case("param beyond 64 bits", TRIGGER, trigger(params={"duration": 2**64}),
         words="fit in 64 bits", field="input.params.duration"),
    Case("param below -2**63", TRIGGER, trigger(params={"duration": -(2**63) - 1}),
         words="fit in 64 bits", field="input.params.duration"),
    Case("batch param beyond 64 bits", TRIGGERS, {"inputs": [{"event": "HANGUP"}] * 3 + [
        {"event": "HANGUP", "params": {"duration": 2**64}}]},
         words="fit in 64 bits", field="inputs[3].params.duration"),
    Case("param name with a dot", TRIGGER, trigger(params={"call.id": "c1"}),
         words="may not contain '.'", field="input.params.call.id"),
    Case("batch param name with a dot", TRIGGERS, {"inputs": [{"event": "HANGUP"}] * 3 + [
        {"event": "HANGUP", "params": {"call.id": "c1"}}]},
         words="may not contain '.'", field="inputs[3].params.call.id"),
    Case("param beyond a double (1e400)", body=(
        b'{"query": "' + TRIGGER.replace('"', '\\"').encode() + b'", "variables": '
        b'{"input": {"event": "HANGUP", "params": {"duration": 1e400}}}}'),
         words="numbers must be finite", field="input.params.duration"),
    Case("params nested three deep", TRIGGER, trigger(params={"a": {"b": {"c": 1}}}),
         words="strings, numbers or booleans", field="input.params.a"),
    Case("id is an object", "mutation($id: ID!) { deleteAction(id: $id) }",
         {"id": {"$gt": ""}}, words="ID cannot represent", field="id"),
]

OVERSIZE_VALUES = [
    Case("description over 2,000", CREATE_ACTION, action(description="d" * 2001),
         words="longer than 2000", field="input.description"),
    Case("header value over 8 KiB", CREATE_ACTION,
         action(headers=[{"key": "X-A", "value": "v" * 8193}]),
         words="longer than 8192", field="input.headers[0].value"),
    Case("101 query rows", CREATE_ACTION,
         action(query=[{"key": f"q{i}", "value": "v"} for i in range(101)]),
         words="more than 100 rows", field="input.query"),
    Case("bearer token over 4 KiB", CREATE_ACTION,
         action(authorization={"type": "BEARER_TOKEN", "token": "t" * 4097}),
         words="longer than 4096", field="input.authorization.token"),
    Case("parameter description over 500", CREATE_PARAMETER,
         {"input": {"tag": "crm2", "value": "x", "description": "d" * 501}},
         words="longer than 500", field="input.description"),
    Case("idempotency key of 201", TRIGGER, trigger(idempotencyKey="k" * 201),
         words="1-200 characters", field="input.idempotencyKey"),
    Case("101 trigger params", TRIGGER, trigger(params={f"p{i}": i for i in range(101)}),
         words="more than 100 keys", field="input.params"),
    Case("trigger param over 4,096", TRIGGER, trigger(params={"caller_id": "1" * 4097}),
         words="at most 4096", field="input.params.caller_id"),
    Case("activity search over 200", ACTIVITY, {"filter": {"search": "s" * 201}},
         words="at most 200", field="filter.search"),
    Case("batch of 501 triggers", TRIGGERS, {"inputs": [{"event": "HANGUP"}] * 501},
         words="at most 500", field="inputs"),
    Case("page of 201", ACTIVITY, {"first": 201}, words="between 1 and 200", field="first"),
    Case("page of 0", ACTIVITY, {"first": 0}, words="between 1 and 200", field="first"),
    Case("page of -5", ACTIVITY, {"first": -5}, words="between 1 and 200", field="first"),
]

URLS = [
    Case("file scheme", CREATE_ACTION, action(url="file:///etc/passwd"), words="http://",
         field="input.url"),
    Case("gopher scheme", CREATE_ACTION, action(url="gopher://127.0.0.1:6379/_FLUSHALL"),
         words="http://", field="input.url"),
    Case("data URL", CREATE_ACTION, action(url="data:text/plain,hi"), words="http://",
         field="input.url"),
    Case("FTP in capitals", CREATE_ACTION, action(url="FTP://example.com/x"), words="http://",
         field="input.url"),
    Case("javascript after spaces", CREATE_ACTION, action(url="  javascript:alert(1)"),
         words="http://", field="input.url"),
    Case("scheme-relative", CREATE_ACTION, action(url="//example.com/x"), words="http://",
         field="input.url"),
    Case("http without slashes", CREATE_ACTION, action(url="http:example.com"),
         words="http://", field="input.url"),
    Case("ws scheme", CREATE_ACTION, action(url="ws://example.com/socket"), words="http://",
         field="input.url"),
    Case("CR/LF in url", CREATE_ACTION, action(url="https://example.com/\r\nHost: evil"),
         words="control character", field="input.url"),
    Case("NUL in url", CREATE_ACTION, action(url="https://example.com/\x00"),
         words="control character", field="input.url"),
    Case("credentials from a parameter", CREATE_ACTION,
         action(url="https://{{user}}@example.com/"), words="credentials", field="input.url"),
]

HEADER_INJECTION = [
    Case("CR/LF in header name", CREATE_ACTION, header("X-A\r\nX-B"),
         words="control character", field="input.headers[0].key"),
    Case("LF alone in header value", CREATE_ACTION, header("X-A", "v\nX-B: 1"),
         words="control character", field="input.headers[0].value"),
    Case("CR alone in header value", CREATE_ACTION, header("X-A", "v\rX-B: 1"),
         words="control character", field="input.headers[0].value"),
    Case("Transfer-Encoding header", CREATE_ACTION, header("Transfer-Encoding", "chunked"),
         words="set by the HTTP client", field="input.headers[0].key"),
    Case("Connection header", CREATE_ACTION, header("Connection", "close"),
         words="set by the HTTP client", field="input.headers[0].key"),
    Case("EXPECT header", CREATE_ACTION, header("EXPECT", "100-continue"),
         words="set by the HTTP client", field="input.headers[0].key"),
    Case("header name with a colon", CREATE_ACTION, header("X-A:"),
         words="not a valid header name", field="input.headers[0].key"),
    Case("API key in the Host header", CREATE_ACTION, api_key("Host"),
         words="set by the HTTP client", field="input.authorization.apiKeyName"),
    Case("API key in Content-Length", CREATE_ACTION, api_key("content-length"),
         words="set by the HTTP client", field="input.authorization.apiKeyName"),
    Case("CR/LF in API key name", CREATE_ACTION, api_key("X-Key\r\nX-B"),
         words="control character", field="input.authorization.apiKeyName"),
    Case("CR/LF in API key value", CREATE_ACTION, api_key("X-Key", "s\r\nX-B: 1"),
         words="control character", field="input.authorization.apiKeyValue"),
    Case("CR/LF in bearer token", CREATE_ACTION,
         action(authorization={"type": "BEARER_TOKEN", "token": "t\r\nX-B: 1"}),
         words="control character", field="input.authorization.token"),
    Case("CR/LF in basic password", CREATE_ACTION,
         action(authorization={"type": "BASIC_AUTH", "username": "u", "password": "p\r\n"}),
         words="control character", field="input.authorization.password"),
    Case("CR/LF in query key", CREATE_ACTION, action(query=[{"key": "a\r\nb", "value": "v"}]),
         words="control character", field="input.query[0].key"),
]

INJECTION = [
    Case("tag with template braces", CREATE_PARAMETER, param("{{ __class__ }}"),
         words="tag must be", field="input.tag"),
    Case("tag that is a regex", CREATE_PARAMETER, param(".*"), words="tag must be",
         field="input.tag"),
    Case("tag that is a catastrophic regex", CREATE_PARAMETER, param("(a+)+$"),
         words="tag must be", field="input.tag"),
    Case("tag that is an operator object", CREATE_PARAMETER, param({"$ne": None}),
         words="String cannot represent", field="input.tag"),
    Case("search that is an operator object", SEARCH, {"s": {"$ne": None}},
         words="String cannot represent", field="s"),
    Case("operator as a trigger param", TRIGGER, trigger(params={"$where": "sleep(1000)"}),
         words="not a parameter name", field="input.params.$where"),
    Case("operator object as a param value", TRIGGER,
         trigger(params={"caller_id": {"$ne": None}}), words="strings, numbers or booleans",
         field="input.params.caller_id"),
    Case("template as a param name", TRIGGER, trigger(params={"{{tenant}}": "x"}),
         words="not a parameter name", field="input.params.{{tenant}}"),
    Case("delete parameters matching .*", 'mutation { deleteParameter(tag: ".*") }',
         code="NOT_FOUND", words="no parameter with tag '.*'", field="tag"),
    Case("update parameters matching $ne", "mutation($t: String!, $i: ParameterInput!) "
         "{ updateParameter(tag: $t, input: $i) { tag } }",
         {"t": '{"$ne": null}', "i": {"tag": "x", "value": "y"}}, code="NOT_FOUND",
         words="no parameter with tag", field="tag"),
    Case("delete actions matching $ne", 'mutation { deleteAction(id: "{$ne: null}") }',
         code="NOT_FOUND", words="no action with id", field="id"),
    Case("test actions matching $ne", "mutation($ids: [ID!]) { testEvent(event: HANGUP, "
         "actionIds: $ids) { triggerId } }", {"ids": ['{"$ne": null}']},
         words="no action with id", field="actionIds[0]"),
]

UNICODE = [
    Case("lone high surrogate in a name", CREATE_ACTION, action(name="Hook \ud800"),
         status=400, words="unpaired UTF-16 surrogate (\\ud800)", field="input.name"),
    Case("lone low surrogate in a search", SEARCH, {"s": "\udfff"}, status=400,
         words="unpaired UTF-16 surrogate", field="s"),
    Case("lone surrogate in a params key", TRIGGER, trigger(params={"\udc00": 1}), status=400,
         words="a key of input.params", field="input.params"),
    Case("lone surrogate in the query text", '{ actions(search: "\ud83d") { id } }',
         status=400, words="unpaired UTF-16 surrogate", field="query"),
    Case("NUL in a name", CREATE_ACTION, action(name="Hook\x00"), words="control character",
         field="input.name"),
    Case("NUL in a tag", CREATE_PARAMETER, param("crm\x00"), words="tag must be",
         field="input.tag"),
    Case("NUL in a param name", TRIGGER, trigger(params={"call\x00id": 1}),
         words="not a parameter name", field="input.params.call\x00id"),
    Case("zero-width space in a tag", CREATE_PARAMETER, param("crm\u200b"),
         words="tag must be", field="input.tag"),
    Case("right-to-left mark in a tag", CREATE_PARAMETER, param("\u200fcrm"),
         words="tag must be", field="input.tag"),
    Case("byte order mark in a tag", CREATE_PARAMETER, param("\ufeffcrm"),
         words="tag must be", field="input.tag"),
    Case("full-width letters in a tag", CREATE_PARAMETER, param("ｃｒｍ"),
         words="tag must be", field="input.tag"),
    Case("zero-width joiner in a header name", CREATE_ACTION, header("X-\u200dA"),
         words="not a valid header name", field="input.headers[0].key"),
    Case("right-to-left override in an API key name", CREATE_ACTION, api_key("X-Key\u202e"),
         words="invisible formatting character (U+202E)",
         field="input.authorization.apiKeyName"),
    Case("right-to-left override in an action name", CREATE_ACTION,
         action(name="Invoice \u202egpj.exe"), words="invisible formatting character (U+202E)",
         field="input.name"),
    Case("zero-width space in an action name", CREATE_ACTION, action(name="CRM\u200b"),
         words="invisible formatting character (U+200B)", field="input.name"),
]

QUERY_LIMITS = [
    Case(f"depth {MAX_DEPTH + 1}", nested(MAX_DEPTH + 1),
         words=f"nested {MAX_DEPTH + 1} levels deep; at most {MAX_DEPTH}"),
    Case("depth through fragments", "{ ...A } fragment A on Query { me { ...B } } "
         f"fragment B on Principal {{ {nested(MAX_DEPTH)[2:-2]} }}",
         words=f"at most {MAX_DEPTH}"),
    Case(f"{MAX_ALIASES + 1} aliases",
         "{ " + " ".join(f"a{i}: me {{ role }}" for i in range(MAX_ALIASES + 1)) + " }",
         words=f"{MAX_ALIASES + 1} aliases; at most {MAX_ALIASES}"),
    Case("alias bomb of deletions", "mutation { " + " ".join(
        f'd{i}: deleteParameter(tag: "crm")' for i in range(MAX_ALIASES + 1)) + " }",
         words=f"at most {MAX_ALIASES}"),
    Case(f"{MAX_FIELDS + 1} fields", "{ me { " + "role " * MAX_FIELDS + "} }",
         words=f"{MAX_FIELDS + 1} fields; at most {MAX_FIELDS}"),
    Case("fields in an unused fragment", "{ me { role } } fragment X on Query { "
         + "me { role } " * MAX_FIELDS + "}", words=f"at most {MAX_FIELDS}"),
    Case(f"more than {MAX_TOKENS} tokens", ME + " #\n" * MAX_TOKENS,
         words=f"more than {MAX_TOKENS} tokens"),
    Case(f"query text over {MAX_QUERY_CHARS}", ME + " " * MAX_QUERY_CHARS,
         words=f"more than {MAX_QUERY_CHARS}"),
    Case("introspection cycle", "{ __schema { types { fields { type { fields { type "
         "{ fields { name } } } } } } } }", words="Maximum introspection depth"),
    Case("chain of 400 fragments", "{ ...F0 } " + " ".join(
        f"fragment F{i} on Query {{ ...F{i + 1} }}" for i in range(400))
         + " fragment F400 on Query { me { role } }", words="too complex to validate"),
]


def postman(*items: Any) -> str:
    return json.dumps({"info": {"name": "c", "schema": V21}, "item": list(items)})


def in_folders(depth: int) -> dict[str, Any]:
    """A request inside ``depth`` folders, each inside the next."""
    item: dict[str, Any] = {"name": "r", "request": "https://example.com"}
    for _ in range(depth):
        item = {"name": "f", "item": [item]}
    return item


POSTMAN = [
    Case("collection is not JSON", IMPORT, {"c": "{"}, words="not valid JSON",
         field="collection"),
    Case("collection cut short", IMPORT, {"c": postman({"name": "r", "request": {
        "method": "GET", "url": "https://example.com"}})[:60]}, words="not valid JSON",
         field="collection"),
    Case("collection is empty", IMPORT, {"c": ""}, words="not valid JSON", field="collection"),
    Case("collection is null", IMPORT, {"c": "null"}, words="holds null", field="collection"),
    Case("collection is a number", IMPORT, {"c": "3.14"}, words="holds a number",
         field="collection"),
    Case("collection of schema v3", IMPORT, {"c": json.dumps({"info": {"name": "c",
         "schema": V21.replace("v2.1.0", "v3.0.0")}, "item": []})},
         words="v3.0 is not supported", field="collection"),
    Case("no info and no requests", IMPORT, {"c": '{"item": []}'},
         words="not a Postman collection", field="collection"),
    Case("folders nested 3,000 deep", IMPORT, {"c": '{"info": {"name": "c", "schema": "'
         + V21 + '"}, "item": ' + '[{"item": ' * 3000 + "[]" + "}]" * 3000 + "}"},
         words="nested too deeply", field="collection"),
    Case("only empty folders", IMPORT, {"c": postman({"name": "f", "item": []})},
         words="no requests to import", field="collection"),
    Case(f"{MAX_REQUESTS + 1} requests", IMPORT, {"c": postman(*[{"name": "Ping", "request": {
        "method": "GET", "url": "https://example.com"}}] * (MAX_REQUESTS + 1))},
         words=f"more than {MAX_REQUESTS} requests; at most {MAX_REQUESTS}", field="collection"),
    Case(f"folders nested {MAX_FOLDER_DEPTH + 1} deep", IMPORT,
         {"c": postman(in_folders(MAX_FOLDER_DEPTH + 1))},
         words=f"nested more than {MAX_FOLDER_DEPTH} deep", field="collection"),
    Case(f"{MAX_ROWS + 1} headers in a request", IMPORT, {"c": postman({"name": "r", "request": {
        "url": "https://example.com", "header": [{"key": "X-A", "value": "1"}] * (MAX_ROWS + 1)}})},
         words=f"more than {MAX_ROWS} header rows", field="collection"),
    Case(f"{MAX_VARIABLES + 1} variables", IMPORT, {"c": json.dumps({
        "info": {"name": "c", "schema": V21}, "item": [],
        "variable": [{"key": f"v{i}", "value": "1"} for i in range(MAX_VARIABLES + 1)]})},
         words=f"more than {MAX_VARIABLES} variables", field="collection"),
    Case("lone surrogate in a collection", IMPORT, {"c": '{"info": {"name": "\udead"}}'},
         status=400, words="unpaired UTF-16 surrogate", field="c"),
]

UPDATE_ACTION = "mutation($id: ID!, $input: ActionInput!) { updateAction(id: $id, " \
                "input: $input) { id } }"


def moved(name: str, url: str, **fields: Any) -> Callable[[dict[str, str]], dict[str, Any]]:
    """The seeded action ``name`` sent to ``url``, its stored secrets kept (null)."""
    return lambda ids: {"id": ids[name], "input": {"name": name, "url": url, **fields}}


BEARER = {"type": "BEARER_TOKEN"}
STORED_SECRETS = [
    Case("token kept for another host", UPDATE_ACTION,
         moved("Hook", "https://elsewhere.example/hook", authorization=BEARER),
         words="re-enter the token for the new destination",
         field="input.authorization.token"),
    Case("token kept as the mask for another scheme", UPDATE_ACTION,
         moved("Hook", "http://example.com/hook",
               authorization={**BEARER, "token": "********"}),
         words="re-enter the token for the new destination", field="input.authorization.token"),
    Case("token kept for another port", UPDATE_ACTION,
         moved("Hook", "https://example.com:8443/hook", authorization=BEARER),
         words="re-enter the token", field="input.authorization.token"),
    Case("token kept for a base URL parameter", UPDATE_ACTION,
         moved("Hook", "{{base_url}}/hook", authorization=BEARER),
         words="re-enter the token", field="input.authorization.token"),
    Case("signing secret kept for another host", UPDATE_ACTION,
         moved("Hook", "https://elsewhere.example/hook",
               authorization={**BEARER, "token": "new-token"}),
         words="re-enter the signing secret for the new destination",
         field="input.signingSecret"),
    Case("Basic password kept for another host", UPDATE_ACTION,
         moved("Basic hook", "https://elsewhere.example/hook",
               authorization={"type": "BASIC_AUTH", "username": "crm"}),
         words="re-enter the password for the new destination",
         field="input.authorization.password"),
    Case("API key kept for another host", UPDATE_ACTION,
         moved("Key hook", "https://elsewhere.example/hook",
               authorization={"type": "API_KEY", "apiKeyName": "X-Key"}),
         words="re-enter the API key for the new destination",
         field="input.authorization.apiKeyValue"),
]

KINDS = {
    "transport": TRANSPORT, "graphql": MALFORMED_GRAPHQL, "types": WRONG_TYPES,
    "oversize": OVERSIZE_VALUES, "url": URLS, "header": HEADER_INJECTION,
    "injection": INJECTION, "unicode": UNICODE, "limits": QUERY_LIMITS, "postman": POSTMAN,
    "secrets": STORED_SECRETS,
}
CASES = [pytest.param(case, id=f"{kind}: {case.name}")
         for kind, cases in KINDS.items() for case in cases]


SIGNING_SECRET = "whsec_" + "A" * 32
SEEDED = [
    {"name": "Hook", "url": "https://example.com/hook", "signingSecret": SIGNING_SECRET,
     "authorization": {"type": "BEARER_TOKEN", "token": "stored-token"}},
    {"name": "Basic hook", "url": "https://example.com/basic",
     "authorization": {"type": "BASIC_AUTH", "username": "crm", "password": "stored-pw"}},
    {"name": "Key hook", "url": "https://example.com/key",
     "authorization": {"type": "API_KEY", "apiKeyName": "X-Key", "apiKeyValue": "stored-key"}},
]


def seed(tenant: TenantHandle) -> dict[str, str]:
    """Something to lose: actions (with secrets) and a parameter that a bad call must leave
    alone; the actions' ids by name."""
    ids = {action["name"]: tenant.admin(CREATE_ACTION, input=action).data["createAction"]["id"]
           for action in SEEDED}
    tenant.admin(CREATE_PARAMETER, input={"tag": "crm", "value": "x"}).data
    return ids


def send(tenant: TenantHandle, case: Case, ids: dict[str, str] | None = None) -> httpx.Response:
    url = f"{tenant.admin.url}/graphql"
    headers = {"Authorization": f"Bearer {tenant.admin.key}", "Content-Type": case.content_type,
               **dict(case.headers)}
    variables = case.variables(ids or {}) if callable(case.variables) else case.variables
    if case.method == "GET":
        params = {"query": case.query, "variables": json.dumps(variables)}
        return httpx.get(url, params=params, headers=headers, timeout=60)
    body = case.body() if callable(case.body) else case.body
    if body is None:
        body = request(case.query, **variables)
    return httpx.post(url, content=body, headers=headers, timeout=60)


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_refused_clearly_and_writes_nothing(tenant: TenantHandle,
                                                         case: Case) -> None:
    ids = seed(tenant)
    before = tenant.snapshot()
    response = send(tenant, case, ids)
    assert response.status_code == case.status, response.text[:500]
    assert response.headers["content-type"].startswith("application/json"), response.text[:500]
    assert "Traceback" not in response.text
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == case.code, error
    assert case.words.lower() in error["message"].lower(), error
    assert error["extensions"].get("field") == case.field, error
    assert tenant.admin(ME).data["me"]["role"] == "TENANT_ADMIN"
    assert tenant.snapshot() == before


def test_the_catalogue_has_at_least_50_cases_and_5_of_each_kind() -> None:
    assert len({c.id for c in CASES}) == len(CASES) >= 50
    assert all(len(cases) >= 5 for cases in KINDS.values())


@pytest.mark.parametrize("search", [".*", "(a+)+$", "{$ne: null}", '{"$ne": null}', "^",
                                    "\\", "a\x00b", "{{ __class__ }}", "$where"])
def test_a_search_is_text_never_a_pattern_or_operator(tenant: TenantHandle,
                                                      search: str) -> None:
    seed(tenant)
    before = tenant.snapshot()
    reply = tenant.admin("""query($s: String, $f: ActivityFilter) {
        actions(search: $s) { name } parameters(search: $s) { tag } masterActions(search: $s)
        { name } activity(filter: $f) { items { id } } }""", s=search, f={"search": search})
    assert reply.data == {"actions": [], "parameters": [], "masterActions": [],
                          "activity": {"items": []}}
    assert tenant.snapshot() == before


# --- What the limits still let through ---------------------------------------------------

def test_queries_at_the_limits_are_answered(tenant: TenantHandle) -> None:
    aliases = " ".join(f"a{i}: me {{ role }}" for i in range(MAX_ALIASES))
    assert len(tenant.admin("{ " + aliases + " }").data) == MAX_ALIASES
    fields = "{ me { " + "role " * (MAX_FIELDS - 1) + "} }"
    assert tenant.admin(fields).data == {"me": {"role": "TENANT_ADMIN"}}
    deepest = "{ activity(first: 1) { items { request { headers { key } } } } }"
    assert tenant.admin(deepest).data == {"activity": {"items": []}}


def test_the_introspection_query_of_graphiql_is_not_limited(tenant: TenantHandle) -> None:
    from graphql import get_introspection_query

    query = get_introspection_query(descriptions=True, specified_by_url=True,
                                    directive_is_repeatable=True, schema_description=True,
                                    input_value_deprecation=True)
    reply = tenant.admin(query)
    assert reply.body["data"]["__schema"]["queryType"] == {"name": "Query", "kind": "OBJECT"}
    codes = {e["extensions"]["code"] for e in reply.body.get("errors") or []}
    assert "BAD_USER_INPUT" not in codes


def test_a_10_mb_postman_collection_fits_in_a_request(tenant: TenantHandle) -> None:
    """A real collection's escapes grow it by half inside a JSON request: copies of one,
    as many as ``MAX_REQUESTS`` allows, the rest of 10 MB filled with its text (tabs,
    line breaks and quotes, each escaped) as the description of a folder."""
    fixture = SHARED / "fixtures" / "postman" / "transferwise-banks-flow.v2.1.json"
    source = json.loads(fixture.read_text(encoding="utf-8"))
    per_copy = len(parse_collection(json.dumps(source)).requests)
    copies = [{"name": "copy", "item": source["item"]}] * (MAX_REQUESTS // per_copy)
    filler = json.dumps(source, indent="\t")
    text = json.dumps({**source, "item": copies}, indent="\t")
    room = (10 * 2**20 - len(text.encode())) // len(json.dumps(filler))
    pad = {"name": "padding", "item": [], "description": filler * room}
    text = json.dumps({**source, "item": [*copies, pad]}, indent="\t")
    body = request("query($c: String!) { postmanRequests(collection: $c) { ref } }", c=text)
    assert 10 * 2**20 * 0.99 < len(text.encode()) <= 10 * 2**20
    assert 10 * 2**20 * 1.3 < len(body) <= MAX_BODY_BYTES
    reply = tenant.admin("query($c: String!) { postmanRequests(collection: $c) { ref } }",
                         c=text)
    assert len(reply.data["postmanRequests"]) > MAX_REQUESTS * 0.9


# --- The same limits on WebSocket subscriptions --------------------------------------------

def ws_session(api_url: str, key: str, *messages: str) -> dict[str, Any] | tuple[int, str]:
    """The first reply to ``messages`` after the handshake, or the close code and reason."""
    url = api_url.replace("http://", "ws://") + "/graphql"
    with connect(url, subprotocols=["graphql-transport-ws"], open_timeout=10,
                 max_size=2**24) as ws:
        ws.send(json.dumps({"type": "connection_init",
                            "payload": {"Authorization": f"Bearer {key}"}}))
        assert json.loads(ws.recv(timeout=10))["type"] == "connection_ack"
        for message in messages:
            ws.send(message)
        try:
            return json.loads(ws.recv(timeout=10))
        except ConnectionClosed as closed:
            assert closed.rcvd is not None
            return closed.rcvd.code, closed.rcvd.reason


def subscribe(query: str) -> str:
    return json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}})


@pytest.mark.parametrize("query, words", [
    ("subscription { activity { " + "request { " * MAX_DEPTH + "x" + " }" * MAX_DEPTH + " } }",
     f"at most {MAX_DEPTH}"),
    ("subscription { " + " ".join(f"a{i}: activity {{ id }}" for i in range(MAX_ALIASES + 1))
     + " }", f"at most {MAX_ALIASES}"),
    ("subscription { activity { id } }" + " #\n" * MAX_TOKENS, f"more than {MAX_TOKENS}"),
], ids=["depth", "aliases", "tokens"])
def test_a_subscription_over_a_limit_is_refused(api_url: str, tenant: TenantHandle,
                                                query: str, words: str) -> None:
    reply = ws_session(api_url, tenant.admin.key, subscribe(query))
    assert isinstance(reply, dict) and reply["type"] == "error", reply
    [error] = reply["payload"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and words in error["message"]


@pytest.mark.parametrize("message, code, words", [
    (subscribe("subscription { activity { id } }" + " " * MAX_WS_MESSAGE_CHARS), 1009,
     f"longer than {MAX_WS_MESSAGE_CHARS}"),
    ("[1, 2]", 4400, "must be a JSON object, not an array"),
    ('{"type": "ping", "payload": {"x": NaN}}', 4400, "NaN is not a JSON number"),
    ('{"id": "1", "type": "subscribe", "payload": {"query": "subscription { activity { id } }",'
     ' "variables": {"filter": {"search": "\\ud800"}}}}', 4400, "unpaired UTF-16 surrogate"),
], ids=["too long", "an array", "NaN", "lone surrogate"])
def test_a_websocket_message_that_is_refused_closes_with_the_reason(
        api_url: str, tenant: TenantHandle, message: str, code: int, words: str) -> None:
    closed = ws_session(api_url, tenant.admin.key, message)
    assert isinstance(closed, tuple) and closed[0] == code and words in closed[1], closed


def test_an_operation_over_a_connection_s_limit_is_refused_naming_it(
        api_url: str, tenant: TenantHandle) -> None:
    """101 subscriptions on one connection (EVENT_MANAGER_LIVE_SUBSCRIPTIONS_PER_CONNECTION
    is 100): the 101st answers an error naming the setting; the connection stays."""
    many = [json.dumps({"id": str(n), "type": "subscribe",
                        "payload": {"query": "subscription { activity { id } }"}})
            for n in range(101)]
    reply = ws_session(api_url, tenant.admin.key, *many)
    assert isinstance(reply, dict) and (reply["type"], reply["id"]) == ("error", "100"), reply
    [error] = reply["payload"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "at most 100 run at once (EVENT_MANAGER_LIVE_SUBSCRIPTIONS_PER_CONNECTION)" \
        in error["message"]


@pytest.mark.parametrize("tenant_header, words", [
    ("nosuchtenant", "there is no tenant 'nosuchtenant'"),
    ("../x", "there is no tenant '../x'"),
], ids=["unknown tenant", "not a tenant code"])
def test_a_system_key_acting_in_no_tenant_is_refused_at_connection(
        api_url: str, tenant: TenantHandle, tenant_header: str, words: str) -> None:
    url = api_url.replace("http://", "ws://") + "/graphql"
    with connect(url, subprotocols=["graphql-transport-ws"], open_timeout=10) as ws:
        ws.send(json.dumps({"type": "connection_init", "payload": {
            "Authorization": f"Bearer {tenant.system.key}", "X-Tenant": tenant_header}}))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4403, words)
