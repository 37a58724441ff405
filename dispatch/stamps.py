"""Config stamps: one value per tenant in Redis (``<database>:config:<tenant>``), replaced
by a fresh random one after every change to what a trigger or a delivery reads (actions,
events, settings, custom parameters), before the API answers the change.

A worker keeps a tenant's settings, parameters and actions in memory and reads the
stamp once per message; the API keeps its events, settings and action names and reads
the stamp once per batch of triggers. The same stamp means nothing changed since they
were loaded, so a delivery never uses an action older than the last change its tenant's
admin saw acknowledged. One Redis read replaces three database reads; a random value
(not a counter) cannot come back after Redis loses its data. If Redis does not answer,
everything is read from the database as before (``ConfigCache.snapshot``).

When Redis answers reads but refuses the stamp's write (memory full under
``noeviction``, a write-refusing ACL, one host cut off from Redis), the change is marked
in MongoDB instead (``config_changes`` in the system database) before the API answers,
and every process reads those marks at most every ``POLL_SECONDS`` when it next uses a
snapshot: a tenant with a new mark is loaded afresh. The bound is then ``POLL_SECONDS``
(plus one read of the marks) instead of none; the mark is removed once Redis takes the
stamp. Only when both refuse does a process keep what it holds, ``ConfigCache.seconds``
at most.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from uuid import uuid4

import redis.asyncio as aioredis
from pymongo.asynchronous.collection import AsyncCollection

from event_manager.config import Settings

log = logging.getLogger("event_manager.stamps")
RESTAMP_SECONDS = 0.5
"""How often a stamp that Redis refused is written again."""
POLL_SECONDS = 0.5
"""How old the marks of changes Redis refused to stamp may be when a snapshot is used."""
MARK_SECONDS = 5.0
"""How long writing or reading the marks may take before it is given up (logged)."""
MAX_MARKS = 10_000
"""Marks read at most: each is one tenant whose stamp Redis refuses, normally none."""
STALE_MARK = timedelta(hours=1)
"""A mark older than this was left by a process that stopped before Redis took its
stamp; any process reading the marks removes it (every snapshot has long expired)."""
T = TypeVar("T")


class ConfigStamps:
    def __init__(self, redis: aioredis.Redis, prefix: str,
                 marks: AsyncCollection | None = None) -> None:
        self.redis = redis
        self.prefix = prefix
        self.marks = marks
        """MongoDB's record of the changes Redis refused to stamp (``config_changes``):
        ``{_id: tenant, token, at}``; None: not kept (a unit test)."""
        self._next: _Read | None = None
        self.unstamped: dict[str, str] = {}
        """Changes whose stamp Redis refused, written again by ``_restamp``: tenant → the
        token of its mark."""
        self._restamping: asyncio.Future[None] | None = None
        self.refused: list[Callable[[str], None]] = []
        """Called with the tenant when its stamp is refused: this process's caches."""

    @classmethod
    def of(cls, redis: aioredis.Redis, settings: Settings,
           marks: AsyncCollection | None = None) -> ConfigStamps:
        return cls(redis, f"{settings.database}:config:", marks)

    def key(self, tenant: str) -> str:
        return f"{self.prefix}{tenant}"

    async def touch(self, tenant: str) -> None:
        """After a change: workers load the tenant's configuration afresh. The change is
        already saved, so a Redis error is logged, not raised: this process forgets what
        it holds of the tenant, the change is marked in MongoDB (other processes see the
        mark within ``POLL_SECONDS``), and the stamp is written again every
        ``RESTAMP_SECONDS`` in the background until Redis takes it."""
        try:
            await self.redis.set(self.key(tenant), uuid4().hex)
        except (aioredis.RedisError, OSError) as exc:
            token = self.unstamped[tenant] = uuid4().hex
            for forget in self.refused:
                forget(tenant)
            marked = await self._mark(tenant, token)
            log.warning("could not stamp the change of tenant %s (%s: %s); %s; trying again "
                        "every %g s", tenant, type(exc).__name__, exc,
                        "marked it in MongoDB for the other processes" if marked else
                        "nor mark it in MongoDB: other processes may use what they hold "
                        "of the tenant for 30 s", RESTAMP_SECONDS)
            if self._restamping is None or self._restamping.done():
                self._restamping = asyncio.ensure_future(self._restamp())

    async def _mark(self, tenant: str, token: str) -> bool:
        if self.marks is None:
            return False
        try:
            async with asyncio.timeout(MARK_SECONDS):
                await self.marks.replace_one(
                    {"_id": tenant}, {"token": token, "at": datetime.now(UTC)}, upsert=True)
        except Exception as exc:  # noqa: BLE001 - logged by the caller's warning
            log.error("could not mark the change of tenant %s in MongoDB (%s: %s)",
                      tenant, type(exc).__name__, exc)
            return False
        return True

    async def _restamp(self) -> None:
        """Stamp the changes Redis refused, until it takes them all; then remove their
        marks. A change made meanwhile keeps its own (newer) mark until it is stamped."""
        while self.unstamped:
            await asyncio.sleep(RESTAMP_SECONDS)
            for tenant, token in list(self.unstamped.items()):
                try:
                    await self.redis.set(self.key(tenant), uuid4().hex)
                except (aioredis.RedisError, OSError):
                    break  # still refused: the next round
                if self.unstamped.get(tenant) == token:
                    del self.unstamped[tenant]
                log.info("stamped the change of tenant %s", tenant)
                await self._unmark(tenant, token)

    async def _unmark(self, tenant: str, token: str) -> None:
        if self.marks is None:
            return
        try:
            async with asyncio.timeout(MARK_SECONDS):
                await self.marks.delete_one({"_id": tenant, "token": token})
        except Exception as exc:  # noqa: BLE001 - a mark left is removed when stale
            log.warning("could not remove the mark of tenant %s's change (%s: %s)",
                        tenant, type(exc).__name__, exc)

    async def read_marks(self) -> dict[str, str] | None:
        """The marks of changes Redis refused to stamp, tenant → token (None: not read,
        logged); removes those older than ``STALE_MARK``."""
        if self.marks is None:
            return {}
        try:
            async with asyncio.timeout(MARK_SECONDS):
                found = await self.marks.find({}).limit(MAX_MARKS).to_list()
                stale = datetime.now(UTC) - STALE_MARK
                if any(_aware(d["at"]) < stale for d in found):
                    await self.marks.delete_many({"at": {"$lt": stale}})
        except Exception as exc:  # noqa: BLE001 - the next use reads them again
            log.warning("could not read the marks of unstamped changes (%s: %s)",
                        type(exc).__name__, exc)
            return None
        return {d["_id"]: d["token"] for d in found}

    async def current(self, tenant: str) -> bytes | None:
        """The tenant's stamp; None if no change was stamped since Redis started.

        The reads asked for at one moment (the requests and messages of one turn of
        the event loop) are made as one MGET, sent after all of them were asked for:
        a change acknowledged before a read was asked for is always seen."""
        read = self._next
        if read is None:
            read = self._next = _Read(asyncio.get_running_loop().create_future())
            asyncio.get_running_loop().call_soon(self._send, read)
        read.names.add(tenant)
        values = await asyncio.shield(read.values)
        return values.get(tenant)

    def _send(self, read: _Read) -> None:
        self._next = None  # later reads wait for a read of their own
        asyncio.ensure_future(read.send(self))


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


