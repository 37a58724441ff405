"""Planned retries sent together: one message for the retries of a tenant that come due
in the same half second, instead of one each.

A dead endpoint with 2,000 deliveries fails them in waves: every attempt that times out
at the same moment plans its retry for about the same moment. As one message each, a
wave costs the broker and the worker 2,000 enqueues, moves from the delay queue, fetches
and acks; profiled while 2,000 retries were due, those Redis round trips were a third
of the worker's CPU, which the tenants' first attempts needed. ``RetryBatches`` gathers
the retries planned within ``WINDOW`` seconds of each other whose due times fall in the
same ``STEP``, and sends them as one ``deliver_later`` message delayed to the end of that
step: a retry goes out at most ``STEP`` seconds after its time, never before it (the
claim would refuse an early copy of a planned retry).

Each caller waits for its message to be sent, as with a message of its own: if the
broker fails, every retry of the batch raises, and recovery queues them again.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dispatch.delivery import Enqueue

WINDOW = 0.02
"""Seconds a batch stays open for more retries after its first."""
STEP = 0.5
"""Retries due within the same step of this many seconds share a message."""
MAX_BATCH = 50
"""Retries in one message at most (each carries its row)."""


@dataclass
class _Batch:
    ids: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    sent: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())


class RetryBatches:
    def __init__(self, enqueue: Enqueue) -> None:
        self.enqueue = enqueue
        self.open: dict[tuple[str, int], _Batch] = {}

    async def plan(self, tenant: str, activity_id: str, delay: float,
                   row: dict[str, Any]) -> None:
        """Send the retry of ``activity_id`` (its row ``row``) in ``delay`` seconds, or at
        most ``STEP`` later, with the others due then; returns once its message is sent."""
        step = math.ceil((time.monotonic() + delay) / STEP)
        key = (tenant, step)
        batch = self.open.get(key)
        if batch is None:
            batch = self.open[key] = _Batch()
            # Retrieved here too: callers cancelled meanwhile leave no unread error.
            batch.sent.add_done_callback(lambda sent: sent.cancelled() or sent.exception())
            asyncio.get_running_loop().call_later(WINDOW, self._close, key, batch)
        batch.ids.append(activity_id)
        batch.rows.append(row)
        if len(batch.ids) >= MAX_BATCH:
            self._close(key, batch)
        await asyncio.shield(batch.sent)

    def _close(self, key: tuple[str, int], batch: _Batch) -> None:
        if self.open.get(key) is not batch:
            return  # closed already (full)
        del self.open[key]
        tenant, step = key
        delay = max(0.0, step * STEP - time.monotonic())
        task = asyncio.ensure_future(
            self.enqueue(tenant, batch.ids, delay, batch.rows, later=True))
        task.add_done_callback(lambda done: _settle(batch.sent, done))


def _settle(future: asyncio.Future[None], task: asyncio.Future[None]) -> None:
    if future.done():
        return
    if task.cancelled():
        future.cancel()
    elif task.exception() is not None:
        future.set_exception(task.exception())  # type: ignore[arg-type]
    else:
        future.set_result(None)
