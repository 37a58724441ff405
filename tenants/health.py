"""Action health: how an action's deliveries have been ending, and the rule that disables
an action whose deliveries have all FAILED for ``Settings.autoDisableAfterHours``.

What is stored where, and why apart:

- The *state* is part of the action's configuration: ``disabled: {at, reason}`` on the
  action's document (absent while it is enabled). It changes rarely, always with a
  config stamp (``dispatch.stamps``), so that the next trigger in any API process sees it.
- The *counters* live in the tenant's ``health`` collection, one document per action
  (``_id``: the action's id): ``failures`` (deliveries in a row that ended FAILED),
  ``failing_since`` (when the first of them ended; absent after a success),
  ``last_success_at``, ``last_failure_at``, ``last_error``; and while a worker process
  has paused the action (``dispatch.breaker``), ``paused_until`` and ``paused_reason``.
  They change with deliveries,
  so they are kept out of the configuration: writing them never makes a worker or an
  API reload the tenant's actions. The worker writes them (``dispatch.health``) with
  atomic operators only (``$inc``, ``$min``, ``$set``), never a read-modify-write.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import OperationFailure

from event_manager.errors import BadInput
from event_manager.zones import clock
from tenants.database import is_duplicate

DEFAULT_HOURS = 24
MIN_HOURS, MAX_HOURS = 1, 8760
"""``autoDisableAfterHours`` is between one hour and a year (or null: never)."""
PAUSE_UNSET = {"paused_until": "", "paused_reason": ""}
"""A pause's fields (``dispatch.breaker``), as an ``$unset``."""
LAST_ERROR_CHARS = 200
"""The last failure's message, as a disabled action's reason quotes it."""


def auto_disable_hours(settings: dict[str, Any]) -> int | None:
    """The tenant's ``autoDisableAfterHours``: 24 unless set; None (never) when set so."""
    return settings.get("auto_disable_after_hours", DEFAULT_HOURS)


def checked_hours(value: int | None, field: str) -> int | None:
    if value is not None and not MIN_HOURS <= value <= MAX_HOURS:
        raise BadInput(f"autoDisableAfterHours must be between {MIN_HOURS} and {MAX_HOURS} "
                       "hours, or null for never", field=field)
    return value


def due(health: dict[str, Any], hours: int | None, at: datetime) -> bool:
    """Whether an action with these counters has failed without a success for ``hours``
    as of ``at``."""
    since = health.get("failing_since")
    return hours is not None and since is not None and since <= at - timedelta(hours=hours)


def failing_reason(health: dict[str, Any], hours: int) -> str:
    """``failed 212 times in a row over 24 hours; last: connection refused``."""
    times = "once" if health["failures"] == 1 else f"{health['failures']} times in a row"
    span = "1 hour" if hours == 1 else f"{hours} hours"
    return f"failed {times} over {span}; last: {health.get('last_error') or 'unknown'}"


def skip_message(action: dict[str, Any], timezone: str | None) -> str:
    """What the SKIPPED row of a trigger says of a disabled action: "action CRM disabled
    on 2026-12-03 05:40:00 (Europe/Sarajevo): failed …", in the tenant's zone."""
    disabled = action["disabled"]
    return (f"action {action['name']} disabled on {clock(disabled['at'], timezone, date=True)}: "
            f"{disabled['reason']}; setActionEnabled turns it back on")


class HealthLog:
    """One tenant's ``health`` collection."""

    def __init__(self, collection: AsyncCollection) -> None:
        self.collection = collection

    async def by_action(self) -> dict[str, dict[str, Any]]:
        """Every action's counters, by action id (one document per action)."""
        return {str(d["_id"]): d for d in await self.collection.find({}).to_list(None)}

    async def write(self, action_id: ObjectId, update: dict[str, Any]) -> dict[str, Any]:
        """Apply ``update`` to the action's counters (made on first use): the counters
        after it. Two processes making the same action's document at once: one of them
        meets a duplicate key, and its update is made again onto the other's document."""
        try:
            return await self._update(action_id, update)
        except OperationFailure as error:
            if not is_duplicate(error):
                raise
            return await self._update(action_id, update)

    async def _update(self, action_id: ObjectId, update: dict[str, Any]) -> dict[str, Any]:
        return await self.collection.find_one_and_update(
            {"_id": action_id}, update, upsert=True, return_document=ReturnDocument.AFTER)

    async def reset(self, action_id: ObjectId) -> None:
        """A new start (the action turned back on): no failure streak, no pause."""
        await self.collection.update_one(
            {"_id": action_id}, {"$set": {"failures": 0},
                                 "$unset": {"failing_since": "", **PAUSE_UNSET}})

    async def unpause(self, action_id: ObjectId) -> None:
        """The action was edited: workers count its attempts anew (``dispatch.breaker``),
        so it is no longer shown paused."""
        await self.collection.update_one({"_id": action_id, "paused_until": {"$ne": None}},
                                         {"$unset": PAUSE_UNSET})

    async def forget(self, action_id: ObjectId) -> None:
        await self.collection.delete_one({"_id": action_id})

