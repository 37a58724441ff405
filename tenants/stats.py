"""Delivery counters for dashboards, kept as rows end instead of counted from the rows.

Each process counts the rows that end in it (``ActivityLog.ended``) into documents of
its own, one per hour (``t_<code>_stats``). A document's ``_id`` is an ObjectId whose
time is the hour's start and whose other 8 bytes are the writing process's
(``writer_bytes``): the hours of a window are a range of ``_id``, which every server
answers from its ``_id`` index, and no two processes ever write the same document, so a
counter is never lost to two writers (FerretDB's updates read and write back the whole
document). One process writes one tenant's counters one update at a time
(``StatsRecorder``), about twice a second while rows end.

An hour's document holds the hour in 5-minute slices (``SLICE_MINUTES``)::

    t.<slice>          {s, f, k, e, r, h}      every row of the slice
    a.<action id>      {s, f, k, e, r, h, l}   each action over the hour
    p.<slice>.<action> {s, f, k, e, r, h, l}   each action in each slice

``s f k e`` count SUCCEEDED, FAILED, SKIPPED and EXPIRED ends; ``r`` the attempts beyond
the first; ``h`` is a histogram of the latency (trigger accepted → final response) of
the rows that were sent, SUCCEEDED or FAILED: ``h.<bin>`` counts those of bin
``latency_bin(ms)``, four bins per doubling (each estimate within 9 % of the rows'
value). ``l`` is the latest end, as ``ms * 8 + status code`` so that ``$max`` keeps it.
A query reads an hour's ``t`` and ``a`` (12 slices and one sum per action), and ``p``
only for the two hours at the window's edges: 24 hours are about 25 small documents
per writing process, however many rows ended in them.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.collection import AsyncCollection

from tenants.database import is_duplicate, now, patiently

log = logging.getLogger("event_manager.stats")

SLICE_MINUTES = 5
"""The smallest bucket a dashboard can ask for."""
SLICES = 60 // SLICE_MINUTES
BINS_PER_DOUBLING = 4
MAX_BIN = 127
"""The last latency bin holds everything from 2^(127/4) ms (about 46 days) on."""
COUNTED = {"SUCCEEDED": "s", "FAILED": "f", "SKIPPED": "k", "EXPIRED": "e"}
STATUS_CODES = {"SUCCEEDED": 1, "FAILED": 2, "SKIPPED": 3, "EXPIRED": 4}
STATUS_OF_CODE = {code: status for status, code in STATUS_CODES.items()}
TIMED = ("SUCCEEDED", "FAILED")
"""The statuses whose rows were sent: only they have a latency."""
WRITE_EVERY_SECONDS = 0.5
"""How long a process gathers ends before writing them (one update per tenant)."""


def writer_bytes() -> bytes:
    """The 8 bytes that make a process's documents its own."""
    return os.urandom(8)


