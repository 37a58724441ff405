"""The Dramatiq broker: Redis by default, RabbitMQ for ``amqp://`` URLs."""

from __future__ import annotations

import logging

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.errors import ConnectionClosed
from dramatiq.middleware import AsyncIO

from event_manager.config import Settings

REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError)


class _Consumer(_RedisConsumer):
    def requeue(self, messages):  # type: ignore[no-untyped-def]
        try:
            super().requeue(messages)
        except REDIS_DOWN as exc:
            raise ConnectionClosed(exc) from None


class ResilientRedisBroker(RedisBroker):
    """Dramatiq's Redis broker, with Redis outages reported as the broker connection
    errors that Dramatiq's consumer threads recover from.

    Dramatiq 2.2 lets a raw ``redis.ConnectionError`` out of ``enqueue`` and of a
    consumer's ``requeue``. A worker's delayed-message consumer (``<queue>.DQ``, which
    moves planned retries to the queue when due) hits both when Redis restarts, and its
    thread dies: that worker then sends no planned retry until it is restarted, and
    the ``.DQ`` list grows. As ``ConnectionClosed`` the consumer restarts a second
    later instead. Retries it held in memory are lost then; recovery sends them.
    """

    @property
    def consumer_class(self):  # type: ignore[no-untyped-def]
        return _Consumer

    def enqueue(self, message: dramatiq.Message, *,
                delay: int | None = None) -> dramatiq.Message:
        try:
            return super().enqueue(message, delay=delay)
        except REDIS_DOWN as exc:
            raise ConnectionClosed(exc) from None


def create_broker(settings: Settings) -> dramatiq.Broker:
    url = settings.broker_url
    if url.startswith(("amqp://", "amqps://")):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        # pika logs each lost or refused connection as a dozen ERROR records with
        # tracebacks; Dramatiq's consumers and the trigger resolver report it in one line.
        logging.getLogger("pika").setLevel(logging.CRITICAL)
        broker: dramatiq.Broker = RabbitmqBroker(url=url)
    else:
        # Timeouts so that a Redis that accepts connections but does not answer makes a
        # trigger UNAVAILABLE instead of hanging it (no Dramatiq command blocks on Redis).
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=10)
        broker = ResilientRedisBroker(client=client)
    # Not in Dramatiq 2's default list; async actors need it.
    broker.add_middleware(AsyncIO())
    return broker
