"""Postman collections read into action inputs: pure parsing, no services.

Expected values come from reading the fixture files (real public collections, see
SOURCES.md beside them) and from what Postman itself sends for them: query rows apart from
the URL, auth inherited from the folder then the collection, a GET's body pruned unless
``protocolProfileBehavior.disableBodyPruning`` is set.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from resolvers.postman import CollectionError, ParsedCollection, ParsedRequest, parse_collection
from tests.conftest import SHARED

FIXTURES = SHARED / "fixtures" / "postman"
V21 = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
V20 = "https://schema.getpostman.com/json/collection/v2.0.0/collection.json"
NO_AUTH = {"type": "NO_AUTH", "apiKeyName": None, "apiKeyValue": None, "apiKeyIn": None,
           "username": None, "password": None, "token": None}
NO_BODY = {"bodyType": "NONE", "bodyFields": [], "rawBody": None, "rawContentType": None}
GET_BODY_DROPPED = "GET body dropped: Postman does not send it without disableBodyPruning"


# --- Helpers ----------------------------------------------------------------------------

def row(key: str, value: str, enabled: bool = True) -> dict[str, Any]:
    return {"key": key, "value": value, "enabled": enabled}


def basic(username: str, password: str) -> dict[str, Any]:
    return {**NO_AUTH, "type": "BASIC_AUTH", "username": username, "password": password}


def bearer(token: str) -> dict[str, Any]:
    return {**NO_AUTH, "type": "BEARER_TOKEN", "token": token}


def api_key(name: str, value: str, where: str) -> dict[str, Any]:
    return {**NO_AUTH, "type": "API_KEY", "apiKeyName": name, "apiKeyValue": value,
            "apiKeyIn": where}


def raw(body: str, content_type: str) -> dict[str, Any]:
    return {**NO_BODY, "bodyType": "RAW", "rawBody": body, "rawContentType": content_type}


def form(kind: str, *fields: dict[str, Any]) -> dict[str, Any]:
    return {**NO_BODY, "bodyType": kind, "bodyFields": list(fields)}


def source(fixture: str, *path: int) -> dict[str, Any]:
    """The item at index ``path`` of a fixture, as the file holds it: ``source(f, 1, 0)``
    is ``item[1].item[0]``."""
    node = json.loads((FIXTURES / fixture).read_text(encoding="utf-8"))
    for index in path:
        node = node["item"][index]
    return node


def parse_fixture(fixture: str) -> ParsedCollection:
    return parse_collection((FIXTURES / fixture).read_bytes())


def named(parsed: ParsedCollection, name: str) -> ParsedRequest:
    (found,) = [r for r in parsed.requests if r.name == name]
    return found


def at(parsed: ParsedCollection, ref: str) -> ParsedRequest:
    (found,) = [r for r in parsed.requests if r.ref == ref]
    return found


def collection(*items: Any, schema: str = V21, **top: Any) -> str:
    """A v2 collection holding ``items``; ``top`` adds keys such as auth or variable."""
    return json.dumps({"info": {"name": "Inline", "schema": schema}, "item": list(items),
                       **top})


def request(name: str = "Ping", url: Any = "https://example.com/ping", **fields: Any
            ) -> dict[str, Any]:
    return {"name": name, "request": {"method": "GET", "url": url, **fields}}


def only(text: str | bytes) -> ParsedRequest:
    (parsed,) = parse_collection(text).requests
    return parsed


def action_of(parsed: ParsedRequest) -> dict[str, Any]:
    assert parsed.action is not None, parsed.problem
    return parsed.action


def body_of(parsed: ParsedRequest) -> dict[str, Any]:
    """The body keys of the request's action: bodyType, bodyFields, rawBody, rawContentType."""
    return {key: action_of(parsed)[key] for key in NO_BODY}


# --- newman-example.v1.json: the flat v1 format --------------------------------------

def test_v1_example_lists_its_three_requests_in_the_order_of_order() -> None:
    parsed = parse_fixture("newman-example.v1.json")
    assert (parsed.format, parsed.name) == ("v1", "Sample Postman Collection")
    assert [(r.ref, r.name, r.method) for r in parsed.requests] == [
        ("3845db20-6952-e442-f3b0-6211e2089b71", "A simple GET request", "GET"),
        ("ec098f7c-4e22-2fe9-e5c5-26f13016be84", "A simple POST request", "POST"),
        ("464bc62d-db90-7c58-1c28-ff0b5eac2f4f", "A simple POST request with JSON body",
         "POST"),
    ]
    assert all(r.action is not None and r.folder is None for r in parsed.requests)
    assert (parsed.variables, parsed.warnings) == ({}, [])


def test_v1_example_get_moves_its_query_string_into_rows() -> None:
    get = named(parse_fixture("newman-example.v1.json"), "A simple GET request")
    assert get.url == "https://postman-echo.com/get?source=newman-sample-github-collection"
    assert get.action == {
        "name": "A simple GET request", "description": "", "method": "GET",
        "url": "https://postman-echo.com/get",
        "query": [row("source", "newman-sample-github-collection")], "headers": [],
        **NO_BODY, "authorization": NO_AUTH,
    }
    assert get.warnings == ["scripts ignored"]


def test_v1_example_raw_bodies_take_the_content_type_of_the_header_string() -> None:
    parsed = parse_fixture("newman-example.v1.json")
    as_json = named(parsed, "A simple POST request with JSON body")
    assert as_json.action == {
        "name": "A simple POST request with JSON body", "description": "", "method": "POST",
        "url": "https://postman-echo.com/post", "query": [],
        "headers": [row("Content-Type", "application/json")],
        **raw('{"text":"Duis posuere augue vel cursus pharetra. In luctus a ex nec '
              'pretium..."}', "application/json"),
        "authorization": NO_AUTH,
    }
    as_text = named(parsed, "A simple POST request")
    assert action_of(as_text)["headers"] == [row("Content-Type", "text/plain")]
    assert body_of(as_text) == raw(
        "Duis posuere augue vel cursus pharetra. In luctus a ex nec pretium...", "text/plain")
    assert as_json.warnings == []


# --- newman-multi-level-folders: the same collection as v1 and v2.0 --------------------

MULTI_LEVEL_NAMES = ["F1 / F1.R1", "F1 / F1.R2", "F1 / F1.R3", "F2 / F2.F3 / F2.F3.R1",
                     "F2 / F2.R1", "R1"]


