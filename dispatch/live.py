"""Live activity across processes: every new or changed row is published on Redis
(channel ``<database>:activity:<tenant>``); each API process listens to all channels once and fans
rows out to its WebSocket subscribers of that tenant.

A subscriber gets a bounded queue. One that cannot keep up loses its oldest rows (and is
told how many in the log), so it slows neither deliveries nor other subscribers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterable, Iterator
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from bson import ObjectId

log = logging.getLogger("event_manager.live")

QUEUE_SIZE = 1000
MESSAGE_BYTES = 1024 * 1024
"""Most bytes one published message carries: rows published together go in as many
messages as they need (a row itself is small: its snippet, message and request summary
are cut, see dispatch.delivery)."""
PRIVATE_FIELDS = ("params", "next_attempt_at", "cycle_start", "occurred_at")


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


class Subscriber:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self.dropped = 0

    def offer(self, doc: dict[str, Any]) -> None:
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
            if self.dropped in (1, 100) or self.dropped % 10000 == 0:
                log.warning("a live subscriber is too slow; %d rows dropped", self.dropped)
        self.queue.put_nowait(doc)


class ActivityHub:
    """The API process's one Redis listener and its subscribers, by tenant."""

    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self.subscribers: dict[str, set[Subscriber]] = {}
        self.task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    def start(self) -> None:
        self.task = asyncio.create_task(self._listen(), name="activity-hub")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    @contextlib.asynccontextmanager
    async def subscribe(self, tenant: str) -> AsyncIterator[Subscriber]:
        subscriber = Subscriber()
        self.subscribers.setdefault(tenant, set()).add(subscriber)
        try:
            yield subscriber
        finally:
            self.subscribers[tenant].discard(subscriber)

    @property
    def count(self) -> int:
        return sum(len(s) for s in self.subscribers.values())

    async def _listen(self) -> None:
        """Listen for ever; reconnect after a Redis outage, a second apart."""
        while True:
            try:
                async with self.redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.psubscribe(self.prefix + "*")
                    self.listening.set()
                    async for message in pubsub.listen():
                        if message["type"] == "pmessage":
                            self._fan_out(message)
            except asyncio.CancelledError:
                raise
            except (aioredis.RedisError, OSError) as exc:
                self.listening.clear()
                log.warning("live activity listener lost Redis (%s); reconnecting", exc)
                await asyncio.sleep(1)

    def _fan_out(self, message: dict[str, Any]) -> None:
        channel = message["channel"]
        tenant = (channel.decode() if isinstance(channel, bytes) else channel)
        tenant = tenant.removeprefix(self.prefix)
        subscribers = self.subscribers.get(tenant)
        if not subscribers:
            return
        for doc in decode(message["data"]):
            for subscriber in list(subscribers):
                subscriber.offer(doc)
