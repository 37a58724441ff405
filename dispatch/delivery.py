"""One delivery, in plain steps: turn (under its action's rate limit: ``dispatch.pace``)
→ claim → (expired? deleted?) → render → guard → send → record.

Plain async code with its resources passed in, so it runs (and is tested) without a
broker: ``dispatch.runtime`` hands it each delivery of a message, with the tenant's view
that the message's deliveries share (``dispatch.view``). Every database call goes
through that view, which waits for the tenant's turn and tries again after transient
errors; what a row says about an attempt is made in ``dispatch.outcome``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, Protocol

from dispatch import policy, retry
from dispatch.breaker import Breakers, Change
from dispatch.client import Response, send, wire_url
from dispatch.egress import Egress
from dispatch.guard import OutboundGuard
from dispatch.health import HealthRecorder
from dispatch.lane import RenderLane
from dispatch.live import Publisher
from dispatch.outcome import Report, describe, failed, observe
from dispatch.pace import Pace, limit_of, take_turn, throttled
from dispatch.render import RenderedRequest, RenderError, render_request
from dispatch.retry_batches import RetryBatches
from dispatch.signing import signature_headers
from dispatch.view import MessageView, Stopping, TenantView, Values, Views
from event_manager import logs, metrics, tracing
from event_manager.config import Settings
from tenants.database import now
from tenants.health import PAUSE_UNSET

log = logging.getLogger("event_manager.delivery")

class Enqueue(Protocol):
    """``enqueue(tenant, activity_ids, delay_seconds, rows, later=False)``: one delivery
    message; ``rows`` (or None) are the rows as they are now, carried so that the worker
    need not read them. ``later``: on the queue that workers serve after the first
    attempts' (``Settings.later_queue_name``), for retries and deliveries handed back."""

    def __call__(self, tenant: str, activity_ids: list[str], delay_seconds: float,
                 rows: list[dict[str, Any]] | None, later: bool = False) -> Awaitable[None]: ...


SENDING_AFTER_SECONDS = 1.0
"""A claimed row is written SENDING only when its attempt has not ended after this long:
most attempts end sooner, and their row goes straight to the outcome (one database
write instead of two). The live stream shows SENDING either way, and recovery knows the
attempt from its claim."""


