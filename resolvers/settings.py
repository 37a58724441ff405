"""The Settings tab: actions enabled for all events, the tenant's time zone, and how long
an action may fail before it is disabled (``tenants.health``)."""

from __future__ import annotations

import strawberry

from resolvers import validation
from resolvers.audit import record
from resolvers.context import READ, WRITE
from schema.inputs import SettingsInput
from schema.types import Settings
from tenants.audit import changes as changed_fields
from tenants.health import checked_hours


async def settings(info: strawberry.Info) -> Settings:
    store = await info.context.tenant_store(READ)
    return Settings.from_doc(await store.get_settings(), store.tenant)


async def update_settings(info: strawberry.Info, input: SettingsInput) -> Settings:
    store = await info.context.tenant_store(WRITE)
    changes: dict[str, object] = {}
    if input.actions_enabled is not None:
        changes["actions_enabled"] = input.actions_enabled
    if input.timezone is not None:
        changes["timezone"] = validation.timezone(input.timezone)
    if input.auto_disable_after_hours is not strawberry.UNSET:
        changes["auto_disable_after_hours"] = checked_hours(
            input.auto_disable_after_hours, "input.autoDisableAfterHours")
    before = await store.get_settings()
    after = await store.update_settings(changes)
    await record(info, store.code, "updateSettings", "settings", None, None,
                 changed_fields(before, after))
    return Settings.from_doc(after, store.tenant)
