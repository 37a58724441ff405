"""The API's way into delivery: enqueue rows for the worker and publish them live."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import redis.asyncio as aioredis

from dispatch.live import Publisher
from tenants.activity import portable

log = logging.getLogger("event_manager.api")


class Dispatcher:
    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        from dispatch.actors import deliver  # sets the process's broker on first import

        self.actor = deliver
        self.publisher = Publisher(redis, prefix)

    async def enqueue(self, tenant: str, rows: list[dict[str, Any]]) -> None:
        """One message for a trigger's deliveries, carrying their rows (``dispatch.actors``).
        ``send`` blocks on the broker, so it runs in a thread; a broker error propagates so
        the caller can undo what it wrote."""
        if rows:
            await asyncio.to_thread(self.actor.send, tenant, [str(r["_id"]) for r in rows],
                                    [portable(r) for r in rows])

    async def publish(self, tenant: str, docs: list[dict[str, Any]]) -> None:
        await self.publisher.publish(tenant, docs)
