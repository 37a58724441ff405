"""The Dramatiq actor: thin, ids only. Importing this module sets the global broker.

``deliver(tenant, activity_ids)`` carries the ids of QUEUED (or RETRYING) rows; the row
holds everything else. A planned retry is the same message for one id, sent with a delay.
"""

from __future__ import annotations

import asyncio

import dramatiq

from dispatch.broker import create_broker
from dispatch.runtime import DeliveryRuntime
from event_manager.config import get_settings


async def enqueue(tenant: str, activity_ids: list[str], delay_seconds: float = 0.0) -> None:
    """Send a delivery message from the worker's event loop (``send`` blocks on the broker)."""
    await asyncio.to_thread(deliver.send_with_options, args=(tenant, activity_ids),
                            delay=int(delay_seconds * 1000) or None)


settings = get_settings()
broker = create_broker(settings)
runtime = DeliveryRuntime(settings, enqueue)
broker.add_middleware(runtime)
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name=settings.queue_name, max_retries=10, min_backoff=1000,
                max_backoff=60_000)
async def deliver(tenant: str, activity_ids: list[str]) -> None:
    await runtime.accept(tenant, activity_ids)
