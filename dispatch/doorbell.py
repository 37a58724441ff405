"""A queue's doorbell: how a consumer that found its queue empty learns of the next
message without asking Redis again and again.

Every message this service enqueues (``dispatch.outbox`` from async code,
``ResilientRedisBroker.do_enqueue`` from Dramatiq's threads) is followed, in the same
transaction, by a PUBLISH on its queue's channel: ``<namespace>:<queue>.doorbell``, for
example ``dramatiq:event_manager.deliveries.doorbell``, and
``dramatiq:event_manager.deliveries.DQ.doorbell`` for the delay queue. A waiting consumer
blocks on that channel (a read on an idle socket: no CPU, no Redis command) and fetches
when it rings. Pub/sub reaches every subscriber, so every worker process waiting on the
queue wakes and takes what its prefetch has room for.

A ring carries nothing and may be missed: a sender that does not ring (a plain Dramatiq
client) or a pub/sub reconnection. Consumers therefore still look once per bound
(``dispatch.broker``).
"""

from __future__ import annotations

import time

import redis

CONFIRM_SECONDS = 10.0
"""How long Redis may take to confirm a subscription (the broker client's read timeout)."""


def channel(namespace: str, queue_name: str) -> str:
    return f"{namespace}:{queue_name}.doorbell"


class Doorbell:
    """One consumer's subscription to its queue's doorbell, on a connection of its own.
    Used from the consumer's thread only."""

    def __init__(self, client: redis.Redis, channel: str) -> None:
        self.client = client
        self.channel = channel
        self.pubsub: redis.client.PubSub | None = None

    def listen(self) -> None:
        """Subscribe, once, and wait until Redis confirms: every ring published after
        this returns is heard. Call it before the fetch that may lead to a wait."""
        if self.pubsub is not None:
            return
        pubsub = self.client.pubsub()
        try:
            pubsub.subscribe(self.channel)
            deadline = time.monotonic() + CONFIRM_SECONDS
            while (reply := pubsub.get_message(timeout=deadline - time.monotonic())) is None \
                    or reply["type"] != "subscribe":
                if time.monotonic() >= deadline:
                    raise redis.TimeoutError(f"no confirmation of SUBSCRIBE {self.channel}")
        except BaseException:
            pubsub.close()
            raise
        self.pubsub = pubsub

    def wait(self, seconds: float) -> bool:
        """Whether the doorbell rang within ``seconds``; a ring heard earlier counts at
        once. Takes every ring heard so far, so that one fetch answers them all."""
        self.listen()
        assert self.pubsub is not None
        deadline = time.monotonic() + seconds
        rang = False
        while True:
            left = 0.0 if rang else max(deadline - time.monotonic(), 0.0)
            reply = self.pubsub.get_message(timeout=left)
            if reply is None:
                if rang or left == 0.0:
                    return rang
                continue  # a health-check reply: keep waiting
            rang = rang or reply["type"] == "message"

    def close(self) -> None:
        if self.pubsub is not None:
            pubsub, self.pubsub = self.pubsub, None
            pubsub.close()
