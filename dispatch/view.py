"""A tenant as its deliveries see it: ``TenantView``, and their turns at the database.

A ``TenantView`` is one tenant's configuration as of its config stamp
(``dispatch.stamps``): its store, settings, custom parameters and actions. It is made
once per stamp, and the deliveries of one message share it (``MessageView``: the stamp
is read once per message). Each part is read when first asked for, so a message whose
rows were all taken elsewhere reads no settings; deliveries asking at once share one
read, a failed read is tried again by the next one to ask, and a delivery that is
cancelled cancels no one else's (``Snapshot.part``).

Every database call of a delivery goes through its view, waits for its tenant's turn
at the worker's ``DatabaseGates`` and is tried again after transient errors
(``patiently``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

from dispatch import order
from dispatch.render import parameter_values
from dispatch.shares import FairGate, is_retry
from dispatch.stamps import ConfigCache, Snapshot
from tenants.database import Database, object_id, patiently
from tenants.registry import TenantRegistry
from tenants.store import TenantStore

log = logging.getLogger("event_manager.delivery")
T = TypeVar("T")


class Stopping(Exception):
    """Raised in place of a claim once the worker is stopping: the delivery, not yet
    started, goes back to the queue."""


@dataclass
class DatabaseGates:
    """How a worker's deliveries take turns at the database: tenants in turn
    (``FairGate``), each call tried again after transient errors."""

    calls: FairGate = field(default_factory=lambda: FairGate(16))
    """Database calls in flight at once: thousands of deliveries may wait on slow
    endpoints, but only a few queue at the database (FerretDB on SQLite writes one at a
    time and gives up on a writer that waits longer than 10 s)."""
    records: FairGate = field(default_factory=lambda: FairGate(100))
    """Outcomes are recorded through a gate of their own, so that a request already
    sent never waits behind new claims: the window in which a stopped worker leaves a
    sent-but-unrecorded delivery (sent again later) stays small. They are written 50 to
    a call (``GroupedWrites``), so the gate lets two calls' worth wait."""
    stopping: bool = False
    """Set when the worker is told to stop: a claim whose turn comes then is not made
    (``Stopping``)."""

    async def call(self, tenant: str, call: Callable[[], Awaitable[T]]) -> T:
        async with self.calls.slot(tenant):
            return await patiently(call)

    async def claim(self, tenant: str, call: Callable[[], Awaitable[T]],
                    action: str | None = None, retry: bool = False) -> T:
        """A claim through the calls' gate, the actions of a tenant in turn; a retry's
        goes after any first attempt's."""
        async with self.calls.slot(tenant, action, later=retry):
            if self.stopping:
                raise Stopping
            return await patiently(call)

    async def record(self, tenant: str, call: Callable[[], Awaitable[T]]) -> T:
        async with self.records.slot(tenant):
            return await patiently(call)


@dataclass(frozen=True)
class Values:
    """What a row's placeholders become."""

    by_tag: dict[str, str]
    """Each tag's value (``parameter_values``)."""
    secrets: list[str]
    """The values of the tenant's secret parameters, masked wherever they are shown."""
    timezone: str = "UTC"
    """The tenant's time zone: of the date and time placeholders, and of every time the
    row's messages tell (``event_manager.zones``)."""


