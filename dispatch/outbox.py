"""Delivery messages sent from async code without a thread.

Dramatiq's ``send`` blocks on the broker, so the API and the worker sent each message
from a thread (``asyncio.to_thread``: a thread-pool handoff per trigger, ~10 % of the
API's CPU at 200 triggers/s). For the Redis broker the outbox stores the message as
``RedisBroker.enqueue`` would (``ResilientRedisBroker.prepare`` and ``stage_enqueue``:
the same Lua script with the same arguments, the same middleware hooks), so a worker's
Dramatiq consumer reads it unchanged, but with the async client; the queue's doorbell
rings in the same transaction, and the caller may add commands of its own to it (the
live publication of the rows, ``dispatch.queue``): one round trip for all of them.

For RabbitMQ, Dramatiq's own enqueue runs in a thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import dramatiq
import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from dispatch.broker import CONNECT_TIMEOUT, READ_TIMEOUT, ResilientRedisBroker
from event_manager.config import Settings

Then = Callable[[Any], None]
"""Adds commands of the caller's to the transaction (an async Redis pipeline)."""


class Outbox:
    """Sends messages to ``broker``; ``redis``: an async client of the broker's Redis
    (None for RabbitMQ). One per process, used from one event loop."""

    def __init__(self, broker: dramatiq.Broker, redis: aioredis.Redis | None) -> None:
        self.broker = broker
        self.redis = redis if isinstance(broker, ResilientRedisBroker) else None

    async def send(self, message: dramatiq.Message, delay_seconds: float = 0.0,
                   then: Then | None = None) -> list[Any]:
        """Enqueue ``message``, to be processed ``delay_seconds`` from now, and ring its
        queue's doorbell; ``then`` adds the caller's commands after them, in the same
        transaction (Redis only), and gets their replies back (an error among them
        stands for that command alone).

        Raises when the message is not stored; nothing of ``then`` ran either, except
        when Redis had forgotten Dramatiq's script (it was restarted): then ``then``'s
        commands went, and the message is sent again once the script is loaded."""
        delay = int(delay_seconds * 1000) or None
        if self.redis is None:
            await asyncio.to_thread(self.broker.enqueue, message, delay=delay)
            return []
        broker = self.broker
        assert isinstance(broker, ResilientRedisBroker)
        if type(broker)._max_unpack_size_val is None:  # once per process
            await asyncio.to_thread(broker._max_unpack_size)
        message = broker.prepare(message, delay)
        stage = (message.queue_name, message.options["redis_message_id"], message.encode())
        async with self.redis.pipeline() as pipe:
            broker.stage_enqueue(pipe, *stage)
            if then is not None:
                then(pipe)
            replies = await pipe.execute(raise_on_error=False)
        if isinstance(replies[0], NoScriptError):
            await self.redis.script_load(broker.scripts["dispatch"].script)
            async with self.redis.pipeline() as pipe:
                broker.stage_enqueue(pipe, *stage)
                replies[:2] = await pipe.execute(raise_on_error=False)
        if isinstance(replies[0], Exception):
            raise replies[0]
        broker.emit_after("enqueue", message, delay)
        return replies[2:]

    async def aclose(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()


def create_outbox(broker: dramatiq.Broker, settings: Settings) -> Outbox:
    """The process's outbox. Its client connects on first use, in the event loop that
    uses it, with the sync broker client's timeouts (``dispatch.broker``)."""
    client = None
    if isinstance(broker, ResilientRedisBroker):
        client = aioredis.from_url(settings.broker_url, socket_connect_timeout=CONNECT_TIMEOUT,
                                   socket_timeout=READ_TIMEOUT)
    return Outbox(broker, client)