@dataclass
class _Read:
    """One MGET of the stamps asked for in one turn of the event loop."""

    values: asyncio.Future[dict[str, bytes | None]]
    names: set[str] = field(default_factory=set)

    async def send(self, stamps: ConfigStamps) -> None:
        names = list(self.names)
        try:
            found = await stamps.redis.mget([stamps.key(n) for n in names])
        except BaseException as exc:  # each reader gets the error (cancelled: an OSError)
            self.values.set_exception(exc if isinstance(exc, Exception) else
                                      OSError("the stamp read was cancelled"))
            self.values.exception()  # retrieved: a reader that gave up raises no warning
            if not isinstance(exc, Exception):
                raise
            return
        self.values.set_result(dict(zip(names, found, strict=True)))


class Snapshot:
    """A tenant's configuration as of one stamp: each part (settings, an action, ...) read
    from the database once, when first asked for, and shared by all who ask."""

    def __init__(self, stamp: bytes | None, until: float) -> None:
        self.stamp = stamp
        self.until = until
        self.parts: dict[Hashable, asyncio.Future[Any]] = {}

    async def part(self, key: Hashable, load: Callable[[], Awaitable[T]]) -> T:
        """``load()``'s result, loaded once per snapshot; a failed or cancelled load is
        tried again by the next caller. Shielded: a caller that is cancelled cancels
        the load for no one else."""
        return await asyncio.shield(self.start(key, load))

    def start(self, key: Hashable, load: Callable[[], Awaitable[T]]) -> asyncio.Future[T]:
        """The part's load, started now unless it is under way or done (``part`` awaits
        it): a caller can start the loads of several parts before it awaits the first."""
        found = self.parts.get(key)
        if found is None or found.cancelled() or (found.done() and found.exception()):
            found = self.parts[key] = asyncio.ensure_future(load())
            found.add_done_callback(_retrieved)
        return found

    async def known(self, key: Hashable, load: Callable[[], Awaitable[T | None]]) -> T | None:
        """``part``, except that a None (nothing found) is not kept: the next caller
        asks again, and unknown keys take no memory."""
        value = await self.part(key, load)
        if value is None:
            self.parts.pop(key, None)
        return value


