"""Recovery: deliveries whose row is stuck are queued again.

A row can be left behind when a worker dies mid-send: SENDING, or still QUEUED or
RETRYING with a claim on the next attempt (a row is marked SENDING only when its attempt
takes over a second, ``dispatch.delivery.SENDING_AFTER_SECONDS``); when a message is lost
or never reached the broker (QUEUED); or when a planned retry's message is lost
(RETRYING). ``EVENT_MANAGER_RECOVERY_SECONDS`` after it was due (for an attempt under
way: after the action's timeout ran out) such a row is queued again; the claim on each
attempt keeps two workers from sending the same attempt. A sweep finds such rows by
their status, through the activity's index on it (``ActivityLog.unfinished``): it reads
the deliveries in flight, not the history. One worker process of the installation sweeps at a time
(``Liveness.turn``): the others would read the same rows.

An attempt whose worker stopped is counted and the row handed back as RETRYING: the
request may or may not have left, so the receiver may get it twice (at-least-once).
Time alone cannot tell a stopped worker from a busy one (under load a claimed delivery
can wait many seconds for the database before and after it is sent), so every worker
process publishes which deliveries it holds (``Liveness``), and a row that a live worker
holds is never handed back or queued again.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import redis.asyncio as aioredis

from dispatch import order
from dispatch.delivery import Enqueue
from tenants.activity import IDEMPOTENCY
from tenants.audit import AuditLog
from tenants.catalog import MAX_TIMEOUT_SECONDS
from tenants.database import Database, now, object_id
from tenants.registry import TenantRegistry
from tenants.store import TenantStore

log = logging.getLogger("event_manager.recovery")

MAX_BACKOFF_SECONDS = 600.0
"""A row queued again and still not picked up is queued again after twice the wait of
the time before, up to this: a long queue is not flooded with copies of its own rows."""


@dataclass
class Liveness:
    """The deliveries that live workers hold, in Redis.

    Each worker process sets ``<database>:holding:<worker id>`` to the ids of the
    deliveries it has in flight, every ``ttl / 4`` seconds, expiring after ``ttl``: the
    key of a worker that stopped is gone ``ttl`` seconds later. A reader that lost Redis
    itself learns nothing for ``ttl`` seconds after it is back, so that live workers have
    published again first."""

    redis: aioredis.Redis
    prefix: str
    ttl: float
    ok_since: float | None = None

    @property
    def every(self) -> float:
        return self.ttl / 4

    async def publish(self, worker: str, holding: Iterable[str]) -> None:
        try:
            await self.redis.set(self.prefix + worker, json.dumps(sorted(holding)),
                                 px=max(1, int(self.ttl * 1000)))
        except (aioredis.RedisError, OSError):
            self.ok_since = None
            raise
        if self.ok_since is None:
            self.ok_since = time.monotonic()

    async def forget(self, worker: str) -> None:
        await self.redis.delete(self.prefix + worker)

    async def turn(self, key: str, worker: str, seconds: float) -> bool:
        """Whether ``worker`` takes the next ``seconds`` of a task that one worker process
        of the installation does at a time (the recovery sweep: each process would
        otherwise read the same rows not final, and on FerretDB reading 1,000 of them
        takes its server 100-200 ms of CPU). True when Redis cannot tell: a sweep twice
        is only work done twice."""
        try:
            return bool(await self.redis.set(key, worker, nx=True,
                                             px=max(1, int(seconds * 1000))))
        except (aioredis.RedisError, OSError):
            return True

    async def held(self) -> set[str] | None:
        """Ids of deliveries held by live workers; None when that cannot be known now."""
        if self.ok_since is None or time.monotonic() - self.ok_since < self.ttl:
            return None
        try:
            keys = [k async for k in self.redis.scan_iter(match=self.prefix + "*", count=1000)]
            values = await self.redis.mget(keys) if keys else []
        except (aioredis.RedisError, OSError):
            return None
        return {row_id for value in values if value for row_id in json.loads(value)}


@dataclass
class Recovery:
    """One worker process's sweeper; it remembers which rows it queued again and when."""

    db: Database
    enqueue: Enqueue
    after_seconds: float
    liveness: Liveness
    requeued: dict[tuple[str, int], tuple[float, float]] = field(default_factory=dict)
    """(row id, attempts) → (monotonic time before which it is not queued again, the
    wait after that)."""

    async def sweep(self) -> int:
        """Queue every stuck delivery again; the number queued."""
        total = 0
        # One moment for the whole sweep, taken with ``held``: a sweep can take a while,
        # and a row claimed after ``held`` was read must not look stale against it.
        held = await self.liveness.held()
        moment = now()
        for tenant in await TenantRegistry(self.db).list():
            store = TenantStore(self.db, tenant)
            rows = await self._stuck(store, moment, held)
            if rows:
                log.warning("tenant %s: %d stuck deliveries queued again", store.code, len(rows))
                await self.enqueue(store.code, [str(r["_id"]) for r in rows], 0.0, None)
                self._queued(rows)
                total += len(rows)
            total += await self._release_held(store, moment)
        self._forget()
        return total

    async def _stuck(self, store: TenantStore, moment: datetime,
                     held: set[str] | None) -> list[dict[str, Any]]:
        """The rows to queue again (those of stopped attempts already handed back).
        ``held`` None (not known) hands nothing back: a stopped attempt waits."""
        grace = timedelta(seconds=self.after_seconds)
        timeouts: dict[str, timedelta] = {}
        stuck = []
        for row in await store.log.unfinished(moment - grace):
            if held is not None and str(row["_id"]) in held:
                continue  # a live worker has it, busy or waiting for the database
            action_id = row["action_id"] or ""
            if action_id not in timeouts:
                timeouts[action_id] = await _timeout(store, action_id)
            started_before = moment - grace - timeouts[action_id]
            if row["status"] == "SENDING":
                if held is not None and row["updated_at"] < started_before and await _hand_back(
                        store, row, row["attempts"], moment):
                    stuck.append(row)
                continue
            # a QUEUED row waiting for its turn under a rate limit is due at its turn
            due = row.get("next_attempt_at") or (
                row["updated_at"] if row["status"] == "QUEUED" else None)
            if due is not None and due >= moment - grace:
                continue
            if self.requeued.get(_key(row), (0.0,))[0] > time.monotonic():
                continue  # queued again lately; the queue may just be long
            claim = await store.log.next_claim(row)
            if claim is None:
                stuck.append(row)
            elif held is not None and claim["at"] < started_before and await _hand_back(
                    store, row, row["attempts"] + 1, moment):
                stuck.append(row)  # its worker stopped during the claimed attempt
        return stuck

    async def _release_held(self, store: TenantStore, moment: datetime) -> int:
        """HELD rows that wait on nothing that will ever end (a process stopped between
        ending a row and taking it out of its call's queue) are queued
        (``dispatch.order.stale``); how many."""
        before = moment - timedelta(seconds=self.after_seconds)
        released = []
        for row in await store.log.held(before):
            found = await order.stale(store.calls, store.log, row, before)
            if found is not None:
                released.append(found)
        if released:
            log.warning("tenant %s: %d held deliveries released", store.code, len(released))
            await self.enqueue(store.code, [str(r["_id"]) for r in released], 0.0, released)
        return len(released)

    def _queued(self, rows: list[dict[str, Any]]) -> None:
        clock = time.monotonic()
        for row in rows:
            _, wait = self.requeued.get(_key(row), (0.0, self.after_seconds))
            self.requeued[_key(row)] = (clock + wait, min(wait * 2, MAX_BACKOFF_SECONDS))

    def _forget(self) -> None:
        """Drop rows not queued again for a long time (finished, most likely)."""
        horizon = time.monotonic() - 2 * MAX_BACKOFF_SECONDS
        for key in [k for k, (t, _) in self.requeued.items() if t < horizon]:
            del self.requeued[key]


