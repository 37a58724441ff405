"""The worker's side of delivery: shared clients and the deliveries in flight.

Dramatiq runs async actors on one event-loop thread and blocks a worker thread per
message, so awaiting a slow endpoint inside the actor would cap concurrency at the
thread count. Instead the actor hands each delivery to this runtime, which runs it as
its own task and returns. Tenants share the process's ``max_in_flight`` slots
(``dispatch.shares``): a tenant's deliveries beyond its share wait their turn here, or
go back to the broker for a second when its line is full; the actor waits only when
the lines of the whole process are full, which is the back-pressure. Waiting deliveries
count as held by this process. The activity row, not the message, is the record of work:
a delivery is claimed on its row before it is sent. Which rows this process holds is
published in Redis every few seconds, so that recovery in any worker takes back the
deliveries of a process that stopped, and only those (``dispatch.recovery.Liveness``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import time
from collections import Counter
from typing import Any
from uuid import uuid4

import dramatiq
import redis.asyncio as aioredis
from bson.errors import InvalidId
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.errors import BrokerConnectionError
from pymongo.errors import ConnectionFailure

from dispatch.delivery import Deliverer, Enqueue
from dispatch.egress import Egress
from dispatch.guard import OutboundGuard
from dispatch.live import Publisher
from dispatch.outbox import Outbox
from dispatch.pace import Pace
from dispatch.recovery import Liveness, Recovery, housekeep
from dispatch.roles import take_role
from dispatch.shares import Delivery, FairShares, count_down, is_retry
from dispatch.stamps import ConfigCache, ConfigStamps
from dispatch.view import Views
from event_manager import logs, metrics, tracing
from event_manager.config import Settings
from event_manager.errors import NotFound
from tenants.activity import restore
from tenants.database import Database, is_transient
from tenants.registry import TenantRegistry

HOUSEKEEPING_SECONDS = 3600.0
SWEEP_TURN = 0.9
"""A process that sweeps holds the turn for this part of the sweep period: the next
sweep falls to whichever process comes first after it."""
HAND_BACK_SECONDS = 1.0
"""A delivery whose action's line here is full goes back to the broker for this long."""
RETRY_HAND_BACK_SECONDS = 5.0
"""A retry's, for this long: a thousand retries of a dead endpoint due at once would
otherwise come and go every second, each time costing the worker and the broker a
message, while first attempts wait for the same CPU."""
SHUTDOWN_WAIT_SECONDS = 30.0
"""On SIGTERM, how long a worker process lets its deliveries in flight run before it
cancels them; a cancelled delivery's claimed row is queued again by recovery. An action's
timeout may be longer (``MAX_TIMEOUT_SECONDS``, 60 s): such an attempt is cut short."""
SWEEP_STOP_SECONDS = 5.0
"""On SIGTERM, how long a worker process waits for its recovery sweep to stop, before
the wait above."""
OUTAGE = (ConnectionFailure, BrokerConnectionError, aioredis.RedisError, OSError)
"""MongoDB or Redis not answering: expected now and then, worth one line, no traceback."""

log = logging.getLogger("event_manager.worker")


