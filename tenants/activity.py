"""The activity log of one tenant: one row per delivery (or one SKIPPED row per trigger),
and the idempotency keys of triggers.

A row moves QUEUED → SENDING → SUCCEEDED | RETRYING | FAILED; RETRYING goes back to
SENDING when its next attempt starts. An attempt answered within a second goes from
QUEUED or RETRYING to its outcome in one write (the live stream still shows SENDING).
A delivery is *claimed* before it is sent: the claim is the insert of a unique
``"<row id>:<attempt>"``, made only from QUEUED or RETRYING, so two workers holding the
same message cannot both send the same attempt.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection

from event_manager.errors import BadInput
from tenants.database import (
    GroupedInserts,
    GroupedWrites,
    contains,
    now,
    object_id,
)
from tenants.stats import TenantStats, ended_now

log = logging.getLogger("event_manager.stats")

FINAL = ("SUCCEEDED", "FAILED", "SKIPPED", "EXPIRED")
CLAIMABLE = ("QUEUED", "RETRYING")
UNFINISHED = ("QUEUED", "RETRYING", "SENDING")
IDEMPOTENCY = timedelta(hours=24)
"""How long an idempotency key returns the first trigger's result."""
EARLY = timedelta(seconds=1)
"""How early a planned retry may start (clocks of workers differ a little)."""
ROW_STATE = {"status": 1, "attempts": 1, "action_id": 1, "updated_at": 1, "next_attempt_at": 1}


_claimant: ContextVar[str | None] = ContextVar("claimant", default=None)


def claimant() -> str:
    """Who is claiming: one token per asyncio task (a worker runs each delivery as a task
    of its own), kept in the claim so that a claim tried again after an error whose reply
    was lost recognises the claim it made itself."""
    token = _claimant.get()
    if token is None:
        token = uuid4().hex
        _claimant.set(token)
    return token


ACTIVITY_INDEXES: dict[str, list[tuple[str, int]]] = {
    "status_1__id_-1": [("status", ASCENDING), ("_id", DESCENDING)],
    "event_1__id_-1": [("event", ASCENDING), ("_id", DESCENDING)],
    "action_id_1__id_-1": [("action_id", ASCENDING), ("_id", DESCENDING)],
    "source_1__id_-1": [("source", ASCENDING), ("_id", DESCENDING)],
}
"""The Activity Monitor's indexes, by name. A page is newest first (``_id`` descending),
so each index is a filter's field and then ``_id``: the rows of one value, in page order,
from any cursor (``_id < after``). A time window and a trigger's rows are ranges of
``_id`` itself (``id_window``). Each index costs every write of a row (bench/README), so
there is none for a combination of filters: the server walks the index of the rarest
value and checks the others row by row. The same definitions serve MongoDB."""
RETIRED_INDEXES = ("created_at_-1__id_-1", "status_1_updated_at_1", "trigger_id_1")
"""Indexes of earlier versions that no query reads; dropped where they are found."""

ID_SLACK = timedelta(minutes=1)
"""A row's ``_id`` carries the second of its ``created_at`` (``row_id``); rows written
before that was so got theirs a moment later, well within this."""


def row_id(created: datetime) -> ObjectId:
    """A new id whose time is ``created`` (to the second), unique as ``ObjectId()`` is
    (its other 8 bytes are a fresh ObjectId's: the process's random and a counter), so
    that rows created in a time window are a range of ``_id``."""
    return ObjectId(int(created.timestamp()).to_bytes(4, "big") + ObjectId().binary[4:])


FIRST_ID, LAST_ID = ObjectId("0" * 24), ObjectId("f" * 24)


def id_at(moment: datetime) -> ObjectId:
    """The smallest id of ``moment``'s second, within what an id can hold (1970-2106)."""
    seconds = int(moment.timestamp())
    if seconds < 0:
        return FIRST_ID
    if seconds > 0xFFFFFFFF:
        return LAST_ID
    return ObjectId.from_datetime(moment)


def id_window(since: datetime | None = None, until: datetime | None = None) -> dict[str, Any]:
    """The ``_id`` range holding every row created in [since, until): ``$gte`` and
    ``$lt`` bounds a little wider than the window (``ID_SLACK``)."""
    window: dict[str, Any] = {}
    if since is not None:
        window["$gte"] = id_at(since - ID_SLACK)
    if until is not None and (bound := id_at(until + ID_SLACK + timedelta(seconds=1))) != LAST_ID:
        window["$lt"] = bound
    return window


def within(query: dict[str, Any], window: dict[str, Any]) -> dict[str, Any]:
    """``query`` with its ``_id`` range narrowed to ``window`` (``$gte``/``$lt`` bounds)."""
    bounds = dict(query.get("_id") or {})
    for op, pick in (("$gte", max), ("$lt", min)):
        if op in window:
            bounds[op] = pick(bounds[op], window[op]) if op in bounds else window[op]
    return {**query, "_id": bounds} if bounds else query