@pytest.mark.parametrize("fixture, fmt", [
    ("newman-multi-level-folders.v1.json", "v1"),
    ("newman-multi-level-folders.v2.0.json", "v2.0.0"),
])
def test_multi_level_folders_name_requests_by_their_folder_path(fixture: str, fmt: str) -> None:
    parsed = parse_fixture(fixture)
    assert parsed.format == fmt
    assert [r.name for r in parsed.requests] == MULTI_LEVEL_NAMES
    assert [r.folder for r in parsed.requests] == ["F1", "F1", "F1", "F2 / F2.F3", "F2", None]
    assert all(r.action is not None for r in parsed.requests)


def test_multi_level_folders_v1_and_v2_give_the_same_actions() -> None:
    def seen(parsed: ParsedCollection) -> list[Any]:
        return [(r.name, r.folder, r.method, r.url, r.action, r.problem, r.warnings)
                for r in parsed.requests]

    v1 = parse_fixture("newman-multi-level-folders.v1.json")
    v2 = parse_fixture("newman-multi-level-folders.v2.0.json")
    assert seen(v1) == seen(v2)
    assert (v1.variables, v1.warnings) == (v2.variables, v2.warnings) == ({}, [])


def test_multi_level_folders_request_in_a_sub_folder_is_a_plain_get() -> None:
    nested = named(parse_fixture("newman-multi-level-folders.v2.0.json"),
                   "F2 / F2.F3 / F2.F3.R1")
    assert nested.ref == "1.0.0"  # no ids in this file: the index path
    assert nested.action == {
        "name": "F2 / F2.F3 / F2.F3.R1", "description": "", "method": "GET",
        "url": "https://postman-echo.com/get", "query": [], "headers": [], **NO_BODY,
        "authorization": NO_AUTH,
    }
    assert nested.warnings == ["scripts ignored"]


# --- newman-echo.v2.0.json: auth in object form, form bodies, saved responses ----------

ECHO = "newman-echo.v2.0.json"


def test_echo_has_22_importable_requests_in_seven_folders() -> None:
    parsed = parse_fixture(ECHO)
    assert (parsed.format, parsed.name) == ("v2.0.0", "Postman Echo (V2)")
    assert [r.name for r in parsed.requests] == [
        "Auth: Digest / DigestAuth Request", "Auth: Digest / DigestAuth Success",
        "Auth: Others / Basic Auth", "Auth: Others / OAuth1.0 Verify Signature",
        "Cookies / Set Cookies", "Cookies / Get Cookies", "Cookies / Delete Cookies",
        "Headers / Request Headers", "Headers / Response Headers",
        "Request Methods / GET Request", "Request Methods / POST Request",
        "Request Methods / PUT Request", "Request Methods / PATCH Request",
        "Request Methods / DELETE Request",
        "Utilities / Response Status Code", "Utilities / Streamed Response",
        "Utilities / Delay Response", "Utilities / Get UTF8 Encoded Response",
        "Utilities / GZip Compressed Response", "Utilities / Deflate Compressed Response",
        "[draft] Auth: OAuth2.0 / OAuth2.0 Get Access Token",
        "[draft] Auth: OAuth2.0 / OAuth2.0 Get Resource",
    ]
    assert all(r.action is not None for r in parsed.requests)
    assert Counter(r.method for r in parsed.requests) == {
        "GET": 17, "POST": 2, "PUT": 1, "PATCH": 1, "DELETE": 1}
    assert (parsed.variables, parsed.warnings) == ({}, [])


def test_echo_basic_auth_in_object_form_gives_username_and_password() -> None:
    parsed = parse_fixture(ECHO)
    basic_auth = named(parsed, "Auth: Others / Basic Auth")
    assert basic_auth.ref == "2924e4d9-7f5d-23b4-03fd-1a8d3ae69a22"
    assert basic_auth.action == {
        "name": "Auth: Others / Basic Auth",
        "description": source(ECHO, 1, 0)["request"]["description"].strip(),
        "method": "GET", "url": "https://postman-echo.com/basic-auth", "query": [],
        "headers": [row("Authorization", "Basic cG9zdG1hbjpwYXNzd29yZA==")], **NO_BODY,
        "authorization": basic("postman", "password"),
    }
    assert basic_auth.warnings == ["scripts ignored", "saved responses ignored"]


def test_echo_digest_and_oauth1_are_imported_as_no_auth_with_a_warning() -> None:
    parsed = parse_fixture(ECHO)
    digest = named(parsed, "Auth: Digest / DigestAuth Success")
    oauth1 = named(parsed, "Auth: Others / OAuth1.0 Verify Signature")
    assert action_of(digest)["authorization"] == action_of(oauth1)["authorization"] == NO_AUTH
    assert digest.warnings == ["scripts ignored", "saved responses ignored",
                               "auth type 'digest' is not supported: imported as No Auth"]
    assert oauth1.warnings == ["scripts ignored", GET_BODY_DROPPED,
                               "auth type 'oauth1' is not supported: imported as No Auth"]


def test_echo_query_strings_become_rows_and_leave_the_url() -> None:
    parsed = parse_fixture(ECHO)
    queries = {r.name: (r.action["url"], r.action["query"])
               for r in parsed.requests if r.action and r.action["query"]}
    assert queries == {
        "Cookies / Set Cookies": ("https://postman-echo.com/cookies/set",
                                  [row("foo1", "bar1"), row("foo2", "bar2")]),
        "Cookies / Delete Cookies": ("https://postman-echo.com/cookies/delete",
                                     [row("foo1", ""), row("foo2", "")]),
        "Headers / Response Headers": ("https://postman-echo.com/response-headers",
                                       [row("Content-Type", "text/html"),
                                        row("Server", "apibin")]),
        "Request Methods / GET Request": ("https://postman-echo.com/get",
                                          [row("test", "123")]),
    }
    assert named(parsed, "Cookies / Set Cookies").url == \
        "https://postman-echo.com/cookies/set?foo1=bar1&foo2=bar2"


