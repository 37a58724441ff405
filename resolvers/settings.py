"""The Settings tab: actions enabled for all events, and the tenant's time zone."""

from __future__ import annotations

import strawberry

from resolvers import validation
from resolvers.context import READ, WRITE
from schema.inputs import SettingsInput
from schema.types import Settings


async def settings(info: strawberry.Info) -> Settings:
    store = await info.context.tenant_store(READ)
    return Settings.from_doc(await store.get_settings())


async def update_settings(info: strawberry.Info, input: SettingsInput) -> Settings:
    store = await info.context.tenant_store(WRITE)
    changes: dict[str, object] = {}
    if input.actions_enabled is not None:
        changes["actions_enabled"] = input.actions_enabled
    if input.timezone is not None:
        changes["timezone"] = validation.timezone(input.timezone)
    return Settings.from_doc(await store.update_settings(changes))