class TenantView:
    """One tenant's configuration as of one config stamp, and the calls its deliveries
    make to its activity log."""

    def __init__(self, store: TenantStore, parts: Snapshot, gates: DatabaseGates) -> None:
        self.store = store
        self.code = store.code
        self._parts = parts
        self._gates = gates

    async def action_and_values(
            self, row: dict[str, Any]) -> tuple[dict[str, Any] | None, Values]:
        """The row's action (None when it was deleted before it was sent), and its values:
        its trigger's params, the tenant's custom parameters, and the system's (the date
        and time in the tenant's timezone, ...)."""
        action_id = object_id(row["action_id"] or "")
        action, settings, (by_tag, secrets) = await self._read(
            (("action", action_id), partial(self.store.find_action, action_id)),
            ("settings", self.store.get_settings),
            ("custom", self._custom_parameters))
        return action, Values(parameter_values(
            tenant_code=self.code, master=self.store.master, timezone=settings["timezone"],
            occurred_at=row["occurred_at"], params=row.get("params", {}), custom=by_tag,
        ), secrets, settings["timezone"])

    async def action_and_settings(
            self, action_id: str) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        """The action (None when it is gone) and the tenant's settings, as of the stamp."""
        oid = object_id(action_id)
        return tuple(await self._read(  # type: ignore[return-value]
            (("action", oid), partial(self.store.find_action, oid)),
            ("settings", self.store.get_settings)))

    async def _read(self, *parts: tuple[Hashable, Callable[[], Awaitable[Any]]]) -> list[Any]:
        """Each part: read through the gate, once per stamp (``Snapshot.part``). The reads
        this stamp has not made yet are all started first, and go on together; parts
        read already are taken without waiting for the event loop."""
        loads = [self._parts.start(key, partial(self._gates.call, self.code, read))
                 for key, read in parts]
        return [await asyncio.shield(load) for load in loads]

    async def _custom_parameters(self) -> tuple[dict[str, str], list[str]]:
        """Tag → value, and the secret ones' values."""
        found = await self.store.parameter_values()
        return ({p["tag"]: p["value"] for p in found},
                [p["value"] for p in found if p.get("secret")])

    async def claim(self, activity_id: str,
                    known: dict[str, Any] | None) -> dict[str, Any] | None:
        """The row, claimed for its next attempt (``ActivityLog.claim``); None when it is
        not ours to send. ``Stopping`` when the worker stops before the claim's turn."""
        row_id = object_id(activity_id)
        if row_id is None:
            return None
        return await self._gates.claim(
            self.code, lambda: self.store.log.claim(row_id, known),
            str(known["action_id"]) if known else None, retry=is_retry(known))

    async def row(self, activity_id: str) -> dict[str, Any] | None:
        """The row as it is now (for a message that carries none), or None."""
        return await self._gates.call(self.code, lambda: self.store.log.get(activity_id))

    async def wait(self, row: dict[str, Any],
                   changes: dict[str, Any]) -> dict[str, Any] | None:
        """A row that waits for its turn under its action's rate limit (``dispatch.pace``),
        written so unless its status moved on: the row as it is now, or None."""
        return await self._gates.call(self.code, lambda: self.store.log.record(
            row["_id"], changes, expect=row["status"]))

    async def mark_sending(self, row: dict[str, Any]) -> None:
        """Only for readers of the row (recovery knows the attempt by its claim), so a
        database error here is logged and the attempt under way goes on."""
        try:
            await self._gates.call(self.code, lambda: self.store.log.mark_sending(row))
        except Exception as exc:
            log.warning("could not mark %s SENDING (%s: %s); its attempt goes on",
                        row["_id"], type(exc).__name__, exc)

    async def record(self, row: dict[str, Any],
                     changes: dict[str, Any]) -> dict[str, Any] | None:
        """The attempt's outcome written (``ActivityLog.record_outcome``): the row as it is
        now, or None when it is gone."""
        return await self._gates.record(
            self.code, lambda: self.store.log.record_outcome(row, changes))

    async def leave_call(self, ended: dict[str, Any]) -> dict[str, Any] | None:
        """An ended row out of its call's queue: the row this released, or None
        (``dispatch.order.leave``). Through the outcomes' gate: it follows one."""
        return await self._gates.record(
            self.code, lambda: order.leave(self.store.calls, self.store.log, ended))


    async def write_health(self, action_id: str, update: dict[str, Any]) -> dict[str, Any]:
        """The action's health counters updated (``dispatch.health``): as they are now."""
        oid = object_id(action_id)
        return await self._gates.record(self.code,
                                        lambda: self.store.health.write(oid, update))

    async def disable(self, action_id: str, reason: str, at: datetime) -> bool:
        """Disable the action unless it is disabled already (``TenantStore.disable_action``,
        which stamps the change): whether this call disabled it."""
        oid = object_id(action_id)
        return await self._gates.call(self.code,
                                      lambda: self.store.disable_action(oid, reason, at))


class Views:
    """The worker's tenant views: one per tenant and config stamp (``ConfigCache``)."""

    def __init__(self, db: Database, configs: ConfigCache | None = None,
                 gates: DatabaseGates | None = None) -> None:
        self.db = db
        self.configs = configs if configs is not None else ConfigCache(None)
        """Without stamps, every message makes a view of its own."""
        self.gates = gates if gates is not None else DatabaseGates()

    def for_message(self, tenant: str) -> MessageView:
        return MessageView(self, tenant)

    async def make(self, tenant: str, parts: Snapshot) -> TenantView:
        """The view as of ``parts``' stamp: the tenant's registration read for it."""
        registration = await self.gates.call(tenant, lambda: TenantRegistry(self.db).get(tenant))
        return TenantView(TenantStore(self.db, registration), parts, self.gates)


class MessageView:
    """The tenant's view the deliveries of one message share: its stamp read once, when
    the first of them starts."""

    def __init__(self, views: Views, tenant: str) -> None:
        self.tenant = tenant
        self._views = views
        self._snapshot: asyncio.Future[Snapshot] | None = None
        self._view: TenantView | None = None

    async def open(self) -> TenantView:
        """The view; one that could not be made is made again by the next delivery to
        ask (``Snapshot.part``), without reading the stamp again."""
        if self._view is None:
            if self._snapshot is None:
                self._snapshot = asyncio.ensure_future(
                    self._views.configs.snapshot(self.tenant))
            snapshot = await asyncio.shield(self._snapshot)
            self._view = await snapshot.part(
                "view", lambda: self._views.make(self.tenant, snapshot))
        return self._view
