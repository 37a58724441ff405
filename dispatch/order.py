"""Per-call order (``policy.order: PER_CALL``): for one action and one call (the trigger's
``call_id`` param), deliveries go out one at a time, in the order their triggers were
accepted. A CRM that gets the hangup before the answer, or two updates of one call
record racing each other, is worse off than with no integration.

How (each step one atomic write of one document, ``tenants.calls``):

1. When a trigger is accepted, each of its deliveries to a PER_CALL action joins its
   call's queue *before* its row is written. First in the queue: its row is written
   QUEUED and sent as usual. Otherwise it is written HELD, "waiting for the Answered Call
   delivery of this call", and no message is sent for it.
2. When a row ends (SUCCEEDED, FAILED after its retries, EXPIRED), the worker takes it
   out of the queue; if it was at the head, the next entry's row goes HELD → QUEUED
   (a conditional update: only one party can do it) and is queued. A trigger the API
   takes back (refused, or the queue unavailable) leaves the same way.
3. A HELD row written after the one before it left (the API joined, then the worker
   took the head out, then the API wrote the row) is released by the API itself: it
   looks at the head once its HELD rows are written. Either the worker's release finds
   the row, or the API's look finds it first in the queue, whatever the interleaving.
4. Whatever a stopped process left undone (a worker killed between writing an outcome
   and leaving the queue, an API killed between joining and writing its row) is mended
   by recovery (``stale``), ``EVENT_MANAGER_RECOVERY_SECONDS`` later.

Triggers without ``call_id`` (or with an empty one) and TEST triggers are never held;
different calls and different actions never wait for each other. A FAILED row retried
by hand (``retryActivity``) is sent at once, outside its call's order: an admin asked.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from dispatch import policy
from tenants.activity import FINAL, ActivityLog
from tenants.calls import (
    CallQueues,
    entry,
    entry_event,
    entry_made,
    entry_row_id,
    queue_key,
)
from tenants.catalog import EVENTS_BY_TYPE

log = logging.getLogger("event_manager.order")


def call_key(action: Mapping[str, Any], params: Mapping[str, Any], source: str) -> str | None:
    """The queue a delivery of ``action`` with these trigger ``params`` joins; None when
    it is not held by anything (its action sends in ANY order, a TEST trigger, no
    ``call_id``)."""
    if source != "SYSTEM" or policy.of(action)["order"] != "PER_CALL":
        return None
    call_id = params.get("call_id")
    if call_id is None or call_id == "" or isinstance(call_id, bool):
        return None
    return queue_key(str(action["_id"]), str(call_id))


async def join(calls: CallQueues, row: dict[str, Any], key: str) -> None:
    """Put a row about to be written in its call's queue: HELD behind the one before it,
    or QUEUED as it is when it is the first."""
    waiting = await calls.join(key, entry(row))
    row["call_key"] = key
    if len(waiting) > 1:
        row["status"] = "HELD"
        row["message"] = f"waiting for the {_name(entry_event(waiting[-2]))} delivery of this call"


async def first_now(calls: CallQueues, activity: ActivityLog,
                    row: dict[str, Any]) -> dict[str, Any] | None:
    """After a HELD row is written: the row released (QUEUED) if it heads its queue by now
    (the one before it left meanwhile); else None."""
    waiting = await calls.waiting(row["call_key"])
    if waiting and waiting[0] == entry(row):
        return await release(activity, waiting[0], None)
    return None


async def leave(calls: CallQueues, activity: ActivityLog,
                row: Mapping[str, Any]) -> dict[str, Any] | None:
    """Take a row that ended (or was taken back) out of its call's queue: the next row,
    released (QUEUED) by this, or None."""
    following = await calls.leave(row["call_key"], entry(row))
    return await release(activity, following, row) if following else None


async def release(activity: ActivityLog, value: str,
                  before: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The HELD row of queue entry ``value`` made QUEUED (None when it is not HELD: gone,
    or released by someone else). ``before`` is the row whose end released it."""
    message = "queued: the delivery before it in this call has ended"
    if before is not None:
        message = (f"queued: the {_name(before['event'])} delivery of this call ended "
                   f"{before['status']}")
    return await activity.record(entry_row_id(value), {"status": "QUEUED", "message": message},
                                 expect="HELD")


async def stale(calls: CallQueues, activity: ActivityLog, row: Mapping[str, Any],
                before: datetime) -> dict[str, Any] | None:
    """Recovery of a row HELD since before ``before``: whatever holds it that will never
    move is taken out of the way. The row released, or None when it rightly waits."""
    waiting = await calls.waiting(row["call_key"])
    mine = entry(row)
    if mine not in waiting or waiting[0] == mine:
        # Not in the queue (its join was undone by a process that stopped half-way) or
        # at its head (its release was lost): nothing is ahead of it.
        return await release(activity, mine, None)
    head = waiting[0]
    found = await activity.rows.find_one({"_id": entry_row_id(head)}, {"status": 1})
    if found is None and entry_made(head) >= before:
        return None  # an API may be writing it right now
    if found is not None and found["status"] not in FINAL:
        return None  # the one ahead is still under way (recovery looks after it)
    log.warning("call queue %s: %s left behind by a stopped process; taken out",
                row["call_key"], head)
    following = await calls.leave(row["call_key"], head)
    return await release(activity, following, None) if following else None


def _name(event: str) -> str:
    found = EVENTS_BY_TYPE.get(event)
    return found.name if found else event
