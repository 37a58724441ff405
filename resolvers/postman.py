"""Postman collections (v2.1.0, v2.0.0 and v1) read into action inputs.

Pure: text in, a ``ParsedCollection`` out; nothing is stored. Each request becomes a
``ParsedRequest`` whose ``action`` uses the keys of the GraphQL ``ActionInput``, e.g.
``GET {{host}}/v1/cards?status=CLOSED`` in folder "Cards" gives ``{"name": "Cards / Get
cards", "method": "GET", "url": "{{host}}/v1/cards", "query": [{"key": "status", "value":
"CLOSED", "enabled": True}], ...}``. ``{{variables}}`` are kept as written: they have the
same syntax as this service's parameters; the collection's ``variables`` are its own and
its folders' and requests' (the first value of a key is kept). A request that cannot
become an action has ``action=None`` and a ``problem``; what is dropped on the way is
listed in ``warnings``. Requests of the same name are numbered: "Ping", "Ping (2)".

Layout: reading the file (size, encoding, JSON, format) → v1 turned into the v2 shape →
one walk over the folders (auth inheritance) → one reader per request part → names.

Limits (each refuses the whole file with a ``CollectionError`` naming it): ``MAX_BYTES``,
``MAX_REQUESTS``, ``MAX_FOLDER_DEPTH``, ``MAX_ROWS`` per list, ``MAX_VARIABLES``. The API
reads a collection in a child process (``event_manager/parsers.py``), never on its loop.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote_plus

MAX_BYTES = 10 * 1024 * 1024
MAX_REQUESTS = 1000
"""Requests in one collection: each becomes a row of the answer and, imported, an action."""
MAX_FOLDER_DEPTH = 20
MAX_ROWS = 1000
"""Rows of one list of a request (headers, query, form fields); an action keeps 100."""
MAX_VARIABLES = 1000
MAX_NAME = 100
MAX_DESCRIPTION = 2000
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
SCHEMA_HOST = re.compile(r"^https?://schema\.(?:get)?postman\.com/", re.IGNORECASE)
SCHEMA_VERSION = re.compile(r"v(\d+)\.(\d+)\.\d+", re.IGNORECASE)
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
PATH_VARIABLE = re.compile(r"(?<=/):([^/]+)(?=/|$)")
"""A ``:id`` path segment of a URL, its name captured."""
MEDIA_TYPE = re.compile(r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+(\s*;[^\r\n]*)?$")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
LANGUAGE_TYPES = {
    "json": "application/json", "xml": "application/xml", "html": "text/html",
    "javascript": "application/javascript", "text": "text/plain",
}
V1_BODY_MODES = {"params": "formdata", "binary": "file"}
V1_HELPERS = {
    "basicAuth": "basic", "bearerAuth": "bearer", "apikeyAuth": "apikey", "digestAuth": "digest",
    "oAuth1": "oauth1", "oAuth2": "oauth2", "hawkAuth": "hawk", "awsSigV4": "awsv4",
    "ntlmAuth": "ntlm", "akamai": "edgegrid",
}
NO_AUTH = {"type": "NO_AUTH", "apiKeyName": None, "apiKeyValue": None, "apiKeyIn": None,
           "username": None, "password": None, "token": None}


class CollectionError(Exception):
    """Raised when a whole file is refused; ``message`` is the one-line reason."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class ParsedRequest:
    ref: str
    name: str
    written_name: str
    """The name before a repeat was numbered: "Ping" for the second "Ping", named "Ping (2)"."""
    folder: str | None
    method: str
    url: str
    action: dict[str, Any] | None
    problem: str | None
    warnings: list[str]


@dataclass(frozen=True)
class ParsedCollection:
    name: str
    format: str
    requests: list[ParsedRequest]
    variables: dict[str, str]
    warnings: list[str]


