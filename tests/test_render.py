"""Rendering actions into requests: pure functions, no services."""

from __future__ import annotations

import base64
import json
import re
import tracemalloc
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest

from dispatch.render import (
    RenderedRequest,
    RenderError,
    RenderTooLarge,
    parameter_values,
    render_request,
)
from dispatch.summary import request_summary
from event_manager.config import RenderLimits

HOSTILE = [
    'say "hi"',
    "back\\slash\\",
    "line\nbreak\r\n\ttab",
    "</script><script>alert(1)</script>",
    "ünïcødé ☎ 電話 \u2028 \U0001f4de",
    '"}, "x": {"',
    "\x00\x1f",
    "{{caller_id}}",
]


def action(**fields: Any) -> dict[str, Any]:
    """An action document as resolvers.validation stores it, with ``fields`` changed."""
    doc: dict[str, Any] = {
        "name": "notify",
        "method": "POST",
        "url": "https://crm.example/calls",
        "query": [],
        "headers": [],
        "body_type": "NONE",
        "body_fields": [],
        "raw_body": None,
        "raw_content_type": None,
        "auth": {"type": "NO_AUTH"},
        "timeout_seconds": 10.0,
    }
    doc.update(fields)
    return doc


def row(key: str, value: str, enabled: bool = True) -> dict[str, Any]:
    return {"key": key, "value": value, "enabled": enabled}


def values_for(**params: Any) -> dict[str, str]:
    return parameter_values(
        tenant_code="acme", master=False, timezone="UTC",
        occurred_at=datetime(2024, 5, 1, 12, 0, tzinfo=UTC), params=params, custom={},
    )


def header(rendered: RenderedRequest, name: str) -> str:
    found = [v for k, v in rendered.headers if k.lower() == name.lower()]
    assert len(found) == 1, rendered.headers
    return found[0]


# parameter_values

def test_date_time_and_unix_time_follow_new_york_across_the_dst_change() -> None:
    def at(hour: int, minute: int) -> dict[str, str]:
        return parameter_values(
            tenant_code="acme", master=False, timezone="America/New_York",
            occurred_at=datetime(2024, 3, 10, hour, minute, tzinfo=UTC), params={}, custom={},
        )

    before, after = at(6, 59), at(7, 0)  # 01:59 EST, then the clocks jump to 03:00 EDT
    assert (before["date"], before["time"]) == ("2024-03-10", "01:59:00")
    assert (after["date"], after["time"]) == ("2024-03-10", "03:00:00")
    assert after["unix_time"] == "1710054000"
    assert int(after["unix_time"]) - int(before["unix_time"]) == 60


def test_date_rolls_over_in_kolkata_half_hour_offset() -> None:
    values = parameter_values(
        tenant_code="acme", master=False, timezone="Asia/Kolkata",
        occurred_at=datetime(2024, 3, 10, 20, 0, 59, 900000, tzinfo=UTC), params={}, custom={},
    )
    assert (values["date"], values["time"]) == ("2024-03-11", "01:30:59")
    assert values["unix_time"] == "1710100859"


def test_tenant_is_the_code_and_empty_for_master() -> None:
    common: dict[str, Any] = dict(
        tenant_code="acme", timezone="UTC", occurred_at=datetime(2024, 1, 1, tzinfo=UTC),
        params={}, custom={},
    )
    assert parameter_values(master=False, **common)["tenant"] == "acme"
    assert parameter_values(master=True, **common)["tenant"] == ""


def test_call_tags_absent_from_the_trigger_are_empty() -> None:
    values = values_for(caller_id="+15551234")
    assert values["caller_id"] == "+15551234"
    for tag in ("called_number", "calling_name", "call_cost", "call_id",
                "call_rating_duration", "direction", "duration", "extension"):
        assert values[tag] == ""
    rendered = render_request(action(url="https://x.example/?d={{duration}}"), values)
    assert rendered.url == "https://x.example/?d="
    assert (rendered.unresolved, rendered.empty) == ([], ["duration"])


