"""What the audit trail shows: who changed what in a tenant, and when."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from schema.enums import Role


@strawberry.type
class AuditActor:
    key_id: strawberry.ID | None = strawberry.field(
        description="null for the command line (label \"cli\")")
    label: str
    role: Role | None


@strawberry.type
class AuditTarget:
    kind: str = strawberry.field(
        description="action, event, settings, parameter, apiKey, tenant or import")
    id: str | None = strawberry.field(description="the action's or key's id, the event "
                                                  "type, the parameter's tag, the tenant code")
    name: str | None


@strawberry.type
class AuditChange:
    field: str = strawberry.field(description='e.g. "url", "auth.password", "actionIds"')
    before: JSON | None = strawberry.field(description="null: not set (or created)")
    after: JSON | None = strawberry.field(description="null: not set (or deleted)")
    cut: bool = strawberry.field(
        description="a value longer than 1 KiB was cut, saying so (\"… [cut, N bytes in all]\")")


@strawberry.type
class AuditEntry:
    id: strawberry.ID
    at: datetime
    operation: str = strawberry.field(description='the mutation, e.g. "updateAction"')
    target: AuditTarget
    actor: AuditActor
    changes: list[AuditChange] = strawberry.field(
        description="the fields that changed; secrets read \"********\"")

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> AuditEntry:
        actor, target = doc["actor"], doc["target"]
        return cls(
            id=strawberry.ID(str(doc["_id"])),
            at=doc["at"],
            operation=doc["operation"],
            target=AuditTarget(kind=target["kind"], id=target.get("id"),
                               name=target.get("name")),
            actor=AuditActor(key_id=actor.get("key_id"), label=actor["label"],
                             role=Role(actor["role"]) if actor.get("role") else None),
            changes=[AuditChange(field=c["field"], before=c["before"], after=c["after"],
                                 cut=c["cut"]) for c in doc["changes"]],
        )


@strawberry.type
class AuditPage:
    items: list[AuditEntry]
    next_cursor: str | None = strawberry.field(description="null on the last page")
    note: str | None = strawberry.field(
        default=None,
        description="set when a filtered page ended before it was full: how far back it "
                    "looked (a filter reads for about a second per page); nextCursor "
                    "goes on with older entries")


@strawberry.input
class AuditFilter:
    operations: list[str] | None = None
    target_kind: str | None = None
    target_id: str | None = None
    actor_key_id: strawberry.ID | None = None
    since: datetime | None = None
    until: datetime | None = None
