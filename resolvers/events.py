"""The Event List: the five predefined events, their active switch and attached actions."""

from __future__ import annotations

import strawberry

from event_manager.errors import BadInput
from resolvers.audit import record
from resolvers.context import READ, WRITE
from schema.enums import EventType
from schema.inputs import EventInput
from schema.types import Event
from tenants.audit import changes as changed_fields

MAX_ACTIONS_PER_EVENT = 100


async def events(info: strawberry.Info) -> list[Event]:
    store = await info.context.tenant_store(READ)
    enabled = (await store.get_settings())["actions_enabled"]
    return [Event.from_doc(doc, enabled, store) for doc in await store.list_events()]


async def event(info: strawberry.Info, type: EventType) -> Event:
    return next(e for e in await events(info) if e.type == type)


async def update_event(info: strawberry.Info, type: EventType, input: EventInput) -> Event:
    store = await info.context.tenant_store(WRITE)
    changes: dict[str, object] = {}
    if input.active is not None:
        changes["active"] = input.active
    if input.action_ids is not None:
        ids = list(dict.fromkeys(str(i) for i in input.action_ids))
        if len(ids) > MAX_ACTIONS_PER_EVENT:
            raise BadInput(f"an event runs at most {MAX_ACTIONS_PER_EVENT} actions",
                           field="input.actionIds")
        known = await store.existing_action_ids(ids)
        for i, action_id in enumerate(ids):
            if action_id not in known:
                raise BadInput(f"no action with id {action_id[:40]!r}",
                               field=f"input.actionIds[{i}]")
        changes["action_ids"] = ids
    before = next(e for e in await store.list_events() if e["_id"] == type.value)
    await store.update_event(type.value, changes)
    info.context.memo.pop(f"actions:{store.code}", None)
    await record(info, store.code, "updateEvent", "event", type.value, None,
                 changed_fields(before, {**before, **changes}))
    return await event(info, type)