def test_call_tags_the_trigger_gave_no_value_are_reported_sent_empty() -> None:
    """Once each, whatever their case; not a call's tag made empty by the service
    (``tenant`` on the Master tenant), nor a custom parameter whose value is empty."""
    values = parameter_values(
        tenant_code="cc", master=True, timezone="UTC", occurred_at=datetime(2024, 5, 1, tzinfo=UTC),
        params={"caller_id": "+1555", "duration": None, "extension": ""}, custom={"note": ""})
    rendered = render_request(action(
        url="https://x.example/{{CALL_ID}}?d={{duration}}&t={{tenant}}&n={{note}}",
        headers=[row("X-Call", "{{call_id}}/{{caller_id}}/{{extension}}")]), values)
    assert rendered.empty == ["call_id", "duration", "extension"]


def test_trigger_values_become_strings() -> None:
    values = values_for(duration=42.0, call_cost=0.25, extension=101, vip=True, dnd=False,
                        calling_name=None)
    assert values["duration"] == "42"
    assert values["call_cost"] == "0.25"
    assert values["extension"] == "101"
    assert (values["vip"], values["dnd"]) == ("true", "false")
    assert values["calling_name"] == ""


def test_service_values_beat_custom_which_beat_trigger_params() -> None:
    values = parameter_values(
        tenant_code="acme", master=False, timezone="UTC",
        occurred_at=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
        params={"date": "1999-01-01", "tenant": "evil", "queue": "from-trigger",
                "caller_id": "+1555"},
        custom={"queue": "from-custom"},
    )
    assert values["date"] == "2024-05-01"
    assert values["tenant"] == "acme"
    assert values["queue"] == "from-custom"
    assert values["caller_id"] == "+1555"


def test_extra_trigger_params_are_tags() -> None:
    rendered = render_request(action(url="https://x.example/q/{{queue}}"),
                              values_for(queue="sales"))
    assert rendered.url == "https://x.example/q/sales"


# placeholders

def test_placeholder_with_spaces_is_replaced() -> None:
    rendered = render_request(action(url="https://x.example/{{ caller_id }}/{{caller_id}}"),
                              values_for(caller_id="42"))
    assert rendered.url == "https://x.example/42/42"


def test_unknown_tags_stay_as_written_and_are_listed_once_in_order() -> None:
    rendered = render_request(
        action(url="https://x.example/{{ nope }}",
               headers=[row("X-A", "{{other}}-{{nope}}")],
               auth={"type": "BEARER_TOKEN", "token": "{{ token_tag }}"}),
        values_for(),
    )
    assert rendered.url == "https://x.example/%7B%7B%20nope%20%7D%7D"  # as it is sent
    assert header(rendered, "X-A") == "{{other}}-{{nope}}"
    assert header(rendered, "Authorization") == "Bearer {{ token_tag }}"
    assert rendered.unresolved == ["nope", "other", "token_tag"]


def test_a_value_holding_a_placeholder_is_not_rendered_again() -> None:
    rendered = render_request(action(headers=[row("X-A", "{{note}}")]),
                              values_for(note="{{caller_id}}", caller_id="+1555"))
    assert header(rendered, "X-A") == "{{caller_id}}"


# URL and query

def test_url_placeholders_are_percent_encoded() -> None:
    """Encoded whole, then as sent: yarl leaves "&" bare in a path, "/" and "?" in a
    query, where they mean the same to the receiver."""
    rendered = render_request(action(url="https://x.example/calls/{{note}}?n={{note}}"),
                              values_for(note="a/b?c&d#e f"))
    assert rendered.url == "https://x.example/calls/a%2Fb%3Fc&d%23e%20f?n=a/b?c%26d%23e%20f"
    assert unquote(urlsplit(rendered.url).path) == "/calls/a/b?c&d#e f"
    assert parse_qsl(urlsplit(rendered.url).query) == [("n", "a/b?c&d#e f")]


def test_base_url_placeholder_at_the_start_is_inserted_as_is() -> None:
    rendered = render_request(
        action(url="{{base_url}}/calls/{{call_id}}"),
        values_for(base_url="https://crm.example:8443/api", call_id="a/b"),
    )
    assert rendered.url == "https://crm.example:8443/api/calls/a%2Fb"


