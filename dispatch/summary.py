"""What the Activity Monitor shows of a request that was sent: method, URL and headers,
secrets masked, every part cut to a fixed size (the body is never shown)."""

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


def request_summary(rendered: RenderedRequest, action: Mapping[str, Any],
                    mask: Masker | None = None) -> dict[str, Any]:
    """What the activity shows of a request: method, URL and headers, secrets masked.

    ``Authorization: Bearer s3cr3t`` → ``Bearer ********``; the API key's header or query
    value → ``********``; a secret anywhere else, in any form ``Masker`` knows (raw,
    percent-encoded, …) → ``********``. The body is never included. The URL is cut at
    4,096 characters, header names at 256 and values at 2,048, each saying so.
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
    return {"method": rendered.method, "url": cut(mask(url), URL_CHARS),
            "headers": headers}
