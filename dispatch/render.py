"""Rendering an action into the request that is sent: values in, method, URL, headers, bytes out.

Every ``{{tag}}`` is replaced by its value, encoded for where it lands::

    URL path/query   .../calls/{{call_id}}        "a/b c"            → .../calls/a%2Fb%20c
    base URL         {{base_url}}/calls           "https://crm.test" → https://crm.test/calls
    header value     X-Note: {{note}}             "a\\r\\nX-Evil: 1"   → X-Note: a  X-Evil: 1
    JSON raw body    {"n": "{{note}}", "d": {{duration}}}   escaped in strings, quoted outside
    XML raw body     <n>{{note}}</n>              "<b>"              → <n>&lt;b&gt;</n>

A tag without a value stays exactly as written and is reported in ``unresolved``.
Values are inserted once and never rendered again, so a value holding ``{{x}}`` stays text.
Nothing here does I/O: the delivery sends what ``render_request`` returns.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from secrets import token_hex
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from dispatch.template import PLACEHOLDER
from event_manager.errors import EventManagerError
from tenants.catalog import SYSTEM_PARAMETERS

MASK = "********"  # the same mask as schema.types.MASK; dispatch does not import the schema
USER_AGENT = "EventManager/1.0"
CALL_TAGS = tuple(p.tag for p in SYSTEM_PARAMETERS if p.from_call)
HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # an RFC 7230 token
# Set by the HTTP client from the request itself; a rendered name may not claim them either.
RESERVED_HEADERS = frozenset({
    "host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade",
    "te", "trailer", "proxy-connection", "expect",
})
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization"})
# Control characters other than TAB: CR and LF would start a new header line.
HEADER_UNSAFE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
JSON_LITERAL = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|true|false|null")
XML_ENTITIES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;",
                              "'": "&apos;"})


class RenderError(EventManagerError):
    """Raised when an action cannot become a valid request, e.g. a header name renders invalid."""


@dataclass(frozen=True)
class RenderedRequest:
    method: str
    url: str
    """Final absolute URL, query string included, no fragment."""
    headers: list[tuple[str, str]]
    """Exactly the headers we set, in order; Host, Content-Length etc. are the client's."""
    body: bytes | None
    unresolved: list[str]
    """Tags left as written (no value), each once, in order of first use."""
    secrets: tuple[str, ...]
    """Concrete strings to mask wherever the request is shown or logged."""


def parameter_values(
    *, tenant_code: str, master: bool, timezone: str, occurred_at: datetime,
    params: Mapping[str, str | int | float | bool | None], custom: Mapping[str, str],
) -> dict[str, str]:
    """Every tag's value for one trigger.

    Service-made values win over custom parameters, which win over the trigger's params.
    With timezone ``Asia/Kolkata`` and ``occurred_at`` 2024-03-10 20:00 UTC:
    ``date="2024-03-11"``, ``time="01:30:00"``, ``unix_time="1710100800"``. A call tag
    missing from ``params`` is ``""``; ``{"duration": 42.0, "vip": True}`` gives
    ``"42"`` and ``"true"``; extra params (``{"queue": "sales"}``) are tags too.
    """
    if occurred_at.tzinfo is None:  # a naive time is taken as UTC
        occurred_at = occurred_at.replace(tzinfo=UTC)
    local = occurred_at.astimezone(ZoneInfo(timezone))
    values = dict.fromkeys(CALL_TAGS, "")
    values.update({str(key): _param_text(value) for key, value in params.items()})
    values.update(custom)
    values.update(
        date=local.strftime("%Y-%m-%d"),
        time=local.strftime("%H:%M:%S"),
        unix_time=str(math.floor(occurred_at.timestamp())),
        tenant="" if master else tenant_code,
    )
    return values


def _param_text(value: str | int | float | bool | None) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