def test_query_rows_are_appended_to_the_url_query_encoded() -> None:
    rendered = render_request(
        action(url="https://x.example/cb?fixed=1#frag",
               query=[row("from", "{{caller_id}}"), row("note", "{{note}}"),
                      row("{{key}}", "v")]),
        values_for(caller_id="+1 555", note="a/b?c&d#e f", key="k&=x"),
    )
    assert rendered.url == ("https://x.example/cb?fixed=1&from=%2B1%20555"
                            "&note=a/b?c%26d%23e%20f&k%26%3Dx=v")
    assert parse_qsl(urlsplit(rendered.url).query)[1:] == [
        ("from", "+1 555"), ("note", "a/b?c&d#e f"), ("k&=x", "v")]


def test_query_starts_with_a_question_mark_when_the_url_has_none() -> None:
    rendered = render_request(action(query=[row("a", "1")]), values_for())
    assert rendered.url == "https://crm.example/calls?a=1"


def test_disabled_rows_are_not_sent() -> None:
    rendered = render_request(
        action(query=[row("a", "1"), row("b", "2", enabled=False)],
               headers=[row("X-On", "1"), row("X-Off", "{{ghost}}", enabled=False)],
               body_type="X_WWW_FORM_URLENCODED",
               body_fields=[row("c", "3", enabled=False), row("d", "4")]),
        values_for(),
    )
    assert rendered.url == "https://crm.example/calls?a=1"
    assert [k for k, _ in rendered.headers] == [
        "X-On", "Content-Type", "User-Agent"]
    assert rendered.body == b"d=4"
    assert rendered.unresolved == []


# headers

def test_cr_lf_in_a_parameter_cannot_add_a_header() -> None:
    doc = action(headers=[row("X-Caller", "{{caller_id}}")],
                 auth={"type": "BEARER_TOKEN", "token": "{{tok}}"})
    plain = render_request(doc, values_for(caller_id="1", tok="t"))
    rendered = render_request(
        doc, values_for(caller_id="1\r\nX-Evil: 1\n\x00", tok="t\r\nX-Evil: 2"))
    assert len(rendered.headers) == len(plain.headers)
    assert all(not re.search(r"[\r\n\x00]", k + v) for k, v in rendered.headers)
    assert header(rendered, "X-Caller") == "1  X-Evil: 1"
    assert header(rendered, "Authorization") == "Bearer t  X-Evil: 2"


def test_header_name_rendering_invalid_raises_render_error() -> None:
    doc = action(headers=[row("X-{{caller_id}}", "1")])
    with pytest.raises(RenderError, match=re.escape("X-{{caller_id}}")):
        render_request(doc, values_for(caller_id="a\r\nEvil"))


def test_header_name_rendering_to_a_client_managed_header_raises_render_error() -> None:
    doc = action(auth={"type": "API_KEY", "api_key_name": "{{name}}", "api_key_value": "k",
                       "api_key_in": "HEADER"})
    with pytest.raises(RenderError, match="does not render to a usable name"):
        render_request(doc, values_for(name="Content-Length"))


def test_user_agent_is_added_unless_the_user_set_one() -> None:
    assert header(render_request(action(), values_for()), "User-Agent") == "EventManager/1.0"
    own = render_request(action(headers=[row("user-agent", "Mine/2")]), values_for())
    assert own.headers == [("user-agent", "Mine/2")]


# bodies

def test_none_body_has_no_body_and_no_content_type() -> None:
    rendered = render_request(action(method="GET"), values_for())
    assert rendered.method == "GET"
    assert rendered.body is None
    assert rendered.headers == [("User-Agent", "EventManager/1.0")]