@dataclass(frozen=True)
class _Found:
    """A request item where the walk met it: its folders, reference, inherited auth and
    inherited ``protocolProfileBehavior`` (the collection's, overridden by each folder's)."""

    item: dict[str, Any]
    folders: tuple[str, ...]
    ref: str
    auth: dict[str, Any] | None
    behavior: dict[str, Any]


def parse_collection(text: str | bytes) -> ParsedCollection:
    """The collection in ``text``; raises ``CollectionError`` when it is refused."""
    try:
        return _parse(text)
    except RecursionError:  # v1 folders_order chains hundreds deep
        raise CollectionError("not valid: nested too deeply") from None


def _parse(text: str | bytes) -> ParsedCollection:
    doc = _load(text)
    fmt = _detect_format(doc)
    warnings: list[str] = []
    if fmt == "v1":
        name, auth, items = doc.get("name"), _v1_auth(doc), _v1_items(doc)
        events, variables = _v1_events(doc), _variables(doc.get("variables"))
    else:
        info = _dict(doc.get("info"))
        name, auth, items = info.get("name", doc.get("name")), _auth_of(doc), _children(doc)
        events = doc.get("event")
        variables = _variables(doc.get("variables"), doc.get("variable"))
        if not info.get("schema"):
            warnings.append("no info.schema: read as v2.1.0")
    if _has_scripts(events):
        warnings.append("collection scripts ignored")
    found: list[_Found] = []
    behavior = _dict(doc.get("protocolProfileBehavior"))
    _walk(items or [], (), (), auth, behavior, found, warnings, set())
    _scoped_variables(items or [], (), variables, warnings)
    requests = [_request(f) for f in found]
    names = _unique_names([r.name for r in requests])
    requests = [replace(r, name=n, written_name=_capped(r.name),
                        action=r.action and {**r.action, "name": n})
                for r, n in zip(requests, names, strict=True)]
    return ParsedCollection(_clean_name(name) or "Untitled collection", fmt, requests,
                            variables, warnings)


# --- Reading the file ---------------------------------------------------------------

