"""The queues of per-call order (``DeliveryOrder.PER_CALL``): one document per action and
call, ``{_id: "<action id>:<call id>", waiting: ["<row id>:<EVENT>", ...]}``, in the
tenant's ``calls`` collection.

A delivery joins its call's queue when its trigger is accepted and leaves it when its row
ends (SUCCEEDED, FAILED, EXPIRED) or is taken back. The head of the queue is the one
that may be sent; the others are HELD. Each join and leave is one atomic update of one
document, so API processes and workers that touch the same call at once are put in one
order by the database: no transactions, no locks. ``leave`` says which entry heads the
queue because the leaving one did, so exactly one party releases it
(``dispatch.order``).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from tenants.database import now

MAX_WAITING = 1_000
"""Deliveries of one action that may wait in one call's queue: a call has a handful of
events; a PBX repeating one ``call_id`` endlessly is refused past this, instead of
growing one document without bound (MongoDB's limit is 16 MB)."""

MAX_PLAIN_CALL_ID = 200
"""Longer call ids are hashed in the queue's ``_id``: a key stays short whatever a PBX
sends (a param value may hold up to 64 KiB)."""


def queue_key(action_id: str, call_id: str) -> str:
    """``"<action id>:<call id>"``; a long call id as its SHA-256."""
    if len(call_id) > MAX_PLAIN_CALL_ID:
        call_id = "sha256:" + hashlib.sha256(call_id.encode()).hexdigest()
    return f"{action_id}:{call_id}"


def entry(row: dict[str, Any]) -> str:
    """A row's place in its call's queue: ``"<row id>:<EVENT>"`` (the event says what a
    HELD row waits for)."""
    return f"{row['_id']}:{row['event']}"


def entry_row_id(value: str) -> ObjectId:
    return ObjectId(value.split(":", 1)[0])


def entry_event(value: str) -> str:
    return value.split(":", 1)[1]


def entry_made(value: str) -> datetime:
    """When the entry's row id was made: just before it joined."""
    return entry_row_id(value).generation_time


class QueueFull(Exception):
    """A call's queue holds ``MAX_WAITING`` deliveries already."""


class CallQueues:
    def __init__(self, collection: AsyncCollection) -> None:
        self.collection = collection

    async def join(self, key: str, value: str) -> list[str]:
        """Put ``value`` at the end of the queue: the queue as it is now (``value`` last).
        Raises ``QueueFull`` when ``MAX_WAITING`` entries wait in it already."""
        full = f"waiting.{MAX_WAITING - 1}"
        for _ in range(3):
            try:
                doc = await self.collection.find_one_and_update(
                    {"_id": key, full: {"$exists": False}},
                    {"$push": {"waiting": value}, "$set": {"updated_at": now()}},
                    upsert=True, return_document=ReturnDocument.AFTER)
                return doc["waiting"]
            except DuplicateKeyError:
                # The queue exists and is full, or two first joins raced to create it.
                found = await self.collection.find_one({"_id": key, full: {"$exists": True}},
                                                       {"_id": 1})
                if found is not None:
                    raise QueueFull(key) from None
        raise QueueFull(key)

    async def leave(self, key: str, value: str) -> str | None:
        """Take ``value`` out of its queue. When it was at the head, the entry that heads
        the queue now (for the caller to release); else None (also when it was not
        there: it left already)."""
        before = await self.collection.find_one_and_update(
            {"_id": key, "waiting": value},
            {"$pull": {"waiting": value}, "$set": {"updated_at": now()}},
            return_document=ReturnDocument.BEFORE)
        if before is None:
            return None
        waiting = before["waiting"]
        return waiting[1] if waiting[0] == value and len(waiting) > 1 else None

    async def waiting(self, key: str) -> list[str]:
        doc = await self.collection.find_one({"_id": key})
        return doc["waiting"] if doc else []

    async def forget_empty(self, before: datetime) -> int:
        """Drop the queues left empty since ``before`` (housekeeping)."""
        done = await self.collection.delete_many({"waiting": {"$size": 0},
                                                  "updated_at": {"$lt": before}})
        return done.deleted_count
