"""The Dramatiq broker: Redis by default, RabbitMQ for ``amqp://`` URLs."""

from __future__ import annotations

import dramatiq
from dramatiq.middleware import AsyncIO

from event_manager.config import Settings


def create_broker(settings: Settings) -> dramatiq.Broker:
    url = settings.broker_url
    if url.startswith(("amqp://", "amqps://")):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        broker: dramatiq.Broker = RabbitmqBroker(url=url)
    else:
        from dramatiq.brokers.redis import RedisBroker

        broker = RedisBroker(url=url)
    # Not in Dramatiq 2's default list; async actors need it.
    broker.add_middleware(AsyncIO())
    return broker