def _load(text: str | bytes) -> dict[str, Any]:
    """The JSON object in ``text`` (UTF-8, a BOM allowed; UTF-16 with a BOM too)."""
    size = len(text) if isinstance(text, bytes) else len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_BYTES:
        raise CollectionError("larger than 10 MB")
    if isinstance(text, bytes):
        encoding = "utf-16" if text[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
        try:
            text = text.decode(encoding)
        except UnicodeDecodeError as e:
            raise CollectionError(f"not UTF-8 text: byte {e.start} is invalid") from None
    try:
        doc = json.loads(text.lstrip("\ufeff"))
    except json.JSONDecodeError as e:
        raise CollectionError(f"not valid JSON: line {e.lineno}, column {e.colno}: {e.msg}") \
            from None
    except RecursionError:
        raise CollectionError("not valid JSON: nested too deeply") from None
    if not isinstance(doc, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
        raise CollectionError(
            f"not a Postman collection: the file holds {kind.get(type(doc), 'a number')}, "
            "not a JSON object"
        )
    if isinstance(doc.get("collection"), dict) and "info" not in doc:
        doc = doc["collection"]  # the Postman API wraps a collection: {"collection": {...}}
    return doc


def _detect_format(doc: dict[str, Any]) -> str:
    """The format, from ``info.schema`` or from v1's ``requests`` with ``order``/``folders``.

    The schema URL may be http or https, on schema.getpostman.com or schema.postman.com,
    with or without "collection.json" (and "draft-07/"): only its version counts."""
    is_v1 = isinstance(doc.get("requests"), list) and (
        isinstance(doc.get("order"), list) or isinstance(doc.get("folders"), list))
    schema = _text(_dict(doc.get("info")).get("schema")).strip()
    if schema:
        version = schema_version(schema)
        if version is None:
            raise CollectionError(f"not a Postman collection: unknown schema {schema[:80]!r}")
        major, minor = version
        if major == "2" and minor in ("0", "1"):
            return f"v2.{minor}.0"
        if major == "1" and is_v1:
            return "v1"
        raise CollectionError(f"not a Postman collection: schema v{major}.{minor} "
                              "is not supported")
    if is_v1:
        return "v1"
    if isinstance(doc.get("info"), dict) and _children(doc) is not None:
        return "v2.1.0"
    scope = doc.get("_postman_variable_scope")
    if scope:
        raise CollectionError(f"not a Postman collection: it is a Postman {_text(scope)} file")
    raise CollectionError("not a Postman collection: no info.schema and no v1 requests")


def schema_version(url: str) -> tuple[str, str] | None:
    """(major, minor) of a Postman collection schema URL: on schema.getpostman.com or
    schema.postman.com, a path segment ``v<major>.<minor>.<patch>`` after one that says
    "collection", no whitespace before it. Read segment by segment, in time linear in
    the URL's length (a pattern of two lazy wildcards around "collection" took seconds on
    a long URL repeating it)."""
    host = SCHEMA_HOST.match(url)
    if host is None:
        return None
    seen = False
    for segment in url[host.end():].split("/"):
        version = SCHEMA_VERSION.fullmatch(segment)
        if version and seen:
            major, minor = version.groups()
            return major, minor
        if any(char.isspace() for char in segment):
            return None
        seen = seen or "collection" in segment.lower()
    return None


# --- v1: folders and requests rebuilt in the v2 shape ---------------------------------

def _scalar(value: Any) -> Any:
    """``value`` as a dictionary key when it is a JSON scalar (equal ones meet: 1 and
    1.0), else a key nothing else has: a folder id that is an array or object names no
    request's folder."""
    return value if isinstance(value, str | int | float) or value is None else object()


def _v1_items(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """v1 folders and requests as a v2 ``item`` tree: in each folder, sub-folders
    (``folders_order``) then requests (``order``), as Postman's own converter does.
    Folders and requests referenced nowhere are added at the top level."""
    requests = [r for r in _list(doc.get("requests")) if isinstance(r, dict)]
    folders = [f for f in _list(doc.get("folders")) if isinstance(f, dict)]
    request_by_id = {_text(r.get("id")): r for r in reversed(requests) if r.get("id")}
    folder_by_id = {_text(f.get("id")): f for f in reversed(folders) if f.get("id")}
    placed: set[int] = set()
    requests_in: dict[Any, list[dict[str, Any]]] = {}
    """Requests by the folder they name: one look-up per folder, not a scan of every
    request (8,000 folders and 8,000 requests took 11.5 s)."""
    for r in requests:
        requests_in.setdefault(_scalar(r.get("folder")), []).append(r)

    def take(entities: list[dict[str, Any] | None]) -> list[dict[str, Any]]:
        fresh = [e for e in entities if e is not None and id(e) not in placed]
        placed.update(id(e) for e in fresh)
        return fresh

    def folder(f: dict[str, Any]) -> dict[str, Any]:
        subs = take([folder_by_id.get(_text(i)) for i in _list(f.get("folders_order"))])
        order = f.get("order")
        own = ([request_by_id.get(_text(i)) for i in order] if isinstance(order, list) else
               requests_in.get(_scalar(f.get("id")), []) if f.get("id") else [])
        return {"name": f.get("name"), "auth": _v1_auth(f), "event": _v1_events(f),
                "variable": f.get("variables"),
                "protocolProfileBehavior": f.get("protocolProfileBehavior"),
                "item": [folder(s) for s in subs] + [_v1_item(r) for r in take(own)]}

    nested = {_text(i) for f in folders for i in _list(f.get("folders_order"))}
    top_order = doc.get("folders_order")
    top = ([folder_by_id.get(_text(i)) for i in top_order] if isinstance(top_order, list) else
           [f for f in folders if _text(f.get("id")) not in nested])
    items = [folder(f) for f in take(top)]
    for f in folders:  # in no folders_order: at the top level, in file order
        if id(f) not in placed:
            items += [folder(f) for f in take([f])]
    ordered = [request_by_id.get(_text(i)) for i in _list(doc.get("order"))]
    return items + [_v1_item(r) for r in take(ordered) + take(requests)]


def _v1_item(req: dict[str, Any]) -> dict[str, Any]:
    url: Any = req.get("url")
    query, path_vars = req.get("queryParams"), req.get("pathVariables")
    if _list(query) or isinstance(path_vars, dict):
        url = {"raw": url, "query": query,
               "variable": [{"key": k, "value": v} for k, v in _dict(path_vars).items()]}
    mode = req.get("dataMode")
    body = None
    if mode:
        mode = V1_BODY_MODES.get(mode, mode)
        raw = req.get("rawModeData")
        content = {"raw": raw[0] if isinstance(raw, list) and raw else raw,
                   "graphql": req.get("graphqlModeData")}.get(mode, req.get("data"))
        body = {"mode": mode, mode: content, "disabled": req.get("dataDisabled")}
    headers = req.get("headerData") if _list(req.get("headerData")) else req.get("headers")
    return {"id": req.get("id"), "name": req.get("name"), "event": _v1_events(req),
            "response": req.get("responses"),
            "protocolProfileBehavior": req.get("protocolProfileBehavior"),
            "request": {"method": req.get("method"), "url": url, "header": headers,
                        "body": body, "auth": _v1_auth(req),
                        "description": req.get("description")}}


def _v1_auth(entity: dict[str, Any]) -> dict[str, Any] | None:
    """v1 ``currentHelper`` + ``helperAttributes`` as a v2 auth object, else its ``auth``."""
    helper = entity.get("currentHelper")
    if not isinstance(helper, str) or helper in ("", "normal"):
        return _dict(entity.get("auth")) or None
    kind = V1_HELPERS.get(helper, helper)
    attributes = entity.get("helperAttributes")
    if isinstance(attributes, str):
        try:
            attributes = json.loads(attributes)
        except ValueError:
            attributes = None
    return {"type": kind, kind: _dict(attributes)}


def _v1_events(entity: dict[str, Any]) -> list[dict[str, Any]]:
    scripts = [entity.get("tests"), entity.get("preRequestScript")]
    return _list(entity.get("events")) + [{"script": {"exec": s}} for s in scripts if s]


# --- The walk: folders, references, inherited auth ------------------------------------

def _walk(
    items: list[Any], folders: tuple[str, ...], path: tuple[int, ...],
    auth: dict[str, Any] | None, behavior: dict[str, Any], found: list[_Found],
    warnings: list[str], ids: set[str],
) -> None:
    """Append every request under ``items`` to ``found``, depth first, in file order.

    ``auth`` is what a request without its own auth inherits: the nearest folder's, else
    the collection's; ``behavior`` is the ``protocolProfileBehavior`` it inherits, key by
    key, the nearest folder's winning. A request's ``ref`` is its id, or its index path
    such as "2.0.5" when it has none (or repeats an earlier one)."""
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        here = (*path, index)
        children = _children(item)
        if children is None:
            if len(found) >= MAX_REQUESTS:
                raise CollectionError(f"has more than {MAX_REQUESTS} requests; at most "
                                      f"{MAX_REQUESTS} are allowed")
            ref = _text(item.get("id") or item.get("_postman_id"))
            if not ref or ref in ids:
                ref = ".".join(map(str, here))
            ids.add(ref)
            found.append(_Found(item, folders, ref, auth, behavior))
            continue
        if len(folders) >= MAX_FOLDER_DEPTH:
            raise CollectionError(f"has folders nested more than {MAX_FOLDER_DEPTH} deep; "
                                  f"at most {MAX_FOLDER_DEPTH} levels are allowed")
        inside = (*folders, _clean_name(item.get("name")) or "Untitled folder")
        label = " / ".join(inside)
        if _has_scripts(item.get("event")):
            warnings.append(f"folder '{label}': scripts ignored")
        inherited = {**behavior, **_dict(item.get("protocolProfileBehavior"))}
        _walk(children, inside, here, _auth_of(item) or auth, inherited, found, warnings, ids)


def _scoped_variables(items: list[Any], folders: tuple[str, ...], variables: dict[str, str],
                      warnings: list[str]) -> None:
    """Add the variables of folders and requests under ``items`` to ``variables``, in
    file order (``_walk`` has already refused folders nested too deep).

    A tenant has one value per parameter, where Postman lets a folder's ``host`` hide the
    collection's: the first value met is kept, and a different one is warned of, e.g.
    "folder 'Cards': variable 'host' has another value than before; the first is kept"."""
    for item in items:
        if not isinstance(item, dict):
            continue
        children = _children(item)
        kind = "request" if children is None else "folder"
        name = _clean_name(item.get("name")) or f"Untitled {kind}"
        label = " / ".join((*folders, name))
        for key, value in _variables(item.get("variable"), item.get("variables")).items():
            if variables.setdefault(key, value) != value:
                warnings.append(f"{kind} '{label}': variable '{key}' has another value than "
                                "before; the first is kept")
        if len(variables) > MAX_VARIABLES:
            raise CollectionError(f"has more than {MAX_VARIABLES} variables; at most "
                                  f"{MAX_VARIABLES} are allowed")
        if children is not None:
            _scoped_variables(children, (*folders, name), variables, warnings)


def _children(node: dict[str, Any]) -> list[Any] | None:
    """A folder's items ("item", or "items" as some tools write); None for a request."""
    for key in ("item", "items"):
        if isinstance(node.get(key), list):
            return node[key]
    if node.get("request") is None and ("item" in node or "items" in node):
        return []  # "item": null: an empty folder
    return None


def _auth_of(node: dict[str, Any]) -> dict[str, Any] | None:
    """The node's own auth; None when it inherits. ``noauth`` is an auth: it stops inheritance."""
    auth = node.get("auth")
    if isinstance(auth, dict) and _text(auth.get("type")).strip() not in ("", "inherit"):
        return auth
    return None


# --- One request ------------------------------------------------------------------------

def _request(found: _Found) -> ParsedRequest:
    item = found.item
    request = item.get("request")
    request = {"url": request} if isinstance(request, str) else _dict(request)
    warnings: list[str] = []
    if _has_scripts(item.get("event")):
        warnings.append("scripts ignored")
    if _list(item.get("response")):
        warnings.append("saved responses ignored")
    method = (_text(request.get("method")).strip() or "GET").upper()
    shown, url, query = _url(request.get("url"), warnings)
    headers = _rows(request.get("header"), "header", warnings)
    body_warnings: list[str] = []
    body, problem = _body(request.get("body"), headers, body_warnings)
    behavior = {**found.behavior, **_dict(item.get("protocolProfileBehavior"))}
    pruned = method == "GET" and not behavior.get("disableBodyPruning")
    if pruned and (problem or body["bodyType"] != "NONE"):  # as Postman's runtime does
        body, problem = _body(None, headers, [])
        body_warnings = ["GET body dropped: Postman does not send it without "
                         "disableBodyPruning"]
    warnings += body_warnings
    auth = _authorization(_auth_of(request) or found.auth, warnings)
    name = " / ".join((*found.folders, _clean_name(item.get("name")) or "Untitled request"))
    if method not in METHODS:
        problem = f"method {method} is not supported"
    if not url:
        problem = "no URL"
    action = None if problem else {
        "name": name,
        "description": _description(request.get("description") or item.get("description")),
        "method": method, "url": url, "query": query, "headers": headers, **body,
        "authorization": auth,
    }
    return ParsedRequest(found.ref, name, name, " / ".join(found.folders) or None, method,
                         shown, action, problem, warnings)


def _url(value: Any, warnings: list[str]) -> tuple[str, str, list[dict[str, Any]]]:
    """(the URL as Postman shows it, the action's URL without query string, query rows).

    An object URL gives its ``raw``, or one rebuilt from its parts when ``raw`` is
    missing; its ``query`` rows are kept, disabled ones too. ``:id`` path variables are
    replaced by their values; a URL without a scheme is given ``http://``, as Postman does."""
    url = _dict(value)
    raw = url.get("raw") if isinstance(value, dict) else value
    shown = raw.strip() if isinstance(raw, str) else ""  # "url": {} is no URL, not "{}"
    if not shown and url:
        shown = _url_from_parts(url)
    query = _rows(url.get("query"), "query", warnings) or _query_from(shown)
    _check_rows(len(query), "query")
    _check_rows(len(_list(url.get("variable"))), "path variable")
    for row in query:
        row["key"], row["value"] = unquote_plus(row["key"]), unquote_plus(row["value"])
    base = shown.split("?", 1)[0].split("#", 1)[0].strip()
    values: dict[str, str] = {}
    unset: list[str] = []
    for var in map(_dict, _list(url.get("variable"))):
        key, val = _text(var.get("key") or var.get("id")), _text(var.get("value"))
        if key and val:
            values.setdefault(key, val)
        elif key:
            unset.append(key)
    present = set(PATH_VARIABLE.findall(base))
    # One pass: a value is never read again for variables (":b" inside a's value stays as
    # it is), so three variables of 200 ":x" each cannot grow a 2 KB file to a 24 MB URL.
    base = PATH_VARIABLE.sub(lambda m: values.get(m[1], m[0]), base)
    warnings.extend(f"path variable ':{key}' has no value" for key in dict.fromkeys(unset)
                    if key in present and key not in values)
    if base and not base.startswith("{{") and not SCHEME.match(base):
        base = "http://" + base
        warnings.append("URL has no scheme: http:// assumed")
    return shown, base, query


def _url_from_parts(url: dict[str, Any]) -> str:
    """``https://api.example.com:8443/v1/cards?x=1`` from protocol/host/port/path/query."""
    def joined(part: Any, sep: str) -> str:
        if isinstance(part, list):
            return sep.join(_text(_dict(p).get("value") if isinstance(p, dict) else p)
                            for p in part if p is not None)
        return _text(part)

    protocol = _text(url.get("protocol")).strip().rstrip(":/")
    port, path = _text(url.get("port")).strip(), joined(url.get("path"), "/").lstrip("/")
    text = (f"{protocol}://" if protocol else "") + joined(url.get("host"), ".")
    text += (f":{port}" if port else "") + (f"/{path}" if path else "")
    pairs = [_text(q.get("key")) + ("" if q.get("value") is None else f"={_text(q['value'])}")
             for q in _list(url.get("query")) if isinstance(q, dict) and not q.get("disabled")]
    return text + ("?" + "&".join(pairs) if pairs else "")


def _query_from(url: str) -> list[dict[str, Any]]:
    """Rows of the query string in ``url``: ``?a=1&b`` → a="1", b=""."""
    query = url.split("?", 1)[1].split("#", 1)[0] if "?" in url else ""
    pairs = [p.partition("=") for p in query.split("&") if p]
    return [{"key": k, "value": v, "enabled": True} for k, _, v in pairs if k]


def _rows(value: Any, part: str, warnings: list[str]) -> list[dict[str, Any]]:
    """{key, value, enabled} rows from a Postman list ("disabled": true, or v1's
    "enabled": false) or from a v1 header string ``"Accept: */*\\n//Off: x"``."""
    if isinstance(value, str):
        lines = [line.strip() for line in value.splitlines() if line.strip()]
        value = [{"key": line.lstrip("/").partition(":")[0],
                  "value": line.partition(":")[2], "disabled": line.startswith("//")}
                 for line in lines]
    _check_rows(len(_list(value)), part)
    rows = []
    for row in _list(value):
        if not isinstance(row, dict):
            continue
        key, val = _text(row.get("key")).strip(), _text(row.get("value"))
        if not key:
            if val:
                warnings.append(f"{part} row without a key dropped")
            continue
        enabled = row.get("disabled") is not True and row.get("enabled") is not False
        rows.append({"key": key, "value": val.strip() if part == "header" else val,
                     "enabled": enabled})
    return rows


def _check_rows(count: int, part: str) -> None:
    if count > MAX_ROWS:
        raise CollectionError(f"has a request with more than {MAX_ROWS} {part} rows; at most "
                              f"{MAX_ROWS} are allowed")


def _body(
    body: Any, headers: list[dict[str, Any]], warnings: list[str]
) -> tuple[dict[str, Any], str | None]:
    """The action's body keys, and a problem when the body cannot be sent.

    An empty body (raw "", no rows) is NONE, as Postman sends nothing for it."""
    none = {"bodyType": "NONE", "bodyFields": [], "rawBody": None, "rawContentType": None}
    body = _dict(body)
    mode = _text(body.get("mode")).strip()
    if not mode or body.get("disabled") is True:
        return none, None
    if mode == "file":
        return none, "file bodies are not supported"
    if mode == "raw":
        raw = _text(body.get("raw"))
        return ({**none, "bodyType": "RAW", "rawBody": raw,
                 "rawContentType": _raw_content_type(body, headers)} if raw else none), None
    if mode == "graphql":
        return {**none, "bodyType": "RAW", "rawBody": _graphql(body.get("graphql"), warnings),
                "rawContentType": "application/json"}, None
    if mode in ("urlencoded", "formdata"):
        rows = _list(body.get(mode))
        if mode == "formdata":
            for row in rows:
                if isinstance(row, dict) and row.get("type") == "file":
                    warnings.append(f"formdata file row '{_text(row.get('key'))}' dropped")
            rows = [r for r in rows if not (isinstance(r, dict) and r.get("type") == "file")]
        fields = _rows(rows, mode, warnings)
        kind = "FORM_DATA" if mode == "formdata" else "X_WWW_FORM_URLENCODED"
        return ({**none, "bodyType": kind, "bodyFields": fields} if fields else none), None
    warnings.append(f"body mode '{mode}' is not supported: imported without a body")
    return none, None


def _raw_content_type(body: dict[str, Any], headers: list[dict[str, Any]]) -> str:
    """From the raw body's language, else an enabled Content-Type row, else text/plain."""
    language = _text(_dict(_dict(body.get("options")).get("raw")).get("language"))
    if language.strip().lower() in LANGUAGE_TYPES:
        return LANGUAGE_TYPES[language.strip().lower()]
    for row in headers:
        value = row["value"].strip()
        if row["enabled"] and row["key"].lower() == "content-type" and MEDIA_TYPE.match(value):
            return value
    return "text/plain"


def _graphql(graphql: Any, warnings: list[str]) -> str:
    """``{"query": ..., "variables": {...}}`` (and ``operationName`` when one is named)."""
    graphql = _dict(graphql)
    variables = graphql.get("variables")
    if isinstance(variables, str) and variables.strip():
        try:
            variables = json.loads(variables)
        except ValueError:
            variables = None
        if not isinstance(variables, dict):
            warnings.append("graphql variables are not a JSON object: sent as {}")
    payload = {"query": _text(graphql.get("query")),
               "variables": variables if isinstance(variables, dict) else {}}
    if _text(graphql.get("operationName")).strip():
        payload["operationName"] = _text(graphql.get("operationName")).strip()
    return json.dumps(payload)


def _authorization(auth: dict[str, Any] | None, warnings: list[str]) -> dict[str, Any]:
    """The action's authorization for a Postman auth object (params as a v2.1 array of
    {key, value} or a v2.0 object, whatever the declared version)."""
    if auth is None:
        return dict(NO_AUTH)
    kind = _text(auth.get("type")).strip()
    params = auth.get(kind)
    if isinstance(params, list):
        params = {_text(p.get("key")): p.get("value") for p in params if isinstance(p, dict)}
    params = _dict(params)
    kind = kind.lower()
    if kind == "basic":
        return {**NO_AUTH, "type": "BASIC_AUTH", "username": _text(params.get("username")),
                "password": _text(params.get("password"))}
    if kind == "bearer":
        return {**NO_AUTH, "type": "BEARER_TOKEN", "token": _text(params.get("token"))}
    if kind == "apikey":
        where = "QUERY" if _text(params.get("in")).strip().lower() == "query" else "HEADER"
        return {**NO_AUTH, "type": "API_KEY", "apiKeyName": _text(params.get("key")),
                "apiKeyValue": _text(params.get("value")), "apiKeyIn": where}
    if kind != "noauth":
        warnings.append(f"auth type '{kind}' is not supported: imported as No Auth")
    return dict(NO_AUTH)


# --- Names, text and shapes -----------------------------------------------------------

def _capped(name: str, suffix: str = "") -> str:
    """``name`` + ``suffix`` in 100 characters, "…" marking where ``name`` was cut."""
    room = MAX_NAME - len(suffix)
    return (name if len(name) <= room else name[:room - 1].rstrip() + "…") + suffix


def _unique_names(names: list[str]) -> list[str]:
    """Names capped at 100 characters ("…" marks a cut), unique ignoring case: a repeat
    gets " (2)", " (3)"… (each repeat goes on from the number the last one got, so 8,000
    repeats take 8,000 steps, not 32 million)."""
    used: set[str] = set()
    last: dict[str, int] = {}  # the number a name's latest repeat got: the next starts there
    out = []
    for name in names:
        base = _capped(name)
        n = last.get(base.casefold(), 1)
        candidate = base if n == 1 else _capped(name, f" ({n})")
        while candidate.casefold() in used:
            n += 1
            candidate = _capped(name, f" ({n})")
        used.add(candidate.casefold())
        last[base.casefold()] = n
        out.append(candidate)
    return out


def _clean_name(value: Any) -> str:
    """One line, single spaces: ``" Get\\n cards "`` → ``"Get cards"``."""
    return " ".join(CONTROL.sub(" ", _text(value)).split())


def _description(value: Any) -> str:
    """A description (a string, or an object with "content"), at most 2000 characters."""
    text = _text(_dict(value).get("content") if isinstance(value, dict) else value)
    text = text.replace("\x00", "").strip()
    return text if len(text) <= MAX_DESCRIPTION else text[:MAX_DESCRIPTION - 1] + "…"


def _variables(*sources: Any) -> dict[str, str]:
    """Enabled variables from lists of {key, value} (or {"name": value} objects); later wins."""
    out: dict[str, str] = {}
    for source in sources:
        entries = ([{"key": k, "value": v} for k, v in source.items()]
                   if isinstance(source, dict) else _list(source))
        for entry in entries:
            if isinstance(entry, dict) and entry.get("disabled") is not True:
                key = _text(entry.get("key") or entry.get("id")).strip()
                if key:
                    out[key] = _text(entry.get("value"))
                if len(out) > MAX_VARIABLES:
                    raise CollectionError(f"has more than {MAX_VARIABLES} variables; at "
                                          f"most {MAX_VARIABLES} are allowed")
    return out


def _has_scripts(events: Any) -> bool:
    """True when some event has a script with code in it (blank ``exec`` lines don't count)."""
    for event in _list(events):
        code = _dict(_dict(event).get("script")).get("exec")
        if any(_text(line).strip() for line in (code if isinstance(code, list) else [code])):
            return True
    return False


def _text(value: Any) -> str:
    """A string for whatever a file holds where text is expected; None is ""."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float | list | dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
