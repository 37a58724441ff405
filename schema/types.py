"""The contract's object types, each built from a stored document by ``from_doc``.

Secrets never leave through these types: an authorization secret or a secret
parameter reads as ``********``, unless the value is made only of ``{{placeholders}}``
(then it holds no secret itself and is shown as written).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry

from dispatch import policy
from dispatch.template import is_only_placeholders
from resolvers.fields import (
    action_events,
    action_health,
    action_undefined_parameters,
    event_actions,
)
from schema.enums import (
    ActionState,
    ApiKeyLocation,
    AuthType,
    BodyType,
    DeliveryOrder,
    EventType,
    HttpMethod,
    Role,
)
from tenants.catalog import EVENTS_BY_TYPE
from tenants.health import auto_disable_hours
from tenants.store import TenantStore

MASK = "********"


def masked(value: str | None) -> str | None:
    if value is None or value == "" or is_only_placeholders(value):
        return value
    return MASK


@strawberry.type
class KeyValue:
    key: str
    value: str
    enabled: bool

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> KeyValue:
        return cls(key=doc["key"], value=doc["value"], enabled=doc["enabled"])


def key_values(docs: list[dict[str, Any]]) -> list[KeyValue]:
    return [KeyValue.from_doc(d) for d in docs]


@strawberry.type
class Authorization:
    type: AuthType
    api_key_name: str | None
    api_key_value: str | None
    api_key_in: ApiKeyLocation | None
    username: str | None
    password: str | None
    token: str | None

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Authorization:
        api_key_in = doc.get("api_key_in")
        return cls(
            type=AuthType(doc["type"]),
            api_key_name=doc.get("api_key_name"),
            api_key_value=masked(doc.get("api_key_value")),
            api_key_in=ApiKeyLocation(api_key_in) if api_key_in else None,
            username=doc.get("username"),
            password=masked(doc.get("password")),
            token=masked(doc.get("token")),
        )


@strawberry.type
class DeliveryPolicy:
    """How an action's deliveries are sent (``dispatch.policy``, ``dispatch.order``)."""

    order: DeliveryOrder
    expire_after_seconds: int | None = strawberry.field(
        description="a delivery not sent within this many seconds of its event ends EXPIRED "
                    "and is never sent later; null: never expires")
    max_requests_per_second: float | None = strawberry.field(
        description="the receiver's own limit; deliveries wait for it, they do not fail. "
                    "null: none")

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> DeliveryPolicy:
        found = policy.of(doc)
        return cls(order=DeliveryOrder(found["order"]),
                   expire_after_seconds=found["expire_after_seconds"],
                   max_requests_per_second=found["max_requests_per_second"])


@strawberry.type
class ActionHealth:
    """How an action's deliveries have been ending (``tenants.health``)."""

    state: ActionState
    consecutive_failures: int = strawberry.field(
        description="deliveries in a row that ended FAILED")
    last_success_at: datetime | None
    last_failure_at: datetime | None
    disabled_at: datetime | None
    disabled_reason: str | None
    paused_until: datetime | None = strawberry.field(
        description="while its endpoint keeps failing, the action's deliveries wait (not "
        "attempted, not counted) while one of them tries the endpoint; until then, at least")
    paused_reason: str | None = strawberry.field(
        description="why it is paused: how many attempts in a row failed, and the last "
        "error")

    @classmethod
    def from_docs(cls, disabled: dict[str, Any] | None,
                  counters: dict[str, Any]) -> ActionHealth:
        """From the action's ``disabled`` field and its document of counters."""
        return cls(
            state=ActionState.DISABLED if disabled else ActionState.ENABLED,
            consecutive_failures=counters.get("failures", 0),
            last_success_at=counters.get("last_success_at"),
            last_failure_at=counters.get("last_failure_at"),
            disabled_at=disabled["at"] if disabled else None,
            disabled_reason=disabled["reason"] if disabled else None,
            paused_until=counters.get("paused_until"),
            paused_reason=counters.get("paused_reason"),
        )