class _Renderer:
    """Replaces placeholders from ``values`` and remembers the tags it could not fill."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self.values = values
        self.unresolved: dict[str, None] = {}

    def value(self, match: re.Match[str]) -> str | None:
        tag = match.group(1)
        if tag in self.values:
            return self.values[tag]
        self.unresolved.setdefault(tag, None)
        return None

    def text(self, template: str | None, encode: Callable[[str], str] = str) -> str:
        def replace(match: re.Match[str]) -> str:
            value = self.value(match)
            return match.group(0) if value is None else encode(value)

        return PLACEHOLDER.sub(replace, template or "")

    def url(self, template: str) -> str:
        """A leading placeholder is a base URL, inserted as-is; every other one is encoded."""
        base = PLACEHOLDER.match(template)
        split = base.end() if base else 0
        return self.text(template[:split]) + self.text(template[split:], _quote)

    def header_value(self, template: str | None) -> str:
        return HEADER_UNSAFE.sub(" ", self.text(template)).strip()

    def header_name(self, template: str) -> str:
        name = self.text(template)
        if not HEADER_NAME.fullmatch(name) or name.lower() in RESERVED_HEADERS:
            raise RenderError(f"the header name {template!r} does not render to a usable name")
        return name

    def json(self, template: str) -> str:
        """``{"a": "{{v}}", "b": {{v}}}`` with v = 'say "hi"' → ``{"a": "say \\"hi\\"",
        "b": "say \\"hi\\""}``; with v = "42" → ``{"a": "42", "b": 42}``."""
        out: list[str] = []
        position, in_string, escaped = 0, False, False
        for match in PLACEHOLDER.finditer(template):
            literal = template[position:match.start()]
            for char in literal:
                if escaped:
                    escaped = False
                elif in_string and char == "\\":
                    escaped = True
                elif char == '"':
                    in_string = not in_string
            out.append(literal)
            value, escaped = self.value(match), False
            if value is None:
                out.append(match.group(0))
            elif in_string:
                out.append(json.dumps(value, ensure_ascii=False)[1:-1])
            elif JSON_LITERAL.fullmatch(value):
                out.append(value)
            else:
                out.append(json.dumps(value, ensure_ascii=False))
            position = match.end()
        out.append(template[position:])
        return "".join(out)

    def raw_body(self, template: str, content_type: str) -> str:
        media = content_type.split(";", 1)[0].strip().lower()
        if media == "application/json" or media.endswith("+json"):
            return self.json(template)
        if media in ("application/xml", "text/xml") or media.endswith("+xml"):
            return self.text(template, lambda value: value.translate(XML_ENTITIES))
        return self.text(template)


def render_request(
    action: Mapping[str, Any], values: Mapping[str, str], *, secret_values: Iterable[str] = ()
) -> RenderedRequest:
    """The request ``action`` describes, with ``values`` in place of its placeholders.

    Raises ``RenderError`` when a header name (or API-key header name) renders into
    something that is not a header name, e.g. ``X-{{tag}}`` with tag = "a b".
    """
    render = _Renderer(values)
    url = render.url(action.get("url") or "").split("#", 1)[0]
    query = [(render.text(row["key"]), render.text(row["value"]))
             for row in _enabled(action.get("query"))]
    headers = [(render.header_name(row["key"]), render.header_value(row["value"]))
               for row in _enabled(action.get("headers"))]
    body, content_type = _body(render, action, headers)
    if content_type is not None:
        headers = [h for h in headers if h[0].lower() != "content-type"]
        headers.append(("Content-Type", content_type))
    auth_header, secrets = _authorization(render, action.get("auth") or {}, query)
    if auth_header is not None:
        headers = [h for h in headers if h[0].lower() != auth_header[0].lower()]
        headers.append(auth_header)
    if not any(name.lower() == "user-agent" for name, _ in headers):
        headers.append(("User-Agent", USER_AGENT))
    if query:
        url = _with_query(url, urlencode(query, quote_via=quote))
    secrets.extend(secret_values)
    return RenderedRequest(
        method=(action.get("method") or "POST").upper(),
        url=url,
        headers=headers,
        body=body,
        unresolved=list(render.unresolved),
        secrets=tuple(dict.fromkeys(s for s in secrets if s)),
    )


def _body(
    render: _Renderer, action: Mapping[str, Any], headers: list[tuple[str, str]]
) -> tuple[bytes | None, str | None]:
    """The body and the Content-Type to set (None: leave the user's header, if any)."""
    body_type = action.get("body_type") or "NONE"
    if body_type == "RAW":
        chosen = [value for name, value in headers if name.lower() == "content-type"]
        content_type = chosen[-1] if chosen else (action.get("raw_content_type") or "text/plain")
        body = render.raw_body(action.get("raw_body") or "", content_type)
        return _utf8(body), None if chosen else content_type
    fields = [(render.text(row["key"]), render.text(row["value"]))
              for row in _enabled(action.get("body_fields"))]
    if body_type == "FORM_DATA":
        return _multipart(fields)
    if body_type == "X_WWW_FORM_URLENCODED":
        return urlencode(fields).encode("ascii"), "application/x-www-form-urlencoded"
    return None, None


def _multipart(fields: list[tuple[str, str]]) -> tuple[bytes, str]:
    """``multipart/form-data`` as browsers send it; a name's ``"`` CR LF become %22 %0D %0A."""
    boundary = "EventManagerBoundary" + token_hex(12)
    parts = []
    for key, value in fields:
        name = key.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n'
                     f"\r\n{value}\r\n")
    parts.append(f"--{boundary}--\r\n")
    return _utf8("".join(parts)), f"multipart/form-data; boundary={boundary}"