def test_echo_get_with_a_form_body_sends_no_body_as_postman_prunes_it() -> None:
    parsed = parse_fixture(ECHO)
    get = named(parsed, "Request Methods / GET Request")
    assert body_of(get) == NO_BODY
    assert get.warnings == ["scripts ignored", GET_BODY_DROPPED]
    pruned = [r.name for r in parsed.requests if GET_BODY_DROPPED in r.warnings]
    assert pruned == [
        "Auth: Digest / DigestAuth Request", "Auth: Others / OAuth1.0 Verify Signature",
        "Headers / Response Headers", "Request Methods / GET Request",
        "Utilities / Response Status Code", "Utilities / Delay Response",
        "Utilities / GZip Compressed Response", "[draft] Auth: OAuth2.0 / OAuth2.0 Get Resource",
    ]


def test_echo_post_keeps_its_form_data_fields() -> None:
    token = named(parse_fixture(ECHO), "[draft] Auth: OAuth2.0 / OAuth2.0 Get Access Token")
    assert body_of(token) == form(
        "FORM_DATA", row("code", "xWnkliVQJURqB2x1"), row("grant_type", "authorization_code"),
        row("redirect_uri", "https://www.getpostman.com/oauth2/callback"),
        row("client_id", "abc123"), row("client_secret", "ssh-secret"))
    assert token.warnings == ["scripts ignored", "saved responses ignored"]


def test_echo_raw_bodies_are_text_plain_by_header_or_by_default() -> None:
    parsed = parse_fixture(ECHO)
    post = named(parsed, "Request Methods / POST Request")
    assert post.action == {
        "name": "Request Methods / POST Request",
        "description": source(ECHO, 4, 1)["request"]["description"].strip(),
        "method": "POST", "url": "https://postman-echo.com/post", "query": [],
        "headers": [row("Content-Type", "text/plain")],
        **raw(source(ECHO, 4, 1)["request"]["body"]["raw"], "text/plain"),
        "authorization": NO_AUTH,
    }
    patch = named(parsed, "Request Methods / PATCH Request")
    assert action_of(patch)["headers"] == []  # no header and no language: text/plain
    assert body_of(patch) == raw(
        source(ECHO, 4, 3)["request"]["body"]["raw"], "text/plain")


def test_echo_saved_responses_are_reported_where_the_file_has_them() -> None:
    parsed = parse_fixture(ECHO)
    assert [r.name for r in parsed.requests if "saved responses ignored" in r.warnings] == [
        "Auth: Digest / DigestAuth Success", "Auth: Others / Basic Auth",
        "Cookies / Set Cookies", "Cookies / Get Cookies", "Cookies / Delete Cookies",
        "[draft] Auth: OAuth2.0 / OAuth2.0 Get Access Token",
        "[draft] Auth: OAuth2.0 / OAuth2.0 Get Resource",
    ]
    assert all("scripts ignored" in r.warnings for r in parsed.requests)


# --- schemas-*.v2.1.json: small examples from Postman's schema repository --------------

def test_apikey_fixture_sends_the_key_in_a_header() -> None:
    parsed = parse_fixture("schemas-apikeyAuthTest.v2.1.json")
    assert (parsed.format, parsed.name, len(parsed.requests)) == ("v2.1.0", "apikeyAuthTest", 1)
    (apikey,) = parsed.requests
    assert apikey.ref == "951fc3e8-c6b6-5c19-9f69-4e7499b3127f"
    # The file's "data" key is not a body: Postman sends none.
    assert apikey.action == {
        "name": "test apikey auth success", "description": "", "method": "GET",
        "url": "https://postman-echo.com/get", "query": [],
        "headers": [row("token", "wkjehbxoqnunc2k3")], **NO_BODY,
        "authorization": api_key("token", "wkjehbxoqnunc2k3", "HEADER"),
    }
    assert (apikey.warnings, parsed.warnings) == ([], [])


def test_formdata_fixture_drops_file_rows_with_a_warning_each() -> None:
    parsed = parse_fixture("schemas-formdata-body.v2.1.json")
    assert (parsed.name, len(parsed.requests)) == ("C1", 1)
    (untitled,) = parsed.requests
    assert (untitled.ref, untitled.name) == ("0", "Untitled request")
    assert untitled.action == {
        "name": "Untitled request", "description": "", "method": "POST",
        "url": "https://postman-echo.com/post", "query": [], "headers": [],
        **form("FORM_DATA", row("not_a_file", "")), "authorization": NO_AUTH,
    }
    assert untitled.warnings == ["formdata file row 'file_with_null' dropped",
                                 "formdata file row 'file_with_str' dropped",
                                 "formdata file row 'file_with_array' dropped"]


def test_nested_entities_fixture_takes_request_auth_and_warns_of_the_rest() -> None:
    parsed = parse_fixture("schemas-nestedEntities.v2.1.json")
    assert [r.name for r in parsed.requests] == ["F1 / Basic", "OAuth1"]
    assert parsed.variables == {"key": "value"}
    assert parsed.warnings == ["collection scripts ignored", "folder 'F1': scripts ignored"]
    basic_request, oauth1 = parsed.requests
    assert basic_request.action == {
        "name": "F1 / Basic", "description": "", "method": "GET",
        "url": "https://postman-echo.com/get", "query": [], "headers": [], **NO_BODY,
        "authorization": basic("{{username}}", "{{token}}"),
    }
    assert basic_request.warnings == ["scripts ignored"]
    assert action_of(oauth1)["authorization"] == NO_AUTH
    assert oauth1.warnings == ["scripts ignored",
                               "auth type 'oauth1' is not supported: imported as No Auth"]


def test_graphql_fixture_becomes_a_raw_json_body_with_query_and_variables() -> None:
    parsed = parse_fixture("schemas-reqBodyGraphQL.v2.1.json")
    (graphql,) = parsed.requests
    assert (graphql.ref, graphql.name) == ("6412986b-9e91-4f03-9cf9-baaccc762da4", "default")
    action = action_of(graphql)
    assert (action["method"], action["url"]) == ("POST", "https://postman-echo.com/post")
    assert (action["bodyType"], action["rawContentType"]) == ("RAW", "application/json")
    assert json.loads(action["rawBody"]) == {
        "query": "query Test { hello }", "variables": {"foo": "bar"}, "operationName": "Test"}
    assert (graphql.warnings, parsed.warnings) == ([], [])


# --- transferwise-cards-api.v2.1.json: 11 folders, bearer on most requests -------------

CARDS = "transferwise-cards-api.v2.1.json"


