"""The audit trail of one tenant: one entry per change made through the API.

An entry says who (the key's id, label and role), what (the mutation, its target and
the fields it changed, before and after) and when (``at``; its ``_id`` carries the
same second, ``tenants.activity.row_id``, so a time window is a range of ``_id``).
Secrets are masked before an entry is written, and each value is cut at
``MAX_VALUE_BYTES``: the trail never holds what the vault seals, nor grows with a body.

Entries live in ``t_<code>_audit``, made with the tenant's other collections (a
tenant made before the trail gets it on its first entry); changes that belong to no
tenant (SYSTEM_ADMIN keys) in the system database's ``audit``. Only ``_id`` is indexed:
a page is newest first by ``_id``, and a filter on operation, target or actor is
checked entry by entry, ``CHUNK`` entries at a time and for about a second per page
(``AuditLog.page``): cheap for a trail of configuration changes (a few thousand entries
per retention period), bounded for a trail of many more, and no index on every write.
"""

from __future__ import annotations

import contextlib
import json
import time
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import DESCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from tenants.activity import (
    PRUNE_BATCH,
    PRUNE_PAUSE,
    SEARCH_SECONDS,
    encode_cursor,
    id_at,
    prune_by_id,
    row_id,
    within,
)
from tenants.database import Database, now, patiently

MASK = "********"
"""What the API shows for a secret (``schema.types.MASK``; the store imports no schema)."""
CLI_ACTOR = {"key_id": None, "label": "cli", "role": None}
"""Who made a change from the command line (``event-manager create-key``)."""
MAX_VALUE_BYTES = 1024
"""A value longer than this (as JSON) is kept as its first 1 KiB of text, saying so."""
CHUNK = 500
"""Entries a filtered page reads at a time, by ``_id`` with a limit, which FerretDB
answers from its index (a limit up to 1,000; above, and with ``skip``, it reads every
entry). Not a window of time, which may hold any number of them; and filtered here,
since the server would read each entry anyway (about 90 µs each on FerretDB)."""
HIDDEN = {"_id", "created_at", "updated_at", "name_key", "tag_key"}
"""Bookkeeping fields a change need not show: ids are the target, times are ``at``."""
SECRET_FIELDS = {"auth.api_key_value", "auth.password", "auth.token", "signing_secret",
                 "hash"}
"""Fields shown as ``MASK`` (an API key's hash included); a secret parameter's
``value`` too (``changes(secret=...)``)."""


def _plain(value: Any) -> Any:
    """``value`` as JSON can hold it: ids and times as text."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _flat(doc: dict[str, Any] | None) -> dict[str, Any]:
    """Top-level fields, with ``auth`` and ``policy`` one level down as ``auth.password``:
    a change to one authorization field shows as that field, its secret masked alone."""
    out: dict[str, Any] = {}
    for key, value in (doc or {}).items():
        if key in HIDDEN:
            continue
        if key in ("auth", "policy") and isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            out[key] = value
    return out


def _shown(field: str, value: Any, secret: bool) -> tuple[Any, bool]:
    """What the trail keeps of ``value``: masked when secret, cut when long; and
    whether it was cut."""
    if value is None:
        return None, False
    if field in SECRET_FIELDS or (secret and field == "value"):
        return (MASK if value != "" else ""), False
    value = _plain(value)
    text = json.dumps(value, ensure_ascii=False)
    size = len(text.encode())
    if size <= MAX_VALUE_BYTES:
        return value, False
    cut = text.encode()[:MAX_VALUE_BYTES].decode(errors="ignore")
    return f"{cut} … [cut, {size:,} bytes in all]", True


def _empty(value: Any) -> bool:
    """Nothing to show: a created action's empty headers are no change worth a line."""
    return value is None or value == "" or value == [] or value == {}


def camel(field: str) -> str:
    """A stored field as the API names it: ``auth.api_key_value`` is ``auth.apiKeyValue``."""
    head, *rest = field.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def changes(before: dict[str, Any] | None, after: dict[str, Any] | None, *,
            secret: bool = False) -> list[dict[str, Any]]:
    """The fields that differ between two versions of a document (None: it did not
    exist), sorted by name, as ``{field, before, after, cut}``; a field empty on both
    sides (unset, "", [] or {}) is left out. Compared before masking, so a new password
    shows as a change from ``********`` to ``********``."""
    old, new = _flat(before), _flat(after)
    secret = secret or bool(old.get("secret")) or bool(new.get("secret"))
    out = []
    for field in sorted(set(old) | set(new)):
        if old.get(field) == new.get(field) or (_empty(old.get(field))
                                                 and _empty(new.get(field))):
            continue
        shown_before, cut_before = _shown(field, old.get(field), secret)
        shown_after, cut_after = _shown(field, new.get(field), secret)
        out.append({"field": camel(field), "before": shown_before, "after": shown_after,
                    "cut": cut_before or cut_after})
    return out


