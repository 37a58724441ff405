"""The tenant registry: creating a tenant builds its collections, indexes and defaults."""

from __future__ import annotations

import contextlib
import logging
import re
import time
from typing import Any

from pymongo import ASCENDING
from pymongo.errors import CollectionInvalid, DuplicateKeyError

from event_manager.errors import BadInput, Conflict, NotFound
from tenants.activity import ACTIVITY_INDEXES, RETIRED_INDEXES
from tenants.catalog import EVENT_TYPES
from tenants.database import Database, now, unique

log = logging.getLogger(__name__)

TENANT_CODE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


def check_code(code: str, field: str = "code") -> str:
    if not TENANT_CODE.match(code):
        raise BadInput(
            f"tenant code {code[:40]!r} must be 1-32 characters of a-z, 0-9, '_' or '-', "
            "starting with a letter or digit",
            field=field,
        )
    return code


class TenantRegistry:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, code: str) -> dict[str, Any]:
        """The tenant registered under ``code``. Its ``_id`` is the code, a lookup that
        FerretDB answers from an index on every request; tenants registered before that
        have an ObjectId and are found by their ``code`` field."""
        doc = None
        if TENANT_CODE.match(code):
            doc = (await self.db.tenants.find_one({"_id": code})
                   or await self.db.tenants.find_one({"code": code}))
        if doc is None:
            raise NotFound(f"no tenant with code {code[:40]!r}", field="code")
        return doc

    async def master(self) -> dict[str, Any] | None:
        """The Master tenant, whose actions the others import; None when there is none."""
        return await self.db.tenants.find_one({"master": True})

    async def list(self) -> list[dict[str, Any]]:
        return await self.db.tenants.find({}).sort("code", ASCENDING).to_list(None)

    async def create(self, code: str, name: str, master: bool) -> dict[str, Any]:
        """Build the tenant's collections first and register it last.

        The bootstrap is idempotent, so a create that fails half-way leaves no tenant
        behind, only empty scaffolding that the next attempt completes.
        """
        check_code(code)
        name = name.strip()
        if not 1 <= len(name) <= 100:
            raise BadInput("tenant name must be 1-100 characters", field="name")
        if await self.db.tenants.find_one({"code": code}) is not None:
            raise Conflict(f"tenant code {code!r} is taken", field="code")
        if master and await self.master() is not None:
            raise Conflict("a Master tenant exists already", field="master")
        await self._bootstrap(code)
        doc = {
            "_id": code,
            "code": code,
            "name": name,
            "master": master,
            "event_manager_enabled": False,
            "created_at": now(),
        }
        with unique(f"tenant code {code!r} is taken", "code"):
            await self.db.tenants.insert_one(doc)
        await self.db.changed(code)  # a code used before: forget what workers hold
        return doc

    async def set_enabled(self, code: str, enabled: bool) -> dict[str, Any]:
        tenant = await self.get(code)
        await self.db.tenants.update_one(
            {"_id": tenant["_id"]}, {"$set": {"event_manager_enabled": enabled}}
        )
        await self.db.changed(code)  # API processes hold the registration
        return await self.get(code)

    async def index_activity(self, code: str) -> list[str]:
        """Give tenant ``code``'s activity the Activity Monitor's indexes and drop the
        retired ones (where the server reads field indexes at all); what it changed, as
        ``+name`` and ``-name``. Idempotent: a tenant already indexed costs one read."""
        if not await self.db.reads_field_indexes():
            return []
        activity = self.db.collection(code, "activity")
        present = set(await activity.index_information())
        changes = []
        for name, keys in ACTIVITY_INDEXES.items():
            if name not in present:
                await activity.create_index(keys, name=name)
                changes.append(f"+{name}")
        for name in RETIRED_INDEXES:
            if name in present:
                await activity.drop_index(name)
                changes.append(f"-{name}")
        return changes

    async def drop_retired(self, code: str) -> list[str]:
        """Drop tenant ``code``'s collections of earlier versions (``RETIRED_COLLECTIONS``)
        that are there; what it dropped, as ``-name``. (A process of an earlier version
        still running writes its ``open`` entries into a new one, which the next worker
        start drops: no reader of this version needs them.)"""
        names = self.db.retired_names(code)
        data = self.db.tenant_data(code)
        found = sorted(await data.list_collection_names(filter={"name": {"$in": names}}))
        for name in found:
            await data.drop_collection(name)
        return [f"-{name}" for name in found]

    async def index_all(self) -> int:
        """``index_activity`` and ``drop_retired`` for every tenant, each change logged;
        how many tenants changed. Made once when a worker starts: on a tenant with a long
        history each new index takes a while (about 25 s per 1,000,000 rows on
        FerretDB/SQLite), and the writes of every tenant wait meanwhile."""
        changed = 0
        for tenant in await self.list():
            started = time.monotonic()
            changes = (await self.index_activity(tenant["code"])
                       + await self.drop_retired(tenant["code"]))
            if changes:
                changed += 1
                log.info("activity indexes and collections of tenant %s: %s (%.1f s)",
                         tenant["code"], " ".join(changes), time.monotonic() - started)
        return changed

    async def _bootstrap(self, code: str) -> None:
        c = lambda kind: self.db.collection(code, kind)  # noqa: E731
        await c("actions").create_index([("name_key", ASCENDING)], unique=True)
        await c("parameters").create_index([("tag_key", ASCENDING)], unique=True)
        activity, idempotency, claims = c("activity"), c("idempotency"), c("claims")
        for collection in (activity, idempotency, claims, c("health"), c("stats"),
                           c("audit")):
            with contextlib.suppress(CollectionInvalid):
                await self.db.tenant_data(code).create_collection(collection.name)
        await self.index_activity(code)
        if await self.db.reads_range_indexes():
            await idempotency.create_index([("created_at", ASCENDING)])
            await claims.create_index([("at", ASCENDING)])
        # Plain inserts, not upserts with $setOnInsert: FerretDB 1.24 drops empty
        # arrays from $setOnInsert. A duplicate means an earlier attempt seeded it.
        seeds = [("events", {"_id": t, "active": False, "action_ids": []}) for t in EVENT_TYPES]
        seeds.append(("settings", {"_id": "settings", "actions_enabled": False, "timezone": "UTC"}))
        for kind, doc in seeds:
            with contextlib.suppress(DuplicateKeyError):
                await c(kind).insert_one(doc)