def _retrieved(load: asyncio.Future[Any]) -> None:
    """A failed load is reported to those who await it; one that no one awaits any more
    leaves no "exception was never retrieved" behind."""
    if not load.cancelled():
        load.exception()


class ConfigCache:
    """The current snapshot of each tenant: reused while the tenant's stamp is the one it
    was made at, for ``seconds`` at most (the bound for a stamp lost to a Redis error).
    The snapshots of ``tenants`` tenants at most are kept, the least recently asked for
    dropped first (``EVENT_MANAGER_CACHED_TENANTS``): an installation of many tenants
    costs each process no more memory than that many."""

    def __init__(self, stamps: ConfigStamps | None, seconds: float = 30.0,
                 tenants: int = 1_000) -> None:
        self.stamps = stamps
        self.seconds = seconds
        self.tenants = tenants
        self.held: OrderedDict[str, Snapshot] = OrderedDict()
        self.marks: dict[str, str] = {}
        """The marks of unstamped changes last read: tenant → token."""
        self._marks_read = -POLL_SECONDS
        self._reading: asyncio.Future[None] | None = None
        if stamps is not None:
            stamps.refused.append(self.forget)

    def forget(self, tenant: str) -> None:
        self.held.pop(tenant, None)

    async def snapshot(self, tenant: str) -> Snapshot:
        """One Redis read (and, every ``POLL_SECONDS``, one read of the marks of changes
        Redis refused to stamp). Without an answer (or without stamps) the snapshot is new
        and not kept: every part is read from the database."""
        if self.stamps is None:
            return Snapshot(None, 0.0)
        if time.monotonic() - self._marks_read >= POLL_SECONDS or self._reading is not None:
            await self._read_marks()
        try:
            stamp = await self.stamps.current(tenant)
        except (aioredis.RedisError, OSError) as exc:
            log.debug("no config stamp for %s (%s); reading the database", tenant, exc)
            self.held.pop(tenant, None)
            return Snapshot(None, 0.0)
        held = self.held.get(tenant)
        if held is None or held.stamp != stamp or held.until <= time.monotonic():
            held = self.held[tenant] = Snapshot(stamp, time.monotonic() + self.seconds)
            while len(self.held) > self.tenants:
                self.held.popitem(last=False)
        self.held.move_to_end(tenant)
        return held

    async def _read_marks(self) -> None:
        """One read of the marks at a time, shared by those who wait for it; a tenant
        whose mark is new is forgotten."""
        if self._reading is None:
            self._marks_read = time.monotonic()
            self._reading = asyncio.ensure_future(self._apply_marks())
        reading = self._reading
        await asyncio.shield(reading)

    async def _apply_marks(self) -> None:
        assert self.stamps is not None
        try:
            found = await self.stamps.read_marks()
            if found is not None:
                for tenant, token in found.items():
                    if self.marks.get(tenant) != token:
                        self.forget(tenant)
                self.marks = found
        finally:
            self._reading = None

    def peek(self, tenant: str, key: Hashable) -> Any:
        """A part of the tenant's current snapshot as loaded so far, without reading the
        stamp (so possibly out of date: a hint of what to read next, never an answer);
        None when it is not loaded."""
        held = self.held.get(tenant)
        found = held.parts.get(key) if held is not None else None
        if found is None or not found.done() or found.cancelled() or found.exception():
            return None
        return found.result()
