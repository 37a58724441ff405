"""The Redis broker (dispatch/broker.py): a consumer waits on its queue's doorbell instead
of polling, against a real Redis of the tests' own, so that its commands can be counted
(``INFO commandstats``: every fetch, ack and enqueue is one EVALSHA of Dramatiq's script).

The bound of a wait is the consumer's ``timeout`` (Dramatiq's worker timeout). Timing
assertions are generous: a ring wakes a consumer within a millisecond or two, and "before
half the bound" still tells that from a consumer that waited its bound out (or one that
polls with growing sleeps, as Dramatiq's does) on a busy machine.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dramatiq
import httpx
import pytest
import redis
from dramatiq.brokers.redis import RedisBroker

from dispatch.broker import ResilientRedisBroker, create_broker
from dispatch.outbox import create_outbox
from event_manager.config import Settings, environment
from tests.conftest import CLI, Client, TenantHandle, free_port
from tests.receiver import Receiver
from tests.support import answers, stop, wait_until
from tests.test_delivery import hook

BOUND_MS = 2000


def noop(queue: str, n: int = 0) -> dramatiq.Message:
    return dramatiq.Message(queue_name=queue, actor_name="noop", args=(n,), kwargs={},
                            options={})


def script_calls(broker: ResilientRedisBroker) -> int:
    """EVALSHA calls so far: fetches, acks and enqueues of Dramatiq's script."""
    return int(broker.client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))


def send_by_outbox(broker: ResilientRedisBroker, message: dramatiq.Message,
                   delay_seconds: float = 0.0) -> None:
    """As the API sends: the async client, no thread (``dispatch.outbox``)."""
    async def send() -> None:
        outbox = create_outbox(broker, Settings(broker_url=broker_url(broker)))
        try:
            await outbox.send(message, delay_seconds)
        finally:
            await outbox.aclose()
    asyncio.run(send())


def send_by_dramatiq(broker: ResilientRedisBroker, message: dramatiq.Message) -> None:
    """As the worker moves a due delayed message: Dramatiq's enqueue, in its thread."""
    broker.enqueue(message)


def broker_url(broker: ResilientRedisBroker) -> str:
    kwargs = broker.client.connection_pool.connection_kwargs
    return f"redis://{kwargs['host']}:{kwargs['port']}/0"


class Taker(threading.Thread):
    """Calls ``next(consumer)`` until it returns a message (or ``calls`` times), noting
    what it got and when; acks what it takes."""

    def __init__(self, consumer: Any, calls: int = 1) -> None:
        super().__init__(daemon=True)
        self.consumer, self.calls = consumer, calls
        self.returned: list[Any] = []
        self.at = 0.0

    def run(self) -> None:
        for _ in range(self.calls):
            found = next(self.consumer)
            self.returned.append(found)
            if found is not None:
                self.at = time.monotonic()
                self.consumer.ack(found)
                return


@pytest.mark.parametrize("send", [send_by_outbox, send_by_dramatiq],
                         ids=["outbox", "dramatiq-enqueue"])
def test_a_waiting_consumer_takes_a_message_as_soon_as_it_is_sent(
        broker: ResilientRedisBroker, queue: str,
        send: Callable[[ResilientRedisBroker, dramatiq.Message], None]) -> None:
    """One ``next()`` that found the queue empty waits on the doorbell and returns the
    message sent meanwhile; Dramatiq's polling returned None after a sleep instead, and
    a consumer that only looked again at its bound would take two seconds."""
    consumer = broker.consume(queue, prefetch=4, timeout=BOUND_MS)
    taker = Taker(consumer)
    taker.start()
    time.sleep(0.3)  # the taker has found the queue empty and waits
    sent = time.monotonic()
    send(broker, noop(queue, 7))
    taker.join(BOUND_MS / 1000 + 5)
    consumer.close()
    assert [m and m.args for m in taker.returned] == [(7,)]
    assert taker.at - sent < BOUND_MS / 2000