def in_window(query: dict[str, Any], field: str, since: datetime | None,
              until: datetime | None) -> dict[str, Any]:
    """``query`` limited to documents whose ``field`` (the moment its ``_id`` was made
    from) lies in [since, until), their ``_id`` range narrowed to match; as it was
    without either bound."""
    window: dict[str, Any] = {}
    if since:
        window["$gte"] = since
    if until:
        window["$lt"] = until
    if not window:
        return query
    return within({**query, field: window}, id_window(since, until))


async def prune_by_id(collection: AsyncCollection, query: dict[str, Any], batch: int,
                      pause: float) -> int:
    """Delete what ``query`` finds, in batches of ``batch`` found and deleted by ``_id``,
    each followed by a rest of ``pause`` times as long as it took; how many went."""
    total = 0
    while True:
        started = time.monotonic()
        ids = [doc["_id"] for doc in
               await collection.find(query, {"_id": 1}).limit(batch).to_list(None)]
        if ids:
            total += (await collection.delete_many({"_id": {"$in": ids}})).deleted_count
        if len(ids) < batch:
            return total
        await asyncio.sleep(pause * (time.monotonic() - started))


DATES = ("occurred_at", "created_at", "updated_at", "next_attempt_at", "cycle_at")
SEARCH_SECONDS = 1.0
"""How long one page of a text search may read rows before it answers what it found."""
MAX_RETENTION_DAYS = 3650
PRUNE_BATCH = 200
PRUNE_PAUSE = 4.0
"""The retention clean-up rests four times as long as each batch took: it has at most a
fifth of the database's time, whatever the machine."""
KNOWN_ROW_FOR = IDEMPOTENCY - timedelta(hours=1)
"""How long a row carried by a delivery message may be trusted instead of read: the
claim of each attempt is kept for ``IDEMPOTENCY``, so within this time an attempt that
was already made is found by its claim, however old the message's copy of the row."""


def portable(doc: dict[str, Any]) -> dict[str, Any]:
    """A row as JSON that a delivery message can carry (``restore`` reads it back)."""
    out = {**doc, "_id": str(doc["_id"])}
    for key in DATES:
        if out.get(key) is not None:
            out[key] = out[key].isoformat()
    return out


def restore(data: dict[str, Any]) -> dict[str, Any]:
    doc = {**data, "_id": ObjectId(data["_id"])}
    for key in DATES:
        if doc.get(key) is not None:
            doc[key] = datetime.fromisoformat(doc[key])
    return doc


def encode_cursor(row_id: ObjectId) -> str:
    return base64.urlsafe_b64encode(row_id.binary).decode().rstrip("=")


def decode_cursor(cursor: str) -> ObjectId | None:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        return None
    return ObjectId(raw) if len(raw) == 12 else None