def _authorization(
    render: _Renderer, auth: Mapping[str, Any], query: list[tuple[str, str]]
) -> tuple[tuple[str, str] | None, list[str]]:
    """The auth header (an API key in the query is appended to ``query``) and its secrets."""
    kind = auth.get("type") or "NO_AUTH"
    if kind == "API_KEY":
        if auth.get("api_key_in") == "QUERY":
            key = render.text(auth.get("api_key_value"))
            query.append((render.text(auth.get("api_key_name")), key))
            return None, [key]
        name = render.header_name(auth.get("api_key_name") or "")
        key = render.header_value(auth.get("api_key_value"))
        return (name, key), [key]
    if kind == "BASIC_AUTH":
        username = render.text(auth.get("username"))
        password = render.text(auth.get("password"))
        credentials = base64.b64encode(_utf8(f"{username}:{password}")).decode("ascii")
        return ("Authorization", f"Basic {credentials}"), [password, credentials]
    if kind == "BEARER_TOKEN":
        token = render.header_value(auth.get("token"))
        return ("Authorization", f"Bearer {token}"), [token]
    return None, []


def request_summary(rendered: RenderedRequest, action: Mapping[str, Any]) -> dict[str, Any]:
    """What the activity shows of a request: method, URL and headers, secrets masked.

    ``Authorization: Bearer s3cr3t`` → ``Bearer ********``; the API key's header or query
    value → ``********``; a secret anywhere else (raw or percent-encoded) → ``********``.
    The body is never included.
    """
    hidden = _secret_forms(rendered.secrets)
    auth = action.get("auth") or {}
    api_key = auth.get("type") == "API_KEY"
    in_query = api_key and auth.get("api_key_in") == "QUERY"
    url = rendered.url
    if in_query and "=" in url:  # the key is always the last query parameter
        url = url.rpartition("=")[0] + "=" + MASK
    key_header = (auth.get("api_key_name") or "").lower() if api_key and not in_query else None
    headers = []
    for name, value in rendered.headers:
        if name.lower() in CREDENTIAL_HEADERS:
            scheme, space, _ = value.partition(" ")
            value = f"{_mask(scheme, hidden)} {MASK}" if space else MASK
        elif name.lower() == key_header:
            value = MASK
        else:
            value = _mask(value, hidden)
        headers.append({"key": _mask(name, hidden), "value": value, "enabled": True})
    return {"method": rendered.method, "url": _mask(url, hidden), "headers": headers}


def _secret_forms(secrets: Iterable[str]) -> list[str]:
    """Each secret as written and percent-encoded, longest first so none is half-masked."""
    forms = {form for secret in secrets if secret for form in (secret, _quote(secret))}
    return sorted(forms, key=len, reverse=True)


def _mask(text: str, hidden: list[str]) -> str:
    for secret in hidden:
        text = text.replace(secret, MASK)
    return text


def _enabled(rows: Iterable[Mapping[str, Any]] | None) -> list[Mapping[str, Any]]:
    return [row for row in rows or () if row.get("enabled", True)]


def _quote(value: str) -> str:
    return quote(value, safe="")


def _with_query(url: str, query: str) -> str:
    """``https://a/b`` + ``x=1`` → ``https://a/b?x=1``; ``https://a/b?y=2`` → ``...?y=2&x=1``."""
    if "?" not in url:
        return f"{url}?{query}"
    return url + query if url.endswith(("?", "&")) else f"{url}&{query}"


def _utf8(text: str) -> bytes:
    # "replace": a lone surrogate from a trigger's JSON must not stop the delivery.
    return text.encode("utf-8", "replace")
