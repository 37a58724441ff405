"""Action health as a worker process records it: the end of each delivery (SUCCEEDED or
FAILED; RETRYING is not an end) counted into its action's health (``tenants.health``),
and the action disabled once it has failed without a success for the tenant's
``autoDisableAfterHours``.

A delivery already costs three database writes, so health adds none to a routine one:

- A FAILED delivery is written at once (the streak starts or grows). Failures that end
  while the action's previous health write is on its way are written together, as one
  ``$inc`` of their number: one write at a time per action and process, so a process
  never races itself, and a storm of failures costs a few writes, not one each. A
  delivery waits for the write that holds its end (two writes at most), never for a
  storm to pass.
- A SUCCEEDED delivery is written only when it ends a streak this process wrote, or when
  this process has not written a success of the action for ``SUCCESS_EVERY_SECONDS``:
  an action that keeps succeeding costs one health write a minute per process. The
  success not written is kept in memory and goes out with the next write of the action
  (a failure, or the next success a minute on); a process that stops loses it.
- Only disabling touches the tenant's config stamp; counters never do.

Another process's failures are reset by this process's successes within a minute at
most, so ``consecutiveFailures`` may count a failure or two across a success seen by
another process for that long. The disable rule reads when the streak started, which a
success ends at once in the process that saw it: a streak of failures far longer than a
minute (an hour at least) cannot hold a success.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dispatch.view import TenantView
from event_manager.sizes import cut
from tenants.database import now
from tenants.health import LAST_ERROR_CHARS, auto_disable_hours, due, failing_reason

log = logging.getLogger("event_manager.delivery")

SUCCESS_EVERY_SECONDS = 60.0
"""A process writes an action's routine success at most this often."""
MAX_TRACKED = 10_000
"""Actions a process keeps what it has not written of (the oldest idle one goes first)."""


@dataclass
class Ends:
    """What one process knows of one action's delivery ends and has not written yet."""

    success_at: datetime | None = None
    failures: int = 0
    """FAILED ends since ``success_at`` (or since the last write, without a success)."""
    first_failure_at: datetime | None = None
    last_failure_at: datetime | None = None
    last_error: str = ""
    success_written: float = -math.inf
    """When (``time.monotonic``) this process last wrote a success of the action."""
    streak_written: bool = False
    """This process wrote a failure since its last success write."""
    writer: asyncio.Future[None] | None = None
    """Writes what is held, one write at a time, while anything is due."""
    written: asyncio.Future[None] | None = None
    """Done once what is held now is written (by the writer's next write)."""

    def add(self, status: str, at: datetime, message: str) -> None:
        if status == "SUCCEEDED":
            self.success_at, self.failures, self.first_failure_at = at, 0, None
        else:
            self.failures += 1
            self.first_failure_at = self.first_failure_at or at
            self.last_failure_at, self.last_error = at, message

    def due(self, clock: float) -> bool:
        """Whether what is held must be written now."""
        return self.failures > 0 or self.success_at is not None and (
            self.streak_written or clock - self.success_written >= SUCCESS_EVERY_SECONDS)

    def take(self, clock: float) -> dict[str, Any]:
        """The update writing what is held, which is no longer held."""
        fields: dict[str, Any] = {}
        if self.last_failure_at is not None:
            fields = {"last_failure_at": self.last_failure_at,
                      "last_error": cut(self.last_error, LAST_ERROR_CHARS)}
        if self.success_at is None:
            update = {"$inc": {"failures": self.failures}, "$set": fields,
                      "$min": {"failing_since": self.first_failure_at}}
        else:
            fields.update(failures=self.failures, last_success_at=self.success_at)
            update = {"$set": fields}
            if self.failures:
                fields["failing_since"] = self.first_failure_at
            else:
                update["$unset"] = {"failing_since": ""}
            self.success_written = clock
        self.streak_written = self.failures > 0
        self.success_at, self.failures = None, 0
        self.first_failure_at = self.last_failure_at = None
        return update


class HealthRecorder:
    """One worker process's health writes, by tenant and action."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.held: OrderedDict[tuple[str, str], Ends] = OrderedDict()

    async def ended(self, view: TenantView, row: dict[str, Any],
                    updated: dict[str, Any]) -> None:
        """Count a delivery's outcome as written (``updated``), if it is an end; wait
        for the health write that includes it, if one is due. Never raises: health is
        kept beside the delivery, whose outcome is written already."""
        status = updated["status"]
        if status not in ("SUCCEEDED", "FAILED") or not row.get("action_id"):
            return
        key = (view.code, row["action_id"])
        ends = self._ends(key)
        ends.add(status, updated["updated_at"], updated["message"])
        if not ends.due(self.clock()):
            return
        if ends.written is None:
            ends.written = asyncio.get_running_loop().create_future()
        written = ends.written
        if ends.writer is None:
            ends.writer = asyncio.ensure_future(self._write(view, row["action_id"], ends))
        await asyncio.shield(written)  # the write in progress and the next at most

    def _ends(self, key: tuple[str, str]) -> Ends:
        ends = self.held.get(key)
        if ends is None:
            ends = self.held[key] = Ends()
            while len(self.held) > MAX_TRACKED:
                oldest, first = next(iter(self.held.items()))
                if first.writer is not None:
                    break
                del self.held[oldest]
        self.held.move_to_end(key)
        return ends

    async def _write(self, view: TenantView, action_id: str, ends: Ends) -> None:
        """Write what is held until nothing is due, one write at a time. A write that
        fails (after ``patiently``'s tries) loses what it held: it is logged, and the
        next end of the action is written as usual."""
        try:
            while ends.due(self.clock()):
                written, ends.written = ends.written, None
                try:
                    update = ends.take(self.clock())
                    action, settings = await view.action_and_settings(action_id)
                    if action is None:
                        continue  # deleted: its counters went with it
                    health = await view.write_health(action_id, update)
                    if health.get("failing_since") is not None:
                        await self._check(view, action, settings, health)
                except Exception as exc:
                    log.warning("could not record the health of action %s (%s: %s)",
                                action_id, type(exc).__name__, exc)
                finally:
                    if written is not None and not written.done():
                        written.set_result(None)
        finally:
            ends.writer = None
            if ends.written is not None and not ends.written.done():
                ends.written.set_result(None)  # cancelled: no one waits for it
            ends.written = None

    @staticmethod
    async def _check(view: TenantView, action: dict[str, Any], settings: dict[str, Any],
                     health: dict[str, Any]) -> None:
        """Disable the action if it has failed without a success for long enough (as of
        the view's stamp, it is enabled: the disable checks again as it writes)."""
        if action.get("disabled"):
            return
        hours = auto_disable_hours(settings)
        at = now()
        if hours is None or not due(health, hours, at):
            return
        reason = failing_reason(health, hours)
        if await view.disable(str(action["_id"]), reason, at):
            log.warning("action %s disabled: %s", action["name"], reason)
