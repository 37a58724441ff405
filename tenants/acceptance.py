"""Accepting triggers: what a batch of calls promises (their rows and their idempotency
keys) written together, each call with its own outcome.

A batch (``resolvers/intake.py``) holds the concurrent calls of a tenant, up to 500. Their
rows go to the database in one unordered insert and their idempotency keys in a second,
after the rows: a key is stored only once the rows it promises are, and taken back with
them (``withdraw``), so a key never answers a retry with "accepted" and no rows.

One call's document must not fail its neighbours. When the rows' insert fails:

- a ``BulkWriteError`` names the documents refused (``writeErrors[i].index``, on MongoDB
  and FerretDB alike): the calls they belong to fail, and whatever else of theirs was
  written is removed; the other calls stand;
- a transient error (a lost connection, FerretDB's "database is locked") is every call's:
  they all get it, and what was written is removed;
- anything else is a batch failure that names no document (FerretDB answers some failed
  statements without ``nModified`` and PyMongo raises ``KeyError``; PyMongo refuses a
  document over 16 MB before sending it, after sending those before it): what was written
  is removed and each call's part is written alone, so that each learns its own fate.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure

from tenants.activity import IDEMPOTENCY, ActivityLog
from tenants.database import is_duplicate, is_transient, now

log = logging.getLogger("event_manager.api")


@dataclass
class Part:
    """What one call asks to write: its rows, and the record of its idempotency key
    (``{"_id": key, "trigger_id": ..., ...}``), if it has one."""

    rows: list[dict[str, Any]]
    key: dict[str, Any] | None = None
    outcome: BaseException | None = field(default=None, init=False)
    """None once written; else why not: the write's error, or ``KeyTaken``."""


class KeyTaken(Exception):
    """Raised when a call's idempotency key was stored meanwhile by another call (of
    another API process): ``first`` is that call's record, or None if it is gone again."""

    def __init__(self, first: dict[str, Any] | None) -> None:
        super().__init__("the idempotency key was taken meanwhile")
        self.first = first


@dataclass(frozen=True)
class Earlier:
    """A trigger accepted earlier under an idempotency key: the key's record and rows."""

    record: dict[str, Any]
    rows: list[dict[str, Any]]


async def earlier_keys(activity: ActivityLog, keys: list[str]) -> dict[str, Earlier]:
    """The triggers accepted under those ``keys`` less than ``IDEMPOTENCY`` ago, by key.
    An older key, or one whose rows are gone (a call that failed before it was taken
    back, or a key stored before keys were written after their rows), is deleted: its
    trigger is processed again rather than answered "accepted" with nothing behind it."""
    if not keys:
        return {}
    oldest = now() - IDEMPOTENCY
    found: dict[str, Earlier] = {}
    for record in await activity.idempotency.find({"_id": {"$in": keys}}).to_list(None):
        rows = await activity.by_trigger(record["trigger_id"]) \
            if record["created_at"] > oldest else []
        if rows:
            found[record["_id"]] = Earlier(record, rows)
        else:
            await activity.idempotency.delete_one({"_id": record["_id"],
                                                   "trigger_id": record["trigger_id"]})
    return found


async def accept(activity: ActivityLog, parts: list[Part]) -> None:
    """Write every part's rows and key; each part's ``outcome`` says how it went."""
    await _write_rows(activity, parts)
    await _write_keys(activity, [p for p in parts if p.outcome is None and p.key])


async def withdraw(activity: ActivityLog, parts: list[Part]) -> None:
    """Take back parts written by ``accept`` (the queue refused their deliveries)."""
    await _discard(activity, parts)


async def _write_rows(activity: ActivityLog, parts: list[Part]) -> None:
    owners = [part for part in parts for _ in part.rows]
    try:
        refused = await _insert(activity, [row for part in parts for row in part.rows])
    except Exception as error:
        await _discard(activity, parts)
        if is_transient(error):
            for part in parts:
                part.outcome = error
        else:
            log.warning("a batch of %d triggers failed as a whole (%s: %s); writing each "
                        "alone", len(parts), type(error).__name__, error)
            await _write_each_alone(activity, parts)
        return
    for index, error in refused.items():
        owners[index].outcome = owners[index].outcome or error
    await _discard(activity, [part for part in parts if part.outcome is not None])


