"""What the Activity Monitor shows of a request that was sent: method, URL, headers and
the start of the body, secrets masked, every part cut to a fixed size."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dispatch.masking import MASK, Masker
from dispatch.render import RenderedRequest
from event_manager.sizes import cut

CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization"})
# What a summary shows at most, whatever the render limits: a row stays small.
URL_CHARS = 4096
NAME_CHARS = 256
VALUE_CHARS = 2048
BODY_CHARS = 4096


def request_summary(rendered: RenderedRequest, action: Mapping[str, Any],
                    mask: Masker | None = None) -> dict[str, Any]:
    """What the activity shows of a request: method, URL, headers and body, secrets masked.

    ``Authorization: Bearer s3cr3t`` → ``Bearer ********``; the API key's header or query
    value → ``********``; a secret anywhere else, in any form ``Masker`` knows (raw,
    percent-encoded, JSON-escaped, …) → ``********``, in the body too. The URL is cut at
    4,096 characters, header names at 256, values at 2,048 and the body (as UTF-8 text,
    masked first so that no secret is cut in two) at 4,096, each saying so; ``body`` is
    None when the request has none.
    """
    mask = mask if mask is not None else Masker(rendered.secrets)
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
            value = f"{mask(scheme)} {MASK}" if space else MASK
        elif name.lower() == key_header:
            value = MASK
        else:
            value = mask(value)
        headers.append({"key": cut(mask(name), NAME_CHARS),
                        "value": cut(value, VALUE_CHARS), "enabled": True})
    body = None
    if rendered.body is not None:
        text = rendered.body.decode("utf-8", "replace")
        body = cut(mask(text), BODY_CHARS)
    return {"method": rendered.method, "url": cut(mask(url), URL_CHARS),
            "headers": headers, "body": body}