class ActivityLog:
    def __init__(self, rows: AsyncCollection, idempotency: AsyncCollection,
                 claims: AsyncCollection, stats: TenantStats | None = None) -> None:
        self.rows = rows
        self.stats = stats
        self.idempotency = idempotency
        self.claims = claims
        self._claims = GroupedInserts(claims)  # the claims of many deliveries at once
        self._outcomes = GroupedWrites(rows)  # and their outcomes

    async def insert(self, docs: list[dict[str, Any]]) -> None:
        if docs:
            await self.rows.insert_many(docs, ordered=True)

    async def remove(self, row_ids: list[ObjectId]) -> None:
        """Take back rows just written (a trigger the queue refused)."""
        await self.rows.delete_many({"_id": {"$in": row_ids}})

    async def get(self, row_id: str) -> dict[str, Any] | None:
        oid = object_id(row_id)
        return await self.rows.find_one({"_id": oid}) if oid else None

    async def by_trigger(self, trigger_id: str) -> list[dict[str, Any]]:
        return await self.rows.find(trigger_query(trigger_id)).sort("_id", 1).to_list(None)

    async def claim(self, row_id: ObjectId,
                    known: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """Claim the next attempt of a QUEUED or RETRYING row: the row as it is while
        that attempt is sent (SENDING, the attempt counted); None if taken. The row
        itself is not written: ``mark_sending`` does that when the attempt takes long.

        ``known`` is the row as its delivery message carries it: when it changed less
        than ``KNOWN_ROW_FOR`` ago it is not read again. If the row has moved on since,
        the attempt after ``known``'s was made already, and its claim says so.

        The claim is the insert of ``"<row id>:<attempt>"`` into the claims collection:
        its unique ``_id`` lets exactly one worker have each attempt. (A filter on status
        would do the same in one update on MongoDB, but FerretDB only uses an index for a
        filter on ``_id`` alone and scans the collection for anything else.)

        Safe to call again after a transient error: a claim that was made although its
        reply was lost is recognised by its owner. An attempt whose worker stopped with
        the row not yet marked SENDING is found by recovery through its claim
        (``next_claim``)."""
        if known is not None and known["_id"] == row_id and (
                now() - known["updated_at"] < KNOWN_ROW_FOR):
            row: dict[str, Any] | None = known
        else:
            row = await self.rows.find_one({"_id": row_id})
        if row is not None and row["status"] == "SENDING" and _claimant.get() is not None:
            return row if await self._owns(f"{row_id}:{row['attempts']}") else None
        if row is None or row["status"] not in CLAIMABLE:
            return None
        due = row.get("next_attempt_at")
        if row["status"] == "RETRYING" and due is not None and due > now() + EARLY:
            return None  # an early copy of a planned retry: the planned message will come
        attempt = row["attempts"] + 1
        claim_id = f"{row_id}:{attempt}"
        made = await self._claims.insert({"_id": claim_id, "at": now(), "owner": claimant()})
        if not made and not await self._owns(claim_id):
            return None
        return {**row, "status": "SENDING", "message": "sending", "attempts": attempt,
                "updated_at": now()}

    async def mark_sending(self, row: dict[str, Any]) -> None:
        """Write a claimed row's SENDING state (``claim``'s answer)."""
        await self.rows.update_one({"_id": row["_id"]}, {"$set": {
            k: row[k] for k in ("status", "message", "attempts", "updated_at")}})

    async def _owns(self, claim_id: str) -> bool:
        found = await self.claims.find_one({"_id": claim_id})
        return found is not None and found.get("owner") == claimant()

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

    async def record_outcome(self, row: dict[str, Any],
                             changes: dict[str, Any]) -> dict[str, Any] | None:
        """Set an attempt's outcome on a row claimed for it (``claim``'s answer): the row
        as it is now, or None when it is gone. Written with the outcomes of other
        deliveries that end at the same moment; no one else writes a claimed row."""
        changes = {**changes, "updated_at": now()}
        if not await self._outcomes.update(row["_id"], changes):
            return None
        self.ended([{**row, **changes}])
        return {**row, **changes}

    def ended(self, rows: list[dict[str, Any]]) -> None:
        """Count the rows among ``rows`` that are final (SUCCEEDED, FAILED, SKIPPED,
        EXPIRED) into the tenant's counters (``tenants.stats``). Every write of a final
        status calls it once the write is made: an attempt's outcome (``record_outcome``),
        the SKIPPED rows of a trigger once it is accepted (``resolvers.batch``). Never
        raises: the rows are written already, and counting is beside them."""
        self._count(rows, 1)

    def reopened(self, row: dict[str, Any]) -> None:
        """Take back the count of ``row``'s end: it was final and is not any more
        (``retryActivity`` queues a FAILED row again; it is counted when it ends again)."""
        self._count([row], -1)

    def _count(self, rows: list[dict[str, Any]], sign: int) -> None:
        if self.stats is None:
            return
        try:
            self.stats.count(ended_now(rows, sign))
        except Exception as exc:
            log.warning("could not count %d ended rows (%s: %s)", len(rows),
                        type(exc).__name__, exc)

    async def page(self, query: dict[str, Any], first: int,
                   after: ObjectId | None) -> tuple[list[dict[str, Any]], str | None]:
        """Newest first by id; the cursor is the last row's id, so rows that arrive while
        a client pages appear before its first page and never shift later pages."""
        if after is not None:
            query = within(query, {"$lt": after})
        docs = await self.rows.find(query).sort("_id", DESCENDING).limit(first + 1).to_list(None)
        more = len(docs) > first
        docs = docs[:first]
        return docs, (encode_cursor(docs[-1]["_id"]) if more and docs else None)

    async def search_page(
        self, query: dict[str, Any], first: int, after: ObjectId | None,
        seconds: float = SEARCH_SECONDS, oldest: datetime | None = None,
    ) -> tuple[list[dict[str, Any]], str | None, datetime | None]:
        """``page`` for a query with a text search, which no index answers: the server
        reads row after row. The rows are searched in windows of creation time, newest
        first, an hour (or half as far back as the page's cursor lies, when that is
        longer) and then twice as long each time, until the page is full, the
        rows run out (none are older than ``oldest``), or the next window would end
        after ``seconds`` (it is taken to cost twice the last, being twice as long).
        Then the page ends early: its cursor goes on below the last window searched, and
        the third value is that window's start (None when the page is complete)."""
        oldest = max(oldest or now() - timedelta(days=MAX_RETENTION_DAYS + 1),
                     datetime(1970, 1, 1, tzinfo=UTC))
        deadline = time.monotonic() + seconds
        upper = after or id_at(now() + ID_SLACK + timedelta(seconds=1))
        # a page that goes on from further back starts with longer windows
        span = max(timedelta(hours=1), (now() - upper.generation_time) / 2)
        found: list[dict[str, Any]] = []
        while True:
            started = time.monotonic()
            start = max(upper.generation_time - span, oldest)
            window = {"$lt": upper, "$gte": id_at(start)}
            found += await self.rows.find(within(query, window)).sort(
                "_id", DESCENDING).limit(first + 1 - len(found)).to_list(None)
            if len(found) > first:
                return found[:first], encode_cursor(found[first - 1]["_id"]), None
            if start <= oldest:
                return found, None, None
            upper, span = window["$gte"], span * 2
            if time.monotonic() + 2 * (time.monotonic() - started) > deadline:
                return found, encode_cursor(upper), start

    async def unfinished(self, before: datetime, limit: int = 1000) -> list[dict[str, Any]]:
        """Rows QUEUED, RETRYING or SENDING that nobody has touched since ``before``
        (``ROW_STATE`` of each), at most ``limit``: what a recovery sweep looks at.

        Found through the index on ``(status, _id)`` (``ACTIVITY_INDEXES``): the server
        reads the rows not final, and checks ``updated_at`` on each of them; the history
        of final rows is never read. MongoDB does so, and so does our FerretDB build
        (``Database.reads_field_indexes``: SQLite answers a ``$in`` on the field leading
        an index; tests/test_sweep.py). FerretDB as released reads no index but
        ``_id``'s, so there the activity gets no such index
        (``TenantRegistry.index_activity``) and each sweep reads every row of it, as
        every page of the Activity Monitor does: 14 s at 100,000 rows, where the index
        answers in 19 ms (bench/lookups.py)."""
        query = {"status": {"$in": list(UNFINISHED)}, "updated_at": {"$lt": before}}
        return await self.rows.find(query, ROW_STATE).limit(limit).to_list(None)

    async def held(self, before: datetime, limit: int = 1000) -> list[dict[str, Any]]:
        """Rows HELD (per-call order) since before ``before``, at most ``limit``: found
        through the ``(status, _id)`` index, like ``unfinished``."""
        query = {"status": "HELD", "updated_at": {"$lt": before}}
        return await self.rows.find(query, {"status": 1, "event": 1, "call_key": 1}
                                    ).limit(limit).to_list(None)

    async def next_claim(self, row: dict[str, Any]) -> dict[str, Any] | None:
        """The claim on the attempt after ``row["attempts"]``, if one was made: a claim
        whose row still says QUEUED or RETRYING was made by a worker that stopped (or is
        about to mark the row SENDING)."""
        return await self.claims.find_one({"_id": f"{row['_id']}:{row['attempts'] + 1}"})

    async def prune(self, before: datetime, batch: int = PRUNE_BATCH,
                    pause: float = PRUNE_PAUSE) -> int:
        """Drop finished rows created before ``before``; rows still in flight stay.

        In batches of ``batch`` rows, found by ``_id`` (``id_window``) and deleted by
        ``_id``, each followed by a rest of ``pause`` times as long as it took: a batch
        is a short write, and the deliveries of every tenant (one SQLite file behind
        FerretDB) have the database to themselves at least that much longer."""
        query = {"_id": id_window(until=before), "created_at": {"$lt": before},
                 "status": {"$in": list(FINAL)}}
        return await prune_by_id(self.rows, query, batch, pause)

    # idempotency (written with the rows they promise: tenants/acceptance.py) ----

    async def forget_before(self, moment: datetime) -> int:
        """Drop idempotency keys and delivery claims older than ``moment``; how many."""
        keys = await self.idempotency.delete_many({"created_at": {"$lt": moment}})
        claims = await self.claims.delete_many({"at": {"$lt": moment}})
        return keys.deleted_count + claims.deleted_count


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
        trigger_id = str(filter.trigger_id)
        if not ObjectId.is_valid(trigger_id):
            raise BadInput(f"triggerId {trigger_id[:40]!r} is not a trigger id this API "
                           "gave out", field="filter.triggerId")
        query.update(trigger_query(trigger_id))
    query = in_window(query, "created_at", filter.since, filter.until)
    if filter.search:
        pattern = contains(filter.search)
        query["$or"] = [{"action_name": pattern}, {"message": pattern}]
    return query


def trigger_query(trigger_id: str) -> dict[str, Any]:
    """The rows of one trigger: its id, and the ``_id`` range of the moment it was
    accepted (its rows' ``_id`` carry that second, like the trigger id: ``row_id``)."""
    query: dict[str, Any] = {"trigger_id": trigger_id}
    if ObjectId.is_valid(trigger_id):
        moment = ObjectId(trigger_id).generation_time
        query["_id"] = id_window(moment, moment + timedelta(seconds=1))
    return query