def test_cards_api_has_42_importable_requests_in_11_folders() -> None:
    parsed = parse_fixture(CARDS)
    assert (parsed.format, parsed.name) == ("v2.1.0", "Wise Cards API")
    assert len(parsed.requests) == 42
    assert all(r.action is not None and r.problem is None for r in parsed.requests)
    assert list(dict.fromkeys(r.folder for r in parsed.requests)) == [
        "1. Authentication", "2. Card Issuance", "3. Card Management", "4. Card Transactions",
        "5. Sensitive Card Details", "6. Spend Controls", "7. Spend Limits", "8. Disputes",
        "9. Activity", "10. Push Provisioning", "11. Card Transaction Simulation"]
    assert Counter(r.method for r in parsed.requests) == {
        "POST": 17, "GET": 17, "PUT": 3, "PATCH": 3, "DELETE": 2}
    assert (parsed.variables, parsed.warnings) == ({}, [])


def test_cards_api_token_request_sends_a_urlencoded_form_with_basic_auth() -> None:
    token = named(parse_fixture(CARDS),
                  "1. Authentication / Generate tokens from authorization code")
    assert token.ref == "0.0"
    assert token.action == {
        "name": "1. Authentication / Generate tokens from authorization code",
        "description": "Request access token | authorization code grant type",
        "method": "POST", "url": "{{host}}/oauth/token", "query": [], "headers": [],
        **form("X_WWW_FORM_URLENCODED", row("grant_type", "client_credentials"),
               row("client_id", "{{client-id}}"),
               row("redirect_uri", "{{client-redirect-uri}}"),
               row("code", "{{client-auth-code}}")),
        "authorization": basic("{{client-id}}", "{{client-secret}}"),
    }
    assert token.warnings == ["scripts ignored"]


def test_cards_api_disabled_query_rows_are_kept_disabled() -> None:
    disputes = named(parse_fixture(CARDS), "8. Disputes / Get Disputes")
    assert disputes.url == "{{host}}/v3/spend/profiles/{{profile_id}}/disputes"
    assert disputes.action == {
        "name": "8. Disputes / Get Disputes", "description": "", "method": "GET",
        "url": "{{host}}/v3/spend/profiles/{{profile_id}}/disputes",
        "query": [row("status", "CLOSED", False), row("transactionId", "476873", False)],
        "headers": [], **NO_BODY, "authorization": bearer("{{token}}"),
    }


def test_cards_api_request_without_auth_keeps_its_authorization_header() -> None:
    validate = named(parse_fixture(CARDS), "2. Card Issuance / Validate address")
    assert validate.action == {
        "name": "2. Card Issuance / Validate address", "description": "", "method": "POST",
        "url": "{{host}}/v3/spend/address/validate", "query": [],
        "headers": [row("Authorization", "Bearer {{token}}"),
                    row("Content-Type", "application/json")],
        **raw(source(CARDS, 1, 0)["request"]["body"]["raw"], "application/json"),
        "authorization": NO_AUTH,
    }


def test_cards_api_get_with_disable_body_pruning_keeps_its_raw_body() -> None:
    rules = named(parse_fixture(CARDS), "6. Spend Controls / List authorisation rules")
    # No language and no Content-Type header: Postman sends text/plain.
    assert body_of(rules) == raw(
        source(CARDS, 5, 4)["request"]["body"]["raw"], "text/plain")
    assert action_of(rules)["authorization"] == bearer("{{application_token}}")
    assert rules.warnings == []


def test_cards_api_raw_body_without_language_takes_the_content_type_header() -> None:
    rule = named(parse_fixture(CARDS), "6. Spend Controls / Create authorisation rule")
    assert action_of(rule)["headers"] == [row("Content-Type", "application/json")]
    assert action_of(rule)["rawContentType"] == "application/json"
    assert rule.warnings == []  # its test script has only a blank line


def test_cards_api_empty_bodies_are_none() -> None:
    parsed = parse_fixture(CARDS)
    for name in ("2. Card Issuance / Get card orders",  # formdata [], pruning disabled
                 "7. Spend Limits / Delete card limit",  # raw ""
                 "3. Card Management / Reset PIN count"):  # no body at all
        assert body_of(named(parsed, name)) == NO_BODY, name
    assert named(parsed, "2. Card Issuance / Get card orders").warnings == []


def test_cards_api_url_with_a_host_and_variables_is_kept_as_written() -> None:
    simulation = named(parse_fixture(CARDS), "11. Card Transaction Simulation / Authorisation")
    assert action_of(simulation)["url"] == (
        "https://api.sandbox.transferwise.tech/v1/simulation/spend/profiles/{{profile_id}}"
        "/cards/{{card_token}}/transactions/authorisation")
    assert action_of(simulation)["rawBody"] == source(CARDS, 10, 0)["request"]["body"]["raw"]


# --- transferwise-banks-flow.v2.1.json: folders three deep, long names ------------------

BANKS = "transferwise-banks-flow.v2.1.json"


def test_banks_flow_has_50_importable_requests_with_unique_names() -> None:
    parsed = parse_fixture(BANKS)
    assert (parsed.format, parsed.name) == ("v2.1.0", "TransferWise for Banks API")
    assert len(parsed.requests) == 50
    assert all(r.action is not None for r in parsed.requests)
    assert len({r.folder for r in parsed.requests}) == 17  # of 23: six hold only folders
    assert Counter(r.method for r in parsed.requests) == {
        "POST": 26, "GET": 15, "PUT": 4, "DELETE": 4, "PATCH": 1}
    names = [r.name for r in parsed.requests]
    assert len(set(names)) == 50 and max(map(len, names)) == 100
    assert parsed.warnings == []  # every folder script is blank


def test_banks_flow_names_longer_than_100_characters_are_cut_with_an_ellipsis() -> None:
    update = at(parse_fixture(BANKS), "2.2.2")
    full = ("3. Transfer Flow / 3. Create transfer / 3. Update transfer extra info dynamic form "
            "(if any fields require refresh)")
    assert update.name == full[:99] + "…"
    assert action_of(update)["name"] == update.name
    assert update.folder == "3. Transfer Flow / 3. Create transfer"


def test_banks_flow_disabled_header_is_kept_disabled() -> None:
    requirements = at(parse_fixture(BANKS), "2.1.1.0")
    assert requirements.folder == ("3. Transfer Flow / 2. Choose/create recipient / "
                                   "1b. Create new recipient account")
    assert requirements.action == {
        "name": requirements.name, "description": "", "method": "GET",
        "url": "{{host}}/v1/quotes/{{new-quote-id}}/account-requirements", "query": [],
        "headers": [row("Authorization", "Bearer {{token}}"),
                    row("Accept-Language", "FR", False)],
        **NO_BODY, "authorization": NO_AUTH,
    }


