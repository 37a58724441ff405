"""Rendering an action into the request that is sent: values in, method, URL, headers, bytes out.

Every ``{{tag}}`` is replaced by its value, encoded for where it lands::

    URL path/query   .../calls/{{call_id}}        "a/b c"            → .../calls/a%2Fb%20c
    base URL         {{base_url}}/calls           "https://crm.test" → https://crm.test/calls
    header value     X-Note: {{note}}             "a\\r\\nX-Evil: 1"   → X-Note: a  X-Evil: 1
    JSON raw body    {"n": "{{note}}", "d": {{duration}}}   escaped in strings, quoted outside
    XML raw body     <n>{{note}}</n>              "<b>"              → <n>&lt;b&gt;</n>

A tag without a value stays exactly as written and is reported in ``unresolved``; a
call's tag the trigger gave no value is sent empty and reported in ``empty``.
Values are inserted once and never rendered again, so a value holding ``{{x}}`` stays text.
Nothing here does I/O: the delivery sends what ``render_request`` returns.

Each part has a size limit (``RenderLimits``: URL, one header, all headers, body), kept
while rendering: pieces are counted to the end, so the error tells the whole size, but
nothing more is built once a part is over, so 256 KiB of ``{{a}}`` with a 4 KiB ``a``
never becomes a 204.8 MiB string ("rendered body is 204.8 MiB, over the 1 MiB limit by
203.8 MiB").
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
from urllib.parse import quote, quote_plus, unquote, urlsplit
from zoneinfo import ZoneInfo

from yarl import URL

from dispatch.masking import Masker
from dispatch.template import PLACEHOLDER
from event_manager.config import RenderLimits
from event_manager.errors import EventManagerError
from event_manager.sizes import size_text, utf8_size
from tenants.catalog import SYSTEM_PARAMETERS

DEFAULT_LIMITS = RenderLimits()
USER_AGENT = "EventManager/1.0"
CALL_TAGS = tuple(p.tag for p in SYSTEM_PARAMETERS if p.from_call)
HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # an RFC 7230 token
# Set by the HTTP client from the request itself; a rendered name may not claim them either.
RESERVED_HEADERS = frozenset({
    "host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade",
    "te", "trailer", "proxy-connection", "expect",
})
# Control characters other than TAB: CR and LF would start a new header line.
HEADER_UNSAFE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
JSON_LITERAL = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|true|false|null")
XML_ENTITIES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;",
                              "'": "&apos;"})


class RenderError(EventManagerError):
    """Raised when an action cannot become a valid request, e.g. a header name renders invalid."""


class RenderTooLarge(RenderError):
    """Raised when a rendered part is over its limit; the message tells by how much."""

    def __init__(self, what: str, size: int, limit: int) -> None:
        verb = "are" if what == "headers" else "is"
        shown = size_text(size)
        if shown.replace(".0 ", " ") == size_text(limit):  # not "4.0 KiB, over the 4 KiB limit"
            shown = f"{size:,} bytes"
        super().__init__(f"rendered {what} {verb} {shown}, over the {size_text(limit)} limit "
                         f"by {size_text(size - limit)}")


class _Budget:
    """The bytes one part may take. Every piece is counted, so the whole size is known,
    but ``take`` says False once the part is over: the caller stops building it."""

    def __init__(self, what: str, limit: int) -> None:
        self.what, self.limit, self.size = what, limit, 0

    def take(self, size: int) -> bool:
        self.size += size
        return self.size <= self.limit

    def check(self) -> None:
        if self.size > self.limit:
            raise RenderTooLarge(self.what, self.size, self.limit)


@dataclass(frozen=True)
class RenderedRequest:
    method: str
    url: str
    """Final absolute URL, query string included, no fragment, exactly as it is sent
    (``_as_sent``)."""
    headers: list[tuple[str, str]]
    """Exactly the headers we set, in order; Host, Content-Length etc. are the client's."""
    body: bytes | None
    unresolved: list[str]
    """Tags left as written (no value), each once whatever its case, in order of first use."""
    empty: list[str]
    """System parameters of the call that the trigger gave no value (an Incoming Call
    without ``call_id``), sent empty: each once, in order of first use."""
    secrets: tuple[str, ...]
    """Concrete strings to mask wherever the request is shown or logged."""


