"""Delivery counters for dashboards, kept as rows end instead of counted from the rows.

Each process counts the rows that end in it (``ActivityLog.ended``) into documents of
its own, one per hour (``t_<code>_stats``). A document's ``_id`` is an ObjectId whose
time is the hour's start and whose other 8 bytes are the writing process's
(``writer_bytes``): the hours of a window are a range of ``_id``, which every server
answers from its ``_id`` index, and no two processes ever write the same document, so a
counter is never lost to two writers (FerretDB's updates read and write back the whole
document). One process writes one tenant's counters one write at a time
(``StatsRecorder``), about twice a second while rows end: it keeps what it counted of
the hour and replaces its document with all of it.

An hour's counters are three sections, each kept as compressed JSON (``pack``: FerretDB
parses every document it reads whole, and a few short values cost far less than
thousands of fields)::

    t: {<slice>: {s, f, k, e, r, h}}            every row of each 5-minute slice
    a: {<action id>: {s, f, k, e, r, h, l}}     each action over the hour
    p: {<slice>: {<action id>: {...}}}          each action in each slice

``s f k e`` count SUCCEEDED, FAILED, SKIPPED and EXPIRED ends; ``r`` the attempts beyond
the first; ``h`` is a histogram of the latency (trigger accepted → final response) of
the rows that were sent, SUCCEEDED or FAILED: ``h.<bin>`` counts those of bin
``latency_bin(ms)``, four bins per doubling (each estimate within 9 % of the rows'
value). ``l`` is the latest end, as ``ms * 8 + status code``. A query reads an hour's
``t`` and ``a``, and ``p`` only for the two hours at the window's edges. Once an hour
is over, its writers' documents are folded into one (``TenantStats.fold``): 24 hours are
about 25 documents of a few kilobytes, however many rows ended in them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import zlib
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from bson import Binary, ObjectId
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
            if key == "h":  # bins as numbers (``Sections(doc, numbered=True)``)
                histogram = self.histogram
                for bin_, n in value.items():
                    histogram[bin_] += n
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


SECTIONS = ("t", "a", "p")
FOLD_AFTER = timedelta(minutes=10)
"""An hour is folded once it ended this long ago: its writers wrote its last ends
within seconds of its end (a FAILED row queued again by ``retryActivity`` takes its end
back in a document of its own, written once)."""
FOLDED_WRITER = b"\xff" * 8


def folded_id(hour: datetime) -> ObjectId:
    return hour_id(hour, FOLDED_WRITER)


def split(hour: datetime, docs: list[dict[str, Any]]
          ) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """An hour's documents: its folded one (or None), and its writers' documents that
    the folded one does not hold yet."""
    folded = next((d for d in docs if d["_id"] == folded_id(hour)), None)
    held = {(str(o["id"]), o["n"]) for o in folded["of"]} if folded is not None else set()
    live = [d for d in docs
            if d["_id"] != folded_id(hour) and (str(d["_id"]), d.get("n")) not in held]
    return folded, live


class Sections(dict):  # type: ignore[type-arg]
    """A document's sections, each unpacked when first read (``p`` is read for the
    window's first and last hours only); a section written as fields (``$inc``) is read
    as it is. ``numbered``: with each histogram's bins as numbers (as ``Tally.add``
    takes them: converted once, not at each add of a cached folded hour); otherwise as
    stored, text (as ``fold`` merges and packs them)."""

    def __init__(self, doc: dict[str, Any], numbered: bool = False) -> None:
        super().__init__()
        self.doc = doc
        self.numbered = numbered

    def __missing__(self, section: str) -> dict[str, Any]:
        value = self.doc.get(section, {})
        decoded = value if isinstance(value, dict) else unpack(value)
        self[section] = decoded = _numbered(decoded) if self.numbered else decoded
        return decoded


def _numbered(counters: dict[str, Any]) -> dict[Any, Any]:
    """``counters`` (nested as a section nests them) with each histogram's (``h``) bins
    as numbers."""
    return {key: ({int(b): n for b, n in value.items()} if key == "h" else _numbered(value))
            if isinstance(value, dict) else value for key, value in counters.items()}


FOLDED_CACHE = 256
"""Folded hours kept unpacked per process: a dashboard watching 24 hours reads the same
folded documents again at each refresh, and unpacking them was a fifth of its time."""
_folded: OrderedDict[tuple[str, ObjectId, ObjectId], Sections] = OrderedDict()


def folded_sections(namespace: str, doc: dict[str, Any]) -> Sections:
    """A folded document's sections, unpacked once per version: each write of a folded
    document (``TenantStats.fold``, ``recount``) gives it a new ``v``, so the sections of
    one ``v`` never change (``gen`` would not do: ``recount-stats`` writes the hours anew
    from ``gen`` 1). At most ``FOLDED_CACHE`` are kept, the least recently read dropped
    first. A document of an earlier version, without ``v``, is unpacked at each read."""
    if "v" not in doc:
        return Sections(doc, numbered=True)
    key = (namespace, doc["_id"], doc["v"])
    found = _folded.get(key)
    if found is None:
        found = _folded[key] = Sections(doc, numbered=True)
        while len(_folded) > FOLDED_CACHE:
            _folded.popitem(last=False)
    else:
        _folded.move_to_end(key)
        if "p" in doc and "p" not in found.doc:  # read without p before, with it now
            found.doc = doc
            found.pop("p", None)
    return found


def pack(section: dict[str, Any]) -> Binary:
    """A folded section: its counters as JSON, compressed (the keys repeat: a tenth of
    the size), so that the server reads one short value instead of thousands of fields."""
    return Binary(zlib.compress(json.dumps(section, separators=(",", ":")).encode(), 1))


def unpack(value: bytes | str) -> dict[str, Any]:
    """``pack``'s section read back (plain JSON text is read too)."""
    return json.loads(value if isinstance(value, str) else zlib.decompress(value))


