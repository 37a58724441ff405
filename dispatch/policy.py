"""An action's delivery policy (``Action.policy``), and expiry: a delivery not sent within
``expire_after_seconds`` of its event ends EXPIRED, and is never sent afterwards.

A CRM pop-up for a ringing phone is useless a minute later; sent after an hour of
retries it is worse than nothing. So, for an action with an expiry:

- a delivery whose turn comes after its deadline ends EXPIRED instead of being sent
  (a queue that was down, a worker that stopped, a retry due too late), saying how late
  it was;
- an attempt that fails and would be tried again after the deadline ends EXPIRED at
  once, saying what went wrong and when the next try would have been;
- recovery queues such a row like any other, and the worker ends it EXPIRED: recovery
  never sends it.

The deadline counts from the event's ``occurred_at`` (what the PBX said, or the moment
the trigger was accepted when it said nothing). A retry by hand (``retryActivity``)
starts a new cycle, and its deadline counts from that moment (``cycle_at``): an admin
asked for it to be sent now. An EXPIRED row is not retried by hand (``refusal``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from event_manager.zones import clock

MAX_EXPIRE_SECONDS = 7 * 24 * 3600
"""The longest expiry an action may have: a week, past the longest retry schedule."""

ORDERS = ("ANY", "PER_CALL")
"""``DeliveryOrder``: PER_CALL sends one action's deliveries for one call one at a time,
in the order their triggers were accepted (``dispatch.order``)."""

MIN_RATE, MAX_RATE = 0.01, 10_000.0
"""The receiver's limit an action may have (``max_requests_per_second``, ``dispatch.pace``):
one request every 100 s at least, 10,000 a second at most."""

DEFAULT: dict[str, Any] = {"order": "ANY", "expire_after_seconds": None,
                           "max_requests_per_second": None}
"""The policy of an action created without one (and of actions stored before policies)."""


def of(action: Mapping[str, Any]) -> dict[str, Any]:
    """The action's policy, with the defaults for what it does not say."""
    return {**DEFAULT, **(action.get("policy") or {})}


def deadline(row: Mapping[str, Any], action: Mapping[str, Any]) -> datetime | None:
    """When the row's delivery expires; None when its action's never do."""
    seconds = of(action)["expire_after_seconds"]
    if not seconds:
        return None
    return _start(row) + timedelta(seconds=seconds)


def _start(row: Mapping[str, Any]) -> datetime:
    """The moment the row's expiry counts from: its event, or a retry by hand."""
    start = row.get("cycle_at") or row["occurred_at"]
    return start if start.tzinfo is not None else start.replace(tzinfo=UTC)


def expired(row: Mapping[str, Any], action: Mapping[str, Any], timezone: str | None,
            now: datetime | None = None) -> dict[str, Any] | None:
    """The changes that end a row EXPIRED when its turn to be sent comes after its
    deadline; None when it may be sent. Times are told in ``timezone``, the tenant's."""
    ends = deadline(row, action)
    now = now or datetime.now(UTC)
    if ends is None or now < ends:
        return None
    late = (now - ends).total_seconds()
    return _expired(f"not sent: {_seconds(late)} late (the action allows "
                    f"{_seconds(of(action)['expire_after_seconds'])} after {_what(row)} at "
                    f"{clock(_start(row), timezone, now)})")


def within(changes: dict[str, Any], row: Mapping[str, Any], action: Mapping[str, Any],
           timezone: str | None, now: datetime | None = None) -> dict[str, Any]:
    """An attempt's changes, unless they plan a retry after the row's deadline: then the
    row ends EXPIRED now, saying what happened and when the retry would have been."""
    ends = deadline(row, action)
    planned = changes.get("next_attempt_at")
    if changes.get("status") != "RETRYING" or ends is None or planned is None or planned <= ends:
        return changes
    what = changes["message"].split(", retry ", 1)[0]
    return {**changes, **_expired(
        f"{what}; not retried: the next attempt, at {clock(planned, timezone, now)}, would "
        f"be after the delivery expires at {clock(ends, timezone, now)} "
        f"({_seconds(of(action)['expire_after_seconds'])} after {_what(row)})")}


def refusal(row: Mapping[str, Any], timezone: str | None) -> str:
    """Why ``retryActivity`` does not send an EXPIRED row again."""
    return (f"an EXPIRED delivery is not sent again: it was meant for {_what(row)} at "
            f"{clock(_start(row), timezone)}. Send the action now with testEvent, or raise its "
            "policy's expireAfterSeconds for the deliveries to come")


def _expired(message: str) -> dict[str, Any]:
    return {"status": "EXPIRED", "message": message, "next_attempt_at": None}


def _what(row: Mapping[str, Any]) -> str:
    return "its retry by hand" if row.get("cycle_at") else "the event"


def _seconds(value: float) -> str:
    """``"42 s"``, ``"1.5 s"``, ``"3 h 2 min"``: how late, or how long allowed."""
    if value < 10:
        return f"{value:.1f} s".replace(".0 s", " s")
    if value < 120:
        return f"{value:.0f} s"
    minutes = round(value / 60)
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"
