"""The GraphQL schema: the Query and Mutation roots, assembled from the resolvers."""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from typing import Any

import strawberry
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from resolvers import actions as action_resolvers
from resolvers import activity as activity_resolvers
from resolvers import audit as audit_resolvers
from resolvers import events as event_resolvers
from resolvers import imports as import_resolvers
from resolvers import parameters as parameter_resolvers
from resolvers import settings as settings_resolvers
from resolvers import stats as stats_resolvers
from resolvers import tenants as tenant_resolvers
from resolvers import triggers as trigger_resolvers
from schema.activity import Activity, ActivityPage, TriggerResult
from schema.audit import AuditPage
from schema.errors import ContractErrors
from schema.imports import ImportResult, PostmanCollection, PostmanRequest
from schema.limits import IntrospectionNeedsKey, ParseLimits, QueryLimits
from schema.live import LiveExecution
from schema.stats import ActivityStats
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
    activity_stats: ActivityStats = strawberry.field(
        resolver=stats_resolvers.activity_stats,
        description="deliveries that ended, per bucket of time and per action (dashboards)")
    master_actions: list[Action] = strawberry.field(
        resolver=import_resolvers.master_actions, description='what "Import Actions" offers'
    )
    postman_requests: list[PostmanRequest] = strawberry.field(
        resolver=import_resolvers.postman_requests,
        description="parse a collection (JSON text), list its requests, importable or not",
    )
    postman_collection: PostmanCollection = strawberry.field(
        resolver=import_resolvers.postman_collection,
        description="parse a collection: every request, importable or not, why, and the "
                    "variables that are not parameters yet",
    )
    tenants: list[Tenant] = strawberry.field(resolver=tenant_resolvers.tenants)
    api_keys: list[ApiKeyInfo] = strawberry.field(resolver=tenant_resolvers.api_keys)
    audit_log: AuditPage = strawberry.field(
        resolver=audit_resolvers.audit_log,
        description="who changed what in the tenant, newest first (TENANT_ADMIN, or "
                    "SYSTEM_ADMIN with X-Tenant; without it, SYSTEM_ADMIN keys made and "
                    "revoked); kept as long as activity")


@strawberry.type
class Mutation:
    update_settings: Settings = strawberry.field(resolver=settings_resolvers.update_settings)
    update_event: Event = strawberry.field(resolver=event_resolvers.update_event)
    create_action: Action = strawberry.field(resolver=action_resolvers.create_action)
    update_action: Action = strawberry.field(resolver=action_resolvers.update_action)
    delete_action: bool = strawberry.field(
        resolver=action_resolvers.delete_action, description="also detaches it from every event"
    )
    set_action_enabled: Action = strawberry.field(
        resolver=action_resolvers.set_action_enabled,
        description="re-enable after an automatic disable (or disable by hand)")
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
        resolver=import_resolvers.import_postman_collection,
        description="refs null = all; createParameters also makes the collection's new "
                    "variables parameters, with its values",
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

    async def execute(
        self, *args: Any, allowed_operation_types: Iterable[OperationType] | None = None,
        **kwargs: Any,
    ) -> ExecutionResult:
        """Queries and mutations. A subscription runs through ``stream`` (WebSocket); sent
        over plain HTTP it would be resolved like a query and fail inside, so it is refused
        as "subscriptions are not allowed when using POST"."""
        allowed = {OperationType.QUERY, OperationType.MUTATION}
        if allowed_operation_types is not None:
            allowed &= set(allowed_operation_types)
        return await super().execute(*args, allowed_operation_types=allowed, **kwargs)


schema = Schema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    execution_context_class=LiveExecution,  # a live row executed once per query shape
    extensions=[
        partial(ParseLimits, maxsize=512),  # ParserCache and ValidationCache, each with the
        partial(QueryLimits, maxsize=512),  # limits of schema/limits.py
        IntrospectionNeedsKey,
        ContractErrors,
    ],
)


def _literal_object_defaults() -> None:
    """``params: JSON = {}``: graphql-core cannot turn a dict held by a custom scalar
    into a literal, so introspection (GraphiQL's first query) failed on it. Give such
    defaults their literal; execution keeps using the value."""
    from graphql import GraphQLDefaultInput, ObjectValueNode
    from graphql.type import is_input_object_type

    def fix(item: Any) -> None:
        if isinstance(item.default_value, dict) and not item.default_value \
                and not is_input_object_type(item.type):
            item.default = GraphQLDefaultInput(literal=ObjectValueNode(fields=()))

    for type_ in schema._schema.type_map.values():
        for field in getattr(type_, "fields", {}).values():
            if hasattr(field, "args"):
                for arg in field.args.values():
                    fix(arg)
            elif hasattr(field, "default_value"):
                fix(field)


_literal_object_defaults()
