"""The Dramatiq actor: thin. Importing this module sets the global broker.

``deliver(tenant, activity_ids, rows)`` carries the ids of QUEUED (or RETRYING) rows and,
when the sender has them at hand, the rows themselves as they were when it was sent
(``tenants.activity.portable``), so that the worker need not read them; the database row
stays the record, and each attempt's claim keeps an old copy from being sent twice. A
planned retry is the same message for one id, sent with a delay, as ``deliver_later``:
retries (and deliveries a worker hands back for want of room) wait on a queue of their
own, so that a thousand of them due at once never stand before a first attempt.
"""

from __future__ import annotations

from typing import Any

import dramatiq
from dramatiq.middleware import CurrentMessage

from dispatch.broker import create_broker
from dispatch.outbox import create_outbox
from dispatch.runtime import DeliveryRuntime
from event_manager import tracing
from event_manager.config import get_settings
from tenants.activity import portable


def delivery_message(tenant: str, activity_ids: list[str],
                     rows: list[dict[str, Any]] | None = None,
                     later: bool = False) -> dramatiq.Message:
    """The message of ``deliver`` (or, ``later``, of ``deliver_later``) for these
    deliveries, carrying ``rows`` when given, and the context it is sent in when tracing
    (an option, which a worker without tracing ignores)."""
    carried = [portable(r) for r in rows] if rows is not None else None
    return (deliver_later if later else deliver).message_with_options(
        args=(tenant, activity_ids, carried), **tracing.message_options())


async def enqueue(tenant: str, activity_ids: list[str], delay_seconds: float = 0.0,
                  rows: list[dict[str, Any]] | None = None, later: bool = False) -> None:
    """Send a delivery message from the worker's event loop, without a thread for Redis
    (``dispatch.outbox``). The API sends its own, with the rows' live publication
    (``dispatch.queue``)."""
    await outbox.send(delivery_message(tenant, activity_ids, rows, later), delay_seconds)


LATER_PRIORITY = 10
"""Dramatiq runs a worker's fetched messages lowest priority number first (0 by
default): first attempts before retries."""

settings = get_settings()
broker = create_broker(settings)
outbox = create_outbox(broker, settings)
"""The worker's: its client connects on Dramatiq's event loop; the runtime closes it."""
runtime = DeliveryRuntime(settings, enqueue, outbox)
broker.add_middleware(runtime)
if tracing.enabled():  # the message's options, for its trace context
    broker.add_middleware(CurrentMessage())
dramatiq.set_broker(broker)


def trace_context() -> dict[str, str] | None:
    """The trace context the message being processed was sent in, if it carries one."""
    if not tracing.enabled():
        return None
    message = CurrentMessage.get_current_message()
    return message.options.get(tracing.MESSAGE_OPTION) if message is not None else None


@dramatiq.actor(queue_name=settings.queue_name, max_retries=10, min_backoff=1000,
                max_backoff=60_000)
async def deliver(tenant: str, activity_ids: list[str],
                  rows: list[dict[str, Any]] | None = None) -> None:
    await runtime.accept(tenant, activity_ids, rows, trace_context())


@dramatiq.actor(queue_name=settings.later_queue_name, max_retries=10, min_backoff=1000,
                max_backoff=60_000, priority=LATER_PRIORITY)
async def deliver_later(tenant: str, activity_ids: list[str],
                        rows: list[dict[str, Any]] | None = None) -> None:
    """``deliver`` for retries and deliveries handed back: on a queue of its own, and
    taken after ``deliver``'s messages among those a worker has fetched."""
    await runtime.accept(tenant, activity_ids, rows, trace_context())