def test_banks_flow_refresh_token_request_has_a_disabled_content_type() -> None:
    refresh = at(parse_fixture(BANKS), "0.2.0")
    assert action_of(refresh)["headers"] == [
        row("Content-Type", "application/x-www-form-urlencoded", False)]
    assert body_of(refresh) == form(
        "X_WWW_FORM_URLENCODED", row("grant_type", "refresh_token"),
        row("refresh_token", "{{refresh}}"))
    assert action_of(refresh)["authorization"] == basic("{{client-id}}", "{{client-secret}}")


def test_banks_flow_query_row_and_trailing_slash_survive() -> None:
    accounts = named(parse_fixture(BANKS),
                     "3. Transfer Flow / 2. Choose/create recipient / 1a. Select Existing / "
                     "1. Load accounts")
    assert accounts.url == "{{host}}/v2/accounts/?currency=USD"
    assert action_of(accounts)["url"] == "{{host}}/v2/accounts/"
    assert action_of(accounts)["query"] == [row("currency", "USD")]


def test_banks_flow_merge_patch_content_type_comes_from_the_header() -> None:
    quote = named(parse_fixture(BANKS),
                  "3. Transfer Flow / 3. Create transfer / 1. Update quote with selected recipient")
    assert action_of(quote)["method"] == "PATCH"
    assert body_of(quote) == raw(
        source(BANKS, 2, 2, 0)["request"]["body"]["raw"], "application/merge-patch+json")


def test_banks_flow_get_with_empty_form_and_pruning_disabled_has_no_body() -> None:
    profiles = named(parse_fixture(BANKS),
                     "2. Create user profile / 1. Check profile exists / 1. Get profile list")
    assert profiles.action == {
        "name": "2. Create user profile / 1. Check profile exists / 1. Get profile list",
        "description": "", "method": "GET", "url": "{{host}}/v1/profiles", "query": [],
        "headers": [row("Authorization", "Bearer {{token}}")], **NO_BODY,
        "authorization": NO_AUTH,
    }
    assert profiles.warnings == []


# --- transferwise-connected-apps.v2.1.json: noauth, scripts ----------------------------

APPS = "transferwise-connected-apps.v2.1.json"


def test_connected_apps_has_13_requests_and_a_collection_script() -> None:
    parsed = parse_fixture(APPS)
    assert (parsed.format, parsed.name) == ("v2.1.0", "Connected Apps Payment Flow (Send Money)")
    assert len(parsed.requests) == 13
    assert all(r.action is not None for r in parsed.requests)
    assert Counter(r.method for r in parsed.requests) == {"POST": 9, "GET": 3, "PATCH": 1}
    assert [r.ref for r in parsed.requests][:3] == ["0.0", "1.0", "1.1"]
    assert parsed.warnings == ["collection scripts ignored"]  # folder scripts are blank


def test_connected_apps_explicit_noauth_is_no_auth_without_a_warning() -> None:
    start = named(parse_fixture(APPS),
                  "Pre-checks (ignore this, used by postman) / Start iteration")
    assert start.action == {
        "name": "Pre-checks (ignore this, used by postman) / Start iteration",
        "description": "", "method": "GET", "url": "{{host}}/health", "query": [],
        "headers": [], **NO_BODY, "authorization": NO_AUTH,
    }
    assert start.warnings == ["scripts ignored"]


def test_connected_apps_json_body_keeps_postman_dynamic_variables() -> None:
    transfer = named(parse_fixture(APPS),
                     "3. Add payments / 3.2. Add transfer / Create batch group transfer")
    assert transfer.action == {
        "name": "3. Add payments / 3.2. Add transfer / Create batch group transfer",
        "description": "", "method": "POST",
        "url": "{{host}}/v3/profiles/{{profile}}/batch-groups/{{batch_group_id}}/transfers",
        "query": [], "headers": [row("Authorization", "Bearer {{token}}")],
        **raw(source(APPS, 3, 2, 1)["request"]["body"]["raw"], "application/json"),
        "authorization": NO_AUTH,
    }
    assert '"customerTransactionId": "{{$guid}}"' in action_of(transfer)["rawBody"]


def test_connected_apps_refresh_sends_urlencoded_with_basic_auth() -> None:
    refresh = named(parse_fixture(APPS), "1. Authenticate as application / Refresh existing "
                                         "access token")
    assert body_of(refresh) == form(
        "X_WWW_FORM_URLENCODED", row("grant_type", "refresh_token"),
        row("refresh_token", "{{refresh}}"))
    assert action_of(refresh)["authorization"] == basic("{{client-id}}", "{{client-secret}}")


# --- Auth: inheritance and forms ------------------------------------------------------

def test_auth_is_inherited_from_the_nearest_folder_then_the_collection() -> None:
    text = collection(
        {"name": "Folder", "auth": {"type": "bearer", "bearer": [{"key": "token",
                                                                   "value": "folder"}]},
         "item": [request("In folder"), {"name": "Sub", "item": [request("Deeper")]}]},
        request("At top"),
        auth={"type": "basic", "basic": [{"key": "username", "value": "u"},
                                         {"key": "password", "value": "p"}]},
    )
    auths = {r.name: action_of(r)["authorization"] for r in parse_collection(text).requests}
    assert auths == {"Folder / In folder": bearer("folder"),
                     "Folder / Sub / Deeper": bearer("folder"), "At top": basic("u", "p")}


def test_noauth_on_a_folder_stops_the_collection_auth() -> None:
    text = collection(
        {"name": "Open", "auth": {"type": "noauth"}, "item": [
            request("Inherits"),
            request("Own", auth={"type": "bearer", "bearer": [{"key": "token", "value": "t"}]}),
        ]},
        auth={"type": "bearer", "bearer": [{"key": "token", "value": "collection"}]},
    )
    auths = {r.name: action_of(r)["authorization"] for r in parse_collection(text).requests}
    assert auths == {"Open / Inherits": NO_AUTH, "Open / Own": bearer("t")}


def test_auth_of_type_inherit_or_null_inherits() -> None:
    text = collection(request("Inherit", auth={"type": "inherit"}),
                      request("Null", auth=None),
                      auth={"type": "bearer", "bearer": [{"key": "token", "value": "c"}]})
    assert [action_of(r)["authorization"] for r in parse_collection(text).requests] == [
        bearer("c"), bearer("c")]


