"""Actions: the HTTP requests a tenant defines and attaches to events."""

from __future__ import annotations

import strawberry

from resolvers import validation
from resolvers.audit import record
from resolvers.context import READ, WRITE
from schema.inputs import ActionInput
from schema.types import Action
from tenants.audit import changes
from tenants.keys import ApiKeys


async def actions(info: strawberry.Info, search: str | None = None) -> list[Action]:
    store = await info.context.tenant_store(READ)
    return [Action.from_doc(doc, store) for doc in await store.list_actions(search)]


async def action(info: strawberry.Info, id: strawberry.ID) -> Action:
    store = await info.context.tenant_store(READ)
    return Action.from_doc(await store.get_action(id), store)


async def create_action(info: strawberry.Info, input: ActionInput) -> Action:
    store = await info.context.tenant_store(WRITE)
    doc = validation.action(input)
    created = await store.insert_action({**doc, "origin": None})
    await record(info, store.code, "createAction", "action", str(created["_id"]),
                 created["name"], changes(None, created))
    return Action.from_doc(created, store)


async def update_action(info: strawberry.Info, id: strawberry.ID, input: ActionInput) -> Action:
    store = await info.context.tenant_store(WRITE)
    current = await store.get_action(id)
    doc = validation.action(input, current)
    updated = await store.replace_action(id, doc)
    await record(info, store.code, "updateAction", "action", str(updated["_id"]),
                 updated["name"], changes(current, updated))
    return Action.from_doc(updated, store)


async def delete_action(info: strawberry.Info, id: strawberry.ID) -> bool:
    store = await info.context.tenant_store(WRITE)
    current = await store.get_action(id)
    await store.delete_action(id)
    await record(info, store.code, "deleteAction", "action", str(current["_id"]),
                 current["name"], changes(current, None))
    return True


async def set_action_enabled(info: strawberry.Info, id: strawberry.ID,
                             enabled: bool) -> Action:
    """Turn an action back on after an automatic disable (its failure streak forgotten),
    or off by hand, with a reason naming the key: "disabled by acme admin"."""
    store = await info.context.tenant_store(WRITE)
    reason = ""
    if not enabled:
        key = await ApiKeys(info.context.db).get(info.context.principal.key_id)
        reason = f"disabled by {key['label'] if key else 'an API key'}"
    current = await store.get_action(id)
    updated = await store.set_action_enabled(id, enabled, reason)
    await record(info, store.code, "setActionEnabled", "action", str(updated["_id"]),
                 updated["name"], changes(current, updated))
    return Action.from_doc(updated, store)