class DeliveryRuntime(dramatiq.Middleware):
    """Opens the worker's clients after Dramatiq's event loop starts; drains and closes
    them before it stops. Added after the AsyncIO middleware."""

    def __init__(self, settings: Settings, enqueue: Enqueue, outbox: Outbox | None = None
                 ) -> None:
        self.settings = settings
        self.enqueue = enqueue
        self.outbox = outbox
        """What ``enqueue`` sends through (``dispatch.actors``): its client is closed here."""
        self.max_in_flight = settings.worker_in_flight
        self.deliverer: Deliverer | None = None
        self.shares = FairShares(self._start, total=self.max_in_flight,
                                 per_tenant=settings.tenant_in_flight,
                                 per_action=settings.action_in_flight,
                                 retries=settings.retry_in_flight,
                                 retries_per_action=settings.retry_action_in_flight)
        self.room: asyncio.Event | None = None
        """Set while the process's lines have room: ``accept`` waits for it."""
        self.tasks: set[asyncio.Task[None]] = set()
        self.holding: Counter[str] = Counter()
        """Activity ids of the deliveries in flight here, published by ``_beat``."""
        self.worker_id = ""
        self.liveness: Liveness | None = None
        self._opening: asyncio.Lock | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.closing = False
        self._beater: asyncio.Task[None] | None = None

    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        """In each worker process: our logging (Dramatiq set up its own), the process's
        metrics port, and the delivery clients."""
        logs.configure(self.settings.log_level, self.settings.log_format)
        tracing.setup("event-manager-worker")  # here: its export thread is this process's
        _, place = take_role(worker, self.settings)
        port = metrics.serve_worker_metrics(self.settings.worker_metrics_port,
                                            self.settings.metrics_host, first=place or 0)
        if port is not None:
            log.info("metrics on http://%s:%d/metrics", self.settings.metrics_host, port)
        try:
            get_event_loop_thread().run_coroutine(self.open())
        except Exception:  # Dramatiq would swallow it; accept() opens lazily instead
            log.exception("could not open the delivery clients at boot; will retry lazily")

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        thread = get_event_loop_thread()
        try:
            if thread is not None:
                thread.run_coroutine(self.close())
        finally:
            tracing.shut_down()  # the spans still waiting, before the process ends

    async def open(self) -> Deliverer:
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self.deliverer is None:
                settings = self.settings
                db = Database(settings)
                redis = aioredis.from_url(settings.redis_url, socket_connect_timeout=2)
                guard = OutboundGuard(settings.allowed_networks)
                self.room = asyncio.Event()
                self.room.set()
                stamps = ConfigStamps.of(redis, settings, db.config_changes)
                db.on_change = stamps.touch  # an action disabled by its health
                self.deliverer = Deliverer(
                    views=Views(db, ConfigCache(stamps, tenants=settings.cached_tenants)),
                    egress=Egress.of(guard, settings, self.max_in_flight), guard=guard,
                    publisher=Publisher(redis, settings.live_channel_prefix), settings=settings,
                    enqueue=self.enqueue, pace=Pace(redis, f"{settings.database}:pace:"),
                )
                # Made here, in the worker process: Dramatiq forks its processes.
                self.worker_id = f"{socket.gethostname()}-{os.getpid()}-{uuid4().hex[:8]}"
                self.liveness = Liveness(
                    aioredis.from_url(settings.redis_url, socket_connect_timeout=2,
                                      socket_timeout=2),
                    f"{settings.database}:holding:", settings.recovery_seconds)
                self._beater = asyncio.create_task(self._beat(self.liveness), name="liveness")
                self._sweeper = asyncio.create_task(self._sweep(db, self.liveness),
                                                    name="recovery")
                log.info("delivery clients open (up to %d deliveries in flight)",
                         self.max_in_flight)
        return self.deliverer

    async def accept(self, tenant: str, activity_ids: list[str],
                     rows: list[dict[str, Any]] | None = None,
                     trace_context: dict[str, str] | None = None) -> None:
        """Start each delivery, or queue it behind its tenant's share
        (``dispatch.shares``); hand back to the broker what its action's line has no room
        for; then wait only while the lines of the whole process are full. ``rows``: the
        rows the message carries (``dispatch.actors``), or None; ``trace_context``: the
        context it was sent in, when tracing (``event_manager.tracing``)."""
        deliverer = self.deliverer or await self.open()
        assert self.room is not None
        view = deliverer.views.for_message(tenant)  # its stamp read when the first starts
        known = _carried(rows)
        handed_back: dict[bool, list[str]] = {False: [], True: []}  # by is_retry
        for activity_id in activity_ids:
            row = known.get(activity_id)
            delivery = Delivery(tenant, activity_id, row, view, is_retry(row), trace_context)
            self.holding[activity_id] += 1
            if not self.shares.offer(delivery):
                self._let_go(activity_id)
                handed_back[delivery.retry].append(activity_id)
        for retries, ids in handed_back.items():
            if not ids:
                continue
            carried = [known[i] for i in ids if i in known]
            delay = RETRY_HAND_BACK_SECONDS if retries else HAND_BACK_SECONDS
            deliverer.breakers.held(ids, delay)
            try:
                await self.enqueue(tenant, ids, delay, carried or None, later=True)
            except OUTAGE as exc:  # their rows are QUEUED and held by no one: recovered
                log.warning("%d deliveries of tenant %s not handed back (%s: %s); recovery "
                            "will queue them again", len(ids), tenant,
                            type(exc).__name__, exc)
        self._check_room()
        await self.room.wait()

    def _start(self, delivery: Delivery) -> None:
        """Called by the shares for each delivery that may begin now."""
        assert self.deliverer is not None
        task = asyncio.create_task(self._run(self.deliverer, delivery))
        self.tasks.add(task)
        task.add_done_callback(functools.partial(self._finished, delivery))

    def _check_room(self) -> None:
        if self.room is not None:
            if self.shares.waiting < self.max_in_flight:
                self.room.set()
            else:
                self.room.clear()

    async def _run(self, deliverer: Deliverer, delivery: Delivery) -> None:
        tenant, activity_id, view = delivery.tenant, delivery.activity_id, delivery.view
        assert view is not None  # accept gives each delivery the view of its message
        try:
            await deliverer.deliver(view, activity_id, delivery.row, delivery.trace_context)
        except NotFound as gone:  # the tenant was deleted: nothing left to deliver for
            log.warning("delivery %s dropped: %s", activity_id, gone.message)
        except OUTAGE as exc:
            log.warning("delivery %s of tenant %s did not complete (%s: %s); recovery will "
                        "queue it again", activity_id, tenant, type(exc).__name__, exc)
        except Exception:
            # The row stays as it was (its claim made) and recovery picks it up again.
            log.exception("delivery %s of tenant %s did not complete", activity_id, tenant)

    def _finished(self, delivery: Delivery, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self._let_go(delivery.activity_id)
        self.shares.finished(delivery)
        self._check_room()

    def _let_go(self, activity_id: str) -> None:
        count_down(self.holding, activity_id)

    async def _beat(self, liveness: Liveness) -> None:
        """Tell the other workers' recovery which deliveries this process holds: those in
        flight here, and those it handed back to the broker for a while, until a little
        after they are due back (``Breakers.holding``)."""
        lost = False
        while True:
            held = self.deliverer.breakers.holding(liveness.ttl) if self.deliverer else []
            try:
                await liveness.publish(self.worker_id, {*self.holding, *held})
                if lost:
                    log.info("liveness published again")
                lost = False
            except OUTAGE as exc:
                if not lost:
                    log.warning("cannot publish liveness (%s: %s); trying every %g s",
                                type(exc).__name__, exc, liveness.every)
                lost = True
            await asyncio.sleep(liveness.every)

    async def _sweep(self, db: Database, liveness: Liveness) -> None:
        """Every half recovery period, queue stuck deliveries again (one process of the
        installation at a time: ``Liveness.turn``); hourly, forget
        expired idempotency keys and claims. First, give every tenant's activity the
        indexes this version reads and drop the collections of earlier versions
        (``TenantRegistry.index_all``)."""
        every = self.settings.recovery_seconds / 2
        recovery = Recovery(db, self.enqueue, self.settings.recovery_seconds, liveness)
        tidied = time.monotonic()
        indexed = False
        while True:
            await asyncio.sleep(every)
            try:
                if not indexed:  # once, for tenants made by an earlier version
                    log.info("activity indexes and collections: %d tenants changed",
                             await TenantRegistry(db).index_all())
                    indexed = True
                if await liveness.turn(f"{self.settings.database}:sweeping", self.worker_id,
                                       every * SWEEP_TURN):
                    await recovery.sweep()
                if time.monotonic() - tidied > HOUSEKEEPING_SECONDS:
                    tidied = time.monotonic()
                    log.info("housekeeping: %d expired keys, claims and old rows dropped",
                             await housekeep(db, self.settings.activity_retention_days))
            except Exception as exc:  # the next sweep tries again
                if isinstance(exc, OUTAGE) or is_transient(exc):  # or a busy SQLite file
                    log.warning("recovery sweep failed (%s: %s); trying again in %g s",
                                type(exc).__name__, exc, every)
                elif self.closing:  # the clients close under it; the next worker sweeps
                    log.debug("recovery sweep stopped by the shutdown: %r", exc)
                    return
                else:
                    log.exception("recovery sweep failed")

    async def close(self, grace: float = SHUTDOWN_WAIT_SECONDS) -> None:
        """Let in-flight deliveries finish (up to ``grace`` seconds), then close clients."""
        self.closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.wait({self._sweeper}, timeout=SWEEP_STOP_SECONDS)
        if self.deliverer is not None:
            self.deliverer.stop()  # unclaimed deliveries go back to the queue
            self.shares.release_all()  # the waiting ones too, through the same path
        if self.tasks:
            log.info("waiting for %d deliveries in flight", len(self.tasks))
            _, pending = await asyncio.wait(set(self.tasks), timeout=grace)
            for task in pending:  # their claimed rows are picked up by recovery
                task.cancel()
            if pending:
                log.warning("%d deliveries did not finish in %.0f s; handed back",
                            len(pending), grace)
                await asyncio.wait(pending)
        if self._beater is not None and self.liveness is not None:
            self._beater.cancel()
            try:  # what is left here is handed back without waiting for the key to expire
                await self.liveness.forget(self.worker_id)
            except OUTAGE as exc:
                log.warning("could not withdraw liveness: %s", exc)
            await self.liveness.redis.aclose()
        if self.deliverer is not None:
            deliverer, self.deliverer = self.deliverer, None
            await deliverer.egress.close()
            deliverer.lane.close()
            await deliverer.publisher.redis.aclose()
            await deliverer.views.db.close()
        if self.outbox is not None:
            await self.outbox.aclose()


def _carried(rows: list[dict[str, Any]] | None) -> dict[str, dict]:
    """The rows a message carries, by id; one that cannot be read is read from the
    database instead (logged: a sender wrote something this version does not know)."""
    known: dict[str, dict] = {}
    for data in rows or []:
        try:
            row = restore(data)
        except (KeyError, TypeError, ValueError, InvalidId) as exc:
            log.warning("a delivery message carries a row it cannot read (%s: %s); the "
                        "row is read from the database", type(exc).__name__, exc)
            continue
        known[str(row["_id"])] = row
    return known
