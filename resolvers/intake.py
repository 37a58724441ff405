"""Intake: concurrent ``triggerEvent`` calls of one tenant run as one batch (group commit).

FerretDB on SQLite writes one transaction at a time, and a batch insert costs per row
about 1/20 of a single insert: 32 PBX connections sending one trigger per call reached
~340 triggers/s, while ``triggerEvents`` with 100 per call reached ~6,000. Intake gives
single calls the batch path without a waiting window (no timer):

- a call whose tenant has no batch running starts one at once, holding just itself, so a
  call alone is answered as fast as before;
- calls that arrive while a batch of their tenant runs wait for it to end; the next batch
  then takes all of them (at most ``MAX_BATCH``).

A batch runs in a task of its own: a caller that goes away (a closed WebSocket cancels its
operation) neither stops nor loses the others' calls. A caller gone before its batch
starts is left out of it, so nothing is done for it. An item that fails alone (the
database refused its rows, ``resolvers/batch.py``) fails its own caller only; when the
batch as a whole raises, every caller of the batch gets that error.

Intake knows nothing of triggers (``resolvers/batch.py`` says how a batch runs), so the
app can make one per process without importing the schema.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

MAX_BATCH = 500
"""Triggers per batch at most: of one ``triggerEvents`` call, or of calls joined here."""

RunBatch = Callable[[list[Any]], Awaitable[list[Any]]]
"""Runs the items of a batch; one result per item, in their order: an exception among
them is that item's own failure, raised to its caller alone."""


@dataclass(frozen=True)
class Waiting:
    """An item of the next batch, and the future its caller awaits."""

    item: Any
    answer: asyncio.Future[Any]


class Intake:
    """One per API process. A batch holds the calls of one key (a tenant code); calls of
    different keys never share a batch nor wait for each other."""

    def __init__(self) -> None:
        self.waiting: dict[str, list[Waiting]] = {}
        self.running: dict[str, asyncio.Task[None]] = {}
        """Key → the task running its batches; holding it here keeps it alive."""

    async def join(self, key: str, item: Any, run: RunBatch) -> Any:
        """``item``'s result, from ``run`` called on a batch of the key's concurrent items,
        or the error ``run`` raised. Every call of a key passes the same ``run``."""
        waiting = Waiting(item, asyncio.get_running_loop().create_future())
        self.waiting.setdefault(key, []).append(waiting)
        if key not in self.running:
            self.running[key] = asyncio.create_task(self.drain(key, run))
        return await waiting.answer

    async def drain(self, key: str, run: RunBatch) -> None:
        """Run the key's waiting calls, a batch at a time, until none is left."""
        try:
            while batch := self.take(key):
                await self.run_batch(batch, run)
        finally:
            del self.running[key]

    def take(self, key: str) -> list[Waiting]:
        """The next batch: up to ``MAX_BATCH`` waiting calls whose caller still waits."""
        waiting = [w for w in self.waiting.pop(key, []) if not w.answer.done()]
        if len(waiting) > MAX_BATCH:
            self.waiting[key] = waiting[MAX_BATCH:]
        return waiting[:MAX_BATCH]

    async def run_batch(self, batch: list[Waiting], run: RunBatch) -> None:
        try:
            results = await run([w.item for w in batch])
            for waiting, result in zip(batch, results, strict=True):
                if waiting.answer.done():  # its caller went away meanwhile
                    continue
                if isinstance(result, Exception):  # this item's own failure
                    waiting.answer.set_exception(result)
                else:
                    waiting.answer.set_result(result)
        except Exception as exc:  # Unavailable, or an unexpected error each caller logs
            for waiting in batch:
                if not waiting.answer.done():
                    waiting.answer.set_exception(exc)
        finally:
            for waiting in batch:  # answered already, unless this task was cancelled
                waiting.answer.cancel()