def parameter_values(
    *, tenant_code: str, master: bool, timezone: str, occurred_at: datetime,
    params: Mapping[str, str | int | float | bool | None], custom: Mapping[str, str],
) -> dict[str, str]:
    """Every tag's value for one trigger, by the tag in lower case: tags are one
    parameter regardless of case (as a parameter's tag is unique), so ``{{TEAM}}``
    gets the value of parameter ``team`` and ``{{CALLER_ID}}`` the call's ``caller_id``.

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
    values.update({str(key).casefold(): _param_text(value) for key, value in params.items()})
    values.update({tag.casefold(): value for tag, value in custom.items()})
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


def _same(text: str) -> str:
    return text


class _Renderer:
    """Replaces placeholders from ``values`` (keyed by the tag in lower case:
    ``parameter_values``) and remembers the tags it could not fill."""

    def __init__(self, values: Mapping[str, str], secrets: tuple[str, ...] = ()) -> None:
        self.values = values
        self.secrets = secrets
        """Values to mask in an error that quotes what was rendered."""
        self.unresolved: dict[str, str] = {}
        """Each tag in lower case → as first written."""
        self.empty: dict[str, None] = {}

    def value(self, match: re.Match[str]) -> str | None:
        tag = match.group(1)
        key = tag.casefold()
        value = self.values.get(key)
        if value is None:
            self.unresolved.setdefault(key, tag)
        elif not value and key in CALL_TAGS:
            self.empty.setdefault(key, None)
        return value

    def text(self, template: str | None, budget: _Budget, encode: Callable[[str], str] = _same,
             literal: Callable[[str], str] = _same) -> str:
        """``template`` rendered, values through ``encode`` and the rest through ``literal``,
        counted against ``budget``: once that is over, the rest is counted, not built."""
        template = template or ""
        out: list[str] = []
        encoded: dict[str, tuple[str, int]] = {}  # each tag's value, encoded once

        def add(piece: str, size: int | None = None) -> None:
            if budget.take(utf8_size(piece) if size is None else size):
                out.append(piece)

        position = 0
        for match in PLACEHOLDER.finditer(template):
            add(literal(template[position:match.start()]))
            value = self.value(match)
            if value is None:
                add(literal(match.group(0)))
            else:
                if match.group(1) not in encoded:
                    piece = encode(value)
                    encoded[match.group(1)] = (piece, utf8_size(piece))
                add(*encoded[match.group(1)])
            position = match.end()
        add(literal(template[position:]))
        return "".join(out)

    def url(self, template: str, budget: _Budget) -> str:
        """A leading placeholder is a base URL, inserted as-is; every other one is encoded."""
        base = PLACEHOLDER.match(template)
        split = base.end() if base else 0
        return self.text(template[:split], budget) + self.text(template[split:], budget, _quote)

    def header(self, key: str, value: str | None, limit: int) -> tuple[str, str]:
        """One header, name and value counted together against ``limit``."""
        budget = _Budget(f"header {key[:60]!r}", limit)
        name, rendered = self.text(key, budget), self.text(value, budget)
        budget.check()
        return self.header_name(key, name), HEADER_UNSAFE.sub(" ", rendered).strip()

    def header_name(self, template: str, name: str) -> str:
        """``name``, rendered from ``template``, if it is a header name we may set.

        Else a ``RenderError`` naming the header and saying why, e.g. "the header name
        'X-{{team}}' does not render to a usable name: 'X-a b' is not a valid header
        name" (a secret parameter's value in it masked)."""
        if HEADER_NAME.fullmatch(name) and name.lower() not in RESERVED_HEADERS:
            return name
        missing = [m.group(1) for m in PLACEHOLDER.finditer(template)
                   if m.group(1).casefold() not in self.values]
        if missing:
            why = f"{missing[0]} has no value"
        elif not name:
            why = "it renders empty"
        elif HEADER_NAME.fullmatch(name):
            why = f"the {name} header is set by the HTTP client"
        else:
            why = f"{Masker(self.secrets)(name)[:60]!r} is not a valid header name"
        raise RenderError(f"the header name {template[:60]!r} does not render to a usable "
                          f"name: {why}")

    def json(self, template: str, budget: _Budget) -> str:
        """``{"a": "{{v}}", "b": {{v}}}`` with v = 'say "hi"' → ``{"a": "say \\"hi\\"",
        "b": "say \\"hi\\""}``; with v = "42" → ``{"a": "42", "b": 42}``."""
        out: list[str] = []
        encoded: dict[tuple[str, bool], tuple[str, int]] = {}

        def add(piece: str, size: int | None = None) -> None:
            if budget.take(utf8_size(piece) if size is None else size):
                out.append(piece)

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
            add(literal)
            value, escaped = self.value(match), False
            if value is None:
                add(match.group(0))
            else:
                key = (match.group(1), in_string)
                if key not in encoded:
                    piece = _json_value(value, in_string)
                    encoded[key] = (piece, utf8_size(piece))
                add(*encoded[key])
            position = match.end()
        add(template[position:])
        return "".join(out)

    def raw_body(self, template: str, content_type: str, budget: _Budget) -> str:
        media = content_type.split(";", 1)[0].strip().lower()
        if media == "application/json" or media.endswith("+json"):
            return self.json(template, budget)
        if media in ("application/xml", "text/xml") or media.endswith("+xml"):
            return self.text(template, budget, lambda value: value.translate(XML_ENTITIES))
        return self.text(template, budget)


