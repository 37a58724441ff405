"""Recovery: deliveries whose row is stuck are queued again.

A row can be left behind when a worker dies mid-send (SENDING), when a message is lost
or never reached the broker (QUEUED), or when a planned retry's message is lost
(RETRYING). After ``EVENT_MANAGER_RECOVERY_SECONDS`` such a row is queued again; the
claim on the row keeps two workers from sending the same attempt.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from dispatch.delivery import Enqueue
from tenants.activity import IDEMPOTENCY
from tenants.catalog import MAX_TIMEOUT_SECONDS
from tenants.database import Database, now
from tenants.registry import TenantRegistry
from tenants.store import TenantStore

log = logging.getLogger("event_manager.recovery")


async def recover(db: Database, enqueue: Enqueue, after_seconds: float) -> int:
    """Queue every stuck delivery again; the number queued."""
    moment = now()
    grace = timedelta(seconds=after_seconds)
    total = 0
    for tenant in await TenantRegistry(db).list():
        log_ = TenantStore(db, tenant).log
        ids = [str(r["_id"]) for r in await log_.stale("QUEUED", "updated_at", moment - grace)]
        ids += [str(r["_id"]) for r in
                await log_.stale("RETRYING", "next_attempt_at", moment - grace)]
        lost = await log_.stale("SENDING", "updated_at",
                                moment - grace - timedelta(seconds=MAX_TIMEOUT_SECONDS))
        for row in lost:
            handed_back = await log_.record(row["_id"], {
                "status": "RETRYING", "next_attempt_at": moment,
                "message": "the worker stopped during this attempt; sending again",
            })
            if handed_back is not None:
                ids.append(str(row["_id"]))
        if ids:
            log.warning("tenant %s: %d stuck deliveries queued again", tenant["code"], len(ids))
            await enqueue(tenant["code"], ids, 0.0)
            total += len(ids)
    return total


async def housekeep(db: Database, retention_days: int) -> int:
    """Forget idempotency keys and delivery claims past their 24 hours, and finished
    activity rows older than ``retention_days``; how many documents went."""
    total = 0
    for tenant in await TenantRegistry(db).list():
        log_ = TenantStore(db, tenant).log
        total += await log_.forget_before(now() - IDEMPOTENCY)
        total += await log_.prune(now() - timedelta(days=retention_days))
    return total
