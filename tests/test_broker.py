"""The Redis consumer of the worker (dispatch/broker.py), against the real Redis."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import dramatiq
import pytest

import dispatch.broker
from dispatch.broker import create_broker
from event_manager.config import Settings


@pytest.fixture
def broker(settings: Settings, redis_client) -> Iterator[dramatiq.Broker]:
    broker = create_broker(settings)
    yield broker
    broker.close()


def test_an_idle_consumer_looks_again_within_milliseconds(
        broker: dramatiq.Broker, monkeypatch: pytest.MonkeyPatch) -> None:
    """A message that arrives while the consumer waits is taken after the wait: the
    first waits are 1, 2-3, 4-7 ms (Dramatiq's own start at 5-10 ms), then keep
    doubling, and a message found starts them afresh."""
    queue = f"idle-{secrets.token_hex(4)}"
    broker.declare_queue(queue)
    consumer = broker.consume(queue, prefetch=1, timeout=1000)
    waits: list[float] = []
    monkeypatch.setattr(dispatch.broker.time, "sleep", waits.append)

    assert [next(consumer) for _ in range(5)] == [None] * 5
    assert [round(w * 1000) for w in waits][:3] in ([1, a, b] for a in (2, 3)
                                                    for b in range(4, 8))
    assert 8 <= round(waits[3] * 1000) < 16 and 16 <= round(waits[4] * 1000) < 32

    broker.enqueue(dramatiq.Message(queue_name=queue, actor_name="noop", args=(),
                                    kwargs={}, options={}))
    message = next(consumer)
    assert message is not None and message.queue_name == queue
    consumer.ack(message)
    waits.clear()
    assert next(consumer) is None and round(waits[0] * 1000) == 1
    broker.flush(queue)