def _json_value(value: str, in_string: bool) -> str:
    if in_string:
        return json.dumps(value, ensure_ascii=False)[1:-1]
    if JSON_LITERAL.fullmatch(value):
        return value
    return json.dumps(value, ensure_ascii=False)


def render_request(
    action: Mapping[str, Any], values: Mapping[str, str], *, secret_values: Iterable[str] = (),
    limits: RenderLimits = DEFAULT_LIMITS,
) -> RenderedRequest:
    """The request ``action`` describes, with ``values`` in place of its placeholders.

    Raises ``RenderError`` when a header name (or API-key header name) renders into
    something that is not a header name, e.g. ``X-{{tag}}`` with tag = "a b", and
    ``RenderTooLarge`` when a part renders over its limit in ``limits``.
    """
    secret_values = tuple(secret_values)
    render = _Renderer(values, secret_values)
    url_budget = _Budget("URL", limits.url)
    url = render.url(action.get("url") or "", url_budget).split("#", 1)[0]
    host = urlsplit(url).netloc.rpartition("@")[2]
    if "{{" in host:  # a tag without a value: no attempt can reach such a host
        raise RenderError(f"the URL's host {host[:80]!r} holds a parameter without a value")
    query = [(render.text(row["key"], url_budget, _quote, _quote),
              render.text(row["value"], url_budget, _quote, _quote))
             for row in _enabled(action.get("query"))]
    headers = [render.header(row["key"], row["value"], limits.header)
               for row in _enabled(action.get("headers"))]
    body, content_type = _body(render, action, headers, _Budget("body", limits.body))
    if content_type is not None:
        headers = [h for h in headers if h[0].lower() != "content-type"]
        headers.append(("Content-Type", content_type))
    auth_header, secrets = _authorization(render, action.get("auth") or {}, query,
                                          url_budget, limits.header)
    if auth_header is not None:
        headers = [h for h in headers if h[0].lower() != auth_header[0].lower()]
        headers.append(auth_header)
    if not any(name.lower() == "user-agent" for name, _ in headers):
        headers.append(("User-Agent", USER_AGENT))
    if query:
        url_budget.take(len(query) * 2)  # "?" or "&", and "="
        url = _with_query(url, "&".join(f"{key}={value}" for key, value in query))
    url_budget.check()
    _check_headers(headers, limits)
    secrets.extend(secret_values)
    url = _as_sent(url, limits.url)
    return RenderedRequest(
        method=(action.get("method") or "POST").upper(),
        url=url,
        headers=headers,
        body=body,
        unresolved=list(render.unresolved.values()),
        empty=list(render.empty),
        secrets=tuple(dict.fromkeys(s for s in secrets if s)),
    )


def _as_sent(url: str, limit: int) -> str:
    """``url`` as aiohttp writes it on the wire (yarl's ``URL``), which the client then
    sends unchanged (``dispatch.client``), so that a row shows the bytes that were sent:
    ``https://CRM.test:443/a%26b?n=%21&t={{t}}`` → ``https://crm.test/a&b?n=!&t=%7B%7Bt%7D%7D``.
    A URL yarl refuses (port ``x``) stays as it is, for the guard to refuse before
    anything is sent; the limit holds for the URL as sent."""
    try:
        sent = str(URL(url))
    except ValueError:
        return url
    if (size := utf8_size(sent)) > limit:
        raise RenderTooLarge("URL", size, limit)
    return sent


