"""Running a batch of triggers: the rows each one promises written together, one delivery
message, one publication, and each trigger's own outcome.

A batch is the triggers of one ``triggerEvents`` call, or concurrent ``triggerEvent``
calls of one tenant (``resolvers/intake.py``). The database may refuse one trigger's
rows (a value it cannot hold, a unique index): that trigger fails alone, with
BAD_USER_INPUT or CONFLICT naming its params (``inputs[3].params``), its neighbours stand
(``tenants/acceptance.py``), and its idempotency key is not kept, so a retry is processed
again rather than answered "accepted" with nothing behind it.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import strawberry
from bson.errors import InvalidDocument
from pymongo.errors import OperationFailure

from dispatch import order
from dispatch.stamps import Snapshot
from event_manager import metrics, tracing
from event_manager.errors import ApiError, BadInput, Conflict, Unavailable
from resolvers.context import READ, Context
from schema.activity import Activity, TriggerResult
from schema.enums import EventType, TriggerSource
from tenants.acceptance import Earlier, KeyTaken, Part, accept, earlier_keys, withdraw
from tenants.activity import row_id
from tenants.calls import MAX_WAITING, QueueFull
from tenants.catalog import EVENTS_BY_TYPE
from tenants.database import is_duplicate, is_transient, now, object_id
from tenants.health import skip_message
from tenants.store import TenantStore

log = logging.getLogger("event_manager.api")

Scalar = str | int | float | bool | None


@dataclass(frozen=True)
class Trigger:
    """A checked trigger, ready to run."""

    event: str
    source: str
    params: dict[str, Scalar]
    occurred_at: datetime
    idempotency_key: str | None = None
    action_ids: list[str] | None = None
    params_field: str = "input.params"
    """Where the client wrote the params, for errors about them: ``inputs[3].params``."""
    traceparent: str | None = field(default_factory=tracing.traceparent)
    """The span the trigger arrived in, when tracing: its rows keep it, so that every
    attempt of their deliveries joins the trigger's trace (``event_manager.tracing``);
    taken when the trigger is checked, in its own request, since concurrent calls are
    run as one batch (``resolvers/intake.py``)."""


def new_row(trigger: Trigger, trigger_id: str, action: dict[str, Any] | None, status: str,
            message: str, created: datetime) -> dict[str, Any]:
    return {
        "_id": row_id(created), "trigger_id": trigger_id, "event": trigger.event,
        "source": trigger.source,
        "action_id": str(action["_id"]) if action else None,
        "action_name": action["name"] if action else None,
        "status": status, "message": message, "attempts": 0, "cycle_start": 0,
        "http_status": None, "request": None, "response_snippet": None,
        "unresolved_parameters": [], "params": trigger.params,
        "occurred_at": trigger.occurred_at, "created_at": created, "updated_at": created,
        "next_attempt_at": None,
        **({"traceparent": trigger.traceparent} if trigger.traceparent else {}),
    }


async def plan(store: TenantStore, config: Snapshot,
               trigger: Trigger) -> tuple[list[dict[str, Any]], str | None]:
    """The actions to send, or the reason nothing is sent. What it reads comes from the
    tenant's config snapshot (read again only after a change); nothing here changes it."""
    name = EVENTS_BY_TYPE[trigger.event].name
    event = await config.part(("event", trigger.event), lambda: store.events.find_one(
        {"_id": trigger.event})) or {}
    if trigger.source == "SYSTEM":
        if not (await config.part("settings", store.get_settings))["actions_enabled"]:
            return [], "actions are disabled for all events in Settings"
        if not event.get("active"):
            return [], f"the {name} event is not active"
    ids = trigger.action_ids if trigger.action_ids is not None else event.get("action_ids", [])
    oids = [oid for oid in map(object_id, ids) if oid]
    found = await config.part(("actions", tuple(oids)), lambda: store.actions.find(
        {"_id": {"$in": oids}}, {"name": 1, "policy": 1, "disabled": 1}).to_list(None))
    by_id = {str(a["_id"]): a for a in found}
    actions = [by_id[i] for i in ids if i in by_id]
    if not actions:
        return [], f"no actions are attached to {name}"
    if trigger.source == "SYSTEM" and all(a.get("disabled") for a in actions):
        return actions, f"every action attached to {name} is disabled"
    return actions, None