@strawberry.type
class Action:
    id: strawberry.ID
    name: str
    description: str
    method: HttpMethod
    url: str
    query: list[KeyValue]
    headers: list[KeyValue]
    body_type: BodyType
    body_fields: list[KeyValue]
    raw_body: str | None
    raw_content_type: str | None
    authorization: Authorization
    timeout_seconds: float
    signing_secret: str | None = strawberry.field(
        description="masked; null when requests are not signed (webhook-id, "
                    "webhook-timestamp, webhook-signature headers)")
    events: list[EventType] = strawberry.field(resolver=action_events)
    undefined_parameters: list[str] = strawberry.field(resolver=action_undefined_parameters)
    origin: str | None
    policy: DeliveryPolicy
    ca_certificate: str | None = strawberry.field(
        description="the CA certificate(s) trusted for this action's requests besides the "
                    "system's, as PEM (public: not masked); null: the system's only")
    health: ActionHealth = strawberry.field(resolver=action_health)
    created_at: datetime
    updated_at: datetime
    tags: strawberry.Private[list[str]]
    disabled: strawberry.Private[dict[str, Any] | None]
    store: strawberry.Private[TenantStore]

    @classmethod
    def from_doc(cls, doc: dict[str, Any], store: TenantStore) -> Action:
        return cls(
            id=strawberry.ID(str(doc["_id"])),
            name=doc["name"],
            description=doc["description"],
            method=HttpMethod(doc["method"]),
            url=doc["url"],
            query=key_values(doc["query"]),
            headers=key_values(doc["headers"]),
            body_type=BodyType(doc["body_type"]),
            body_fields=key_values(doc["body_fields"]),
            raw_body=doc.get("raw_body"),
            raw_content_type=doc.get("raw_content_type"),
            authorization=Authorization.from_doc(doc["auth"]),
            timeout_seconds=doc["timeout_seconds"],
            signing_secret=MASK if doc.get("signing_secret") else None,
            origin=doc.get("origin"),
            policy=DeliveryPolicy.from_doc(doc),
            ca_certificate=doc.get("ca_certificate"),
            created_at=doc["created_at"],
            updated_at=doc["updated_at"],
            tags=doc.get("tags", []),
            disabled=doc.get("disabled"),
            store=store,
        )


@strawberry.type
class Event:
    type: EventType
    name: str
    description: str
    active: bool
    effective_active: bool = strawberry.field(
        description="active and actions enabled in Settings (otherwise shown grayed out)"
    )
    actions: list[Action] = strawberry.field(resolver=event_actions)
    action_ids: strawberry.Private[list[str]]
    store: strawberry.Private[TenantStore]

    @classmethod
    def from_doc(cls, doc: dict[str, Any], actions_enabled: bool, store: TenantStore) -> Event:
        definition = EVENTS_BY_TYPE[doc["_id"]]
        return cls(
            type=EventType(doc["_id"]),
            name=definition.name,
            description=definition.description,
            active=doc["active"],
            effective_active=doc["active"] and actions_enabled,
            action_ids=list(doc["action_ids"]),
            store=store,
        )


@strawberry.type
class Settings:
    actions_enabled: bool
    timezone: str
    auto_disable_after_hours: int | None = strawberry.field(
        description="an action whose deliveries have all FAILED for this long is DISABLED; "
                    "null: never. Default 24")
    master_tenant: bool = strawberry.field(
        default=False,
        description="true in the Master tenant, whose actions the others import (it has "
                    "nothing to import itself)")

    @classmethod
    def from_doc(cls, doc: dict[str, Any], tenant: dict[str, Any] | None = None) -> Settings:
        """``doc`` the tenant's settings, ``tenant`` its registration (for ``master``)."""
        return cls(actions_enabled=doc["actions_enabled"], timezone=doc["timezone"],
                   auto_disable_after_hours=auto_disable_hours(doc),
                   master_tenant=bool((tenant or {}).get("master")))


@strawberry.type
class Parameter:
    tag: str
    value: str
    system: bool
    secret: bool
    description: str

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Parameter:
        secret = doc.get("secret", False)
        return cls(
            tag=doc["tag"],
            value=(MASK if secret and doc["value"] else doc["value"]),
            system=doc.get("system", False),
            secret=secret,
            description=doc.get("description", ""),
        )


@strawberry.type
class Tenant:
    code: str
    name: str
    master: bool
    event_manager_enabled: bool
    created_at: datetime

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Tenant:
        return cls(
            code=doc["code"],
            name=doc["name"],
            master=doc["master"],
            event_manager_enabled=doc["event_manager_enabled"],
            created_at=doc["created_at"],
        )


@strawberry.type
class ApiKeyInfo:
    id: strawberry.ID
    tenant: str | None
    role: Role
    label: str
    prefix: str
    created_at: datetime
    revoked: bool

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> ApiKeyInfo:
        return cls(
            id=strawberry.ID(str(doc["_id"])),
            tenant=doc["tenant"],
            role=Role(doc["role"]),
            label=doc["label"],
            prefix=doc["prefix"],
            created_at=doc["created_at"],
            revoked=doc["revoked"],
        )


@strawberry.type
class NewApiKey:
    key: str = strawberry.field(description="the only time the full key is shown")
    info: ApiKeyInfo


@strawberry.type
class Principal:
    tenant: str | None
    role: Role
