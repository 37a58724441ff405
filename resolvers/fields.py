"""Resolvers of fields that look beyond their own document: which events an action is
attached to, which of its tags are undefined, how its deliveries have been ending, which
actions an event runs.

Each loads what it needs once per request and tenant, so a list of 200 actions costs
one read of the events, not 200.
"""

from __future__ import annotations

from typing import Any

import strawberry

from schema.enums import EventType
from tenants.catalog import SYSTEM_TAGS


async def action_events(root: Any, info: strawberry.Info) -> list[EventType]:
    store = root.store
    attached = await info.context.memoized(f"events_by_action:{store.code}", store.events_by_action)
    return [EventType(t) for t in attached.get(str(root.id), [])]


async def action_undefined_parameters(root: Any, info: strawberry.Info) -> list[str]:
    """The action's tags that name no parameter, whatever their case: with parameter
    ``team``, ``{{TEAM}}`` and ``{{CALLER_ID}}`` are defined (they are sent with the
    values of ``team`` and ``caller_id``)."""
    store = root.store
    custom = await info.context.memoized(f"custom_tags:{store.code}", store.custom_tags)
    return [tag for tag in root.tags
            if tag.casefold() not in SYSTEM_TAGS and tag.casefold() not in custom]


async def action_health(root: Any, info: strawberry.Info) -> Any:
    from schema.types import ActionHealth  # the type module imports this one

    store = root.store
    counters = await info.context.memoized(f"health:{store.code}", store.health.by_action)
    return ActionHealth.from_docs(root.disabled, counters.get(str(root.id), {}))


async def event_actions(root: Any, info: strawberry.Info) -> list[Any]:
    from schema.types import Action  # the type module imports this one

    store = root.store
    docs = await info.context.memoized(f"actions:{store.code}", store.list_actions)
    by_id = {str(d["_id"]): d for d in docs}
    return [Action.from_doc(by_id[i], store) for i in root.action_ids if i in by_id]