@pytest.mark.parametrize("schema", [V21, V20])
@pytest.mark.parametrize("params", [
    [{"key": "username", "value": "ann"}, {"key": "password", "value": "s3cret"}],
    {"username": "ann", "password": "s3cret"},
], ids=["array", "object"])
def test_auth_params_are_read_in_array_or_object_form_whatever_the_version(
    schema: str, params: Any
) -> None:
    text = collection(request(auth={"type": "basic", "basic": params}), schema=schema)
    assert action_of(only(text))["authorization"] == basic("ann", "s3cret")


def test_apikey_without_in_goes_in_a_header() -> None:
    text = collection(request(auth={"type": "apikey", "apikey": [
        {"key": "key", "value": "X-Api-Key"}, {"key": "value", "value": "{{api_key}}"}]}))
    assert action_of(only(text))["authorization"] == api_key("X-Api-Key", "{{api_key}}", "HEADER")


def test_apikey_in_query_goes_in_the_query() -> None:
    text = collection(request(auth={"type": "apikey", "apikey": {
        "key": "api_key", "value": "k", "in": "query"}}), schema=V20)
    assert action_of(only(text))["authorization"] == api_key("api_key", "k", "QUERY")


@pytest.mark.parametrize("kind", ["digest", "oauth1", "oauth2", "hawk", "awsv4", "ntlm"])
def test_unsupported_auth_types_become_no_auth_with_a_warning(kind: str) -> None:
    parsed = only(collection(request(auth={"type": kind, kind: []})))
    assert action_of(parsed)["authorization"] == NO_AUTH
    assert parsed.warnings == [f"auth type '{kind}' is not supported: imported as No Auth"]


# --- GET bodies: pruned as Postman does --------------------------------------------------

def get_with_body(**item: Any) -> dict[str, Any]:
    body = {"mode": "raw", "raw": '{"a": 1}', "options": {"raw": {"language": "json"}}}
    return {**request("Get", body=body), **item}


def test_get_body_is_dropped_without_disable_body_pruning() -> None:
    parsed = only(collection(get_with_body()))
    assert body_of(parsed) == NO_BODY
    assert parsed.warnings == [GET_BODY_DROPPED]


@pytest.mark.parametrize("where", ["item", "folder", "collection"])
def test_disable_body_pruning_on_the_item_a_folder_or_the_collection_keeps_the_body(
    where: str
) -> None:
    behavior = {"protocolProfileBehavior": {"disableBodyPruning": True}}
    item = get_with_body(**(behavior if where == "item" else {}))
    folder = {"name": "F", "item": [item], **(behavior if where == "folder" else {})}
    text = collection(folder, **(behavior if where == "collection" else {}))
    parsed = only(text)
    assert body_of(parsed) == raw('{"a": 1}', "application/json")
    assert parsed.warnings == []


def test_an_item_can_turn_pruning_back_on_under_a_folder_that_disabled_it() -> None:
    item = get_with_body(protocolProfileBehavior={"disableBodyPruning": False})
    folder = {"name": "F", "protocolProfileBehavior": {"disableBodyPruning": True},
              "item": [item]}
    assert action_of(only(collection(folder)))["bodyType"] == "NONE"


def test_post_body_is_never_pruned() -> None:
    item = get_with_body()
    item["request"]["method"] = "POST"
    parsed = only(collection(item))
    assert action_of(parsed)["bodyType"] == "RAW" and parsed.warnings == []


# --- Reading the file ------------------------------------------------------------------

def test_utf8_bom_is_accepted_in_str_and_bytes() -> None:
    text = collection(request())
    assert action_of(only("\ufeff" + text))["url"] == "https://example.com/ping"
    assert action_of(only(b"\xef\xbb\xbf" + text.encode("utf-8")))["url"] == \
        "https://example.com/ping"


def test_a_file_of_exactly_10_mb_is_read_and_one_byte_more_is_refused() -> None:
    text = collection(request())
    padded = text + " " * (10 * 1024 * 1024 - len(text.encode("utf-8")))
    assert len(parse_collection(padded.encode("utf-8")).requests) == 1
    for too_big in (padded + " ", (padded + " ").encode("utf-8")):
        with pytest.raises(CollectionError, match="10 MB"):
            parse_collection(too_big)


def test_malformed_json_is_refused_with_line_and_column() -> None:
    with pytest.raises(CollectionError) as refused:
        parse_collection('{\n  "info": {},\n  item: []\n}')
    assert refused.value.message.startswith("not valid JSON: line 3, column 3")


@pytest.mark.parametrize("text, holds", [
    ("[]", "an array"), ('"collection"', "a string"), ("42", "a number"), ("null", "null"),
])
def test_json_that_is_not_an_object_is_refused(text: str, holds: str) -> None:
    with pytest.raises(CollectionError) as refused:
        parse_collection(text)
    assert refused.value.message == \
        f"not a Postman collection: the file holds {holds}, not a JSON object"


def test_an_environment_file_is_refused_as_such() -> None:
    environment = {"id": "e1", "name": "Local", "values": [{"key": "host", "value": "x"}],
                   "_postman_variable_scope": "environment"}
    with pytest.raises(CollectionError) as refused:
        parse_collection(json.dumps(environment))
    assert refused.value.message == "not a Postman collection: it is a Postman environment file"


def test_an_unknown_schema_url_is_refused() -> None:
    with pytest.raises(CollectionError) as refused:
        parse_collection(collection(request(), schema="https://example.com/schema.json"))
    assert refused.value.message.startswith("not a Postman collection: unknown schema")


def test_an_unsupported_schema_version_is_refused() -> None:
    with pytest.raises(CollectionError, match="schema v3.0 is not supported"):
        parse_collection(collection(
            request(), schema="https://schema.getpostman.com/json/collection/v3.0.0/"))


