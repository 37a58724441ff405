"""The contract's input types. Their checks live in ``resolvers/validation.py``."""

from __future__ import annotations

import strawberry

from schema.enums import ApiKeyLocation, AuthType, BodyType, DeliveryOrder, HttpMethod


@strawberry.input
class KeyValueInput:
    key: str
    value: str
    enabled: bool | None = True


@strawberry.input
class AuthorizationInput:
    type: AuthType = AuthType.NO_AUTH
    api_key_name: str | None = None
    api_key_value: str | None = None
    api_key_in: ApiKeyLocation | None = ApiKeyLocation.HEADER
    username: str | None = None
    password: str | None = None
    token: str | None = None


@strawberry.input
class DeliveryPolicyInput:
    order: DeliveryOrder | None = DeliveryOrder.ANY
    expire_after_seconds: int | None = None
    max_requests_per_second: float | None = None


@strawberry.input
class ActionInput:
    name: str
    url: str
    description: str | None = ""
    method: HttpMethod | None = HttpMethod.POST
    query: list[KeyValueInput] | None = strawberry.field(default_factory=list)
    headers: list[KeyValueInput] | None = strawberry.field(default_factory=list)
    body_type: BodyType | None = BodyType.NONE
    body_fields: list[KeyValueInput] | None = strawberry.field(default_factory=list)
    raw_body: str | None = None
    raw_content_type: str | None = None
    authorization: AuthorizationInput | None = None
    timeout_seconds: float | None = 10.0
    signing_secret: str | None = strawberry.field(
        default=None,
        description="Standard Webhooks signing: whsec_ + base64 of 24-64 random bytes; "
                    'null or "********" keeps the stored one, "" turns signing off',
    )
    policy: DeliveryPolicyInput | None = strawberry.field(
        default=None, description="null keeps the stored policy (defaults on create)")
    ca_certificate: str | None = strawberry.field(
        default=None,
        description="PEM of the CA certificate(s) that the receiver's certificate comes "
                    "from (a private CA), trusted for this action's requests besides the "
                    'system\'s; null keeps the stored one, "" removes it')


@strawberry.input
class EventInput:
    active: bool | None = None
    action_ids: list[strawberry.ID] | None = None


@strawberry.input
class SettingsInput:
    actions_enabled: bool | None = None
    timezone: str | None = None
    auto_disable_after_hours: int | None = strawberry.field(
        default=strawberry.UNSET,
        description="1-8760 hours; null: never disable; left out: unchanged")


@strawberry.input
class ParameterInput:
    tag: str
    value: str
    secret: bool | None = False
    description: str | None = ""