def planned_rows(trigger: Trigger, trigger_id: str, actions: list[dict[str, Any]],
                 reason: str | None, created: datetime,
                 timezone: str | None) -> list[dict[str, Any]]:
    """A QUEUED row per action; a SKIPPED one naming each disabled action (``testEvent``
    sends to those too, so that an admin can see whether the receiver is back), and when,
    in the tenant's ``timezone``; one SKIPPED row saying why when there is no action to
    plan."""
    if not actions:
        return [new_row(trigger, trigger_id, None, "SKIPPED", reason or "", created)]
    return [new_row(trigger, trigger_id, a, "SKIPPED", skip_message(a, timezone), created)
            if a.get("disabled") and trigger.source == "SYSTEM" else
            new_row(trigger, trigger_id, a, "QUEUED", "queued", created) for a in actions]


REPLAY_MESSAGE = ("sent earlier under this idempotency key; its details need a key that "
                  "may read activity")


def replayed(rows: list[dict[str, Any]], may_read: bool) -> list[dict[str, Any]]:
    """The rows an idempotent replay answers with: whole for a caller that may read
    activity; otherwise (a PBX key) their ids, event, source and status only, since the
    rows of an earlier trigger may hold what its delivery sent and received (request
    headers, response snippet, error messages) and ``activity`` is refused to it."""
    if may_read:
        return rows
    return [{**row, "action_name": None, "message": REPLAY_MESSAGE, "http_status": None,
             "request": None, "response_snippet": None, "unresolved_parameters": []}
            for row in rows]


def result(trigger_id: str, trigger: Trigger, reason: str | None,
           rows: list[dict[str, Any]]) -> TriggerResult:
    return TriggerResult(
        trigger_id=strawberry.ID(trigger_id), event=EventType(trigger.event),
        source=TriggerSource(trigger.source), accepted=reason is None, reason=reason,
        activities=[Activity.from_doc(r) for r in rows],
    )


async def run(ctx: Context, store: TenantStore, triggers: list[Trigger], *,
              readers: list[bool] | None = None, together: bool = False,
              config: Snapshot | None = None) -> list[TriggerResult | ApiError]:
    """Run a batch of triggers with one write of rows and keys, one message and one
    publication: each trigger's result, or the error that refused it alone.

    The rows the database refuses fail only their own trigger (``tenants/acceptance.py``),
    unless ``together`` (the triggers of one ``triggerEvents`` call): then nothing of the
    batch is kept and every trigger gets the first refusal. Triggers of the same event
    share one plan. ``readers[i]`` says whether trigger i's caller may read activity (what
    its replay shows). If the queue refuses the message, every row written is removed
    again and its callers get UNAVAILABLE. ``config``: the tenant's snapshot read for
    every call of the batch (else the request's own, ``Context.config``)."""
    metrics.TRIGGER_BATCH_SIZE.observe(len(triggers))
    config = config or await ctx.config(store.code)
    if readers is None:
        readers = [may_read(ctx)] * len(triggers)
    earlier = await earlier_keys(store.log, [t.idempotency_key for t in triggers
                                             if t.idempotency_key is not None])
    plans: dict[tuple[str, str, tuple[str, ...] | None], tuple[list[dict], str | None]] = {}
    outcomes: list[TriggerResult | ApiError | None] = [None] * len(triggers)
    written: dict[int, Pending] = {}  # trigger index → what it writes
    first_of: dict[str, int] = {}  # idempotency key → the trigger of the batch that writes it
    created = now()  # one moment for the batch's rows
    joined: list[dict[str, Any]] = []  # rows in their calls' queues (dispatch.order)
    for i, trigger in enumerate(triggers):
        key = trigger.idempotency_key
        if key in earlier:
            outcomes[i] = replay(earlier[key], trigger, readers[i])
            continue
        if key in first_of:
            continue  # answered as the batch's first call with this key is
        ids = tuple(trigger.action_ids) if trigger.action_ids is not None else None
        which = (trigger.event, trigger.source, ids)
        if which not in plans:
            plans[which] = await plan(store, config, trigger)
        actions, reason = plans[which]
        trigger_id = str(row_id(created))
        timezone = None
        if trigger.source == "SYSTEM" and any(a.get("disabled") for a in actions):
            timezone = (await config.part("settings", store.get_settings))["timezone"]
        rows = planned_rows(trigger, trigger_id, actions, reason, created, timezone)
        if reason is None:
            try:
                joined += await join_calls(ctx, store, trigger, actions, rows)
            except QueueFull:
                outcomes[i] = BadInput(
                    f"{MAX_WAITING} deliveries of one action wait in this call already "
                    "(the same call_id); nothing was recorded",
                    field=f"{trigger.params_field}.call_id")
                continue
            except BaseException:
                await leave_calls(ctx, store, joined)
                raise
        record = None if key is None else {"_id": key, "trigger_id": trigger_id,
                                           "event": trigger.event, "source": trigger.source,
                                           "reason": reason}
        written[i] = Pending(trigger_id, reason, Part(rows, record))
        if key is not None:
            first_of[key] = i
    await accept(store.log, [w.part for w in written.values()])
    answered = await settle(ctx, store, triggers, readers, written, outcomes, together)
    for i, trigger in enumerate(triggers):  # a key repeated within the batch
        if outcomes[i] is None and trigger.idempotency_key is not None:
            key = trigger.idempotency_key
            outcomes[i] = (replay(answered[key], trigger, readers[i]) if key in answered
                           else outcomes[first_of[key]])
    counted = Counter((t.event, "refused" if isinstance(r, ApiError) else
                       "accepted" if r.accepted else "skipped")  # type: ignore[union-attr]
                      for t, r in zip(triggers, outcomes, strict=True))
    for labels, count in counted.items():
        metrics.TRIGGERS.labels(*labels).inc(count)
    return outcomes  # type: ignore[return-value]