def summary(field: str, value: Any) -> dict[str, Any]:
    """A change that is not a field of one document (what an import made)."""
    shown, cut = _shown(field, value, False)
    return {"field": camel(field), "before": None, "after": shown, "cut": cut}


def matches(query: dict[str, Any], doc: dict[str, Any]) -> bool:
    """Whether ``doc`` is one ``query`` finds, for the queries ``resolvers.audit`` makes:
    fields by dotted path, each equal to a value or to ``$in``/``$gte``/``$lt``."""
    for path, wanted in query.items():
        value: Any = doc
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if not isinstance(wanted, dict):
            if value != wanted:
                return False
            continue
        for op, bound in wanted.items():
            if op == "$in":
                ok = value in bound
            elif op in ("$gte", "$lt"):
                ok = value is not None and (value >= bound if op == "$gte" else value < bound)
            else:
                raise ValueError(f"the audit filter has no {op} (query {query!r})")
            if not ok:
                return False
    return True


class AuditLog:
    """Written by the API only, after each successful change; read newest first."""

    def __init__(self, entries: AsyncCollection) -> None:
        self.entries = entries

    @classmethod
    def of(cls, db: Database, code: str | None) -> AuditLog:
        """Tenant ``code``'s trail, or the system's (``None``): changes that belong to no
        tenant, SYSTEM_ADMIN keys made and revoked."""
        return cls(db.system_audit if code is None else db.collection(code, "audit"))

    async def record(self, operation: str, target: dict[str, Any], actor: dict[str, Any],
                     changed: list[dict[str, Any]]) -> dict[str, Any]:
        at = now()
        doc = {"_id": row_id(at), "at": at, "operation": operation, "target": target,
               "actor": actor, "changes": changed}
        await patiently(lambda: self._insert(doc))
        return doc

    async def _insert(self, doc: dict[str, Any]) -> None:
        """Safe to repeat after a busy database or a lost reply: the same ``_id`` once."""
        with contextlib.suppress(DuplicateKeyError):
            await self.entries.insert_one(doc)

    async def page(self, query: dict[str, Any], first: int, after: ObjectId | None, *,
                   seconds: float = SEARCH_SECONDS, chunk: int = CHUNK,
                   ) -> tuple[list[dict[str, Any]], str | None, datetime | None]:
        """Newest first by ``_id``; the cursor is the last entry's id, as for activity.
        A filter beyond the time window (operation, target, actor), which no index
        answers, reads ``chunk`` entries at a time (``matches`` keeps those it wants)
        until the page is full, the entries run out, or the next chunk would end after
        ``seconds``: then the page ends early, its cursor goes on below the last chunk,
        and the third value is when that chunk's oldest entry was made (None when the
        page is complete)."""
        if set(query) - {"_id", "at"}:
            return await self._filtered(query, first, after, seconds, chunk)
        if after is not None:
            query = within(query, {"$lt": after})
        docs = await self.entries.find(query).sort("_id", DESCENDING).limit(
            first + 1).to_list(None)
        more = len(docs) > first
        docs = docs[:first]
        return docs, (encode_cursor(docs[-1]["_id"]) if more and docs else None), None

    async def _filtered(self, query: dict[str, Any], first: int, upper: ObjectId | None,
                        seconds: float, chunk: int,
                        ) -> tuple[list[dict[str, Any]], str | None, datetime | None]:
        deadline = time.monotonic() + seconds
        span = {"_id": query["_id"]} if "_id" in query else {}
        found: list[dict[str, Any]] = []
        while True:
            started = time.monotonic()
            below = span if upper is None else within(span, {"$lt": upper})
            docs = await self.entries.find(below).sort("_id", DESCENDING).limit(
                chunk).to_list(None)
            found += [doc for doc in docs if matches(query, doc)]
            if len(found) > first:
                return found[:first], encode_cursor(found[first - 1]["_id"]), None
            if len(docs) < chunk:
                return found, None, None
            upper = docs[-1]["_id"]
            if time.monotonic() + (time.monotonic() - started) > deadline:
                return found, encode_cursor(upper), upper.generation_time

    async def prune(self, before: datetime, batch: int = PRUNE_BATCH,
                    pause: float = PRUNE_PAUSE) -> int:
        """Drop entries older than ``before`` (the activity's retention), in batches
        found and deleted by ``_id``, resting as ``ActivityLog.prune`` does."""
        return await prune_by_id(self.entries, {"_id": {"$lt": id_at(before)}}, batch, pause)