def test_a_consumer_fetches_once_per_message_instead_of_polling(
        broker: ResilientRedisBroker, queue: str) -> None:
    """20 messages 100 ms apart: about one fetch each. Dramatiq's polling fetched after
    1, 2, 4 ... ms, about seven times in each 100 ms gap."""
    consumer = broker.consume(queue, prefetch=4, timeout=BOUND_MS)
    takers = []
    before = script_calls(broker)
    for n in range(20):
        taker = Taker(consumer, calls=1000)
        taker.start()
        time.sleep(0.1)
        send_by_outbox(broker, noop(queue, n))
        taker.join(5)
        takers.append(taker)
    consumer.close()
    assert [[m.args for m in t.returned if m] for t in takers] == [[(n,)] for n in range(20)]
    fetches = script_calls(broker) - before - 20 - 20  # less the enqueues and the acks
    assert fetches <= 2 * 20, fetches


def test_an_idle_consumer_looks_once_per_bound(broker: ResilientRedisBroker,
                                               queue: str) -> None:
    """Nothing sent for 3 s with a 1 s bound: at most one fetch a second (Dramatiq's
    polling made a dozen: ten in the first second, then one every 0.5-1 s)."""
    consumer = broker.consume(queue, prefetch=4, timeout=1000)
    before = script_calls(broker)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        assert next(consumer) is None
    consumer.close()
    assert script_calls(broker) - before <= 4


def test_a_message_from_a_sender_that_does_not_ring_is_taken_within_the_bound(
        broker: ResilientRedisBroker, queue: str) -> None:
    """A plain Dramatiq client stores messages without ringing: the consumer finds them
    when its bound has passed (1 s here)."""
    plain = RedisBroker(client=broker.client)
    consumer = broker.consume(queue, prefetch=4, timeout=1000)
    taker = Taker(consumer, calls=10)
    taker.start()
    time.sleep(0.3)
    sent = time.monotonic()
    plain.enqueue(noop(queue, 3))
    taker.join(10)
    consumer.close()
    assert [m.args for m in taker.returned if m] == [(3,)]
    assert taker.at - sent < 1 + 1  # the bound, and a second for a busy machine


def test_every_waiting_consumer_wakes_to_take_its_share(
        settings: Settings, own_redis: str, broker: ResilientRedisBroker, queue: str) -> None:
    """Two worker processes (two brokers), each with room for two messages, both waiting:
    four messages and one ring wake both, and each takes two; the first one woken does not
    leave the other asleep while messages wait."""
    other = create_broker(settings.model_copy(update={"broker_url": own_redis}))
    consumers = [broker.consume(queue, prefetch=2, timeout=BOUND_MS),
                 other.consume(queue, prefetch=2, timeout=BOUND_MS)]
    taken: list[list[Any]] = [[], []]

    def take(i: int) -> None:
        while len(taken[i]) < 2:
            if (message := next(consumers[i])) is not None:
                taken[i].append(message)

    takers = [threading.Thread(target=take, args=(i,), daemon=True) for i in (0, 1)]
    for taker in takers:
        taker.start()
    time.sleep(0.3)
    plain = RedisBroker(client=broker.client)  # three that do not ring, then one that does
    for n in range(3):
        plain.enqueue(noop(queue, n))
    sent = time.monotonic()
    send_by_outbox(broker, noop(queue, 3))
    for taker in takers:
        taker.join(BOUND_MS / 1000 + 5)
    took = time.monotonic() - sent
    for consumer in consumers:
        consumer.close()
    other.close()
    assert [len(t) for t in taken] == [2, 2]
    assert sorted(m.args[0] for t in taken for m in t) == [0, 1, 2, 3]
    assert took < BOUND_MS / 2000


