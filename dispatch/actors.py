"""The Dramatiq actor: thin. Importing this module sets the global broker.

``deliver(tenant, activity_ids, rows)`` carries the ids of QUEUED (or RETRYING) rows and,
when the sender has them at hand, the rows themselves as they were when it was sent
(``tenants.activity.portable``), so that the worker need not read them; the database row
stays the record, and each attempt's claim keeps an old copy from being sent twice. A
planned retry is the same message for one id, sent with a delay.
"""

from __future__ import annotations

import asyncio
from typing import Any

import dramatiq

from dispatch.broker import create_broker
from dispatch.runtime import DeliveryRuntime
from event_manager.config import get_settings
from tenants.activity import portable


async def enqueue(tenant: str, activity_ids: list[str], delay_seconds: float = 0.0,
                  rows: list[dict[str, Any]] | None = None) -> None:
    """Send a delivery message, from the API or the worker (``send`` blocks on the broker,
    so it runs in a thread)."""
    carried = [portable(r) for r in rows] if rows is not None else None
    await asyncio.to_thread(deliver.send_with_options, args=(tenant, activity_ids, carried),
                            delay=int(delay_seconds * 1000) or None)


settings = get_settings()
broker = create_broker(settings)
runtime = DeliveryRuntime(settings, enqueue)
broker.add_middleware(runtime)
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name=settings.queue_name, max_retries=10, min_backoff=1000,
                max_backoff=60_000)
async def deliver(tenant: str, activity_ids: list[str],
                  rows: list[dict[str, Any]] | None = None) -> None:
    await runtime.accept(tenant, activity_ids, rows)
