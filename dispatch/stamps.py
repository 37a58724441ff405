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
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from uuid import uuid4

import redis.asyncio as aioredis

from event_manager.config import Settings

log = logging.getLogger("event_manager.stamps")
RESTAMP_SECONDS = 0.5
"""How often a stamp that Redis refused is written again."""
T = TypeVar("T")


class ConfigStamps:
    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._next: _Read | None = None
        self.unstamped: set[str] = set()
        """Changes whose stamp Redis refused, written again by ``_restamp``."""
        self._restamping: asyncio.Future[None] | None = None

    @classmethod
    def of(cls, redis: aioredis.Redis, settings: Settings) -> ConfigStamps:
        return cls(redis, f"{settings.database}:config:")

    def key(self, tenant: str) -> str:
        return f"{self.prefix}{tenant}"

    async def touch(self, tenant: str) -> None:
        """After a change: workers load the tenant's configuration afresh. The change is
        already saved, so a Redis error is logged, not raised, and the stamp is written
        again every ``RESTAMP_SECONDS`` in the background until Redis takes it: a process
        that reads stamps meanwhile uses what it holds until then (for
        ``ConfigCache.seconds`` at most), one that cannot read them reads the database."""
        try:
            await self.redis.set(self.key(tenant), uuid4().hex)
        except (aioredis.RedisError, OSError) as exc:
            log.warning("could not stamp the change of tenant %s (%s: %s); trying again "
                        "every %g s", tenant, type(exc).__name__, exc, RESTAMP_SECONDS)
            self.unstamped.add(tenant)
            if self._restamping is None or self._restamping.done():
                self._restamping = asyncio.ensure_future(self._restamp())

    async def _restamp(self) -> None:
        """Stamp the changes Redis refused, until it takes them all."""
        while self.unstamped:
            await asyncio.sleep(RESTAMP_SECONDS)
            for tenant in list(self.unstamped):
                try:
                    await self.redis.set(self.key(tenant), uuid4().hex)
                except (aioredis.RedisError, OSError):
                    break  # still refused: the next round
                self.unstamped.discard(tenant)
                log.info("stamped the change of tenant %s", tenant)

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

    async def snapshot(self, tenant: str) -> Snapshot:
        """One Redis read. Without an answer (or without stamps) the snapshot is new and
        not kept: every part is read from the database."""
        if self.stamps is None:
            return Snapshot(None, 0.0)
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

    def peek(self, tenant: str, key: Hashable) -> Any:
        """A part of the tenant's current snapshot as loaded so far, without reading the
        stamp (so possibly out of date: a hint of what to read next, never an answer);
        None when it is not loaded."""
        held = self.held.get(tenant)
        found = held.parts.get(key) if held is not None else None
        if found is None or not found.done() or found.cancelled() or found.exception():
            return None
        return found.result()
