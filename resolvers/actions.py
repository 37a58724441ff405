"""Actions: the HTTP requests a tenant defines and attaches to events."""

from __future__ import annotations

import strawberry

from resolvers import validation
from resolvers.context import READ, WRITE
from schema.inputs import ActionInput
from schema.types import Action


async def actions(info: strawberry.Info, search: str | None = None) -> list[Action]:
    store = await info.context.tenant_store(READ)
    return [Action.from_doc(doc, store) for doc in await store.list_actions(search)]


async def action(info: strawberry.Info, id: strawberry.ID) -> Action:
    store = await info.context.tenant_store(READ)
    return Action.from_doc(await store.get_action(id), store)


async def create_action(info: strawberry.Info, input: ActionInput) -> Action:
    store = await info.context.tenant_store(WRITE)
    doc = validation.action(input)
    return Action.from_doc(await store.insert_action({**doc, "origin": None}), store)


async def update_action(info: strawberry.Info, id: strawberry.ID, input: ActionInput) -> Action:
    store = await info.context.tenant_store(WRITE)
    current = await store.get_action(id)
    doc = validation.action(input, current)
    return Action.from_doc(await store.replace_action(id, doc), store)


async def delete_action(info: strawberry.Info, id: strawberry.ID) -> bool:
    store = await info.context.tenant_store(WRITE)
    await store.delete_action(id)
    return True
