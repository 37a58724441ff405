"""Dashboards: the counters of deliveries that ended, per bucket of time and per action."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import strawberry

from event_manager.errors import BadInput
from resolvers.context import READ
from schema.stats import ActivityStats
from tenants.database import now, object_id
from tenants.stats import SLICE_MINUTES

MINUTES_A_DAY = 24 * 60
BUCKET_MINUTES = tuple(m for m in range(SLICE_MINUTES, MINUTES_A_DAY + 1, SLICE_MINUTES)
                       if MINUTES_A_DAY % m == 0)
"""5, 10, 15, 20, 30, 40, 45, 60, ... 720, 1440: multiples of the counters' 5-minute
slices that divide a day, so that buckets start at the same times every day (UTC)."""
MAX_WINDOW = timedelta(days=31)
MAX_BUCKETS = 2000


def aligned(moment: datetime, minutes: int, up: bool = False) -> datetime:
    """``moment`` moved to a bucket boundary (a multiple of ``minutes`` since 1970, UTC):
    down, or up with ``up``."""
    step = minutes * 60
    seconds = moment.timestamp()
    edge = (seconds // step + (1 if up and seconds % step else 0)) * step
    return datetime.fromtimestamp(edge, UTC)


def check_window(since: datetime, until: datetime | None,
                 bucket_minutes: int | None) -> tuple[datetime, datetime, int]:
    """The window's bounds on bucket boundaries (``since`` down, ``until`` up), and the
    bucket's minutes; BAD_USER_INPUT naming the argument that is out of bounds."""
    minutes = 5 if bucket_minutes is None else bucket_minutes
    if minutes not in BUCKET_MINUTES:
        raise BadInput(f"bucketMinutes must be a multiple of {SLICE_MINUTES} that divides a "
                       f"day: one of {', '.join(map(str, BUCKET_MINUTES))}",
                       field="bucketMinutes")
    since = since if since.tzinfo else since.replace(tzinfo=UTC)
    until = now() if until is None else until if until.tzinfo else until.replace(tzinfo=UTC)
    if until <= since:
        raise BadInput("until must be after since", field="until")
    if until - since > MAX_WINDOW:
        raise BadInput(f"the window from since to until is at most {MAX_WINDOW.days} days",
                       field="until")
    start, end = aligned(since, minutes), aligned(until, minutes, up=True)
    if (end - start) / timedelta(minutes=minutes) > MAX_BUCKETS:
        raise BadInput(f"at most {MAX_BUCKETS} buckets: make bucketMinutes larger or the "
                       "window shorter", field="bucketMinutes")
    return start, end, minutes


async def activity_stats(info: strawberry.Info, since: datetime,
                         until: datetime | None = None,
                         bucket_minutes: int | None = 5) -> ActivityStats:
    """Deliveries that ended in [since, until) (``until`` defaults to now), both moved out
    to bucket boundaries: per bucket of ``bucketMinutes`` and per action, from counters
    kept as rows end (``tenants.stats``), never from the rows themselves."""
    store = await info.context.tenant_store(READ)
    start, end, minutes = check_window(since, until, bucket_minutes)
    window = await store.stats.window(start, end, minutes)
    oids = [oid for oid in map(object_id, window.actions) if oid]
    names = {str(doc["_id"]): doc["name"] for doc in await store.actions.find(
        {"_id": {"$in": oids}}, {"name": 1}).to_list(None)} if oids else {}
    return ActivityStats.from_window(window, names)
