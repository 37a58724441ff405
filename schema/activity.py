"""What the Activity Monitor shows: delivery rows, pages of them, and trigger results."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar

import strawberry
from strawberry.scalars import JSON
from strawberry.types.arguments import InputContext

from event_manager.tracing import trace_id
from schema.enums import ActivityStatus, EventType, HttpMethod, TriggerSource
from schema.types import KeyValue, key_values

T = TypeVar("T")


@strawberry.type
class RequestSummary:
    method: HttpMethod
    url: str
    headers: list[KeyValue]
    body: str | None = strawberry.field(
        default=None,
        description="the body as sent (UTF-8 text), secrets masked, cut at 4,096 "
                    "characters saying so (\"… [cut, 12 KiB in all]\"); null when the "
                    "request had none, or was sent before bodies were kept")


@strawberry.type
class Activity:
    id: strawberry.ID
    trigger_id: strawberry.ID
    event: EventType
    source: TriggerSource
    action_id: strawberry.ID | None
    action_name: str | None
    status: ActivityStatus
    message: str
    attempts: int
    http_status: int | None
    request: RequestSummary | None
    response_snippet: str | None
    unresolved_parameters: list[str]
    empty_parameters: list[str] = strawberry.field(
        description="system parameters of the call that the trigger gave no value, sent "
                    "empty, e.g. [\"call_id\", \"duration\"] for an Incoming Call without them")
    created_at: datetime
    updated_at: datetime
    trace_id: str | None = strawberry.field(
        default=None,
        description="the OpenTelemetry trace (32 hex digits) of the trigger that wrote "
                    "this row, which its delivery attempts join; null when tracing was off")

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Activity:
        request = doc.get("request")
        return cls(
            id=strawberry.ID(str(doc["_id"])),
            trigger_id=strawberry.ID(doc["trigger_id"]),
            event=EventType(doc["event"]),
            source=TriggerSource(doc["source"]),
            action_id=doc.get("action_id"),
            action_name=doc.get("action_name"),
            status=ActivityStatus(doc["status"]),
            message=doc["message"],
            attempts=doc["attempts"],
            http_status=doc.get("http_status"),
            request=RequestSummary(method=HttpMethod(request["method"]), url=request["url"],
                                   headers=key_values(request["headers"]),
                                   body=request.get("body")) if request else None,
            response_snippet=doc.get("response_snippet"),
            unresolved_parameters=doc.get("unresolved_parameters", []),
            empty_parameters=doc.get("empty_parameters", []),
            created_at=doc["created_at"],
            updated_at=doc["updated_at"],
            trace_id=trace_id(doc.get("traceparent")),
        )


@strawberry.type
class ActivityPage:
    items: list[Activity]
    next_cursor: str | None = strawberry.field(description="null on the last page")
    note: str | None = strawberry.field(
        default=None,
        description="Set when the page holds fewer rows than it could: a search looks "
                    "at older rows for about a second per page, then says how far back "
                    "it looked; nextCursor goes on from there.")


@strawberry.type
class TriggerResult:
    trigger_id: strawberry.ID
    event: EventType
    source: TriggerSource
    accepted: bool = strawberry.field(
        description="false when nothing will be sent (actions disabled, event inactive, "
                    "no actions)"
    )
    reason: str | None
    activities: list[Activity] = strawberry.field(
        description="one per attached action (or one SKIPPED row)"
    )


@strawberry.input
class ActivityFilter:
    events: list[EventType] | None = None
    statuses: list[ActivityStatus] | None = None
    source: TriggerSource | None = None
    action_id: strawberry.ID | None = None
    trigger_id: strawberry.ID | None = None
    since: datetime | None = None
    until: datetime | None = None
    search: str | None = None


def built_from_leaves(cls: type[T]) -> type[T]:
    """Let Strawberry build ``cls`` straight from its GraphQL input value: every field is
    a scalar or an enum that GraphQL has already coerced, so the values pass as they are.
    Strawberry's own conversion resolves each field's type for every value; for a batch
    of 100 triggers that was a sixth of the API's time (bench, scenario 4)."""
    definition = cls.__strawberry_definition__  # type: ignore[attr-defined]
    names: list[tuple[str, str]] = []

    def build(type_: type[T], value: Mapping[str, Any], context: InputContext) -> T:
        if not names:
            names.extend((context.config.name_converter.from_field(f), f.python_name)
                         for f in definition.fields)
        return type_(**{python: value[graphql] for graphql, python in names
                        if graphql in value})

    definition.from_input = build
    return cls


@built_from_leaves
@strawberry.input
class TriggerInput:
    event: EventType
    params: JSON | None = strawberry.field(
        default_factory=dict,
        description="call data: caller_id, called_number, call_id, direction, duration, "
                    "extension, ...",
    )
    idempotency_key: str | None = strawberry.field(
        default=None,
        description="a repeated key (per tenant, 24 h) returns the first result and sends "
                    "nothing again",
    )
    occurred_at: datetime | None = None

