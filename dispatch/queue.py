"""The API's way into delivery: enqueue rows for the worker and publish them live."""

from __future__ import annotations

import logging
from typing import Any

import redis.asyncio as aioredis

from dispatch.live import Publisher

log = logging.getLogger("event_manager.api")


class Dispatcher:
    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        from dispatch.actors import enqueue  # sets the process's broker on first import

        self._enqueue = enqueue
        self.publisher = Publisher(redis, prefix)

    async def enqueue(self, tenant: str, rows: list[dict[str, Any]]) -> None:
        """One message for a trigger's deliveries, carrying their rows (``dispatch.actors``).
        A broker error propagates so the caller can undo what it wrote."""
        if rows:
            await self._enqueue(tenant, [str(r["_id"]) for r in rows], 0.0, rows)

    async def publish(self, tenant: str, docs: list[dict[str, Any]]) -> None:
        await self.publisher.publish(tenant, docs)