def add_nested(into: dict[str, Any], more: dict[str, Any]) -> None:
    """Add counters (nested as the documents nest them) into ``into``: sums, but the
    maximum of ``l`` (the latest end)."""
    for key, value in more.items():
        if isinstance(value, dict):
            add_nested(into.setdefault(key, {}), value)
        elif key == "l":
            into[key] = max(into.get(key, 0), value)
        else:
            into[key] = into.get(key, 0) + value


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
        """The counters of [since, until), both on ``SLICE_MINUTES`` boundaries. Hours
        that ended ``FOLD_AFTER`` ago and still have documents of writers are folded
        (``fold``) once they are read."""
        buckets = [Tally() for _ in range(math.ceil((until - since) / timedelta(minutes=minutes)))]
        actions: dict[str, Tally] = defaultdict(Tally)
        start, stop, step = since.timestamp(), until.timestamp(), minutes * 60
        first, last = hour_of(since), hour_of(until - timedelta(microseconds=1))
        docs = await self._read(first, first + timedelta(hours=1))
        if last > first:
            docs += await self._read(first + timedelta(hours=1), last, {"p": 0})
            docs += await self._read(last, last + timedelta(hours=1))
        by_hour: dict[datetime, list[dict[str, Any]]] = defaultdict(list)
        for doc in docs:
            by_hour[doc["_id"].generation_time].append(doc)
        foldable = now() - timedelta(hours=1) - FOLD_AFTER
        for hour, found in sorted(by_hour.items()):
            folded, live = split(hour, found)
            parts = [Sections(d, numbered=True) for d in live]
            if folded is not None:
                parts.insert(0, folded_sections(self.collection.full_name, folded))
            whole = start <= hour.timestamp() and hour.timestamp() + 3600 <= stop
            at = hour.timestamp()
            for part in parts:
                for slice_, tally in part["t"].items():
                    moment = at + int(slice_) * SLICE_MINUTES * 60
                    if start <= moment < stop:
                        buckets[int((moment - start) // step)].add(tally)
                if whole:
                    for action_id, tally in part["a"].items():
                        actions[action_id].add(tally)
                    continue
                for slice_, tallies in part["p"].items():
                    if start <= at + int(slice_) * SLICE_MINUTES * 60 < stop:
                        for action_id, tally in tallies.items():
                            actions[action_id].add(tally)
            if live and hour < foldable:
                await self.fold(hour, *split(hour, await self._read(
                    hour, hour + timedelta(hours=1))))
        return Window(since, until, minutes, buckets, dict(actions))

    async def _read(self, start: datetime, end: datetime,
                    fields: dict[str, int] | None = None) -> list[dict[str, Any]]:
        """The documents of the hours from ``start`` to ``end`` (the window's inner
        hours without ``p``: their actions are read from ``a``)."""
        query = {"_id": {"$gte": hour_bound(start), "$lt": hour_bound(end)}}
        return await patiently(lambda: self.collection.find(query, fields).to_list(None))

    async def fold(self, hour: datetime, folded: dict[str, Any] | None,
                   live: list[dict[str, Any]]) -> bool:
        """Fold an hour that is over: its writers' documents (``live``) added into the
        hour's folded document (``folded``, or a new one), which names them (``of``: each
        ``_id`` with its update number ``n``) so that readers skip them until they are
        deleted. The folded document keeps each section as one compressed JSON value
        (``pack``): a server reads and sends a few short values much faster than
        thousands of fields. Written only
        over the version read (``gen``): of two processes folding at once, one does.
        Whether this call folded."""
        merged: dict[str, Any] = {"t": {}, "a": {}, "p": {}}
        of: list[dict[str, Any]] = []
        generation = 0
        if folded is not None:
            for section in SECTIONS:
                add_nested(merged[section], unpack(folded[section]))
            of, generation = folded["of"], folded["gen"]
        for doc in live:
            sections = Sections(doc)
            for section in SECTIONS:
                add_nested(merged[section], sections[section])
            of.append({"id": doc["_id"], "n": doc.get("n")})
        new = {"_id": folded_id(hour), "gen": generation + 1, "v": ObjectId(), "of": of,
               **{section: pack(merged[section]) for section in SECTIONS}}
        try:
            if folded is None:
                await self.collection.insert_one(new)
            elif not (await self.collection.replace_one(
                    {"_id": new["_id"], "gen": generation}, new)).matched_count:
                return False
        except Exception as exc:
            if is_duplicate(exc):
                return False
            raise
        for doc in live:
            await self.collection.delete_one({"_id": doc["_id"], "n": doc.get("n")})
        return True

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
    ``WRITE_EVERY_SECONDS`` and written together, one write per hour document, one
    tenant's write at a time, into documents no other process writes. A write that
    fails (after ``patiently``'s tries) loses its ends, logged: ``event-manager
    recount-stats`` counts a tenant's rows again. A process that stops writes what it
    holds first (``flush``)."""

    def __init__(self, delay: float = WRITE_EVERY_SECONDS) -> None:
        self.writer = writer_bytes()
        self.delay = delay
        self.pending: dict[str, Pending] = {}
        self.written = 0
        """How many writes this process made: each sets its number (``n``), which the
        folded document names the writers' documents it holds by (``fold``)."""
        self.hours: dict[tuple[str, datetime], dict[str, Any]] = {}
        """What this process counted of each tenant's recent hours, as its documents
        hold it: each write replaces the document with it, packed (``pack``)."""

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
        recent = now() - timedelta(hours=1) - FOLD_AFTER / 2
        for hour, update in increments(ends).items():
            self.written += 1
            try:
                if hour > recent:
                    await self._replace(code, pending.collection, hour, update)
                else:  # an hour that may be folded (an end taken back): a document of its own
                    await patiently(partial(once, pending.collection,
                                            hour_id(hour, writer_bytes()), update, self.written))
            except Exception as exc:
                log.warning("tenant %s: could not count %d ends of the hour %s (%s: %s)",
                            code, len(ends), hour.isoformat(), type(exc).__name__, exc)
        for key in [k for k in self.hours if k[1] <= recent - timedelta(hours=1)]:
            del self.hours[key]

    async def _replace(self, code: str, collection: AsyncCollection, hour: datetime,
                       update: dict[str, dict[str, int]]) -> None:
        """This process's document of the hour replaced with all it counted of the hour,
        packed: a server reads a few short values much faster than thousands of fields,
        and a replace tried again is the same replace. A document gone since the last
        write (``recount-stats`` cleared the counters) is written again with ``update``
        alone."""
        key = (code, hour)
        known = key in self.hours
        state = self.hours.setdefault(key, {})
        add_updates({hour: state}, {hour: update})
        doc_id = hour_id(hour, self.writer)

        def doc(sections: dict[str, Any]) -> dict[str, Any]:
            return {"n": self.written, **{s: pack(sections.get(s, {})) for s in SECTIONS}}

        replaced = await patiently(lambda: collection.replace_one(
            {"_id": doc_id}, doc(state), upsert=not known))
        if known and not replaced.matched_count:
            state.clear()
            add_updates({hour: state}, {hour: update})
            await patiently(lambda: collection.replace_one({"_id": doc_id}, doc(state),
                                                           upsert=True))

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
    ended before that moment is counted into each hour's folded document; ``progress``
    is told the rows counted so far every ``RECOUNT_BATCH`` rows. The rows that end
    meanwhile are counted by the processes that end them; one that ended in the half
    second before the clearing, not yet written by its process, is counted twice. How
    many rows counted."""
    moment = now()
    await stats.clear()
    hours: dict[datetime, dict[str, Any]] = {}
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
            add_updates(hours, increments(batch))
            batch = []
            progress(counted)
    counted += len(batch)
    add_updates(hours, increments(batch))
    for hour, sections in sorted(hours.items()):
        await stats.collection.insert_one({
            "_id": folded_id(hour), "gen": 1, "v": ObjectId(), "of": [],
            **{section: pack(sections.get(section, {})) for section in SECTIONS}})
    progress(counted)
    return counted


def add_updates(hours: dict[datetime, dict[str, Any]],
                updates: dict[datetime, dict[str, dict[str, int]]]) -> None:
    """Add ``increments``' updates to nested counters by hour, as documents nest them."""
    for hour, update in updates.items():
        into = hours.setdefault(hour, {})
        for op, fields in update.items():
            for path, value in fields.items():
                *parents, key = path.split(".")
                node = into
                for part in parents:
                    node = node.setdefault(part, {})
                node[key] = max(node.get(key, 0), value) if op == "$max" else \
                    node.get(key, 0) + value
