"""Messages sent from async code (dispatch/outbox.py), with the live publication of their
rows in the same round trip as the API sends them (dispatch/queue.py), against a Redis
of the module's own: its commands are counted, it is made to refuse writes and to forget
Dramatiq's script."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import dramatiq
import pytest
import redis
import redis.asyncio as aioredis
from dramatiq.brokers.redis import RedisBroker

from dispatch.broker import ResilientRedisBroker
from dispatch.live import Publisher, decode
from dispatch.outbox import Outbox
from event_manager.config import Settings
from tests.support import Pipelines, free_port

ROWS = [{"_id": "r1", "status": "QUEUED"}, {"_id": "r2", "status": "SKIPPED"}]


@pytest.fixture
def broker(broker: ResilientRedisBroker) -> ResilientRedisBroker:
    """The conftest's broker, its Lua limit asked already (asked once per process, in a
    thread: not what is measured)."""
    broker._max_unpack_size()
    return broker


def message(queue: str) -> dramatiq.Message:
    return dramatiq.Message(queue_name=queue, actor_name="deliver",
                            args=("acme", ["r1"], [{"_id": "r1"}]), kwargs={}, options={})


def commands(client: redis.Redis) -> dict[str, int]:
    return {name.removeprefix("cmdstat_"): stats["calls"]
            for name, stats in client.info("commandstats").items()}


def stored(client: redis.Redis, queue: str) -> list[dict[str, Any]]:
    """The messages of ``queue`` as Redis holds them, in queue order."""
    ids = client.lrange(f"dramatiq:{queue}", 0, -1)
    return [json.loads(client.hget(f"dramatiq:{queue}.msgs", i)) for i in ids]


class Listener:
    """Subscribed to the queue's doorbell and to a tenant's live rows."""

    def __init__(self, client: redis.Redis, *channels: str) -> None:
        self.pubsub = client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(*channels)
        for _ in channels:
            assert self.pubsub.get_message(timeout=5) is None  # a confirmation, ignored

    def heard(self) -> list[tuple[str, Any]]:
        found = []
        while (reply := self.pubsub.get_message(timeout=0.5)) is not None:
            found.append((reply["channel"].decode(), reply["data"]))
        self.pubsub.close()
        return found


def send_with_rows(url: str, broker: ResilientRedisBroker, sent: dramatiq.Message,
                   delay: float = 0.0) -> tuple[list[Any], int]:
    """As ``Dispatcher.enqueue`` sends: a message, then the rows' publication, in the
    outbox's transaction. Its replies, and how many pipelines went to Redis."""
    async def go() -> tuple[list[Any], int]:
        client = aioredis.from_url(url)
        pipelines = Pipelines(client)
        try:
            replies = await Outbox(broker, client).send(
                sent, delay, then=Publisher(client, "live:").stage("acme", ROWS))
        finally:
            await client.aclose()
        return replies, pipelines.sent

    return asyncio.run(go())


def test_a_message_is_stored_as_dramatiqs_own_enqueue_stores_it(
        own_redis: str, broker: ResilientRedisBroker, queue: str) -> None:
    """Dramatiq's RedisBroker and the outbox store the same message alike, except for
    the Redis id each enqueue gets (and, delayed, the moment its eta is counted from)."""
    client = broker.client
    plain = RedisBroker(client=client)
    for delay in (0.0, 5.0):
        sent = message(queue)
        plain.enqueue(sent, delay=int(delay * 1000) or None)
        send_with_rows(own_redis, broker, sent, delay)
        name = f"{queue}.DQ" if delay else queue
        theirs, ours = stored(client, name)
        assert theirs["options"].pop("redis_message_id") != ours["options"].pop(
            "redis_message_id")
        if delay:
            assert abs(theirs["options"].pop("eta") - ours["options"].pop("eta")) < 1000
        assert ours == theirs and ours["queue_name"] == name
        assert ours["message_id"] == sent.message_id
    consumer = broker.consume(queue, prefetch=4, timeout=1000)
    taken = next(consumer)
    consumer.close()
    assert taken is not None and taken.args == ("acme", ["r1"], [{"_id": "r1"}])


def test_a_message_its_ring_and_its_rows_go_in_one_round_trip_without_a_thread(
        own_redis: str, broker: ResilientRedisBroker, queue: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    def no_thread(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a thread was used")

    monkeypatch.setattr(asyncio, "to_thread", no_thread)
    listener = Listener(broker.client, f"dramatiq:{queue}.doorbell", "live:acme")
    before = commands(broker.client)
    replies, pipelines = send_with_rows(own_redis, broker, message(queue))
    made = {name: calls - before.get(name, 0) for name, calls in commands(broker.client).items()
            if calls != before.get(name, 0) and name != "info"}

    assert pipelines == 1 and replies == [1]  # the rows' message reached one subscriber
    assert {k: made.get(k) for k in ("multi", "evalsha", "publish", "exec")} == {
        "multi": 1, "evalsha": 1, "publish": 2, "exec": 1}
    heard = listener.heard()
    assert heard[0] == (f"dramatiq:{queue}.doorbell", b"")
    assert [(channel, decode(data)) for channel, data in heard[1:]] == [("live:acme", ROWS)]
    assert len(stored(broker.client, queue)) == 1


def test_a_refused_message_raises_and_publishes_no_rows(
        own_redis: str, broker: ResilientRedisBroker, queue: str) -> None:
    """Redis out of memory refuses the script (its writes) but would take a PUBLISH: the
    transaction keeps the rows of a trigger that the API then takes back from the live
    view too."""
    listener = Listener(broker.client, f"dramatiq:{queue}.doorbell", "live:acme")
    broker.client.config_set("maxmemory", 1)
    try:
        with pytest.raises(redis.ResponseError, match="maxmemory"):
            send_with_rows(own_redis, broker, message(queue))
    finally:
        broker.client.config_set("maxmemory", 0)
    assert listener.heard() == []
    assert stored(broker.client, queue) == []


def test_a_redis_that_forgot_the_script_gets_the_message_and_the_rows_once(
        own_redis: str, broker: ResilientRedisBroker, queue: str) -> None:
    """After a restart Redis knows no script: the message is sent again once Dramatiq's
    script is loaded; the rows, already published, are not."""
    broker.client.script_flush()
    listener = Listener(broker.client, "live:acme")
    replies, pipelines = send_with_rows(own_redis, broker, message(queue))
    assert replies == [1] and pipelines == 2
    assert [decode(data) for _, data in listener.heard()] == [ROWS]
    assert len(stored(broker.client, queue)) == 1


def test_a_redis_that_is_down_raises_a_connection_error(
        settings: Settings, broker: ResilientRedisBroker, queue: str) -> None:
    async def go() -> None:
        client = aioredis.from_url(f"redis://127.0.0.1:{free_port()}", socket_connect_timeout=1)
        try:
            await asyncio.wait_for(Outbox(broker, client).send(message(queue)), timeout=15)
        finally:
            await client.aclose()

    with pytest.raises(redis.ConnectionError):
        asyncio.run(go())