def _key(row: dict[str, Any]) -> tuple[str, int]:
    return str(row["_id"]), row["attempts"]


async def _timeout(store: TenantStore, action_id: str) -> timedelta:
    oid = object_id(action_id)
    action = await store.actions.find_one({"_id": oid}, {"timeout_seconds": 1}) if oid else None
    seconds = (action or {}).get("timeout_seconds") or MAX_TIMEOUT_SECONDS
    return timedelta(seconds=seconds)


async def _hand_back(store: TenantStore, row: dict[str, Any], attempts: int,
                     moment: datetime) -> bool:
    """Count the interrupted attempt and make the row RETRYING, due now, unless it moved
    on since it was read."""
    current = await store.log.get(str(row["_id"]))
    if current is None or any(current[k] != row[k] for k in ("status", "attempts",
                                                             "updated_at")):
        return False
    await store.log.record(row["_id"], {
        "status": "RETRYING", "attempts": attempts, "next_attempt_at": moment,
        "message": "the worker stopped during this attempt; sending again",
    })
    return True


async def housekeep(db: Database, retention_days: int) -> int:
    """Forget idempotency keys and delivery claims past their 24 hours; finished activity
    rows, audit entries (the system's too) and the hours of their counters older than
    ``retention_days``; and calls' queues empty for an hour. How many documents went."""
    total = await AuditLog.of(db, None).prune(now() - timedelta(days=retention_days))
    for tenant in await TenantRegistry(db).list():
        store = TenantStore(db, tenant)
        total += await store.log.forget_before(now() - IDEMPOTENCY)
        total += await store.log.prune(now() - timedelta(days=retention_days))
        total += await store.stats.prune(now() - timedelta(days=retention_days))
        total += await store.audit.prune(now() - timedelta(days=retention_days))
        total += await store.calls.forget_empty(now() - timedelta(hours=1))
    return total
