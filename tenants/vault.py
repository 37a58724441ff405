"""Secrets at rest: authorization secrets, secret parameters and signing secrets are
stored sealed with Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``).

A sealed value reads ``enc:v1:<Fernet token>``. ``EVENT_MANAGER_SECRET_KEY`` holds one
key or several separated by commas: the first seals, every one opens, so a key can be
rotated by putting the new one first and running ``event-manager rotate-secrets``
before the old one is dropped. A key is a Fernet key (``Fernet.generate_key()``); any
other text of at least 32 characters is turned into one with SHA-256. Without a
setting, a key is generated once into the state folder (``secret.key``), which suits one
machine only.

Values stored before sealing existed are read as they are and sealed by the next write
or by ``rotate-secrets``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from event_manager.errors import EventManagerError

PREFIX = "enc:v1:"
MIN_PASSPHRASE = 32


class SecretKeyError(EventManagerError):
    """The secret key setting is unusable, or a stored secret cannot be opened with it."""


class Vault:
    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise SecretKeyError("no secret key")
        self.fernet = MultiFernet([Fernet(k) for k in keys])

    def seal(self, value: str | None) -> str | None:
        """``value`` sealed; None, "" and already sealed values are returned as they are."""
        if not value or value.startswith(PREFIX):
            return value
        return PREFIX + self.fernet.encrypt(value.encode()).decode()

    def open(self, value: str | None) -> str | None:
        """The plain text of a sealed value; anything else is returned as it is."""
        if not value or not value.startswith(PREFIX):
            return value
        try:
            return self.fernet.decrypt(value[len(PREFIX):].encode()).decode()
        except InvalidToken:
            raise SecretKeyError(
                "a stored secret cannot be decrypted: EVENT_MANAGER_SECRET_KEY does not hold "
                "the key it was sealed with") from None

    def reseal(self, value: str | None) -> str | None:
        """``value`` sealed with the first key (plain values are sealed too)."""
        if not value:
            return value
        if not value.startswith(PREFIX):
            return self.seal(value)
        token = self.fernet.rotate(value[len(PREFIX):].encode())
        return PREFIX + token.decode()


def keys_from(setting: str, state_dir: Path) -> list[bytes]:
    """The Fernet keys of the setting, or the state folder's generated key."""
    entries = [e.strip() for e in setting.split(",") if e.strip()]
    if not entries:
        return [local_key(state_dir)]
    return [fernet_key(e) for e in entries]


def fernet_key(entry: str) -> bytes:
    try:
        if len(base64.urlsafe_b64decode(entry.encode())) == 32:
            return entry.encode()
    except (binascii.Error, ValueError):
        pass
    if len(entry) < MIN_PASSPHRASE:
        raise SecretKeyError(
            f"EVENT_MANAGER_SECRET_KEY: each key must be a Fernet key or at least "
            f"{MIN_PASSPHRASE} characters")
    return base64.urlsafe_b64encode(hashlib.sha256(entry.encode()).digest())


def local_key(state_dir: Path) -> bytes:
    """The key in ``<state>/secret.key``, made (mode 600) on first use."""
    path = state_dir / "secret.key"
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as out:
        out.write(key + b"\n")
    return key
