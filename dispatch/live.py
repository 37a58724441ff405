"""Live activity across processes: every new or changed row is published on Redis
(channel ``<database>:activity:<tenant>``); each API process listens to the channels of the
tenants its WebSocket clients watch, and fans rows out to those subscribers. A tenant
nobody watches costs an API process nothing: at one trigger per request, reading three
rows per delivery that no one wanted was a tenth of the API's CPU.

A row is decoded once per API process and handed to every subscriber of its tenant as
the same ``LiveRow``, whose ``memo`` lets them share what they make of it (the GraphQL
result and its JSON text, once per query shape instead of once per subscription).

A subscriber gets a bounded queue (``Limits.rows_behind``). One that falls that far
behind calls its ``on_overflow`` (a WebSocket then closes as a slow consumer), or else
loses its oldest rows (told in the log), so it slows neither deliveries nor other
subscribers. How many subscriptions one key and one tenant may hold is bounded too.

The same listener reads the access channel (``event_manager/sessions.py``): each notice
goes to ``on_access``, and so does ``"*"`` after a reconnection, when notices may have been
missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from bson import ObjectId
from redis.asyncio.client import PubSub

from event_manager.errors import BadInput

log = logging.getLogger("event_manager.live")

MESSAGE_BYTES = 1024 * 1024
"""Most bytes one published message carries: rows published together go in as many
messages as they need (a row itself is small: its snippet, message and request summary
are cut, see dispatch.outcome)."""
JOIN_WAIT = 2.0
"""Seconds a new subscription waits for Redis to confirm its tenant's channel; past that
(Redis away), it goes on, and gets rows once the listener is back."""
PRIVATE_FIELDS = ("params", "next_attempt_at", "cycle_start", "cycle_at", "occurred_at",
                  "turn", "waits")


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$date": value.isoformat()}
    if isinstance(value, ObjectId):
        return str(value)
    raise TypeError(f"cannot publish {type(value).__name__}")


def _revive(obj: dict[str, Any]) -> Any:
    return datetime.fromisoformat(obj["$date"]) if set(obj) == {"$date"} else obj


def encode(doc: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in doc.items() if k not in PRIVATE_FIELDS},
                      default=_plain, separators=(",", ":"))


def decode(message: str | bytes) -> list[dict[str, Any]]:
    """The rows of one message: a JSON array of rows (or one row, as once published)."""
    found = json.loads(message, object_hook=_revive)
    return found if isinstance(found, list) else [found]


class Publisher:
    """Publishes rows; live view is best-effort, so a Redis failure is logged, not raised.

    Rows published while a pipeline is on its way to Redis go together in the next one,
    one message (a JSON array) per tenant: one round trip for the rows of many deliveries
    at once, and one message for each API process's listener to read instead of one per
    row. Each caller returns when the pipeline carrying its rows has been answered; rows
    keep the order they came in."""

    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self.pending: list[tuple[str, str]] = []
        self.waiting: list[asyncio.Future[None]] = []
        self.sending: asyncio.Task[None] | None = None

    def stage(self, tenant: str, docs: Iterable[dict[str, Any]]) -> Callable[[Any], None]:
        """What adds the publication of ``docs`` to a pipeline of the caller's, to go in
        its round trip (``dispatch.queue``). The rows are encoded now."""
        channel = self.prefix + tenant
        messages = list(_messages([encode(doc) for doc in docs]))

        def add(pipe: Any) -> None:
            for message in messages:
                pipe.publish(channel, message)
        return add

    async def publish(self, tenant: str, docs: Iterable[dict[str, Any]]) -> None:
        messages = [(self.prefix + tenant, encode(doc)) for doc in docs]
        if not messages:
            return
        sent = asyncio.get_running_loop().create_future()
        self.pending += messages
        self.waiting.append(sent)
        if self.sending is None:
            self.sending = asyncio.create_task(self._send())
        await asyncio.shield(sent)

    async def _send(self) -> None:
        try:
            while self.pending:
                messages, self.pending = self.pending, []
                waiting, self.waiting = self.waiting, []
                by_channel: dict[str, list[str]] = {}
                for channel, message in messages:
                    by_channel.setdefault(channel, []).append(message)
                try:
                    async with self.redis.pipeline(transaction=False) as pipe:
                        for channel, rows in by_channel.items():
                            for message in _messages(rows):
                                pipe.publish(channel, message)
                        await pipe.execute()
                except (aioredis.RedisError, OSError) as exc:
                    log.warning("live activity not published (%d rows): %s", len(messages), exc)
                finally:
                    _release(waiting)
        finally:
            self.sending = None
            _release(self.waiting)  # cancelled: nobody waits for rows that will not go
            self.waiting, self.pending = [], []


def _messages(rows: list[str]) -> Iterator[str]:
    """JSON arrays of ``rows`` (encoded ones, ASCII), each within ``MESSAGE_BYTES``."""
    batch: list[str] = []
    size = 2
    for row in rows:
        if batch and size + len(row) + 1 > MESSAGE_BYTES:
            yield f"[{','.join(batch)}]"
            batch, size = [], 2
        batch.append(row)
        size += len(row) + 1
    if batch:
        yield f"[{','.join(batch)}]"


def _release(waiting: list[asyncio.Future[None]]) -> None:
    for sent in waiting:
        if not sent.done():
            sent.set_result(None)


class LiveRow:
    """One published row, as every subscriber of its tenant in this process receives it."""

    __slots__ = ("doc", "memo")

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.memo: dict[Any, Any] = {}


@dataclass(frozen=True)
class Limits:
    """Live subscriptions one API key and one tenant may hold in one API process, and
    how many rows one of them may have waiting."""

    per_key: int = 200
    per_tenant: int = 1000
    rows_behind: int = 1000


class TooManySubscriptions(BadInput):
    """Raised when a key or a tenant holds as many live subscriptions as it may."""


class Subscriber:
    def __init__(self, size: int = 1000,
                 on_overflow: Callable[[], None] | None = None) -> None:
        self.queue: asyncio.Queue[LiveRow] = asyncio.Queue(size)
        self.on_overflow = on_overflow
        self.dropped = 0

    def offer(self, row: LiveRow) -> None:
        if self.queue.full() and self.on_overflow is not None:
            self.on_overflow()
            return
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
            if self.dropped in (1, 100) or self.dropped % 10000 == 0:
                log.warning("a live subscriber is too slow; %d rows dropped", self.dropped)
        self.queue.put_nowait(row)


class ActivityHub:
    """The API process's one Redis listener and its subscribers, by tenant."""

    def __init__(self, redis: aioredis.Redis, prefix: str, limits: Limits | None = None,
                 access_channel: str | None = None,
                 on_access: Callable[[str], None] | None = None) -> None:
        self.redis = redis
        self.prefix = prefix
        self.limits = limits or Limits()
        self.access_channel = access_channel
        self.on_access = on_access
        self.subscribers: dict[str, set[Subscriber]] = {}
        self.per_key: dict[str, int] = {}
        self.task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()
        self.pubsub: PubSub | None = None
        """The listener's connection while it is up."""
        self.joined: dict[str, asyncio.Event] = {}
        """The tenants whose channel the listener holds, each set once Redis confirmed it."""
        self.changing = asyncio.Lock()
        """Keeps subscribing and unsubscribing in the order they were decided."""

    def start(self) -> None:
        self.task = asyncio.create_task(self._listen(), name="activity-hub")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    @contextlib.asynccontextmanager
    async def subscribe(self, tenant: str, key_id: str = "",
                        on_overflow: Callable[[], None] | None = None
                        ) -> AsyncIterator[Subscriber]:
        """A subscriber to ``tenant``'s rows, for as long as the block runs; raises
        ``TooManySubscriptions`` when the key or the tenant holds its limit already."""
        held = self.subscribers.setdefault(tenant, set())
        if self.per_key.get(key_id, 0) >= self.limits.per_key:
            raise TooManySubscriptions(
                f"too many live subscriptions: this API key holds {self.limits.per_key} "
                "already (EVENT_MANAGER_LIVE_SUBSCRIPTIONS_PER_KEY)")
        if len(held) >= self.limits.per_tenant:
            raise TooManySubscriptions(
                f"too many live subscriptions: tenant {tenant!r} holds "
                f"{self.limits.per_tenant} already (EVENT_MANAGER_LIVE_SUBSCRIPTIONS_PER_TENANT)")
        subscriber = Subscriber(self.limits.rows_behind, on_overflow)
        held.add(subscriber)
        self.per_key[key_id] = self.per_key.get(key_id, 0) + 1
        try:
            await self._join(tenant)
            yield subscriber
        finally:
            held.discard(subscriber)
            self.per_key[key_id] -= 1
            if not self.per_key[key_id]:
                del self.per_key[key_id]
            if not held and self.subscribers.get(tenant) is held:
                del self.subscribers[tenant]
                await self._leave(tenant)

    async def _join(self, tenant: str) -> None:
        """Listen to the tenant's channel, and wait (up to ``JOIN_WAIT``) until Redis
        confirms it: the subscription's rows are those published after that."""
        async with self.changing:
            joined = self.joined.get(tenant)
            if joined is None:
                joined = self.joined[tenant] = asyncio.Event()
                await self._command("subscribe", tenant)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(joined.wait(), JOIN_WAIT)

    async def _leave(self, tenant: str) -> None:
        """Stop listening to a tenant nobody here watches any more."""
        async with self.changing:
            if self.subscribers.get(tenant) or self.joined.pop(tenant, None) is None:
                return
            await self._command("unsubscribe", tenant)

    async def _command(self, command: str, tenant: str) -> None:
        """(Un)subscribe the tenant's channel; while Redis is away the listener does it
        when it is back (``_listen``)."""
        if self.pubsub is not None:
            try:
                await getattr(self.pubsub, command)(self.prefix + tenant)
            except (aioredis.RedisError, OSError) as exc:
                log.debug("live activity: %s %s deferred (%s)", command, tenant, exc)

    @property
    def count(self) -> int:
        return sum(len(s) for s in self.subscribers.values())

    async def _listen(self) -> None:
        """Listen for ever; reconnect after a Redis outage, a second apart."""
        while True:
            try:
                async with self.redis.pubsub() as pubsub:
                    async with self.changing:  # the tenants watched while it was away
                        channels = [self.prefix + t for t in self.joined]
                        if self.access_channel:
                            channels.append(self.access_channel)
                        if channels:
                            await pubsub.subscribe(*channels)
                        self.pubsub = pubsub
                    self.listening.set()
                    if self.on_access is not None:
                        self.on_access("*")  # notices sent while not listening are lost
                    async for message in pubsub.listen():
                        self._read(message)
            except asyncio.CancelledError:
                raise
            except (aioredis.RedisError, OSError) as exc:
                self.listening.clear()
                log.warning("live activity listener lost Redis (%s); reconnecting", exc)
                await asyncio.sleep(1)
            finally:
                self.pubsub = None
                for joined in self.joined.values():
                    joined.clear()

    def _read(self, message: dict[str, Any]) -> None:
        channel = message["channel"]
        channel = channel.decode() if isinstance(channel, bytes) else channel
        if channel == self.access_channel:
            if message["type"] == "message" and self.on_access is not None:
                data = message["data"]
                self.on_access(data.decode() if isinstance(data, bytes) else data)
            return
        tenant = channel.removeprefix(self.prefix)
        if message["type"] == "subscribe" and tenant in self.joined:
            self.joined[tenant].set()
        elif message["type"] == "message":
            self._fan_out(tenant, message["data"])

    def _fan_out(self, tenant: str, data: bytes) -> None:
        subscribers = self.subscribers.get(tenant)
        if not subscribers:
            return
        for doc in decode(data):
            row = LiveRow(doc)
            for subscriber in list(subscribers):
                subscriber.offer(row)