def test_a_delayed_message_is_moved_to_its_queue_when_due(
        broker: ResilientRedisBroker, queue: str) -> None:
    """A real Dramatiq worker: the delay queue's consumer hears the delayed message at
    once and wakes when it is due, not at its next bound (1 s)."""
    ran: list[float] = []
    dramatiq.actor(lambda: ran.append(time.monotonic()), broker=broker, queue_name=queue,
                   actor_name="ran")
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=1000)
    worker.start()
    try:
        time.sleep(1.2)  # both consumers have found their queues empty and wait
        sent = time.monotonic()
        send_by_outbox(broker, dramatiq.Message(queue_name=queue, actor_name="ran", args=(),
                                                kwargs={}, options={}), 0.3)
        wait_until(lambda: ran, 10, "the delayed message ran")
    finally:
        worker.stop()
    assert 0.3 <= ran[0] - sent < 0.3 + 0.5


@dataclass
class Installation:
    """An API process and a worker process whose broker (and live activity) is a Redis of
    the tests' own; the tests' database and tenants."""

    url: str
    redis: redis.Redis
    queue: str

    def trigger(self, tenant: TenantHandle, **params: Any) -> dict[str, Any]:
        with httpx.Client(timeout=30) as http:
            reply = Client(self.url, tenant.admin.key, http=http)(
                "mutation($p: JSON) { triggerEvent(input: {event: HANGUP, params: $p}) "
                "{ accepted } }", p=params)
        return reply.data["triggerEvent"]

    def script_calls(self) -> int:
        stats = self.redis.info("commandstats")
        return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


@pytest.fixture(scope="module")
def installation(settings: Settings, mongo: Any, own_redis: str,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    root = tmp_path_factory.mktemp("installation")
    # Recovery waits 10 minutes: the worker queues no other test's rows again here.
    own = settings.model_copy(update={"broker_url": own_redis, "redis_url": own_redis,
                                      "worker_metrics_port": 0, "recovery_seconds": 600})
    env = {**os.environ, **environment(own)}
    port = free_port()
    processes = [start(env, root / "api.log", "serve", "--port", str(port)),
                 start(env, root / "worker.log", "worker", "--threads", "2")]
    client = redis.Redis.from_url(own_redis)
    try:
        wait_until(lambda: answers(f"http://127.0.0.1:{port}"), 60, "the API answers")
        wait_until(lambda: "delivery clients open" in (root / "worker.log").read_text(), 60,
                   "the worker is ready")
        yield Installation(f"http://127.0.0.1:{port}", client, own.queue_name)
    finally:
        for process in processes:
            stop(process)
        client.close()


def start(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("w") as out:
        return subprocess.Popen([*CLI, *args], env=env, stdout=out, stderr=subprocess.STDOUT)


def test_a_trigger_reaches_the_worker_through_the_doorbell(
        installation: Installation, tenant: TenantHandle, receiver: Receiver) -> None:
    """The API stores the message with the async client and rings the queue's doorbell;
    the worker's Dramatiq consumer reads it unchanged and the delivery arrives."""
    hook(tenant, receiver, "rung")
    listener = installation.redis.pubsub()
    listener.subscribe(f"dramatiq:{installation.queue}.doorbell")
    assert listener.get_message(timeout=5)["type"] == "subscribe"
    assert installation.trigger(tenant, n=1)["accepted"]
    ring = listener.get_message(timeout=5)
    listener.close()
    assert ring is not None and ring["type"] == "message"
    receiver.wait_for(f"/{tenant.code}/rung", 1, timeout=30)


def test_an_idle_worker_makes_a_few_broker_commands_a_second(
        installation: Installation, tenant: TenantHandle, receiver: Receiver) -> None:
    """Right after a delivery, for 3 s: Dramatiq's script runs about once a second for
    each of the worker's four consumers (the first attempts' queue, the later queue of
    retries, and the delay queue of each). The old polling began again at 1 ms after each
    message: a dozen fetches in those 3 s for the queue alone."""
    hook(tenant, receiver, "quiet")
    assert installation.trigger(tenant, n=2)["accepted"]
    receiver.wait_for(f"/{tenant.code}/quiet", 1, timeout=30)
    before = installation.script_calls()
    time.sleep(3)
    consumers = 4
    assert installation.script_calls() - before <= 3 * (consumers + 1)
