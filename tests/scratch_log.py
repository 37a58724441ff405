"""An ``ActivityLog`` on a scratch database of the real server, for tests of its queries."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import uuid4

from pymongo import AsyncMongoClient

from event_manager.config import Settings
from tenants.activity import ACTIVITY_INDEXES, ActivityLog


def with_log(settings: Settings, test: Callable[[ActivityLog], Awaitable[Any]], *,
             label: str = "log", indexed: bool = False) -> Any:
    """``test(log)`` on a fresh database (``indexed``: with the Activity Monitor's
    indexes, as a tenant's activity has them), dropped afterwards; its result."""
    async def run() -> Any:
        client: AsyncMongoClient = AsyncMongoClient(settings.mongodb_url, tz_aware=True)
        database = client[f"{settings.database}_{label}_{uuid4().hex[:6]}"]
        log = ActivityLog(database["activity"], database["idempotency"], database["claims"])
        for name, keys in ACTIVITY_INDEXES.items() if indexed else ():
            await log.rows.create_index(keys, name=name)
        try:
            return await test(log)
        finally:
            await client.drop_database(database.name)
            await client.close()

    return asyncio.run(run())