@pytest.mark.parametrize("schema, fmt", [
    ("https://schema.getpostman.com/json/collection/v2.1.0/collection.json", "v2.1.0"),
    ("http://schema.getpostman.com/json/collection/v2.1.0/collection.json", "v2.1.0"),
    ("https://schema.postman.com/json/collection/v2.1.0/collection.json", "v2.1.0"),
    ("https://schema.getpostman.com/json/collection/v2.1.0/", "v2.1.0"),
    ("https://schema.postman.com/json/collection/v2.1.0", "v2.1.0"),
    ("https://schema.postman.com/collection/json/v2.1.0/draft-07/collection.json", "v2.1.0"),
    ("https://schema.getpostman.com/json/collection/v2.0.0/collection.json", "v2.0.0"),
    ("http://schema.getpostman.com/json/draft-07/collection/v2.0.0/collection.json", "v2.0.0"),
    ("https://schema.postman.com/json/collection/v2.0.0/", "v2.0.0"),
])
def test_schema_url_variants_are_recognised(schema: str, fmt: str) -> None:
    parsed = parse_collection(collection(request(), schema=schema))
    assert (parsed.format, parsed.warnings) == (fmt, [])


def test_no_schema_with_info_and_items_is_read_as_v2_1_with_a_warning() -> None:
    parsed = parse_collection(json.dumps({"info": {"name": "Bare"}, "item": [request()]}))
    assert (parsed.format, parsed.warnings) == ("v2.1.0", ["no info.schema: read as v2.1.0"])


def test_v1_is_detected_from_requests_and_order() -> None:
    v1 = {"id": "c", "name": "Old", "order": ["r1"], "requests": [
        {"id": "r1", "name": "Ping", "method": "POST", "url": "https://example.com/ping",
         "headers": "X-One: 1\n//X-Off: 2", "dataMode": "urlencoded",
         "data": [{"key": "a", "value": "1", "enabled": True}]}]}
    parsed = parse_collection(json.dumps(v1))
    assert (parsed.format, parsed.name) == ("v1", "Old")
    (ping,) = parsed.requests
    assert action_of(ping)["headers"] == [row("X-One", "1"), row("X-Off", "2", False)]
    assert body_of(ping) == form("X_WWW_FORM_URLENCODED", row("a", "1"))


def test_v1_auth_comes_from_the_helper_or_the_folder() -> None:
    v1 = {"id": "c", "name": "Old", "order": ["r2"],
          "folders": [{"id": "f1", "name": "Secured", "order": ["r1"],
                       "auth": {"type": "bearer", "bearer": [{"key": "token", "value": "{{t}}"}]}}],
          "requests": [
              {"id": "r1", "name": "Inherits", "method": "GET", "url": "https://example.com"},
              {"id": "r2", "name": "Helper", "method": "GET", "url": "https://example.com",
               "currentHelper": "basicAuth",
               "helperAttributes": {"id": "basic", "username": "u", "password": "p"}}]}
    auths = {r.name: action_of(r)["authorization"]
             for r in parse_collection(json.dumps(v1)).requests}
    assert auths == {"Secured / Inherits": bearer("{{t}}"), "Helper": basic("u", "p")}


def test_requests_without_order_or_folders_are_not_a_collection() -> None:
    with pytest.raises(CollectionError, match="no info.schema and no v1 requests"):
        parse_collection(json.dumps({"name": "x", "requests": []}))


# --- Odd shapes ----------------------------------------------------------------------

def test_nameless_items_are_untitled() -> None:
    parsed = parse_collection(json.dumps({
        "info": {"schema": V21},
        "item": [{"item": [{"request": {"url": "https://example.com"}}]}]}))
    assert parsed.name == "Untitled collection"
    (untitled,) = parsed.requests
    assert (untitled.name, untitled.folder) == ("Untitled folder / Untitled request",
                                                "Untitled folder")


def test_an_empty_request_object_is_a_get_without_url() -> None:
    (empty,) = parse_collection(collection({"name": "Empty", "request": {}})).requests
    assert (empty.method, empty.url, empty.action, empty.problem) == ("GET", "", None, "no URL")


def test_an_empty_url_object_is_no_url() -> None:
    for url in ({}, [], {"raw": None, "host": None, "path": None}):
        (empty,) = parse_collection(collection(request(url=url))).requests
        assert (empty.url, empty.action, empty.problem) == ("", None, "no URL"), url


def test_items_is_read_like_item() -> None:
    text = json.dumps({"info": {"name": "Tool", "schema": V21},
                       "items": [{"name": "F", "items": [request()]}]})
    assert [r.name for r in parse_collection(text).requests] == ["F / Ping"]


def test_null_values_everywhere_read_as_absent() -> None:
    text = json.dumps({
        "info": {"name": None, "schema": V21, "description": None},
        "auth": None, "variable": None, "event": None,
        "item": [None, {"name": "F", "auth": None, "event": None, "variable": None, "item": [
            {"name": "All null", "event": None, "response": None, "request": {
                "method": None, "url": None, "header": None, "body": None, "auth": None,
                "description": None}},
            {"name": "Null parts", "request": {
                "method": "POST", "url": {"raw": "https://example.com", "query": None,
                                          "variable": None},
                "header": [None, {"key": None, "value": None}],
                "body": {"mode": "formdata", "formdata": [None]},
                "auth": {"type": None}}},
        ]}],
    })
    parsed = parse_collection(text)
    assert (parsed.name, parsed.variables, parsed.warnings) == ("Untitled collection", {}, [])
    all_null, null_parts = parsed.requests
    assert (all_null.method, all_null.problem, all_null.warnings) == ("GET", "no URL", [])
    assert null_parts.action == {
        "name": "F / Null parts", "description": "", "method": "POST",
        "url": "https://example.com", "query": [], "headers": [], **NO_BODY,
        "authorization": NO_AUTH,
    }


@pytest.mark.parametrize("method", ["HEAD", "OPTIONS", "head", "PROPFIND"])
def test_methods_other_than_the_five_are_not_importable(method: str) -> None:
    (parsed,) = parse_collection(collection(request(method=method))).requests
    assert (parsed.method, parsed.action) == (method.upper(), None)
    assert parsed.problem == f"method {method.upper()} is not supported"


def test_a_missing_method_is_get() -> None:
    item = request()
    del item["request"]["method"]
    assert action_of(only(collection(item)))["method"] == "GET"


def test_a_file_body_is_not_importable_unless_postman_would_prune_it() -> None:
    file_body = {"mode": "file", "file": {"src": "/tmp/x.bin"}}
    put = only(collection(request(method="PUT", body=file_body)))
    assert (put.action, put.problem) == (None, "file bodies are not supported")
    get = only(collection(request(method="GET", body=file_body)))
    assert (body_of(get), get.warnings) == (NO_BODY, [GET_BODY_DROPPED])


