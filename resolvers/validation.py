"""Checks of client input, turning an input object into the document that is stored.

Every refusal is a ``BadInput`` whose ``field`` is the input path a client can point
at, e.g. ``input.headers[1].key``. Nothing is written before all checks pass.
"""

from __future__ import annotations

import re
import ssl
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import available_timezones

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from dispatch import policy
from dispatch.signing import secret_bytes
from dispatch.template import PLACEHOLDER, TAG, tags_in
from event_manager.errors import BadInput, named
from schema.inputs import (
    ActionInput,
    AuthorizationInput,
    DeliveryPolicyInput,
    KeyValueInput,
    ParameterInput,
)
from schema.types import MASK
from tenants.catalog import MAX_TIMEOUT_SECONDS, MIN_TIMEOUT_SECONDS, SYSTEM_TAGS

MAX_ROWS = 100
MAX_RAW_BODY = 256 * 1024
HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
CONTENT_TYPE = re.compile(r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+(\s*;[^\r\n]*)?$")
URL_START = re.compile(r"^(?:https?://[^\s/?#]+|\{\{\s*" + TAG + r"\s*\}\})", re.IGNORECASE)
TAG_NAME = re.compile(r"^" + TAG + r"$")
CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# Direction overrides, embeddings and isolates can make a name read differently from what
# it is ("Trojan Source"); zero-width space and BOM make two names look the same.
# Joiners (emoji, Indic scripts) and the plain LRM/RLM marks stay allowed.
INVISIBLE = re.compile("[\u200b\u202a-\u202e\u2066-\u2069\ufeff]")
NUL = re.compile(r"\x00")
# Set by the HTTP client from the request itself; a user value would break or smuggle it.
RESERVED_HEADERS = frozenset({
    "host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade",
    "te", "trailer", "proxy-connection", "expect",
})


def text(
    value: str | None, field: str, *, max_len: int, required: bool = False,
    multiline: bool = False,
) -> str:
    """``value`` checked: length, and no control characters (line breaks only if multiline)."""
    value = value or ""
    if required and not value.strip():
        raise BadInput(f"{named(field)} must not be empty", field=field)
    if len(value) > max_len:
        raise BadInput(f"{named(field)} is longer than {max_len} characters", field=field)
    if (NUL if multiline else CONTROL).search(value):
        raise BadInput(f"{named(field)} contains a control character", field=field)
    if not multiline and (found := INVISIBLE.search(value)):
        raise BadInput(f"{named(field)} contains an invisible formatting character "
                       f"(U+{ord(found.group()):04X})", field=field)
    return value


def rows(
    items: list[KeyValueInput] | None, field: str, *, header_names: bool = False,
    max_value: int = 4096,
) -> list[dict[str, Any]]:
    items = items or []
    if len(items) > MAX_ROWS:
        raise BadInput(f"{named(field)} has more than {MAX_ROWS} rows", field=field)
    out = []
    for i, item in enumerate(items):
        key = text(item.key, f"{field}[{i}].key", max_len=256, required=True)
        if header_names:
            header_name(key, f"{field}[{i}].key")
        value = text(item.value, f"{field}[{i}].value", max_len=max_value)
        out.append({"key": key, "value": value, "enabled": item.enabled is not False})
    return out


def header_name(key: str, field: str) -> None:
    """A header name, placeholders allowed where a name's characters may stand:
    ``X-{{team}}`` is accepted, and the name it renders to is checked when it is sent
    (``dispatch.render``); ``X {{team}}`` is not a header name whatever team holds."""
    if not HEADER_NAME.match(PLACEHOLDER.sub("x", key)):
        raise BadInput(f"{key[:40]!r} is not a valid header name", field=field)
    if key.lower() in RESERVED_HEADERS:
        raise BadInput(f"the {key} header is set by the HTTP client and cannot be chosen",
                       field=field)


def url(value: str, field: str = "input.url") -> str:
    value = text(value.strip(), field, max_len=2048, required=True)
    if re.search(r"\s", PLACEHOLDER.sub("x", value)):
        raise BadInput("url must not contain spaces; percent-encode them", field=field)
    if not URL_START.match(value):
        raise BadInput(
            "url must start with http:// or https:// and a host, or with a {{parameter}}",
            field=field,
        )
    authority = value.split("://", 1)[-1].split("/", 1)[0].split("?", 1)[0]
    if "@" in authority.replace("{{", "").replace("}}", ""):
        raise BadInput(
            "url must not hold credentials; use Basic Auth in authorization", field=field
        )
    return value


@lru_cache(maxsize=1)
def timezones() -> frozenset[str]:
    return frozenset(available_timezones())


def timezone(value: str, field: str = "input.timezone") -> str:
    if value not in timezones():
        raise BadInput(f"{value[:64]!r} is not an IANA time zone name", field=field)
    return value


def _secret(
    value: str | None, stored: dict[str, Any] | None, key: str, field: str, *, required: bool
) -> str:
    """A secret from input; null or the mask keeps the stored one (same auth type)."""
    if value is None or value == MASK:
        if stored is not None and stored.get(key) is not None:
            return stored[key]
        if not required:
            return ""
        raise BadInput(f"{named(field)} is required", field=field)
    return text(value, field, max_len=4096, required=required)


def authorization(
    auth: AuthorizationInput | None, stored: dict[str, Any] | None
) -> dict[str, Any]:
    base = "input.authorization"
    if auth is None:
        return {"type": "NO_AUTH"}
    kind = auth.type.value
    same = stored if stored and stored.get("type") == kind else None
    used = {
        "NO_AUTH": set(),
        "API_KEY": {"api_key_name", "api_key_value"},
        "BASIC_AUTH": {"username", "password"},
        "BEARER_TOKEN": {"token"},
    }[kind]
    for name in ("api_key_name", "api_key_value", "username", "password", "token"):
        given = getattr(auth, name)
        if name not in used and given not in (None, ""):
            camel = re.sub(r"_(\w)", lambda m: m.group(1).upper(), name)
            raise BadInput(f"{named(base)}.{camel} is not used with {kind}",
                           field=f"{base}.{camel}")
    if kind == "API_KEY":
        location = (auth.api_key_in.value if auth.api_key_in else "HEADER")
        name = text(auth.api_key_name, f"{base}.apiKeyName", max_len=256, required=True)
        if location == "HEADER":
            header_name(name, f"{base}.apiKeyName")
        value = _secret(auth.api_key_value, same, "api_key_value", f"{base}.apiKeyValue",
                        required=True)
        return {"type": kind, "api_key_name": name, "api_key_value": value, "api_key_in": location}
    if kind == "BASIC_AUTH":
        username = text(auth.username, f"{base}.username", max_len=256, required=True)
        if ":" in username:
            raise BadInput("authorization.username must not contain ':'",
                           field=f"{base}.username")
        password = _secret(auth.password, same, "password", f"{base}.password", required=False)
        return {"type": kind, "username": username, "password": password}
    if kind == "BEARER_TOKEN":
        token = _secret(auth.token, same, "token", f"{base}.token", required=True)
        return {"type": kind, "token": token}
    return {"type": "NO_AUTH"}


def action(data: ActionInput, stored: dict[str, Any] | None = None) -> dict[str, Any]:
    """The action document for ``data``; ``stored`` is the current one on update."""
    name = text(data.name.strip(), "input.name", max_len=100, required=True)
    body_type = data.body_type.value if data.body_type else "NONE"
    body_fields = rows(data.body_fields, "input.bodyFields", max_value=64 * 1024)
    raw_body, raw_content_type = data.raw_body, data.raw_content_type
    if body_type in ("NONE", "RAW") and body_fields:
        raise BadInput(
            "bodyFields are only sent with FORM_DATA or X_WWW_FORM_URLENCODED",
            field="input.bodyFields",
        )
    if body_type == "RAW":
        if raw_body is None:
            raise BadInput("rawBody is required with RAW", field="input.rawBody")
        if len(raw_body) > MAX_RAW_BODY:
            raise BadInput(f"rawBody is larger than {MAX_RAW_BODY} characters",
                           field="input.rawBody")
        text(raw_body, "input.rawBody", max_len=MAX_RAW_BODY, multiline=True)
        raw_content_type = (raw_content_type or "text/plain").strip()
        if not CONTENT_TYPE.match(raw_content_type):
            raise BadInput(f"{raw_content_type[:60]!r} is not a media type like application/json",
                           field="input.rawContentType")
    else:
        for value, field in ((raw_body, "rawBody"), (raw_content_type, "rawContentType")):
            if value not in (None, ""):
                raise BadInput(f"{field} is only sent with RAW", field=f"input.{field}")
        raw_body = raw_content_type = None
    timeout = 10.0 if data.timeout_seconds is None else float(data.timeout_seconds)
    if not MIN_TIMEOUT_SECONDS <= timeout <= MAX_TIMEOUT_SECONDS:
        raise BadInput(f"timeoutSeconds must be between {MIN_TIMEOUT_SECONDS} and "
                       f"{MAX_TIMEOUT_SECONDS}", field="input.timeoutSeconds")
    doc: dict[str, Any] = {
        "name": name,
        "name_key": name.casefold(),
        "description": text(data.description, "input.description", max_len=2000, multiline=True),
        "method": (data.method.value if data.method else "POST"),
        "url": url(data.url),
        "query": rows(data.query, "input.query"),
        "headers": rows(data.headers, "input.headers", header_names=True, max_value=8192),
        "body_type": body_type,
        "body_fields": body_fields,
        "raw_body": raw_body,
        "raw_content_type": raw_content_type,
        "auth": authorization(data.authorization, stored.get("auth") if stored else None),
        "timeout_seconds": timeout,
        "signing_secret": signing_secret(data.signing_secret, stored),
        "policy": delivery_policy(data.policy, stored),
        "ca_certificate": ca_certificate(data.ca_certificate, stored),
    }
    doc["tags"] = action_tags(doc)
    if stored is not None:
        bound_to_origin(data, doc, stored)
    return doc


MAX_CA_CHARS = 32 * 1024
MAX_CA_CERTIFICATES = 10


def ca_certificate(value: str | None, stored: dict[str, Any] | None) -> str | None:
    """An action's own CA certificate(s): PEM, each one a certificate valid now, that a
    TLS context accepts; stored re-encoded (text around the blocks dropped). None keeps
    the stored one; "" removes it."""
    field = "input.caCertificate"
    if value is None:
        return stored.get("ca_certificate") if stored else None
    value = value.strip()
    if not value:
        return None
    if len(value) > MAX_CA_CHARS:
        raise BadInput(f"caCertificate is longer than {MAX_CA_CHARS} characters", field=field)
    try:
        found = x509.load_pem_x509_certificates(value.encode())
    except ValueError:
        raise BadInput("caCertificate is not a PEM certificate (-----BEGIN CERTIFICATE-----"
                       " … -----END CERTIFICATE-----)", field=field) from None
    if len(found) > MAX_CA_CERTIFICATES:
        raise BadInput(f"caCertificate holds {len(found)} certificates; at most "
                       f"{MAX_CA_CERTIFICATES}", field=field)
    at = datetime.now(UTC)
    for certificate in found:
        subject = certificate.subject.rfc4514_string()[:200] or "(no subject)"
        if certificate.not_valid_after_utc < at:
            raise BadInput(f"caCertificate {subject} expired on "
                           f"{certificate.not_valid_after_utc:%Y-%m-%d}", field=field)
        if certificate.not_valid_before_utc > at:
            raise BadInput(f"caCertificate {subject} is not valid before "
                           f"{certificate.not_valid_before_utc:%Y-%m-%d}", field=field)
    pem = "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in found)
    try:
        ssl.create_default_context().load_verify_locations(cadata=pem)
    except ssl.SSLError as exc:
        raise BadInput(f"caCertificate cannot be trusted: {exc.reason or exc}",
                       field=field) from None
    return pem


DEFAULT_PORTS = {"http": "80", "https": "443"}


def origin(url: str) -> str:
    """Where a URL (as an action stores it) sends to: scheme, host and port.

    ``https://CRM.test/a`` and ``https://crm.test:443/b`` → ``https://crm.test:443``;
    ``{{ base }}/calls`` → ``{{base}}`` (whatever the parameter holds); a placeholder in
    the host stays as written: ``https://{{sub}}.crm.test`` → ``https://{{sub}}.crm.test:443``.
    """
    base = PLACEHOLDER.match(url)
    if base:
        return "{{" + base.group(1) + "}}" + re.split(r"[/?#]", url[base.end():], maxsplit=1)[0]
    scheme, _, rest = url.partition("://")
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    host, colon, port = authority.rpartition(":")
    if not colon or "]" in port:  # no port, or the colons of an IPv6 literal
        host, port = authority, ""
    scheme = scheme.lower()
    if "{{" not in host:
        host = host.lower()
    return f"{scheme}://{host}:{port or DEFAULT_PORTS.get(scheme, '')}"


def bound_to_origin(data: ActionInput, doc: dict[str, Any], stored: dict[str, Any]) -> None:
    """A stored secret goes only where it was entered for: an update that moves the action
    to another origin (scheme, host or port) must give each secret it keeps again, as a
    null or masked secret keeps the stored one. Raises ``BadInput`` naming the first."""
    if origin(doc["url"]) == origin(stored.get("url") or ""):
        return
    auth, kept = data.authorization, stored.get("auth") or {}
    secrets = []
    if auth is not None and auth.type.value == kept.get("type"):
        secrets = [(auth.api_key_value, kept.get("api_key_value"), "apiKeyValue", "API key"),
                   (auth.password, kept.get("password"), "password", "password"),
                   (auth.token, kept.get("token"), "token", "token")]
        secrets = [(given, had, f"authorization.{name}", what)
                   for given, had, name, what in secrets]
    secrets.append((data.signing_secret, stored.get("signing_secret"), "signingSecret",
                    "signing secret"))
    for given, had, name, what in secrets:
        if had and given in (None, MASK):
            raise BadInput(f"re-enter the {what} for the new destination: the stored {what} "
                           f"was given for {origin(stored['url'])}", field=f"input.{name}")


def signing_secret(value: str | None, stored: dict[str, Any] | None) -> str | None:
    """None (not signed) or a whsec_ secret; null or the mask keeps the stored one."""
    if value is None or value == MASK:
        return stored.get("signing_secret") if stored else None
    if value == "":
        return None
    if secret_bytes(value.strip()) is None:
        raise BadInput("signingSecret must be whsec_ followed by the base64 of 24 to 64 "
                       "random bytes", field="input.signingSecret")
    return value.strip()


def delivery_policy(data: DeliveryPolicyInput | None,
                    stored: dict[str, Any] | None) -> dict[str, Any]:
    """The action's policy: ``data`` as a whole when given; else the stored one (the
    defaults on create)."""
    if data is None:
        return policy.of(stored or {})
    seconds = data.expire_after_seconds
    if seconds is not None and not 1 <= seconds <= policy.MAX_EXPIRE_SECONDS:
        raise BadInput(f"policy.expireAfterSeconds must be between 1 and "
                       f"{policy.MAX_EXPIRE_SECONDS} (a week), or null for never",
                       field="input.policy.expireAfterSeconds")
    rate = data.max_requests_per_second
    if rate is not None and not policy.MIN_RATE <= rate <= policy.MAX_RATE:
        raise BadInput(f"policy.maxRequestsPerSecond must be between {policy.MIN_RATE:g} (one "
                       f"request every 100 s) and {policy.MAX_RATE:,.0f}, or null for no limit",
                       field="input.policy.maxRequestsPerSecond")
    return {**policy.DEFAULT, "order": data.order.value if data.order else "ANY",
            "expire_after_seconds": seconds, "max_requests_per_second": rate}


def action_tags(doc: dict[str, Any]) -> list[str]:
    """Every {{tag}} an action document uses, wherever it stands, but in rows switched off
    (they are not sent, so their tags need no value)."""
    pairs = [r[k] for part in ("query", "headers", "body_fields") for r in doc[part]
             if r.get("enabled", True) for k in ("key", "value")]
    auth = doc["auth"]
    secrets = [auth.get(k) for k in ("api_key_name", "api_key_value", "username", "password",
                                     "token")]
    return tags_in([doc["url"], *pairs, doc["raw_body"], *secrets])


def parameter(data: ParameterInput, stored: dict[str, Any] | None = None) -> dict[str, Any]:
    tag = data.tag.strip()
    if not TAG_NAME.match(tag):
        raise BadInput(
            "tag must be 1-64 letters, digits, '_', '.' or '-', not starting with '.' or '-'",
            field="input.tag",
        )
    if tag.casefold() in SYSTEM_TAGS:
        raise BadInput(f"{tag!r} is a system parameter's tag", field="input.tag")
    secret = bool(data.secret)
    value = data.value
    if value == MASK and stored is not None and stored.get("secret"):
        value = stored["value"]
    value = text(value, "input.value", max_len=4096, multiline=True)
    return {
        "tag": tag,
        "tag_key": tag.casefold(),
        "value": value,
        "secret": secret,
        "description": text(data.description, "input.description", max_len=500),
    }