def _check_headers(headers: list[tuple[str, str]], limits: RenderLimits) -> None:
    """Each header within ``limits.header``, all of them within ``limits.headers``."""
    total = 0
    for name, value in headers:
        size = utf8_size(name) + utf8_size(value)
        if size > limits.header:
            raise RenderTooLarge(f"header {name[:60]!r}", size, limits.header)
        total += size
    if total > limits.headers:
        raise RenderTooLarge("headers", total, limits.headers)


def _body(
    render: _Renderer, action: Mapping[str, Any], headers: list[tuple[str, str]],
    budget: _Budget,
) -> tuple[bytes | None, str | None]:
    """The body and the Content-Type to set (None: leave the user's header, if any)."""
    body_type = action.get("body_type") or "NONE"
    if body_type == "RAW":
        chosen = [value for name, value in headers if name.lower() == "content-type"]
        content_type = chosen[-1] if chosen else (action.get("raw_content_type") or "text/plain")
        text = render.raw_body(action.get("raw_body") or "", content_type, budget)
        budget.check()
        return _utf8(text), None if chosen else content_type
    if body_type not in ("FORM_DATA", "X_WWW_FORM_URLENCODED"):
        return None, None
    form = body_type == "X_WWW_FORM_URLENCODED"
    encode = _quote_plus if form else _same
    fields = [(render.text(row["key"], budget, encode, encode),
               render.text(row["value"], budget, encode, encode))
              for row in _enabled(action.get("body_fields"))]
    budget.check()
    if form:
        body, content_type = "&".join(f"{k}={v}" for k, v in fields).encode("ascii"), \
            "application/x-www-form-urlencoded"
    else:
        body, content_type = _multipart(fields)
    budget.size = len(body)  # now exactly, boundaries and separators included
    budget.check()
    return body, content_type


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
    render: _Renderer, auth: Mapping[str, Any], query: list[tuple[str, str]],
    url_budget: _Budget, header_limit: int,
) -> tuple[tuple[str, str] | None, list[str]]:
    """The auth header (an API key in the query is appended to ``query``) and its secrets."""
    kind = auth.get("type") or "NO_AUTH"
    if kind == "API_KEY":
        if auth.get("api_key_in") == "QUERY":
            query.append((render.text(auth.get("api_key_name"), url_budget, _quote, _quote),
                          render.text(auth.get("api_key_value"), url_budget, _quote, _quote)))
            return None, [unquote(query[-1][1])]
        header = render.header(auth.get("api_key_name") or "", auth.get("api_key_value"),
                               header_limit)
        return header, [header[1]]
    if kind == "BASIC_AUTH":
        budget = _Budget("header 'Authorization'", header_limit)
        username = render.text(auth.get("username"), budget)
        password = render.text(auth.get("password"), budget)
        budget.check()
        credentials = base64.b64encode(_utf8(f"{username}:{password}")).decode("ascii")
        return ("Authorization", f"Basic {credentials}"), [password, credentials]
    if kind == "BEARER_TOKEN":
        _, token = render.header("Authorization", auth.get("token"), header_limit)
        return ("Authorization", f"Bearer {token}"), [token]
    return None, []


def _enabled(rows: Iterable[Mapping[str, Any]] | None) -> list[Mapping[str, Any]]:
    return [row for row in rows or () if row.get("enabled", True)]


def _quote(value: str) -> str:
    return quote(value, safe="")


def _quote_plus(value: str) -> str:
    """As ``urlencode`` writes a form field: ``a b&c`` → ``a+b%26c``."""
    return quote_plus(value, safe="")


def _with_query(url: str, query: str) -> str:
    """``https://a/b`` + ``x=1`` → ``https://a/b?x=1``; ``https://a/b?y=2`` → ``...?y=2&x=1``."""
    if "?" not in url:
        return f"{url}?{query}"
    return url + query if url.endswith(("?", "&")) else f"{url}&{query}"


def _utf8(text: str) -> bytes:
    # "replace": a lone surrogate from a trigger's JSON must not stop the delivery.
    return text.encode("utf-8", "replace")
