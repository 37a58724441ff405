"""The Dramatiq broker: Redis by default, RabbitMQ for ``amqp://`` URLs."""

from __future__ import annotations

import heapq
import logging
import threading
from typing import Any
from uuid import uuid4

import dramatiq
import redis
from dramatiq.broker import MessageProxy
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.common import current_millis, dq_name
from dramatiq.errors import ConnectionClosed
from dramatiq.message import Message
from dramatiq.middleware import AsyncIO

from dispatch import doorbell
from dispatch.doorbell import Doorbell
from event_manager.config import Settings

REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError)
CONNECT_TIMEOUT = 2
READ_TIMEOUT = 10
"""Seconds: so that a Redis that accepts connections but does not answer makes a trigger
UNAVAILABLE instead of hanging it (no command of the broker blocks on Redis; a consumer
waiting on its doorbell reads with a timeout of its own)."""


class _Consumer(_RedisConsumer):
    """Dramatiq 2.2's Redis consumer, waiting on its queue's doorbell instead of polling.

    Dramatiq's fetches again after 5-10 ms on an empty queue, then doubles the wait up to
    the worker timeout (we had 1 ms first): several fetches (a Lua script call each) per
    message at 200 messages/s, and a message that arrives meanwhile waits out the sleep.
    This one fetches again only when the last fetch may have left messages (it got all it
    asked for), when the doorbell rang (``dispatch.doorbell``), or when the bound has
    passed: the consumer's ``timeout``, Dramatiq's worker timeout, 1 s. The bound is what a
    message from a sender that does not ring waits at most, as long as Dramatiq's polling
    waited once idle; each fetch is also the worker's heartbeat in Redis (a worker silent
    for 60 s is taken for dead and its unacked messages requeued); and the consumer thread
    looks for a stop or a pause, and moves due delayed messages, between two ``__next__``
    calls. A delay-queue consumer also wakes when the first delayed message it handed out
    is due, so planned retries are moved on time rather than up to a bound late.

    While its prefetch is full it cannot fetch: it waits for an ack (worker threads ack)
    instead of Redis, within the same bound.
    """

    def __init__(self, broker: ResilientRedisBroker, queue_name: str, prefetch: int,
                 timeout: int) -> None:
        super().__init__(broker, queue_name, prefetch, timeout)
        self.doorbell = Doorbell(broker.client, doorbell.channel(broker.namespace, queue_name))
        self.drained = False
        """The last fetch got fewer messages than it asked for: the queue was empty."""
        self.acked = threading.Event()
        self.etas: dict[str, int] = {}
        """Delayed messages handed out and not yet acked: Redis id → eta (ms)."""
        self.due: list[tuple[int, str]] = []
        """The same as a heap, with entries of acked messages dropped lazily."""

    def __next__(self) -> MessageProxy | None:
        try:
            while True:
                if self.message_cache:
                    data = self.message_cache.pop(0)
                    if data is None:  # Dramatiq's guard (its issue 266)
                        continue
                    message = Message.decode(data)
                    self.queued_message_ids.add(message.message_id)
                    self._hold(message)
                    return MessageProxy(message)
                self.acked.clear()
                room = self.prefetch - self.outstanding_message_count
                if room <= 0:
                    self.acked.wait(self._bound())
                    return None
                if self.drained:
                    self.drained = False
                    if not self.doorbell.wait(self._bound()):
                        return None  # the next call fetches: a sender may not ring
                self.doorbell.listen()  # before the fetch: a later ring is heard
                self.message_cache = self.broker.do_fetch(self.queue_name, room)
                self.drained = len(self.message_cache) < min(room,
                                                             self.broker._max_unpack_size())
        except REDIS_DOWN as exc:
            raise ConnectionClosed(exc) from None

    def _bound(self) -> float:
        """Seconds to wait at most: the consumer's timeout, or less until the first
        delayed message it handed out is due (1 ms late, so that it is due by then)."""
        seconds = self.timeout / 1000
        while self.due and self.due[0][1] not in self.etas:
            heapq.heappop(self.due)
        if self.due:
            seconds = min(seconds, max(self.due[0][0] + 1 - current_millis(), 0) / 1000)
        return seconds

    def _hold(self, message: Message) -> None:
        eta = message.options.get("eta")
        if isinstance(eta, int | float):
            key = message.options["redis_message_id"]
            self.etas[key] = int(eta)
            heapq.heappush(self.due, (int(eta), key))

    def ack(self, message: MessageProxy) -> None:
        try:
            super().ack(message)
        finally:
            self._done(message)

    def nack(self, message: MessageProxy) -> None:
        try:
            super().nack(message)
        finally:
            self._done(message)

    def _done(self, message: MessageProxy) -> None:
        self.etas.pop(message.options.get("redis_message_id", ""), None)
        self.acked.set()

    def requeue(self, messages):  # type: ignore[no-untyped-def]
        try:
            super().requeue(messages)
        except REDIS_DOWN as exc:
            raise ConnectionClosed(exc) from None

    def close(self) -> None:
        self.doorbell.close()


