"""Tenants, API keys and the caller's identity."""

from __future__ import annotations

import strawberry

from event_manager.errors import BadInput, Forbidden, NotFound
from resolvers.audit import record
from resolvers.context import ANYONE, READ, SYSTEM, SYSTEM_ADMIN, WRITE
from schema.enums import Role
from schema.types import ApiKeyInfo, NewApiKey, Principal, Tenant
from tenants.audit import changes
from tenants.keys import ApiKeys
from tenants.registry import check_code


async def me(info: strawberry.Info) -> Principal:
    principal = info.context.require(ANYONE)
    return Principal(tenant=principal.tenant, role=Role(principal.role))


async def tenants(info: strawberry.Info) -> list[Tenant]:
    info.context.require(SYSTEM)
    return [Tenant.from_doc(d) for d in await info.context.registry.list()]


async def create_tenant(
    info: strawberry.Info, code: str, name: str, master: bool | None = False
) -> Tenant:
    info.context.require(SYSTEM)
    created = await info.context.registry.create(code, name, bool(master))
    await record(info, created["code"], "createTenant", "tenant", created["code"],
                 created["name"], changes(None, created))
    return Tenant.from_doc(created)


async def set_event_manager_enabled(info: strawberry.Info, code: str, enabled: bool) -> Tenant:
    info.context.require(SYSTEM)
    before = await info.context.registry.get(code)
    after = await info.context.registry.set_enabled(code, enabled)
    await record(info, after["code"], "setEventManagerEnabled", "tenant", after["code"],
                 after["name"], changes(before, after))
    return Tenant.from_doc(after)


async def api_keys(info: strawberry.Info) -> list[ApiKeyInfo]:
    """A system key sees every key (or one tenant's, with X-Tenant); others their tenant's."""
    principal = info.context.require(READ)
    tenant = principal.tenant
    if principal.role == SYSTEM_ADMIN and info.context.requested_tenant:
        tenant = (await info.context.registry.get(info.context.requested_tenant))["code"]
    keys = ApiKeys(info.context.db)
    return [ApiKeyInfo.from_doc(d) for d in await keys.list(tenant)]


async def create_api_key(
    info: strawberry.Info, role: Role, label: str, tenant: str | None = None
) -> NewApiKey:
    principal = info.context.require(WRITE)
    if principal.role != SYSTEM_ADMIN:
        if role == Role.SYSTEM_ADMIN:
            raise Forbidden("a TENANT_ADMIN key cannot create SYSTEM_ADMIN keys")
        if tenant not in (None, principal.tenant):
            raise Forbidden("a TENANT_ADMIN key creates keys of its own tenant only")
        tenant = principal.tenant
    if role == Role.SYSTEM_ADMIN:
        if tenant is not None:
            raise BadInput("a SYSTEM_ADMIN key belongs to no tenant", field="tenant")
    else:
        if tenant is None:
            raise BadInput(f"a {role.value} key needs a tenant", field="tenant")
        await info.context.registry.get(check_code(tenant, "tenant"))
    key, doc = await ApiKeys(info.context.db).create(role.value, label, tenant)
    await record(info, tenant, "createApiKey", "apiKey", str(doc["_id"]), doc["label"],
                 changes(None, doc))  # a SYSTEM_ADMIN key's (no tenant) in the system's
    return NewApiKey(key=key, info=ApiKeyInfo.from_doc(doc))


async def revoke_api_key(info: strawberry.Info, id: strawberry.ID) -> bool:
    principal = info.context.require(WRITE)
    keys = ApiKeys(info.context.db)
    doc = await keys.get(id)
    if doc is None or (principal.role != SYSTEM_ADMIN and doc["tenant"] != principal.tenant):
        raise NotFound(f"no API key with id {id[:40]!r}", field="id")
    await keys.revoke(id)
    await record(info, doc["tenant"], "revokeApiKey", "apiKey", str(doc["_id"]),
                 doc["label"], changes(doc, {**doc, "revoked": True}))
    return True
