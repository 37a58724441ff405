"""The GraphQL schema: the Query and Mutation roots, assembled from the resolvers."""

from __future__ import annotations

from functools import partial

import strawberry
from strawberry.extensions import ParserCache, ValidationCache

from resolvers import actions as action_resolvers
from resolvers import activity as activity_resolvers
from resolvers import events as event_resolvers
from resolvers import imports as import_resolvers
from resolvers import parameters as parameter_resolvers
from resolvers import settings as settings_resolvers
from resolvers import tenants as tenant_resolvers
from resolvers import triggers as trigger_resolvers
from schema.activity import Activity, ActivityPage, TriggerResult
from schema.errors import ContractErrors
from schema.imports import ImportResult, PostmanCollection, PostmanRequest
from schema.types import (
    Action,
    ApiKeyInfo,
    Event,
    NewApiKey,
    Parameter,
    Principal,
    Settings,
    Tenant,
)


@strawberry.type
class Query:
    me: Principal = strawberry.field(resolver=tenant_resolvers.me)
    events: list[Event] = strawberry.field(resolver=event_resolvers.events)
    event: Event = strawberry.field(resolver=event_resolvers.event)
    settings: Settings = strawberry.field(resolver=settings_resolvers.settings)
    actions: list[Action] = strawberry.field(resolver=action_resolvers.actions)
    action: Action = strawberry.field(resolver=action_resolvers.action)
    parameters: list[Parameter] = strawberry.field(
        resolver=parameter_resolvers.parameters, description="search matches tag or value"
    )
    activity: ActivityPage = strawberry.field(
        resolver=activity_resolvers.activity, description="newest first"
    )
    master_actions: list[Action] = strawberry.field(
        resolver=import_resolvers.master_actions, description='what "Import Actions" offers'
    )
    postman_requests: list[PostmanRequest] = strawberry.field(
        resolver=import_resolvers.postman_requests,
        description="parse a collection (JSON text), list its importable requests",
    )
    postman_collection: PostmanCollection = strawberry.field(
        resolver=import_resolvers.postman_collection,
        description="parse a collection: every request, importable or not, why, and the "
                    "variables that are not parameters yet",
    )
    tenants: list[Tenant] = strawberry.field(resolver=tenant_resolvers.tenants)
    api_keys: list[ApiKeyInfo] = strawberry.field(resolver=tenant_resolvers.api_keys)


@strawberry.type
class Mutation:
    update_settings: Settings = strawberry.field(resolver=settings_resolvers.update_settings)
    update_event: Event = strawberry.field(resolver=event_resolvers.update_event)
    create_action: Action = strawberry.field(resolver=action_resolvers.create_action)
    update_action: Action = strawberry.field(resolver=action_resolvers.update_action)
    delete_action: bool = strawberry.field(
        resolver=action_resolvers.delete_action, description="also detaches it from every event"
    )
    create_parameter: Parameter = strawberry.field(resolver=parameter_resolvers.create_parameter)
    update_parameter: Parameter = strawberry.field(resolver=parameter_resolvers.update_parameter)
    delete_parameter: bool = strawberry.field(resolver=parameter_resolvers.delete_parameter)
    trigger_event: TriggerResult = strawberry.field(resolver=trigger_resolvers.trigger_event)
    trigger_events: list[TriggerResult] = strawberry.field(
        resolver=trigger_resolvers.trigger_events, description="batch, same rules, order kept"
    )
    test_event: TriggerResult = strawberry.field(
        resolver=trigger_resolvers.test_event,
        description="source TEST; runs even while actions are disabled",
    )
    retry_activity: Activity = strawberry.field(
        resolver=trigger_resolvers.retry_activity,
        description="send a FAILED delivery again, as a new attempt",
    )
    import_master_actions: ImportResult = strawberry.field(
        resolver=import_resolvers.import_master_actions
    )
    import_postman_collection: ImportResult = strawberry.field(
        resolver=import_resolvers.import_postman_collection, description="refs null = all"
    )
    create_tenant: Tenant = strawberry.field(resolver=tenant_resolvers.create_tenant)
    set_event_manager_enabled: Tenant = strawberry.field(
        resolver=tenant_resolvers.set_event_manager_enabled
    )
    create_api_key: NewApiKey = strawberry.field(resolver=tenant_resolvers.create_api_key)
    revoke_api_key: bool = strawberry.field(resolver=tenant_resolvers.revoke_api_key)


@strawberry.type
class Subscription:
    activity: Activity = strawberry.subscription(
        resolver=activity_resolvers.activity_stream,
        description="every new or changed activity row of the caller's tenant, live",
    )


class Schema(strawberry.Schema):
    def process_errors(self, errors, execution_context=None) -> None:  # type: ignore[override]
        """Logging happens in ContractErrors, once and without tracebacks for expected errors."""


schema = Schema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    extensions=[
        partial(ParserCache, maxsize=512),
        partial(ValidationCache, maxsize=512),
        ContractErrors,
    ],
)