def test_form_data_body_byte_for_byte(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("dispatch.render.token_hex", lambda n: "0123456789abcdef01234567")
    rendered = render_request(
        action(body_type="FORM_DATA",
               headers=[row("Content-Type", "text/plain")],
               body_fields=[row("caller", "{{caller_id}}"), row('a"b\r\nc', "é\r\nx"),
                            row("off", "no", enabled=False)]),
        values_for(caller_id="+1 555"),
    )
    b = "EventManagerBoundary0123456789abcdef01234567"
    assert rendered.body == (
        f'--{b}\r\nContent-Disposition: form-data; name="caller"\r\n\r\n+1 555\r\n'
        f'--{b}\r\nContent-Disposition: form-data; name="a%22b%0D%0Ac"\r\n\r\né\r\nx\r\n'
        f"--{b}--\r\n"
    ).encode()
    assert rendered.headers == [("Content-Type", f"multipart/form-data; boundary={b}"),
                                ("User-Agent", "EventManager/1.0")]


def test_form_data_boundary_is_random() -> None:
    doc = action(body_type="FORM_DATA", body_fields=[row("a", "1")])
    first, second = (header(render_request(doc, values_for()), "Content-Type") for _ in "12")
    assert re.fullmatch(r"multipart/form-data; boundary=EventManagerBoundary[0-9a-f]{24}", first)
    assert first != second


def test_urlencoded_body_byte_for_byte() -> None:
    rendered = render_request(
        action(body_type="X_WWW_FORM_URLENCODED",
               headers=[row("content-type", "text/plain")],
               body_fields=[row("from", "{{caller_id}}"), row("note", "a&b=c/é")]),
        values_for(caller_id="+1 555"),
    )
    assert rendered.body == b"from=%2B1+555&note=a%26b%3Dc%2F%C3%A9"
    assert rendered.headers == [("Content-Type", "application/x-www-form-urlencoded"),
                                ("User-Agent", "EventManager/1.0")]


def test_raw_text_body_inserts_values_as_is() -> None:
    rendered = render_request(
        action(body_type="RAW", raw_body="call {{caller_id}} <{{note}}>",
               raw_content_type="text/plain; charset=utf-8"),
        values_for(caller_id="+1", note='"é"'),
    )
    assert rendered.body == 'call +1 <"é">'.encode()
    assert header(rendered, "Content-Type") == "text/plain; charset=utf-8"


def test_raw_user_content_type_header_overrides_and_selects_the_encoding() -> None:
    rendered = render_request(
        action(body_type="RAW", raw_body='{"n": "{{note}}"}', raw_content_type="text/plain",
               headers=[row("Content-Type", "application/vnd.api+json")]),
        values_for(note='"}'),
    )
    assert rendered.headers == [("Content-Type", "application/vnd.api+json"),
                                ("User-Agent", "EventManager/1.0")]
    assert json.loads(rendered.body or b"") == {"n": '"}'}


@pytest.mark.parametrize("value", HOSTILE)
def test_json_body_stays_valid_with_hostile_values(value: str) -> None:
    template = ('{"in": "{{note}}", "mixed": "id={{note}};", "out": {{note}}, '
                '"list": [{{note}}, "\\"{{note}}\\""], "esc": "a\\\\{{note}}"}')
    rendered = render_request(
        action(body_type="RAW", raw_body=template,
               raw_content_type="application/json; charset=utf-8"),
        values_for(note=value),
    )
    assert json.loads(rendered.body or b"") == {
        "in": value, "mixed": f"id={value};", "out": value,
        "list": [value, f'"{value}"'], "esc": f"a\\{value}",
    }


def test_json_numbers_and_booleans_outside_strings_stay_literals() -> None:
    rendered = render_request(
        action(body_type="RAW", raw_content_type="application/json",
               raw_body='{"d": {{duration}}, "c": {{call_cost}}, "v": {{vip}}, "n": {{none}}, '
                        '"e": {{extension}}, "z": {{zero_padded}}, "s": "{{duration}}"}'),
        values_for(duration=42.0, call_cost="-1.5e3", vip=True, none="null",
                   zero_padded="007"),
    )
    assert json.loads(rendered.body or b"") == {
        "d": 42, "c": -1500.0, "v": True, "n": None, "e": "", "z": "007", "s": "42"}


def test_xml_body_escapes_values() -> None:
    rendered = render_request(
        action(body_type="RAW", raw_content_type="application/soap+xml",
               raw_body="<call from='{{caller_id}}'><n>{{note}}</n></call>"),
        values_for(caller_id="'1'", note='<a href="x">&</a>'),
    )
    assert rendered.body == (b"<call from='&apos;1&apos;'>"
                             b"<n>&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;</n></call>")


# authorization

def test_api_key_in_header_replaces_a_user_header_of_that_name() -> None:
    rendered = render_request(
        action(headers=[row("x-api-key", "old"), row("X-Other", "1")],
               auth={"type": "API_KEY", "api_key_name": "X-Api-Key",
                     "api_key_value": "k-{{tenant}}\r\n", "api_key_in": "HEADER"}),
        values_for(),
    )
    assert rendered.headers == [("X-Other", "1"), ("X-Api-Key", "k-acme"),
                                ("User-Agent", "EventManager/1.0")]
    assert rendered.secrets == ("k-acme",)


def test_api_key_in_query_comes_after_the_query_rows() -> None:
    rendered = render_request(
        action(query=[row("a", "1")],
               auth={"type": "API_KEY", "api_key_name": "api key",
                     "api_key_value": "s/{{tenant}}", "api_key_in": "QUERY"}),
        values_for(),
    )
    assert rendered.url == "https://crm.example/calls?a=1&api%20key=s/acme"
    assert rendered.secrets == ("s/acme",)


def test_basic_auth_header() -> None:
    rendered = render_request(
        action(headers=[row("Authorization", "Bearer stale")],
               auth={"type": "BASIC_AUTH", "username": "{{tenant}}", "password": "pä:ss"}),
        values_for(),
    )
    expected = base64.b64encode("acme:pä:ss".encode()).decode()
    assert rendered.headers == [("Authorization", f"Basic {expected}"),
                                ("User-Agent", "EventManager/1.0")]
    assert rendered.secrets == ("pä:ss", expected)


def test_bearer_token_header() -> None:
    rendered = render_request(action(auth={"type": "BEARER_TOKEN", "token": "{{tok}}"}),
                              values_for(tok="abc.def"), secret_values=["abc.def", "", "other"])
    assert header(rendered, "Authorization") == "Bearer abc.def"
    assert rendered.secrets == ("abc.def", "other")


# summary

def test_summary_masks_every_secret() -> None:
    secret = "s3cr/et v"
    doc = action(
        url="{{base}}/p/{{secret_param}}",
        query=[row("q", "{{secret_param}}")],
        headers=[row("X-Note", "id {{secret_param}} end"), row("Authorization", "Token {{tok}}")],
        body_type="RAW", raw_body='{"s": "{{secret_param}}"}', raw_content_type="application/json",
        auth={"type": "API_KEY", "api_key_name": "key", "api_key_value": "{{tok}}",
              "api_key_in": "QUERY"},
    )
    rendered = render_request(doc, values_for(base=f"https://x.example/{secret}", tok="tk-1",
                                              secret_param=secret),
                              secret_values=[secret])
    summary = request_summary(rendered, doc)
    assert secret not in str(summary) and "s3cr%2Fet%20v" not in str(summary)
    assert "tk-1" not in str(summary)
    assert summary["url"].endswith("&key=********")
    assert {"key": "Authorization", "value": "Token ********", "enabled": True} in (
        summary["headers"])
    assert {"key": "X-Note", "value": "id ******** end", "enabled": True} in summary["headers"]
    assert summary["body"] == '{"s": "********"}'
    assert set(summary) == {"method", "url", "headers", "body"}


def test_summary_keeps_the_body_cut_at_4_kib_saying_so() -> None:
    doc = action(body_type="RAW", raw_body="{{big}}", raw_content_type="text/plain")
    rendered = render_request(doc, values_for(big="é" * 3000 + "x" * 2000))
    body = request_summary(rendered, doc)["body"]
    assert len(body) == 4096 and body.startswith("é" * 3000)
    assert body.endswith("… [cut, 7.8 KiB in all]")
    assert request_summary(render_request(action(), values_for()), action())["body"] is None


@pytest.mark.parametrize("auth", [
    {"type": "BASIC_AUTH", "username": "u", "password": "pw-1"},
    {"type": "BEARER_TOKEN", "token": "pw-1"},
    {"type": "API_KEY", "api_key_name": "X-Key", "api_key_value": "pw-1", "api_key_in": "HEADER"},
])
def test_summary_masks_auth_headers_keeping_the_scheme(auth: dict[str, Any]) -> None:
    doc = action(auth=auth)
    rendered = render_request(doc, values_for())
    summary = request_summary(rendered, doc)
    shown = {h["key"]: h["value"] for h in summary["headers"]}
    expected = {"BASIC_AUTH": ("Authorization", "Basic ********"),
                "BEARER_TOKEN": ("Authorization", "Bearer ********"),
                "API_KEY": ("X-Key", "********")}[auth["type"]]
    assert shown[expected[0]] == expected[1]
    assert "pw-1" not in str(summary)
    assert base64.b64encode(b"u:pw-1").decode() not in str(summary)


# limits

LONG = "x" * 4096  # the longest value a custom parameter may hold


def test_the_issues_body_fails_at_the_limit_without_being_built() -> None:
    """256 KiB of {{a}} with a 4 KiB ``a``: 204.8 MiB once rendered. The old renderer built
    it (410 MiB at its peak); now the size is counted, the string is never made."""
    doc = action(body_type="RAW", raw_body="{{a}}" * (256 * 1024 // 5),
                 raw_content_type="text/plain")
    values = values_for(a=LONG)
    tracemalloc.start()
    try:
        with pytest.raises(RenderTooLarge) as raised:
            render_request(doc, values)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(raised.value) == ("rendered body is 204.8 MiB, over the 1 MiB limit by "
                                 "203.8 MiB")
    assert peak < 8 * 2**20, f"{peak / 2**20:.1f} MiB"


@pytest.mark.parametrize("content_type, body", [
    ("text/plain", "ab{{a}}"), ("application/json", '"{{a}}"'), ("text/xml", "<>{{a}}")])
def test_a_raw_body_at_the_limit_is_sent_and_one_byte_more_is_not(content_type: str,
                                                                  body: str) -> None:
    limits = RenderLimits(body=4096)
    doc = action(body_type="RAW", raw_body=body, raw_content_type=content_type)
    assert len(render_request(doc, values_for(a="x" * 4094), limits=limits).body or b"") == 4096
    with pytest.raises(RenderTooLarge, match="^rendered body is 4,097 bytes, over the 4 KiB "
                                             "limit by 1 byte$"):
        render_request(doc, values_for(a="x" * 4095), limits=limits)


@pytest.mark.parametrize("body_type", ["FORM_DATA", "X_WWW_FORM_URLENCODED"])
def test_form_bodies_have_the_body_limit(body_type: str) -> None:
    doc = action(body_type=body_type, body_fields=[row("f", "{{a}}" * 100)])
    assert render_request(doc, values_for(a="x" * 10)).body
    with pytest.raises(RenderTooLarge, match="^rendered body is 400.[0-9] KiB, over the 8 KiB"):
        render_request(doc, values_for(a=LONG), limits=RenderLimits(body=8192))


def test_three_expanded_headers_fail_on_the_first_one_over_the_limit() -> None:
    """The issue's 20.1 MB row: three headers of 1,638 ``{{a}}`` each."""
    doc = action(headers=[row(f"X-{i}", "{{a}}" * 1638) for i in range(3)])
    with pytest.raises(RenderTooLarge, match="^rendered header 'X-0' is 6.4 MiB, over the "
                                             "8 KiB limit by 6.4 MiB$"):
        render_request(doc, values_for(a=LONG))


def test_all_headers_together_have_a_limit() -> None:
    doc = action(headers=[row(f"X-{i}", "{{a}}") for i in range(9)])
    with pytest.raises(RenderTooLarge, match="^rendered headers are 36.[0-9] KiB, over the "
                                             "32 KiB limit by 4.[0-9] KiB$"):
        render_request(doc, values_for(a=LONG))


@pytest.mark.parametrize("auth, what", [
    ({"type": "BEARER_TOKEN", "token": "{{a}}{{a}}"}, "header 'Authorization'"),
    ({"type": "BASIC_AUTH", "username": "u", "password": "{{a}}{{a}}"},
     "header 'Authorization'"),
    ({"type": "API_KEY", "api_key_name": "X-Key", "api_key_value": "{{a}}{{a}}",
      "api_key_in": "HEADER"}, "header 'X-Key'"),
    ({"type": "API_KEY", "api_key_name": "key", "api_key_value": "{{a}}{{a}}",
      "api_key_in": "QUERY"}, "URL"),
])
def test_authorization_has_the_limits_of_where_it_goes(auth: dict[str, Any], what: str) -> None:
    doc = action(auth=auth)
    render_request(doc, values_for(a="x" * 1000))
    with pytest.raises(RenderTooLarge, match=f"^rendered {what} is "):
        render_request(doc, values_for(a=LONG), limits=RenderLimits(url=4096, header=4096))


def test_the_url_limit_counts_the_query_encoded() -> None:
    doc = action(url="https://crm.example/{{a}}", query=[row("q", "{{a}}")])
    assert render_request(doc, values_for(a="é")).url == "https://crm.example/%C3%A9?q=%C3%A9"
    with pytest.raises(RenderTooLarge, match="^rendered URL is 48.1 KiB, over the 8 KiB "
                                             "limit by 40.1 KiB$"):
        render_request(doc, values_for(a="é" * 4096 + "x" * 20))


def test_a_summary_shows_at_most_a_few_kib_of_each_part() -> None:
    doc = action(url="https://crm.example/{{a}}", headers=[row("X-Big", "{{a}}")])
    limits = RenderLimits(url=2**20, header=2**20, headers=2**20)
    summary = request_summary(render_request(doc, values_for(a="y" * 8000), limits=limits), doc)
    assert len(summary["url"]) == 4096 and summary["url"].endswith("… [cut, 7.8 KiB in all]")
    [big] = [h["value"] for h in summary["headers"] if h["key"] == "X-Big"]
    assert len(big) == 2048 and big.endswith("… [cut, 7.8 KiB in all]")


def test_tags_take_their_value_whatever_their_case() -> None:
    """``{{TEAM}}`` gets custom parameter ``team``'s value, ``{{CALLER_ID}}`` the call's
    ``caller_id``, ``{{Queue}}`` the trigger's ``queue``; an unknown tag is listed once."""
    values = parameter_values(
        tenant_code="acme", master=False, timezone="UTC",
        occurred_at=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
        params={"caller_id": "+1555", "queue": "sales"}, custom={"Team": "support"},
    )
    rendered = render_request(
        action(url="https://x.example/{{TEAM}}/{{team}}?c={{CALLER_ID}}&q={{Queue}}",
               headers=[row("X-Ghost", "{{Ghost}}{{GHOST}}")]), values)
    assert rendered.url == "https://x.example/support/support?c=%2B1555&q=sales"
    assert header(rendered, "X-Ghost") == "{{Ghost}}{{GHOST}}"
    assert rendered.unresolved == ["Ghost"]


def test_a_header_name_that_renders_unusable_says_why() -> None:
    def error(key: str, secrets: tuple[str, ...] = (), **params: Any) -> str:
        with pytest.raises(RenderError) as raised:
            render_request(action(headers=[row(key, "1")]), values_for(**params),
                           secret_values=secrets)
        return str(raised.value)

    start = "the header name 'X-{{team}}' does not render to a usable name: "
    assert error("X-{{team}}") == start + "team has no value"
    assert error("X-{{team}}", team="a b") == start + "'X-a b' is not a valid header name"
    assert error("X-{{team}}", ("s3cr3t",), team="s3cr3t b") == (
        start + "'X-******** b' is not a valid header name")
    assert error("{{name}}", name="") == ("the header name '{{name}}' does not render to a "
                                          "usable name: it renders empty")
    assert error("{{name}}", name="Host") == ("the header name '{{name}}' does not render to "
                                              "a usable name: the Host header is set by the "
                                              "HTTP client")


def test_a_header_name_renders_from_a_parameter() -> None:
    rendered = render_request(action(headers=[row("X-{{team}}", "1")]), values_for(team="Ops"))
    assert header(rendered, "X-Ops") == "1"


def test_a_url_yarl_refuses_is_left_for_the_guard_to_refuse() -> None:
    rendered = render_request(action(url="https://x.example:{{port}}/a%26b"),
                              values_for(port="x"))
    assert rendered.url == "https://x.example:x/a%26b"