async def join_calls(ctx: Context, store: TenantStore, trigger: Trigger,
                     actions: list[dict[str, Any]],
                     rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Put the trigger's rows of PER_CALL actions in their calls' queues
    (``dispatch.order``): each is QUEUED or HELD from then on; the rows that joined. If a
    queue is full (``QueueFull``) or the database fails here, the trigger's rows leave
    their queues again before the error goes on."""
    joined: list[dict[str, Any]] = []
    for action, row in zip(actions, rows, strict=True):
        key = order.call_key(action, trigger.params, trigger.source)
        if key is None or row["status"] != "QUEUED":  # a disabled action's SKIPPED row
            continue
        try:
            await order.join(store.calls, row, key)
        except BaseException:
            await leave_calls(ctx, store, joined)
            raise
        joined.append(row)
    return joined


async def leave_calls(ctx: Context, store: TenantStore, rows: list[dict[str, Any]]) -> None:
    """Rows taken back leave their calls' queues; a row that this puts first in its call
    is queued (if the queue or the database fails here, recovery does it later)."""
    released = []
    for row in rows:
        if row.get("call_key"):
            try:
                found = await order.leave(store.calls, store.log, row)
            except Exception as exc:
                log.warning("row %s taken back but still in its call's queue (%s: %s); "
                            "recovery will take it out", row["_id"], type(exc).__name__, exc)
                continue
            if found is not None:
                released.append(found)
    if released:
        try:
            await ctx.dispatcher.enqueue(store.code, released, publish=released)
        except Exception as exc:
            log.warning("could not queue %d deliveries released in their calls: %s; "
                        "recovery will", len(released), exc)


async def first_in_calls(store: TenantStore, rows: list[dict[str, Any]]) -> None:
    """HELD rows just written whose call's earlier delivery ended meanwhile are QUEUED now
    (``dispatch.order``, step 3); ``rows`` is changed in place."""
    for index, row in enumerate(rows):
        if row["status"] == "HELD":
            try:
                released = await order.first_now(store.calls, store.log, row)
            except Exception as exc:  # it is written; it waits for recovery instead
                log.warning("could not check the turn of %s in its call (%s: %s); recovery "
                            "will", row["_id"], type(exc).__name__, exc)
                continue
            if released is not None:
                rows[index] = released


@dataclass
class Pending:
    """A trigger of the batch that writes rows: its id, why nothing is sent (or None),
    and its part of the batch's write."""

    trigger_id: str
    reason: str | None
    part: Part


async def settle(ctx: Context, store: TenantStore, triggers: list[Trigger],
                 readers: list[bool], written: dict[int, Pending],
                 outcomes: list[TriggerResult | ApiError | None],
                 together: bool) -> dict[str, Earlier]:
    """After the write: each written trigger's outcome (its result, its refusal, or the
    replay of the call that took its key meanwhile); the accepted ones queued and
    published, or taken back when the queue refuses them. What each key answers, by key."""
    answered: dict[str, Earlier] = {}
    logged = Logged(len(triggers))
    await leave_calls(ctx, store, [row for w in written.values() if w.part.outcome is not None
                                   for row in w.part.rows])
    for i, w in written.items():
        if isinstance(w.part.outcome, KeyTaken):
            first = w.part.outcome.first
            rows = await store.log.by_trigger(first["trigger_id"]) if first else []
            if first is not None and rows:
                answered[first["_id"]] = Earlier(first, rows)
                outcomes[i] = replay(answered[first["_id"]], triggers[i], readers[i])
            else:
                outcomes[i] = Unavailable("another call with this idempotency key was being "
                                          "recorded and failed; send the trigger again")
        elif w.part.outcome is not None:
            outcomes[i] = refusal(w.part.outcome, triggers[i], logged)
    good = {i: w for i, w in written.items() if w.part.outcome is None}
    refused = [o for o in outcomes if isinstance(o, ApiError)]
    if together and refused:
        await withdraw(store.log, [w.part for w in good.values()])
        await leave_calls(ctx, store, [row for w in good.values() for row in w.part.rows])
        outcomes[:] = [refused[0]] * len(outcomes)
        return {}
    for w in good.values():
        await first_in_calls(store, w.part.rows)
    rows = [row for w in good.values() for row in w.part.rows]
    queued = [r for r in rows if r["status"] == "QUEUED"]
    try:
        await ctx.dispatcher.enqueue(store.code, queued, publish=rows)
    except Exception as exc:  # the broker's error types differ (Redis, RabbitMQ)
        log.warning("could not queue %d deliveries: %s", len(queued), exc)
        await withdraw(store.log, [w.part for w in good.values()])
        await leave_calls(ctx, store, rows)
        for i in good:
            outcomes[i] = Unavailable("the delivery queue is unavailable; nothing was "
                                      "recorded, send the trigger again")
        return {}
    store.log.ended(rows)  # the SKIPPED rows end as they are written
    for i, w in good.items():
        outcomes[i] = result(w.trigger_id, triggers[i], w.reason, w.part.rows)
        if w.part.key is not None:
            answered[w.part.key["_id"]] = Earlier(w.part.key, w.part.rows)
    return answered


def replay(earlier: Earlier, trigger: Trigger, may_read: bool) -> TriggerResult:
    """The answer to a trigger whose idempotency key was accepted before: that trigger's."""
    first = earlier.record
    replayed_trigger = Trigger(first["event"], first["source"], {}, trigger.occurred_at)
    return result(first["trigger_id"], replayed_trigger, first["reason"],
                  replayed(earlier.rows, may_read))


STORE_REFUSALS = (OperationFailure, InvalidDocument, OverflowError, UnicodeError)
"""What the database (or PyMongo, encoding the row) says of a value it cannot hold: a
write error of the document, a document over 16 MB, an integer beyond 64 bits..."""


@dataclass
class Logged:
    """What a batch has logged of its refusals: a batch that failed as a whole gives
    each call the same error, logged once; an unexpected kind of error gets one
    traceback per batch."""

    size: int
    """Triggers in the batch, said with each refusal: a refused call of a batch of 39."""
    errors: set[int] = field(default_factory=set)
    kinds: set[type] = field(default_factory=set)


def refusal(error: BaseException, trigger: Trigger, logged: Logged) -> ApiError:
    """The error the caller of a trigger whose rows were not written gets, logged as one
    line (``logged`` says what the batch logged already)."""
    reason = f"{type(error).__name__}: {str(error)[:200]}"
    first = id(error) not in logged.errors
    logged.errors.add(id(error))
    if is_transient(error):
        if first:
            log.warning("triggers not recorded, the database is unavailable: %s", reason)
        return Unavailable("the database is unavailable; nothing was recorded, send the "
                           "trigger again")
    if is_duplicate(error):
        refused: ApiError = Conflict(
            "the database refused this trigger: a unique index of its activity holds one of "
            "its values already; nothing was recorded", field=trigger.params_field)
    elif isinstance(error, STORE_REFUSALS):
        refused = BadInput(f"the database cannot store this trigger ({str(error)[:200]}); "
                           "nothing was recorded", field=trigger.params_field)
    else:
        if first:
            traceback = type(error) not in logged.kinds
            logged.kinds.add(type(error))
            log.error("trigger not recorded: unexpected error: %s", reason,
                      exc_info=error if traceback else None)
        return ApiError("this trigger could not be recorded (an internal error, logged); "
                        "nothing was recorded, send it again")
    if first:
        log.warning("trigger refused by the database, %s %s (one of a batch of %d): %s",
                    refused.code, trigger.params_field, logged.size, reason)
    return refused


def may_read(ctx: Context) -> bool:
    """Whether the caller may read activity (an idempotent replay shows it whole)."""
    return ctx.principal is not None and ctx.principal.role in READ
