"""The contract's enums; member names are the GraphQL values and the stored strings."""

from __future__ import annotations

from enum import Enum

import strawberry


@strawberry.enum
class EventType(Enum):
    INCOMING_CALL = "INCOMING_CALL"
    ANSWERED_CALL = "ANSWERED_CALL"
    UNANSWERED_CALL = "UNANSWERED_CALL"
    HANGUP = "HANGUP"
    RINGING = "RINGING"


@strawberry.enum
class ActionState(Enum):
    ENABLED = "ENABLED"
    DISABLED = "DISABLED"


@strawberry.enum
class HttpMethod(Enum):
    GET = "GET"
    POST = "POST"
    PUT = "PUT"
    PATCH = "PATCH"
    DELETE = "DELETE"


@strawberry.enum
class BodyType(Enum):
    NONE = "NONE"
    FORM_DATA = "FORM_DATA"
    X_WWW_FORM_URLENCODED = "X_WWW_FORM_URLENCODED"
    RAW = "RAW"


@strawberry.enum
class AuthType(Enum):
    NO_AUTH = "NO_AUTH"
    API_KEY = "API_KEY"
    BASIC_AUTH = "BASIC_AUTH"
    BEARER_TOKEN = "BEARER_TOKEN"


@strawberry.enum
class ApiKeyLocation(Enum):
    HEADER = "HEADER"
    QUERY = "QUERY"


@strawberry.enum
class Role(Enum):
    SYSTEM_ADMIN = "SYSTEM_ADMIN"
    TENANT_ADMIN = "TENANT_ADMIN"
    PBX = "PBX"
    VIEWER = "VIEWER"


@strawberry.enum
class TriggerSource(Enum):
    SYSTEM = "SYSTEM"
    TEST = "TEST"


@strawberry.enum
class ActivityStatus(Enum):
    QUEUED = "QUEUED"
    SENDING = "SENDING"
    RETRYING = "RETRYING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"
    EXPIRED = "EXPIRED"
    """Not sent within its action's ``expireAfterSeconds`` of the event; never sent later."""
    HELD = "HELD"
    """Waiting for the same call's earlier delivery of the same action (PER_CALL order)."""


@strawberry.enum
class DeliveryOrder(Enum):
    """PER_CALL: the deliveries of one action for one call (the same ``call_id`` param) go
    out one at a time, in the order the service accepted their triggers; a later one is
    HELD until the one before it has ended (SUCCEEDED, FAILED or EXPIRED). Triggers
    without call_id are not held."""

    ANY = "ANY"
    PER_CALL = "PER_CALL"


@strawberry.enum
class ConflictPolicy(Enum):
    """What an import does with an action whose name exists: leave it (SKIP), import as
    "Name (2)" (RENAME), or replace its request, keeping its id and events (OVERWRITE)."""

    SKIP = "SKIP"
    RENAME = "RENAME"
    OVERWRITE = "OVERWRITE"
