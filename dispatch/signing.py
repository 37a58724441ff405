"""Payload signing, the Standard Webhooks way (https://www.standardwebhooks.com).

An action with a signing secret (``whsec_`` + base64 of 24 to 64 random bytes) sends::

    webhook-id:        msg_<activity id>     the same on every attempt of a delivery
    webhook-timestamp: 1614265330            seconds since the epoch, at this attempt
    webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">

so a receiver can check that the request came from us, was not changed, is recent, and
drop a retry it has already handled (same webhook-id).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re

PREFIX = "whsec_"
SECRET = re.compile(r"^whsec_[A-Za-z0-9+/]+={0,2}$")
MIN_BYTES, MAX_BYTES = 24, 64


def secret_bytes(secret: str) -> bytes | None:
    """The key of a ``whsec_…`` secret; None when it is not one."""
    if not SECRET.match(secret):
        return None
    try:
        key = base64.b64decode(secret[len(PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        return None
    return key if MIN_BYTES <= len(key) <= MAX_BYTES else None


def signature_headers(secret: str, message_id: str, timestamp: int,
                      body: bytes | None) -> list[tuple[str, str]]:
    key = secret_bytes(secret)
    if key is None:
        raise ValueError("not a whsec_ signing secret")
    signed = f"{message_id}.{timestamp}.".encode() + (body or b"")
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return [("webhook-id", message_id), ("webhook-timestamp", str(timestamp)),
            ("webhook-signature", "v1," + base64.b64encode(digest).decode())]