class ResilientRedisBroker(RedisBroker):
    """Dramatiq's Redis broker, whose enqueue rings the queue's doorbell, and whose Redis
    outages are reported as the broker connection errors that Dramatiq's consumer threads
    recover from.

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

    def do_enqueue(self, queue_name: str, message_id: str, data: bytes) -> None:
        """What ``RedisBroker.enqueue`` sends (Dramatiq's script), with the queue's
        doorbell, in one transaction."""
        for _ in range(2):
            with self.client.pipeline() as pipe:
                self.stage_enqueue(pipe, queue_name, message_id, data)
                stored, _ = pipe.execute(raise_on_error=False)
            if not isinstance(stored, redis.exceptions.NoScriptError):
                break
            self.client.script_load(self.scripts["dispatch"].script)  # Redis restarted
        if isinstance(stored, Exception):
            raise stored

    def prepare(self, message: dramatiq.Message, delay: int | None) -> dramatiq.Message:
        """``message`` as ``RedisBroker.enqueue`` stores it: with a Redis id of its own
        and, when delayed, on the delay queue with its eta; the ``before_enqueue`` hooks
        have run. For senders that store it themselves (``dispatch.outbox``)."""
        message = message.copy(options={"redis_message_id": str(uuid4())})
        if delay is not None:
            message = message.copy(queue_name=dq_name(message.queue_name),
                                   options={"eta": current_millis() + delay})
        self.logger.debug("Enqueueing message %r on queue %r.", message.message_id,
                          message.queue_name)
        self.emit_before("enqueue", message, delay)
        return message

    def stage_enqueue(self, pipe: Any, queue_name: str, message_id: str,
                      data: bytes) -> None:
        """Add to ``pipe`` (sync or async) the enqueue of a message, as Dramatiq's
        ``do_enqueue`` sends it (its script, with the same arguments), then the ring of
        the queue's doorbell. ``_max_unpack_size`` must be known already (it asks Redis
        once per process)."""
        pipe.evalsha(self.scripts["dispatch"].sha, 1, self.namespace,
                     *self.script_args("enqueue", queue_name, message_id, data))
        pipe.publish(doorbell.channel(self.namespace, queue_name), b"")

    def script_args(self, command: str, queue_name: str, *args: Any) -> list[Any]:
        """The arguments of Dramatiq's ``dispatch.lua``, as ``RedisBroker._dispatch``
        passes them."""
        return [command, current_millis(), queue_name, self.broker_id, self.heartbeat_timeout,
                self.dead_message_ttl, self._should_do_maintenance(command),
                self._max_unpack_size(), *args]


def create_broker(settings: Settings) -> dramatiq.Broker:
    url = settings.broker_url
    if url.startswith(("amqp://", "amqps://")):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        # pika logs each lost or refused connection as a dozen ERROR records with
        # tracebacks; Dramatiq's consumers and the trigger resolver report it in one line.
        logging.getLogger("pika").setLevel(logging.CRITICAL)
        broker: dramatiq.Broker = RabbitmqBroker(url=url)
    else:
        client = redis.Redis.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT,
                                      socket_timeout=READ_TIMEOUT)
        broker = ResilientRedisBroker(client=client)
    # Not in Dramatiq 2's default list; async actors need it.
    broker.add_middleware(AsyncIO())
    return broker