@dataclass
class Deliverer:
    """The worker's clients, and the steps of one delivery."""

    views: Views
    egress: Egress
    """The outbound sessions, proxy and TLS contexts (``dispatch.egress``)."""
    guard: OutboundGuard
    publisher: Publisher
    settings: Settings
    enqueue: Enqueue
    lane: RenderLane = field(default_factory=RenderLane)
    """Big renders run here, beside the event loop every tenant's deliveries share."""
    health: HealthRecorder = field(default_factory=HealthRecorder)
    """Each delivery's end counted into its action's health (``dispatch.health``)."""
    pace: Pace | None = None
    """The actions' rate limits, shared by every worker process (``dispatch.pace``)."""
    retries: RetryBatches = field(init=False)
    """Planned retries due together go as one message (``dispatch.retry_batches``)."""
    breakers: Breakers = field(init=False)
    """Actions whose endpoint keeps failing, paused (``dispatch.breaker``)."""

    def __post_init__(self) -> None:
        self.retries = RetryBatches(self.enqueue)
        self.breakers = Breakers(self.settings.pause_after_failures)

    async def deliver(self, message: MessageView, activity_id: str,
                      known: dict[str, Any] | None = None,
                      trace_context: dict[str, str] | None = None) -> None:
        """Claim, send and record one delivery of ``message``, whose deliveries share
        their tenant's view. ``known`` is the row as the message carries it
        (``ActivityLog.claim``); ``trace_context``, the context the message was sent in:
        the attempt's span is a child of the row's trigger, else of that."""
        with logs.context(tenant=message.tenant, activity_id=activity_id):
            view = await message.open()
            if known is not None and await self._paused(view, activity_id, known):
                return
            ready = await take_turn(self.pace, view, activity_id, known, self.publisher,
                                    self.enqueue)
            if ready is None:  # it waits for its turn under the receiver's limit
                return
            row = await self._claim(view, activity_id, ready.row)
            if row is None:
                return
            with (logs.context(trigger_id=row["trigger_id"]),
                  tracing.attempt_span(row, message.tenant, trace_context)):
                action, values = await view.action_and_values(row)
                if action is None:
                    changes = failed("the action was deleted before it was sent")
                else:  # a row whose turn came after it expired is not sent
                    changes = (policy.expired(row, action, values.timezone) or ready.ends
                               or await self._sent(view, row, action, values))
                await self._record(view, row, changes)
                tracing.note(status=changes.get("status"), message=changes.get("message"))

    async def _paused(self, view: TenantView, activity_id: str, row: dict[str, Any]) -> bool:
        """Whether the delivery goes back to the broker, its action paused
        (``dispatch.breaker``), without a claim; one that would expire first comes back
        at its deadline (and ends EXPIRED then)."""
        action_id = str(row.get("action_id"))
        if not self.breakers.paused((view.code, action_id)):
            return False
        action, _ = await view.action_and_settings(action_id)
        if action is None:
            return False  # deleted: its claim ends it
        seconds = self.breakers.wait((view.code, action_id), action.get("updated_at"),
                                    activity_id)
        if seconds is None:
            return False
        ends = policy.deadline(row, action)
        if ends is not None:
            left = (ends - now()).total_seconds()
            if left <= 0:
                return False
            seconds = min(seconds, left)
        self.breakers.held([activity_id], seconds)
        await self.retries.plan(view.code, activity_id, seconds, row)
        return True

    def stop(self) -> None:
        """Deliveries not yet claimed go back to the queue at once instead of starting."""
        self.views.gates.stopping = True

    async def _claim(self, view: TenantView, activity_id: str,
                     known: dict[str, Any] | None) -> dict[str, Any] | None:
        """The row, claimed for its next attempt; None when it is not ours to send."""
        try:
            row = await view.claim(activity_id, known)
        except Stopping:  # for another worker
            await self.enqueue(view.code, [activity_id], 0.0, None)
            return None
        if row is None:
            log.debug("not claimed: already sent, taken by another worker, or unknown")
        return row

    @contextlib.asynccontextmanager
    async def _shown_sending(self, view: TenantView,
                             row: dict[str, Any]) -> AsyncIterator[None]:
        """Around an attempt: the claimed row is published SENDING at once, and written so
        only when the attempt has not ended after ``SENDING_AFTER_SECONDS``, for readers
        of the row. Its outcome is written after that write, never before."""
        await self.publisher.publish(view.code, [row])
        marking: list[asyncio.Future[None]] = []
        later = asyncio.get_running_loop().call_later(
            SENDING_AFTER_SECONDS, lambda: marking.append(
                asyncio.ensure_future(view.mark_sending(row))))
        try:
            yield
        except asyncio.CancelledError:  # a worker told to stop: nothing more is written
            for write in marking:
                write.cancel()
            raise
        finally:
            later.cancel()
            if marking:
                await marking[0]

    async def _sent(self, view: TenantView, row: dict[str, Any], action: dict[str, Any],
                    values: Values) -> dict[str, Any]:
        """The attempt, shown SENDING while it lasts (``_shown_sending``)."""
        async with self._shown_sending(view, row):
            return await self._attempt(view, row, action, values)

    async def _attempt(self, view: TenantView, row: dict[str, Any], action: dict[str, Any],
                       values: Values) -> dict[str, Any]:
        """Render, guard and send: the row's changes, saying what happened; a retry that
        would come after the row expires ends it EXPIRED now (``dispatch.policy``)."""
        return policy.within(await self._try(view, row, action, values), row, action,
                             values.timezone)

    async def _try(self, view: TenantView, row: dict[str, Any], action: dict[str, Any],
                   values: Values) -> dict[str, Any]:
        try:
            request = await self._render(view.code, row, action, values)
        except RenderError as exc:
            return failed(f"cannot build the request: {exc}")
        report = Report(request, action, row, self.settings.retries, values.timezone)
        pace, limit = self.pace, limit_of(action)
        if pace is not None and limit is not None:  # its send slot (``dispatch.pace``)
            await asyncio.sleep(await pace.sending(view.code, row["action_id"], limit))
        started = self.breakers.clock()
        try:
            self.guard.check_url(request.url)
            response = await self._send(request, action)
        except Exception as exc:  # the report classifies it; anything unknown fails, logged
            what, retryable = describe(exc, action["timeout_seconds"])
            if retryable:  # the endpoint did not answer
                await self._counted(view, action, False, started, what or "")
            return report.unanswered(exc)
        await self._counted(view, action, response.status < 500, started,
                            retry.status_text(response.status))
        changes = report.answered(response)
        if pace is not None and limit is not None and (
                paused := throttled(row, changes, response.retry_after, values.timezone)):
            await pace.pause(view.code, row["action_id"], limit, paused[0])
            return paused[1]
        return changes

    async def _counted(self, view: TenantView, action: dict[str, Any], ok: bool,
                       started: float, what: str) -> None:
        """Count the attempt into its action's pause (``dispatch.breaker``); a pause begun
        or ended is logged and shown in the action's health."""
        change = self.breakers.attempted((view.code, str(action["_id"])),
                                         action.get("updated_at"), ok, started, what)
        if change is not None:
            await self._show_pause(view, action, change)

    @staticmethod
    async def _show_pause(view: TenantView, action: dict[str, Any], change: Change) -> None:
        if change.seconds is None:
            log.info("action %s resumed: its endpoint answered", action["name"])
            update: dict[str, Any] = {"$unset": PAUSE_UNSET}
        else:
            log.warning("action %s paused for %g s: %s", action["name"], change.seconds,
                        change.reason)
            update = {"$set": {"paused_until": now() + timedelta(seconds=change.seconds),
                               "paused_reason": change.reason}}
        try:
            await view.write_health(str(action["_id"]), update)
        except Exception as exc:  # shown only: the pause holds in this process anyway
            log.warning("could not show the pause of action %s (%s: %s)", action["name"],
                        type(exc).__name__, exc)

    async def _render(self, tenant: str, row: dict[str, Any], action: dict[str, Any],
                      values: Values) -> RenderedRequest:
        """The action's request with the row's values, signed when the action has a
        signing secret; in the render lane when it may be big (``dispatch.lane``)."""
        heavy = self.lane.is_heavy(action, values.by_tag)
        request = await self.lane.run(tenant, heavy, render_request, action, values.by_tag,
                                      secret_values=values.secrets,
                                      limits=self.settings.render_limits)
        if action.get("signing_secret"):
            request = replace(request, headers=[*request.headers, *await self.lane.run(
                tenant, heavy, signature_headers, action["signing_secret"],
                f"msg_{row['_id']}", int(time.time()), request.body)])
        return request

    async def _send(self, request: RenderedRequest, action: dict[str, Any]) -> Response:
        metrics.ATTEMPTS.inc()
        session, proxy = self.egress.route(wire_url(request))
        with metrics.DELIVERY_SECONDS.time():
            return await send(session, request, action["timeout_seconds"], proxy,
                              self.egress.ssl_for(action.get("ca_certificate")))

    async def _record(self, view: TenantView, row: dict[str, Any],
                      changes: dict[str, Any]) -> None:
        """Write the outcome (the attempt counted with it); log, count and publish it;
        queue the retry it plans, or count the end in the action's health."""
        updated = await view.record(row, {**changes, "attempts": row["attempts"]})
        if updated is None:
            return
        observe(row, updated)
        await self.publisher.publish(view.code, [updated])
        if updated["status"] == "RETRYING":
            delay = retry.seconds_until(updated["next_attempt_at"])
            await self.retries.plan(view.code, str(row["_id"]), delay, updated)
        else:
            await self.health.ended(view, row, updated)
            if updated.get("call_key"):
                await self._next_in_call(view, updated)

    async def _next_in_call(self, view: TenantView, ended: dict[str, Any]) -> None:
        """A row of a PER_CALL action ended: it leaves its call's queue, and the next
        delivery of the call, HELD until now, is queued (``dispatch.order``)."""
        released = await view.leave_call(ended)
        if released is not None:
            await self.publisher.publish(view.code, [released])
            await self.enqueue(view.code, [str(released["_id"])], 0.0, [released])
