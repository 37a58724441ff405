"""Config stamps: one value per tenant in Redis (``<database>:config:<tenant>``), replaced
by a fresh random one after every change to what a delivery reads (actions, settings,
custom parameters), before the API answers the change.

A worker keeps a tenant's settings, parameters and actions in memory and reads the
stamp once per message: the same stamp means nothing changed since it loaded them, so
a delivery never uses an action older than the last change its tenant's admin saw
acknowledged. One Redis read replaces three database reads per message; a random value
(not a counter) cannot come back after Redis loses its data. If Redis does not answer,
the worker reads the database as before (``current`` raises; nothing is cached).
"""

from __future__ import annotations

import logging
from uuid import uuid4

import redis.asyncio as aioredis

from event_manager.config import Settings

log = logging.getLogger("event_manager.stamps")


class ConfigStamps:
    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    @classmethod
    def of(cls, redis: aioredis.Redis, settings: Settings) -> ConfigStamps:
        return cls(redis, f"{settings.database}:config:")

    def key(self, tenant: str) -> str:
        return f"{self.prefix}{tenant}"

    async def touch(self, tenant: str) -> None:
        """After a change: workers load the tenant's configuration afresh. The change is
        already saved, so a Redis error is logged, not raised; workers then use what
        they hold for at most ``dispatch.delivery.CONFIG_CACHE_SECONDS``."""
        try:
            await self.redis.set(self.key(tenant), uuid4().hex)
        except (aioredis.RedisError, OSError) as exc:
            log.warning("could not stamp the change of tenant %s (%s: %s); workers may use "
                        "the previous configuration for a short while", tenant,
                        type(exc).__name__, exc)

    async def current(self, tenant: str) -> bytes | None:
        """The tenant's stamp; None if no change was stamped since Redis started."""
        return await self.redis.get(self.key(tenant))
