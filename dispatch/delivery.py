"""One delivery, in plain steps: claim → render → guard → send → record.

Plain async code with its resources passed in, so it runs (and is tested) without a
broker; the Dramatiq actor is a thin wrapper around ``Deliverer.deliver``.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import aiohttp

from dispatch import retry
from dispatch.client import SNIPPET_CHARS, send
from dispatch.guard import DestinationRefused, OutboundGuard, refusal
from dispatch.lane import RenderLane
from dispatch.live import Publisher
from dispatch.masking import Masker
from dispatch.render import RenderError, parameter_values, render_request
from dispatch.shares import FairGate
from dispatch.signing import signature_headers
from dispatch.stamps import ConfigCache, Snapshot
from dispatch.summary import request_summary
from event_manager import logs, metrics
from event_manager.config import Settings
from event_manager.sizes import cut
from tenants.database import Database, object_id, patiently
from tenants.registry import TenantRegistry
from tenants.store import TenantStore

log = logging.getLogger("event_manager.delivery")
WHAT_CHARS = 2000
"""What went wrong, as a row's message and log lines tell it, is cut at this length (an
error may quote a whole URL)."""

T = TypeVar("T")
Enqueue = Callable[[str, list[str], float, list[dict[str, Any]] | None], Awaitable[None]]
"""``enqueue(tenant, activity_ids, delay_seconds, rows)``: one delivery message; ``rows``
(or None) are the rows as they are now, carried so that the worker need not read them."""


SENDING_AFTER_SECONDS = 1.0
"""A claimed row is written SENDING only when its attempt has not ended after this long:
most attempts end sooner, and their row goes straight to the outcome (one database
write instead of two). The live stream shows SENDING either way, and recovery knows the
attempt from its claim."""


@dataclass
class Deliverer:
    db: Database
    session: aiohttp.ClientSession
    guard: OutboundGuard
    publisher: Publisher
    settings: Settings
    enqueue: Enqueue
    db_gate: FairGate = field(default_factory=lambda: FairGate(16))
    """Database calls in flight at once: thousands of deliveries may wait on slow
    endpoints, but only a few queue at the database (FerretDB on SQLite writes one at a
    time and gives up on a writer that waits longer than 10 s)."""
    record_gate: FairGate = field(default_factory=lambda: FairGate(100))
    """Outcomes are recorded through a gate of their own, so that a request already
    sent never waits behind new claims: the window in which a stopped worker leaves a
    sent-but-unrecorded delivery (sent again later) stays small. They are written 50 to
    a call (``GroupedWrites``), so the gate lets two calls' worth wait."""
    configs: ConfigCache = field(default_factory=lambda: ConfigCache(None))
    """Tenants' registrations, settings, parameters and actions; without stamps, read for
    each message."""
    lane: RenderLane = field(default_factory=RenderLane)
    """Big renders run here, beside the event loop every tenant's deliveries share."""
    stopping: bool = False
    """Set when the worker is told to stop: deliveries not yet claimed are handed back
    to the queue at once instead of being started."""

    async def _db(self, tenant: str, call: Callable[[], Awaitable[T]],
                  gate: FairGate | None = None) -> T:
        """``call()`` through a gate (tenants in turn: ``FairGate``), patiently."""
        async with (gate or self.db_gate).slot(tenant):
            return await patiently(call)

    async def _claim(self, store: TenantStore, row_id: Any,
                     known: dict[str, Any] | None) -> dict[str, Any] | None | bool:
        """The claimed row; None when it is not ours to send; False when stopping."""
        async with self.db_gate.slot(store.code):
            if self.stopping:
                return False
            return await patiently(lambda: store.log.claim(row_id, known))

    async def _config(self, code: str, shared: dict[str, asyncio.Future]) -> Snapshot:
        """The tenant's config snapshot: its stamp is read once per message."""
        if "config" not in shared:
            shared["config"] = asyncio.ensure_future(self.configs.snapshot(code))
        return await asyncio.shield(shared["config"])

    async def _store(self, code: str, config: Snapshot) -> TenantStore:
        """The tenant's store, its registry entry read once per config stamp."""
        async def load() -> TenantStore:
            return TenantStore(self.db, await self._db(
                code, lambda: TenantRegistry(self.db).get(code)))
        return await config.part("store", load)

    async def deliver(self, tenant_code: str, activity_id: str,
                      shared: dict[str, asyncio.Future] | None = None,
                      known: dict[str, Any] | None = None) -> None:
        """Claim, send and record one delivery. ``shared`` is common to the deliveries of
        one message: they read the tenant's settings, parameters and actions once.
        ``known`` is the row as the message carries it (``ActivityLog.claim``)."""
        shared = {} if shared is None else shared
        with logs.context(tenant=tenant_code, activity_id=activity_id):
            store = await self._store(tenant_code, await self._config(tenant_code, shared))
            row_id = object_id(activity_id)
            row = await self._claim(store, row_id, known) if row_id else None
            if row is False:  # for another worker
                await self.enqueue(tenant_code, [activity_id], 0.0, None)
                return
            if row is None:
                log.debug("not claimed: already sent, taken by another worker, or unknown")
                return
            with logs.context(trigger_id=row["trigger_id"]):
                await self._deliver(store, row, shared)

    async def _deliver(self, store: TenantStore, row: dict[str, Any],
                       shared: dict[str, asyncio.Future]) -> None:
        await self.publisher.publish(store.code, [row])
        attempt = asyncio.ensure_future(self._attempt(store, row, shared))
        try:
            await asyncio.wait({attempt}, timeout=SENDING_AFTER_SECONDS)
            if not attempt.done():  # readers of the row see it SENDING while it waits
                await self._mark_sending(store, row)
            changes = await attempt
        finally:
            attempt.cancel()  # when this delivery is cancelled (a worker told to stop)
        changes["attempts"] = row["attempts"]  # counted with the outcome when not before
        updated = await self._db(store.code, lambda: store.log.record_outcome(row, changes),
                                 self.record_gate)
        if updated is None:
            return
        status = updated["status"]
        metrics.DELIVERIES.labels(status).inc()
        if status == "SUCCEEDED":
            log.debug("%s", updated["message"])
        else:
            log.log(logging.INFO if status == "RETRYING" else logging.WARNING, "%s: %s",
                    updated["action_name"], updated["message"])
        if status != "RETRYING":
            metrics.LAG_SECONDS.observe((updated["updated_at"] - row["created_at"])
                                        .total_seconds())
        await self.publisher.publish(store.code, [updated])
        if status == "RETRYING":
            delay = retry.seconds_until(updated["next_attempt_at"])
            await self.enqueue(store.code, [str(row["_id"])], delay, [updated])

    async def _mark_sending(self, store: TenantStore, row: dict[str, Any]) -> None:
        """Only for readers of the row (recovery knows the attempt by its claim), so a
        database error here is logged and the attempt under way goes on."""
        try:
            await self._db(store.code, lambda: store.log.mark_sending(row))
        except Exception as exc:
            log.warning("could not mark %s SENDING (%s: %s); its attempt goes on",
                        row["_id"], type(exc).__name__, exc)

    async def _load(self, store: TenantStore, row: dict[str, Any],
                    shared: dict[str, asyncio.Future]) -> tuple[dict | None, dict, list[dict]]:
        """The action, the tenant's settings and its custom parameters: the config stamp
        is read once per message (``shared``), the rest only after a change."""
        config = await self._config(store.code, shared)
        action_id = object_id(row["action_id"] or "")
        action, settings, custom = await asyncio.gather(
            config.part(("action", action_id), lambda: self._db(
                store.code, lambda: store.find_action(action_id))),
            config.part("settings", lambda: self._db(store.code, store.get_settings)),
            config.part("custom", lambda: self._db(store.code, store.parameter_values)),
        )
        return action, settings, custom

    async def _attempt(self, store: TenantStore, row: dict[str, Any],
                       shared: dict[str, asyncio.Future]) -> dict[str, Any]:
        """Render, guard and send; the row's changes describing what happened."""
        action, settings, custom = await self._load(store, row, shared)
        if action is None:
            return {"status": "FAILED", "message": "the action was deleted before it was sent",
                    "next_attempt_at": None}
        values = parameter_values(
            tenant_code=store.code, master=store.master, timezone=settings["timezone"],
            occurred_at=row["occurred_at"], params=row.get("params", {}),
            custom={p["tag"]: p["value"] for p in custom},
        )
        heavy = self.lane.is_heavy(action, values)
        try:
            request = await self.lane.run(
                store.code, heavy, render_request, action, values,
                secret_values=[p["value"] for p in custom if p.get("secret")],
                limits=self.settings.render_limits)
        except RenderError as exc:
            return {"status": "FAILED", "next_attempt_at": None,
                    "message": cut(f"cannot build the request: {exc}", WHAT_CHARS)}
        if action.get("signing_secret"):
            request = replace(request, headers=[*request.headers, *await self.lane.run(
                store.code, heavy, signature_headers, action["signing_secret"],
                f"msg_{row['_id']}", int(time.time()), request.body)])
        mask = Masker([*request.secrets, action.get("signing_secret")])
        changes: dict[str, Any] = {
            "request": request_summary(request, action, mask),
            "unresolved_parameters": request.unresolved,
        }
        attempt = row["attempts"] - row.get("cycle_start", 0)
        schedule = self.settings.retries
        try:
            self.guard.check_url(request.url)
            metrics.ATTEMPTS.inc()
            with metrics.DELIVERY_SECONDS.time():
                response = await send(self.session, request, action["timeout_seconds"])
        except Exception as exc:  # classified below; anything unknown fails, logged
            what, retryable = describe(exc, action["timeout_seconds"])
            if what is None:
                # The error's text may quote the request: masked, like everything shown
                # (and cut, like every log line, by event_manager.logs).
                log.error("delivery %s failed unexpectedly: %s", row["_id"],
                          mask("".join(traceback.format_exception(exc))))
                what, retryable = f"unexpected error: {type(exc).__name__}", False
            outcome = retry.decide(what=cut(mask(what), WHAT_CHARS), retryable=retryable,
                                   attempt=attempt, schedule=schedule)
            return {**changes, "status": outcome.status, "message": outcome.message,
                    "next_attempt_at": outcome.next_attempt_at}
        changes["http_status"] = response.status
        changes["response_snippet"] = cut(mask(response.text), SNIPPET_CHARS, response.size,
                                          response.more)
        if 200 <= response.status <= 299:
            outcome = retry.succeeded(response.status, response.elapsed_ms)
        else:
            outcome = retry.decide(
                what=retry.status_text(response.status),
                retryable=retry.retryable_status(response.status),
                attempt=attempt, schedule=schedule,
                retry_after=retry.retry_after_seconds(response.retry_after),
            )
        return {**changes, "status": outcome.status, "message": outcome.message,
                "next_attempt_at": outcome.next_attempt_at}


def describe(error: BaseException, timeout: float) -> tuple[str | None, bool]:
    """What went wrong, in a few words, and whether another attempt may help."""
    refused = error if isinstance(error, DestinationRefused) else refusal(error)
    if refused is not None:
        return f"destination refused: {refused}", False
    if isinstance(error, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return f"timed out after {timeout:g} s", True
    if isinstance(error, aiohttp.ClientConnectorDNSError):
        return f"DNS lookup failed for {error.host}", True
    if isinstance(error, aiohttp.ClientConnectorError):
        if error.os_error.errno == errno.ECONNREFUSED:
            return "connection refused", True
        return f"cannot connect: {error.os_error.strerror or error.os_error}", True
    if isinstance(error, aiohttp.ServerDisconnectedError):
        return "the server closed the connection without answering", True
    if isinstance(error, aiohttp.ClientOSError):
        return f"connection error: {error.strerror or error}", True
    if isinstance(error, aiohttp.InvalidURL):
        return f"invalid URL: {error}", False
    if isinstance(error, aiohttp.ClientError):
        return f"HTTP error: {error}", True
    return None, False