def test_scripts_and_saved_responses_are_warned_of_but_blank_scripts_are_not() -> None:
    script = {"listen": "test", "script": {"exec": ["pm.test('ok')"]}}
    blank = {"listen": "prerequest", "script": {"exec": ["", "  "]}}
    text = collection({**request("Scripted"), "event": [script],
                       "response": [{"name": "200"}]},
                      {**request("Blank"), "event": [blank]},
                      {"name": "F", "event": [script], "item": []},
                      event=[script])
    parsed = parse_collection(text)
    assert parsed.warnings == ["collection scripts ignored", "folder 'F': scripts ignored"]
    assert [r.warnings for r in parsed.requests] == [
        ["scripts ignored", "saved responses ignored"], []]


def test_duplicate_names_get_a_number_ignoring_case() -> None:
    text = collection(request("Ping"), request("ping"), request("PING"), request("Pong"))
    parsed = parse_collection(text)
    assert [r.name for r in parsed.requests] == ["Ping", "ping (2)", "PING (3)", "Pong"]
    assert [action_of(r)["name"] for r in parsed.requests] == [r.name for r in parsed.requests]
    assert [r.written_name for r in parsed.requests] == ["Ping", "ping", "PING", "Pong"]


def test_a_long_name_cut_to_100_characters_is_its_written_name() -> None:
    (first, second) = parse_collection(collection(request("x" * 150), request("x" * 150))
                                       ).requests
    assert first.name == first.written_name == "x" * 99 + "…"
    assert (second.name, second.written_name) == ("x" * 95 + "… (2)", first.name)


def test_url_object_without_raw_is_rebuilt_from_its_parts() -> None:
    url = {"protocol": "https", "host": ["api", "example", "com"], "port": "8443",
           "path": ["v1", "cards"],
           "query": [{"key": "status", "value": "CLOSED"},
                     {"key": "page", "value": "2", "disabled": True}]}
    parsed = only(collection(request(url=url)))
    assert parsed.url == "https://api.example.com:8443/v1/cards?status=CLOSED"
    assert action_of(parsed)["url"] == "https://api.example.com:8443/v1/cards"
    assert action_of(parsed)["query"] == [row("status", "CLOSED"), row("page", "2", False)]


def test_path_variables_take_their_values() -> None:
    url = {"raw": "https://example.com/cards/:id/status",
           "variable": [{"key": "id", "value": "{{card_id}}"}]}
    assert action_of(only(collection(request(url=url))))["url"] == \
        "https://example.com/cards/{{card_id}}/status"


def test_a_url_without_scheme_gets_http_as_postman_does() -> None:
    parsed = only(collection(request(url="example.com/ping")))
    assert action_of(parsed)["url"] == "http://example.com/ping"
    assert parsed.warnings == ["URL has no scheme: http:// assumed"]


def test_variables_are_kept_as_written() -> None:
    item = request(url="{{host}}/v1/{{path}}?id={{id}}",
                   header=[{"key": "X-Token", "value": "{{token}}"}],
                   body={"mode": "raw", "raw": '{"caller": "{{caller_id}}"}'})
    item["request"]["method"] = "POST"
    action = action_of(only(collection(item)))
    assert (action["url"], action["query"]) == ("{{host}}/v1/{{path}}", [row("id", "{{id}}")])
    assert action["headers"] == [row("X-Token", "{{token}}")]
    assert action["rawBody"] == '{"caller": "{{caller_id}}"}'


def test_collection_variables_are_returned_without_disabled_ones() -> None:
    text = collection(request(), variable=[
        {"key": "host", "value": "https://api.example.com"},
        {"key": "off", "value": "x", "disabled": True},
        {"key": "count", "value": 3},
    ])
    assert parse_collection(text).variables == {"host": "https://api.example.com",
                                                "count": "3"}


def test_folder_and_request_variables_join_the_collection_s_the_first_value_kept() -> None:
    """Postman v2.1 folders and requests carry ``variable`` lists (v1 folders
    ``variables``); a tenant has one value per parameter."""
    inner = {"name": "Inner", "variable": [{"key": "path", "value": "/v2"},
                                           {"key": "off", "value": "x", "disabled": True}],
             "item": [{**request("Get"), "variable": [{"key": "id", "value": "7"},
                                                      {"key": "host", "value": "h2"}]}]}
    outer = {"name": "Outer", "variable": [{"key": "host", "value": "h1"}], "item": [inner]}
    same = {"name": "Same", "variable": [{"key": "host", "value": "h1"}], "item": []}
    parsed = parse_collection(collection(outer, same,
                                         variable=[{"key": "base", "value": "b"}]))
    assert parsed.variables == {"base": "b", "host": "h1", "path": "/v2", "id": "7"}
    assert parsed.warnings == ["request 'Outer / Inner / Get': variable 'host' has another "
                               "value than before; the first is kept"]


def test_variables_of_v1_folders_are_read_too() -> None:
    text = json.dumps({"id": "c", "name": "V1", "order": [], "folders_order": ["f"],
                       "folders": [{"id": "f", "name": "F", "order": ["r"],
                                    "variables": [{"key": "tenant_id", "value": "42"}]}],
                       "requests": [{"id": "r", "name": "R", "method": "GET",
                                     "url": "https://example.com/{{tenant_id}}"}]})
    assert parse_collection(text).variables == {"tenant_id": "42"}


def test_more_than_1000_variables_in_folders_are_refused() -> None:
    folders = [{"name": f"F{i}", "item": [],
                "variable": [{"key": f"v{i}_{j}", "value": "x"} for j in range(100)]}
               for i in range(11)]
    with pytest.raises(CollectionError, match="more than 1000 variables"):
        parse_collection(collection(*folders))


def test_graphql_variables_that_are_not_an_object_are_sent_as_empty() -> None:
    body = {"mode": "graphql", "graphql": {"query": "{ me { id } }", "variables": "[1]"}}
    parsed = only(collection(request(method="POST", body=body)))
    assert json.loads(action_of(parsed)["rawBody"]) == {"query": "{ me { id } }", "variables": {}}
    assert parsed.warnings == ["graphql variables are not a JSON object: sent as {}"]


def test_the_postman_api_wrapper_is_unwrapped() -> None:
    wrapped = json.dumps({"collection": json.loads(collection(request()))})
    assert [r.name for r in parse_collection(wrapped).requests] == ["Ping"]