def hour_of(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def hour_id(hour: datetime, writer: bytes) -> ObjectId:
    return ObjectId(int(hour.timestamp()).to_bytes(4, "big") + writer)


def hour_bound(hour: datetime) -> ObjectId:
    """The smallest ``_id`` of ``hour``'s documents."""
    return ObjectId(int(hour.timestamp()).to_bytes(4, "big") + bytes(8))


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def millis(moment: datetime) -> int:
    """Milliseconds since 1970, as the database keeps a date (the rest dropped)."""
    return (moment - EPOCH) // timedelta(milliseconds=1)


def latency_bin(ms: float) -> int:
    """``latency_bin(1000)`` is 39: bin b holds [2^(b/4), 2^((b+1)/4)) ms; bin 0 also
    holds everything under a millisecond."""
    if ms < 1:
        return 0
    return min(MAX_BIN, int(math.log2(ms) * BINS_PER_DOUBLING))


def bin_ms(bin_: int) -> float:
    """The value a bin stands for: its middle (geometrically)."""
    return round(2 ** ((bin_ + 0.5) / BINS_PER_DOUBLING), 1)


def percentile(histogram: dict[int, int], q: float) -> float | None:
    """The nearest-rank ``q`` quantile (0 < q ≤ 1) of a histogram, or None when empty."""
    total = sum(histogram.values())
    if total <= 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for bin_ in sorted(histogram):
        seen += histogram[bin_]
        if seen >= rank:
            return bin_ms(bin_)
    return bin_ms(max(histogram))


@dataclass(frozen=True)
class End:
    """What one row's end adds to the counters."""

    at: datetime
    action_id: str | None
    status: str
    retried: int
    bin: int | None


def end_of(row: dict[str, Any]) -> End | None:
    """The end a final row records (``updated_at`` is when it ended); None otherwise."""
    status = row.get("status")
    if status not in COUNTED:
        return None
    at = row["updated_at"]
    bin_ = None
    if status in TIMED:
        bin_ = latency_bin(millis(at) - millis(row["created_at"]))
    return End(at.astimezone(UTC), row.get("action_id"), status,
               max(0, row.get("attempts", 0) - 1), bin_)


def increments(ends: Iterable[tuple[End, int]]) -> dict[datetime, dict[str, dict[str, int]]]:
    """The update of each hour's document counting ``ends`` (each with +1, or -1 to take
    an end back): ``{hour: {"$inc": {...}, "$max": {...}}}``."""
    updates: dict[datetime, dict[str, dict[str, int]]] = {}
    for end, sign in ends:
        hour = hour_of(end.at)
        update = updates.setdefault(hour, {"$inc": defaultdict(int), "$max": {}})
        inc, top = update["$inc"], update["$max"]
        slice_ = str(end.at.minute // SLICE_MINUTES)
        prefixes = [f"t.{slice_}."]
        if end.action_id:
            prefixes += [f"a.{end.action_id}.", f"p.{slice_}.{end.action_id}."]
            if sign > 0:
                last = millis(end.at) * 8 + STATUS_CODES[end.status]
                for prefix in prefixes[1:]:
                    top[prefix + "l"] = max(top.get(prefix + "l", 0), last)
        for prefix in prefixes:
            inc[prefix + COUNTED[end.status]] += sign
            if end.retried:
                inc[prefix + "r"] += sign * end.retried
            if end.bin is not None:
                inc[f"{prefix}h.{end.bin}"] += sign
    for update in updates.values():
        update["$inc"] = {k: v for k, v in update["$inc"].items() if v}
        for op in [op for op, fields in update.items() if not fields]:
            del update[op]
    return updates


@dataclass
class Tally:
    """Counters summed over slices: ``s f k e r`` (see the module), a latency histogram
    and the latest end."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys("sfker", 0))
    histogram: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    last: int = 0

    def add(self, part: dict[str, Any]) -> None:
        counts = self.counts
        for key, value in part.items():
            if key == "h":
                histogram = self.histogram
                for bin_, n in value.items():
                    histogram[int(bin_)] += n
            elif key == "l":
                if value > self.last:
                    self.last = value
            elif key in counts:
                counts[key] += value

    @property
    def last_status(self) -> str | None:
        return STATUS_OF_CODE.get(self.last % 8) if self.last else None

    @property
    def last_at(self) -> datetime | None:
        return datetime.fromtimestamp(self.last // 8 / 1000, UTC) if self.last else None


@dataclass
class Window:
    """What a window's counters add up to: a tally per bucket (from ``since``, each
    ``minutes`` long) and per action id."""

    since: datetime
    until: datetime
    minutes: int
    buckets: list[Tally]
    actions: dict[str, Tally]


class TenantStats:
    """One tenant's counters: written by ``StatsRecorder``, read here."""

    def __init__(self, collection: AsyncCollection, recorder: StatsRecorder | None,
                 code: str) -> None:
        self.collection = collection
        self.recorder = recorder
        self.code = code

    def count(self, ends: list[tuple[End, int]]) -> None:
        """Count ``ends`` (written with the next update of this process)."""
        if ends and self.recorder is not None:
            self.recorder.add(self.code, self.collection, ends)

    async def window(self, since: datetime, until: datetime, minutes: int) -> Window:
        """The counters of [since, until), both on ``SLICE_MINUTES`` boundaries."""
        buckets = [Tally() for _ in range(math.ceil((until - since) / timedelta(minutes=minutes)))]
        actions: dict[str, Tally] = defaultdict(Tally)
        first, last = hour_of(since), hour_of(until - timedelta(microseconds=1))
        edges = {first, last}
        inner = (first + timedelta(hours=1), last)  # the hours wholly in the window
        docs = []
        if inner[0] < inner[1]:
            docs += await self._read(inner[0], inner[1], {"t": 1, "a": 1})
        for hour in sorted(edges):
            docs += await self._read(hour, hour + timedelta(hours=1), {"t": 1, "p": 1})
        step = minutes * 60
        start = since.timestamp()
        for doc in docs:
            hour = doc["_id"].generation_time.timestamp()
            for slice_, part in doc.get("t", {}).items():
                at = hour + int(slice_) * SLICE_MINUTES * 60
                if start <= at < until.timestamp():
                    buckets[int((at - start) // step)].add(part)
            for action_id, part in doc.get("a", {}).items():
                actions[action_id].add(part)
            for slice_, parts in doc.get("p", {}).items():
                at = hour + int(slice_) * SLICE_MINUTES * 60
                if start <= at < until.timestamp():
                    for action_id, part in parts.items():
                        actions[action_id].add(part)
        return Window(since, until, minutes, buckets, dict(actions))

    async def _read(self, start: datetime, end: datetime,
                    fields: dict[str, int]) -> list[dict[str, Any]]:
        query = {"_id": {"$gte": hour_bound(start), "$lt": hour_bound(end)}}
        return await patiently(lambda: self.collection.find(query, fields).to_list(None))

    async def prune(self, before: datetime) -> int:
        """Drop the hours that ended before ``before``."""
        found = await self.collection.delete_many({"_id": {"$lt": hour_bound(hour_of(before))}})
        return found.deleted_count

    async def clear(self) -> int:
        return (await self.collection.delete_many({})).deleted_count


async def once(collection: AsyncCollection, doc_id: ObjectId,
               update: dict[str, dict[str, Any]], number: int) -> None:
    """Make ``update`` of the document ``doc_id`` as its update number ``number``: an
    update made already (its reply lost) finds the number set, and its upsert then finds
    the ``_id`` taken."""
    update = {**update, "$set": {"n": number}}
    try:
        await collection.update_one({"_id": doc_id, "n": {"$lt": number}}, update, upsert=True)
    except Exception as exc:
        if not is_duplicate(exc):
            raise


@dataclass
class Pending:
    """One tenant's ends that this process has not written yet."""

    collection: AsyncCollection
    ends: list[tuple[End, int]] = field(default_factory=list)
    writer: asyncio.Future[None] | None = None


class StatsRecorder:
    """One process's counting: the ends of each tenant are gathered for
    ``WRITE_EVERY_SECONDS`` and written together, one update per hour document, one
    tenant's update at a time, into documents no other process writes. A write that
    fails (after ``patiently``'s tries) loses its ends, logged: ``event-manager
    recount-stats`` counts a tenant's rows again. A process that stops writes what it
    holds first (``flush``)."""

    def __init__(self, delay: float = WRITE_EVERY_SECONDS) -> None:
        self.writer = writer_bytes()
        self.delay = delay
        self.pending: dict[str, Pending] = {}
        self.written = 0
        """How many updates this process made: each update sets its number (``n``) and is
        made only over a smaller one, so an update tried again after its reply was lost
        is not counted twice."""

    def add(self, code: str, collection: AsyncCollection, ends: list[tuple[End, int]]) -> None:
        pending = self.pending.get(code)
        if pending is None:
            pending = self.pending[code] = Pending(collection)
        pending.ends.extend(ends)
        if pending.writer is None:
            try:
                pending.writer = asyncio.ensure_future(self._write(code, pending))
            except RuntimeError:  # no event loop (a script): flush() writes them
                pass

    async def _write(self, code: str, pending: Pending) -> None:
        try:
            while pending.ends:
                await asyncio.sleep(self.delay)
                await self._write_now(code, pending)
        finally:
            pending.writer = None
            if not pending.ends:
                self.pending.pop(code, None)

    async def _write_now(self, code: str, pending: Pending) -> None:
        ends, pending.ends = pending.ends, []
        for hour, update in increments(ends).items():
            self.written += 1
            try:
                await patiently(partial(once, pending.collection, hour_id(hour, self.writer),
                                        update, self.written))
            except Exception as exc:
                log.warning("tenant %s: could not count %d ends of the hour %s (%s: %s)",
                            code, len(ends), hour.isoformat(), type(exc).__name__, exc)

    async def flush(self) -> None:
        """Write every end held now (before the process stops)."""
        for code, pending in list(self.pending.items()):
            if pending.writer is not None:
                await asyncio.gather(pending.writer, return_exceptions=True)
            if pending.ends:
                await self._write_now(code, pending)


def ended_now(rows: Iterable[dict[str, Any]], sign: int = 1) -> list[tuple[End, int]]:
    """The ends of the final rows among ``rows``."""
    return [(end, sign) for row in rows if (end := end_of(row)) is not None]


RECOUNT_BATCH = 10_000


async def recount(rows: AsyncCollection, stats: TenantStats,
                  progress: Callable[[int], None] = lambda counted: None) -> int:
    """Count a tenant's counters again from its activity rows (after an upgrade, or to
    repair counts lost with a process): the counters are cleared, and every row that
    ended before that moment is counted, as a writer of its own; ``progress`` is told
    the rows counted so far every ``RECOUNT_BATCH`` rows. The rows that end meanwhile are
    counted by the processes that end them; one that ended in the half second before the
    clearing, not yet written by its process, is counted twice. How many rows counted."""
    moment = now()
    await stats.clear()
    hours: dict[datetime, dict[str, dict[str, int]]] = {}
    counted = 0
    batch: list[tuple[End, int]] = []
    query = {"status": {"$in": list(COUNTED)}, "updated_at": {"$lt": moment}}
    fields = {"status": 1, "created_at": 1, "updated_at": 1, "attempts": 1, "action_id": 1}
    async for row in rows.find(query, fields, batch_size=RECOUNT_BATCH):
        end = end_of(row)
        if end is not None:
            batch.append((end, 1))
        if len(batch) == RECOUNT_BATCH:
            counted += len(batch)
            merge(hours, increments(batch))
            batch = []
            progress(counted)
    counted += len(batch)
    merge(hours, increments(batch))
    writer = writer_bytes()
    for hour, update in sorted(hours.items()):
        await stats.collection.update_one({"_id": hour_id(hour, writer)}, update, upsert=True)
    progress(counted)
    return counted


def merge(into: dict[datetime, dict[str, dict[str, int]]],
          more: dict[datetime, dict[str, dict[str, int]]]) -> None:
    """Add the updates ``more`` to ``into`` (``increments``' shape)."""
    for hour, update in more.items():
        target = into.setdefault(hour, {"$inc": {}, "$max": {}})
        inc, top = target["$inc"], target["$max"]
        for key, value in update.get("$inc", {}).items():
            inc[key] = inc.get(key, 0) + value
        for key, value in update.get("$max", {}).items():
            top[key] = max(top.get(key, 0), value)
