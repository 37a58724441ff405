"""The audit trail: each successful change is recorded by its resolver through
``record``, and read with ``auditLog``. Nothing in the API writes or deletes entries
otherwise; the worker's housekeeping removes them after the activity's retention."""

from __future__ import annotations

import logging
from typing import Any

import strawberry

from event_manager.errors import BadInput, NotFound
from event_manager.zones import clock
from resolvers.context import SYSTEM_ADMIN, WRITE
from schema.audit import AuditEntry, AuditFilter, AuditPage
from tenants.activity import SEARCH_SECONDS, decode_cursor, in_window
from tenants.audit import AuditLog
from tenants.keys import ApiKeys
from tenants.store import TenantStore

log = logging.getLogger(__name__)

MAX_PAGE = 200
MAX_TEXT = 200
MAX_OPERATIONS = 50


async def actor(info: strawberry.Info) -> dict[str, Any]:
    """The caller as an entry names it: key id, label and role (the label read once per
    request; a key deleted meanwhile reads "an API key")."""
    principal = info.context.principal

    async def load() -> dict[str, Any]:
        key = await ApiKeys(info.context.db).get(principal.key_id)
        return {"key_id": principal.key_id, "label": key["label"] if key else "an API key",
                "role": principal.role}
    return await info.context.memoized("audit:actor", load)


async def record(info: strawberry.Info, code: str | None, operation: str, kind: str,
                 target_id: str | None, name: str | None,
                 changed: list[dict[str, Any]]) -> None:
    """Add an entry to tenant ``code``'s trail (``None``: the system's), after the change
    it tells of succeeded. The change is made by then: a trail that cannot be written is
    logged as an error with the entry, and the caller still learns that the change was
    made."""
    target = {"kind": kind, "id": target_id, "name": name}
    try:
        who = await actor(info)
        await AuditLog.of(info.context.db, code).record(operation, target, who, changed)
    except Exception:
        log.exception("audit entry not written: %s, %s of %s %s",
                      f"tenant {code}" if code else "system", operation, kind, target_id)


async def audit_log(info: strawberry.Info, first: int | None = 50, after: str | None = None,
                    filter: AuditFilter | None = None) -> AuditPage:
    """Newest first. A TENANT_ADMIN key reads its tenant's trail; a SYSTEM_ADMIN key the
    tenant of its X-Tenant header, or without one the system's (SYSTEM_ADMIN keys made
    and revoked). A tenant's trail is readable while it is switched off too (who switched
    it off is in it)."""
    principal = info.context.require(WRITE)
    code = principal.tenant
    if principal.role == SYSTEM_ADMIN:
        code = info.context.requested_tenant or None
    tenant = None
    if code is not None:
        try:
            tenant = await info.context.registry.get(code)
        except NotFound as error:
            raise NotFound(str(error), field="X-Tenant") from None
        code = tenant["code"]
    first = 50 if first is None else first
    if not 1 <= first <= MAX_PAGE:
        raise BadInput(f"first must be between 1 and {MAX_PAGE}", field="first")
    query = audit_query(filter)
    cursor = None
    if after is not None:
        cursor = decode_cursor(after)
        if cursor is None:
            raise BadInput("after is not a cursor this API gave out", field="after")
    docs, next_cursor, searched_to = await AuditLog.of(info.context.db, code).page(
        query, first, cursor)
    note = None
    if searched_to is not None:
        timezone = "UTC" if code is None else (
            await TenantStore(info.context.db, tenant).get_settings())["timezone"]
        note = (f"searched the entries made since {clock(searched_to, timezone, date=True)} "
                f"(a filter reads for about {SEARCH_SECONDS:g} s per page); the next page "
                "(after: nextCursor) searches older entries")
    return AuditPage(items=[AuditEntry.from_doc(d) for d in docs], next_cursor=next_cursor,
                     note=note)


def _text(value: str | None, field: str) -> str | None:
    if value is not None and len(value) > MAX_TEXT:
        raise BadInput(f"{field.split('.')[-1]} is at most {MAX_TEXT} characters", field=field)
    return value


def audit_query(filter: AuditFilter | None) -> dict[str, Any]:
    """The MongoDB filter of ``filter``, checked: a time window is an ``_id`` range (an
    entry's id carries its second) narrowed by ``at``; the other fields are checked entry
    by entry (``tenants.audit``)."""
    if filter is None:
        return {}
    query: dict[str, Any] = {}
    if filter.operations is not None:
        if len(filter.operations) > MAX_OPERATIONS:
            raise BadInput(f"at most {MAX_OPERATIONS} operations", field="filter.operations")
        for i, operation in enumerate(filter.operations):
            _text(operation, f"filter.operations[{i}]")
        query["operation"] = {"$in": list(filter.operations)}
    if _text(filter.target_kind, "filter.targetKind") is not None:
        query["target.kind"] = filter.target_kind
    if _text(filter.target_id, "filter.targetId") is not None:
        query["target.id"] = filter.target_id
    if _text(filter.actor_key_id, "filter.actorKeyId") is not None:
        query["actor.key_id"] = str(filter.actor_key_id)
    if filter.since and filter.until and filter.since >= filter.until:
        raise BadInput("since must be before until", field="filter.until")
    return in_window(query, "at", filter.since, filter.until)
