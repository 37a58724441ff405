"""Every error the service raises on purpose, and the contract code each one maps to.

    EventManagerError                 root: never reaches a client as a traceback
    ├── ApiError                      carries a contract ``extensions.code``
    │   ├── Unauthenticated           UNAUTHENTICATED
    │   ├── Forbidden                 FORBIDDEN
    │   ├── NotFound                  NOT_FOUND
    │   ├── BadInput                  BAD_USER_INPUT (with ``field``)
    │   ├── Conflict                  CONFLICT (with ``field``)
    │   ├── FeatureDisabled           FEATURE_DISABLED
    │   └── Unavailable               UNAVAILABLE
    └── ServiceError                  a command-line job that cannot be done (one line)
"""

from __future__ import annotations

from typing import Any


class EventManagerError(Exception):
    """Raised for any failure the service expects and explains."""


class ApiError(EventManagerError):
    """Raised when an operation is refused; ``code`` is the contract's extensions.code."""

    code = "INTERNAL"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    @property
    def extensions(self) -> dict[str, Any]:
        extensions: dict[str, Any] = {"code": self.code}
        if self.field is not None:
            extensions["field"] = self.field
        return extensions


class Unauthenticated(ApiError):
    """Raised when a request has no key, an unknown key or a revoked key."""

    code = "UNAUTHENTICATED"


class Forbidden(ApiError):
    """Raised when the key's role or tenant does not allow the operation."""

    code = "FORBIDDEN"


class NotFound(ApiError):
    """Raised when the named action, parameter, tenant, key or activity does not exist."""

    code = "NOT_FOUND"


class BadInput(ApiError):
    """Raised when an input is invalid; ``field`` names its path, e.g. ``input.headers[2].key``.

    A message that names the field names it as ``named(field)`` does, its path within
    the argument, and reads on from there: "headers[2].key must not be empty"."""

    code = "BAD_USER_INPUT"


def named(field: str) -> str:
    """How a message names a field: its path within its argument, the way a form shows
    it (the whole path is in ``extensions.field``). ``input.headers[2].key`` →
    ``headers[2].key``, ``input.policy.expireAfterSeconds`` → ``policy.expireAfterSeconds``,
    ``first`` → ``first``."""
    return field.split(".", 1)[1] if "." in field else field


class Conflict(ApiError):
    """Raised when a unique name or tag is already taken."""

    code = "CONFLICT"


class FeatureDisabled(ApiError):
    """Raised when the Event Manager is not enabled for the tenant."""

    code = "FEATURE_DISABLED"


class Unavailable(ApiError):
    """Raised when MongoDB or the broker does not answer; nothing was half-written."""

    code = "UNAVAILABLE"


class ServiceError(EventManagerError):
    """Raised when a command cannot do its job; the message is the one line shown to the user."""
