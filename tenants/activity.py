"""The activity log of one tenant: one row per delivery (or one SKIPPED row per trigger),
and the idempotency keys of triggers.

A row moves QUEUED → SENDING → SUCCEEDED | RETRYING | FAILED; RETRYING goes back to
SENDING when its next attempt starts. A delivery is *claimed* before it is sent: the
claim is one atomic update that only succeeds from QUEUED or RETRYING, so two workers
holding the same message cannot both send the same attempt.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import DESCENDING, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import OperationFailure

from tenants.database import contains, is_duplicate, now, object_id

FINAL = ("SUCCEEDED", "FAILED", "SKIPPED")
CLAIMABLE = ("QUEUED", "RETRYING")


def encode_cursor(row_id: ObjectId) -> str:
    return base64.urlsafe_b64encode(row_id.binary).decode().rstrip("=")


def decode_cursor(cursor: str) -> ObjectId | None:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        return None
    return ObjectId(raw) if len(raw) == 12 else None


class ActivityLog:
    def __init__(self, rows: AsyncCollection, idempotency: AsyncCollection) -> None:
        self.rows = rows
        self.idempotency = idempotency

    async def insert(self, docs: list[dict[str, Any]]) -> None:
        if docs:
            await self.rows.insert_many(docs, ordered=True)

    async def get(self, row_id: str) -> dict[str, Any] | None:
        oid = object_id(row_id)
        return await self.rows.find_one({"_id": oid}) if oid else None

    async def by_trigger(self, trigger_id: str) -> list[dict[str, Any]]:
        return await self.rows.find({"trigger_id": trigger_id}).sort("_id", 1).to_list(None)

    async def claim(self, row_id: ObjectId) -> dict[str, Any] | None:
        """Mark a QUEUED or RETRYING row SENDING and count the attempt; None if taken."""
        return await self.rows.find_one_and_update(
            {"_id": row_id, "status": {"$in": list(CLAIMABLE)}},
            {"$set": {"status": "SENDING", "message": "sending", "updated_at": now()},
             "$inc": {"attempts": 1}},
            return_document=ReturnDocument.AFTER,
        )

    async def record(self, row_id: ObjectId, changes: dict[str, Any],
                     expect: str | None = None) -> dict[str, Any] | None:
        """Set ``changes`` (and updated_at); with ``expect``, only from that status."""
        query: dict[str, Any] = {"_id": row_id}
        if expect is not None:
            query["status"] = expect
        return await self.rows.find_one_and_update(
            query, {"$set": {**changes, "updated_at": now()}},
            return_document=ReturnDocument.AFTER,
        )

    async def page(self, query: dict[str, Any], first: int,
                   after: ObjectId | None) -> tuple[list[dict[str, Any]], str | None]:
        """Newest first by id; the cursor is the last row's id, so rows that arrive while
        a client pages appear before its first page and never shift later pages."""
        if after is not None:
            query = {**query, "_id": {"$lt": after}}
        docs = await self.rows.find(query).sort("_id", DESCENDING).limit(first + 1).to_list(None)
        more = len(docs) > first
        docs = docs[:first]
        return docs, (encode_cursor(docs[-1]["_id"]) if more and docs else None)

    async def stale(self, status: str, field: str, before: datetime,
                    limit: int = 500) -> list[dict[str, Any]]:
        """Rows left in ``status`` whose ``field`` is older than ``before``."""
        return await self.rows.find(
            {"status": status, field: {"$lt": before}}, {"_id": 1}
        ).limit(limit).to_list(None)

    # idempotency ----------------------------------------------------------

    async def remember(self, key: str, record: dict[str, Any]) -> dict[str, Any] | None:
        """Claim an idempotency key: None when claimed now, else the first claim's record."""
        try:
            await self.idempotency.insert_one({"_id": key, **record, "created_at": now()})
            return None
        except OperationFailure as error:
            if not is_duplicate(error):
                raise
        return await self.idempotency.find_one({"_id": key})

    async def forget_before(self, moment: datetime) -> int:
        result = await self.idempotency.delete_many({"created_at": {"$lt": moment}})
        return result.deleted_count


def activity_query(filter: Any) -> dict[str, Any]:
    """The MongoDB query of an ActivityFilter-shaped object (already validated)."""
    query: dict[str, Any] = {}
    if filter is None:
        return query
    if filter.events:
        query["event"] = {"$in": [e.value for e in filter.events]}
    if filter.statuses:
        query["status"] = {"$in": [s.value for s in filter.statuses]}
    if filter.source:
        query["source"] = filter.source.value
    if filter.action_id:
        query["action_id"] = str(filter.action_id)
    if filter.trigger_id:
        query["trigger_id"] = str(filter.trigger_id)
    window: dict[str, Any] = {}
    if filter.since:
        window["$gte"] = filter.since
    if filter.until:
        window["$lt"] = filter.until
    if window:
        query["created_at"] = window
    if filter.search:
        pattern = contains(filter.search)
        query["$or"] = [{"action_name": pattern}, {"message": pattern}]
    return query