async def _write_each_alone(activity: ActivityLog, parts: list[Part]) -> None:
    """Each part's rows in an insert of their own; once one meets a transient error, the
    parts not yet written get it without trying."""
    unavailable: Exception | None = None
    for part in parts:
        if unavailable is not None:
            part.outcome = unavailable
            continue
        try:
            part.outcome = next(iter((await _insert(activity, part.rows)).values()), None)
        except Exception as error:
            part.outcome = error
            unavailable = error if is_transient(error) else None
        if part.outcome is not None:
            await _discard(activity, [part])


async def _insert(activity: ActivityLog, rows: list[dict[str, Any]]) -> dict[int, Exception]:
    """Insert the rows: those refused one by one, by index; raises when the insert
    failed as a whole."""
    if not rows:  # a batch of replays only
        return {}
    return await _refused(lambda: activity.rows.insert_many(rows, ordered=False))


async def _write_keys(activity: ActivityLog, parts: list[Part]) -> None:
    """The keys of parts whose rows are written. A key stored meanwhile by another call
    makes its part a ``KeyTaken``; a part whose key is not stored keeps no rows."""
    if not parts:
        return
    records = [{**(part.key or {}), "created_at": now()} for part in parts]
    try:
        refused = await _refused(lambda: activity.idempotency.insert_many(records,
                                                                          ordered=False))
    except Exception as error:
        refused = await _insert_each_key(activity, records, error)
    duplicates = [records[i]["_id"] for i, error in refused.items() if is_duplicate(error)]
    firsts = {doc["_id"]: doc for doc in await activity.idempotency.find(
        {"_id": {"$in": duplicates}}).to_list(None)} if duplicates else {}
    for index, error in refused.items():
        first = firsts.get(records[index]["_id"])
        if first is not None and first["trigger_id"] == records[index]["trigger_id"]:
            continue  # its own, stored by the insert of all before it failed
        parts[index].outcome = KeyTaken(first) if is_duplicate(error) else error
    await _discard(activity, [part for part in parts if part.outcome is not None])


async def _insert_each_key(activity: ActivityLog, records: list[dict[str, Any]],
                           error: Exception) -> dict[int, Exception]:
    """After ``error`` failed the insert of all keys: each inserted alone; the keys refused,
    by index. Once an error is transient, the keys not yet tried get it without trying."""
    refused: dict[int, Exception] = {}
    unavailable = error if is_transient(error) else None
    for index, record in enumerate(records):
        if unavailable is not None:
            refused[index] = unavailable
            continue
        try:
            await activity.idempotency.insert_one(record)
        except Exception as alone:
            refused[index] = alone
            unavailable = alone if is_transient(alone) else None
    return refused


async def _refused(insert: Callable[[], Awaitable[Any]]) -> dict[int, Exception]:
    """``insert()``'s documents refused one by one, by index (``writeErrors``): empty
    when all were written. Raises what does not name the refused documents."""
    try:
        await insert()
    except BulkWriteError as error:
        details = error.details or {}
        if details.get("writeConcernErrors") or not details.get("writeErrors"):
            raise
        return {e["index"]: _failure(e) for e in details["writeErrors"]}
    return {}


def _failure(error: dict[str, Any]) -> Exception:
    kind = DuplicateKeyError if error.get("code") == 11000 else OperationFailure
    return kind(error.get("errmsg", "write error"), error.get("code"), error)


async def _discard(activity: ActivityLog, parts: list[Part]) -> None:
    """Remove what may have been written of ``parts``: their rows, and their keys where
    the key's record is still theirs (never another call's record of the same key). A
    removal that fails is logged; rows it leaves are delivered all the same (recovery
    finds them QUEUED)."""
    ids = [row["_id"] for part in parts for row in part.rows]
    keys = [part.key for part in parts if part.key]
    try:  # the keys first: a key is never stored without its rows
        if keys:
            await activity.idempotency.delete_many({
                "_id": {"$in": [key["_id"] for key in keys]},
                "trigger_id": {"$in": [key["trigger_id"] for key in keys]}})
        if ids:
            await activity.remove(ids)
    except Exception as error:
        log.warning("could not take back %d rows of failed triggers: %s", len(ids), error)
