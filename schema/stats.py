"""What a dashboard draws: deliveries ended per bucket of time, and per action."""

from __future__ import annotations

from datetime import datetime

import strawberry

from schema.enums import ActivityStatus
from tenants.stats import Tally, Window, percentile

DELETED_ACTION = "(deleted)"
"""The name of an action that was deleted since its deliveries ended."""


@strawberry.type
class ActivityBucket:
    start: datetime
    succeeded: int
    failed: int
    skipped: int
    expired: int
    retried: int = strawberry.field(description="attempts beyond the first")
    p50_ms: float | None = strawberry.field(
        description="trigger accepted -> final response, of the rows that ended in the "
                    "bucket and were sent (SUCCEEDED or FAILED); estimated within 9 %")
    p95_ms: float | None

    @classmethod
    def from_tally(cls, start: datetime, tally: Tally) -> ActivityBucket:
        c = tally.counts
        return cls(start=start, succeeded=c["s"], failed=c["f"], skipped=c["k"],
                   expired=c["e"], retried=c["r"], p50_ms=percentile(tally.histogram, 0.5),
                   p95_ms=percentile(tally.histogram, 0.95))


@strawberry.type
class ActionStats:
    action_id: strawberry.ID
    action_name: str
    succeeded: int
    failed: int
    expired: int
    p95_ms: float | None
    last_status: ActivityStatus | None
    last_at: datetime | None

    @classmethod
    def from_tally(cls, action_id: str, name: str | None, tally: Tally) -> ActionStats:
        c = tally.counts
        status = tally.last_status
        return cls(action_id=strawberry.ID(action_id), action_name=name or DELETED_ACTION,
                   succeeded=c["s"], failed=c["f"], expired=c["e"],
                   p95_ms=percentile(tally.histogram, 0.95),
                   last_status=ActivityStatus(status) if status else None,
                   last_at=tally.last_at)

    @property
    def worst_first(self) -> tuple[int, float, int, str]:
        return (-self.failed, -(self.p95_ms or 0.0), -self.expired, self.action_name)


@strawberry.type
class ActivityStats:
    since: datetime
    until: datetime
    buckets: list[ActivityBucket]
    actions: list[ActionStats] = strawberry.field(
        description="the actions with deliveries that ended in the window, worst first "
                    "(most FAILED, then the highest p95)")

    @classmethod
    def from_window(cls, window: Window, names: dict[str, str]) -> ActivityStats:
        step = window.minutes * 60
        buckets = [ActivityBucket.from_tally(
            datetime.fromtimestamp(window.since.timestamp() + i * step, window.since.tzinfo),
            tally) for i, tally in enumerate(window.buckets)]
        actions = [ActionStats.from_tally(action_id, names.get(action_id), tally)
                   for action_id, tally in window.actions.items()
                   if any(tally.counts.values())]
        return cls(since=window.since, until=window.until, buckets=buckets,
                   actions=sorted(actions, key=lambda a: a.worst_first))
