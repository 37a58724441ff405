"""The API's way into delivery: enqueue rows for the worker and publish them live."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis

from dispatch.live import Publisher
from dispatch.outbox import create_outbox
from event_manager.config import Settings

log = logging.getLogger("event_manager.api")


class Dispatcher:
    def __init__(self, redis: aioredis.Redis, settings: Settings) -> None:
        from dispatch.actors import broker, delivery_message  # sets the process's broker

        self.message = delivery_message
        self.outbox = create_outbox(broker, settings)  # closed by ``close``, in the lifespan
        self.publisher = Publisher(redis, settings.live_channel_prefix)
        self.together = (self.outbox.redis is not None
                         and settings.broker_url == settings.redis_url)
        """The broker's Redis is also live activity's: a message and its rows' publication
        go in one round trip."""

    async def enqueue(self, tenant: str, rows: list[dict[str, Any]],
                      publish: Sequence[dict[str, Any]] = ()) -> None:
        """One message for a trigger's deliveries (``rows``), carrying their rows
        (``dispatch.actors``), then the live publication of ``publish``: in one round trip
        when the broker is Redis and live activity's Redis too, else one after the other.
        A broker error propagates, and nothing is published then, so the caller can undo
        what it wrote; live publication is best-effort (a failure is logged)."""
        if not rows:
            await self.publish(tenant, publish)
            return
        message = self.message(tenant, [str(r["_id"]) for r in rows], rows)
        if not self.together:
            await self.outbox.send(message)
            await self.publish(tenant, publish)
            return
        replies = await self.outbox.send(message, then=self.publisher.stage(tenant, publish))
        failed = [reply for reply in replies if isinstance(reply, Exception)]
        if failed:
            log.warning("live activity not published (%d rows): %s", len(publish), failed[0])

    async def publish(self, tenant: str, docs: Sequence[dict[str, Any]]) -> None:
        await self.publisher.publish(tenant, docs)

    async def close(self) -> None:
        await self.outbox.aclose()
