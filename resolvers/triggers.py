"""Triggers: the PBX reports a call event; every attached action becomes a QUEUED
delivery, or the trigger is recorded as one SKIPPED row saying why nothing is sent.

The mutation returns as soon as the rows are written and the message is queued; it never
waits for the third party. If the queue cannot take the message, what was written is
removed again and the caller gets UNAVAILABLE, so a retry by the PBX sends once.

``triggerEvent`` calls of one tenant that arrive while its previous batch is being written
are written together as the next batch (``resolvers/intake.py``): a call alone returns at
once; under load, after the batch in progress and its own.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import strawberry

from dispatch.stamps import Snapshot
from event_manager import metrics
from event_manager.errors import BadInput, NotFound, Unavailable
from resolvers.context import READ, TRIGGER, WRITE, Context
from resolvers.intake import MAX_BATCH
from resolvers.validation import TAG_NAME
from schema.activity import Activity, TriggerInput, TriggerResult
from schema.enums import EventType, TriggerSource
from tenants.activity import row_id
from tenants.catalog import EVENTS_BY_TYPE
from tenants.database import now, object_id
from tenants.store import TenantStore

log = logging.getLogger("event_manager.api")

MAX_PARAMS = 100
MAX_PARAM_VALUE = 4096
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
"""What the store holds (BSON's int64): a larger whole number failed at the database."""
MAX_KEY = 200
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


def check_params(params: Any, field: str) -> dict[str, Scalar]:
    """One flat object of string, number, boolean (or null) values with tag-like keys."""
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise BadInput("params must be one flat JSON object", field=field)
    if len(params) > MAX_PARAMS:
        raise BadInput(f"params has more than {MAX_PARAMS} keys", field=field)
    for key, value in params.items():
        if not TAG_NAME.match(key):
            raise BadInput(f"{key[:40]!r} is not a parameter name (letters, digits, _ . -)",
                           field=f"{field}.{key[:40]}")
        if isinstance(value, float) and not math.isfinite(value):
            raise BadInput("numbers must be finite", field=f"{field}.{key}")
        if isinstance(value, int) and not isinstance(value, bool) \
                and not INT64_MIN <= value <= INT64_MAX:
            raise BadInput("whole numbers must fit in 64 bits (at most 9223372036854775807 "
                           "either way); send a larger one as a string", field=f"{field}.{key}")
        if not isinstance(value, Scalar):
            raise BadInput("values must be strings, numbers or booleans",
                           field=f"{field}.{key}")
        if isinstance(value, str) and len(value) > MAX_PARAM_VALUE:
            raise BadInput(f"values are at most {MAX_PARAM_VALUE} characters",
                           field=f"{field}.{key}")
    return dict(params)


def check_trigger(data: TriggerInput, field: str) -> Trigger:
    key = data.idempotency_key
    if key is not None and not 1 <= len(key) <= MAX_KEY:
        raise BadInput(f"idempotencyKey must be 1-{MAX_KEY} characters",
                       field=f"{field}.idempotencyKey")
    occurred = data.occurred_at or now()
    if occurred.tzinfo is None:
        occurred = occurred.replace(tzinfo=UTC)
    return Trigger(event=data.event.value, source="SYSTEM",
                   params=check_params(data.params, f"{field}.params"),
                   occurred_at=occurred, idempotency_key=key)


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
        {"_id": {"$in": oids}}, {"name": 1}).to_list(None))
    by_id = {str(a["_id"]): a for a in found}
    actions = [by_id[i] for i in ids if i in by_id]
    if not actions:
        return [], f"no actions are attached to {name}"
    return actions, None


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


async def run(ctx: Context, store: TenantStore, triggers: list[Trigger]) -> list[TriggerResult]:
    """Run a batch of triggers with one write of rows, one message and one publication.

    Triggers of the same event share one plan. If the queue refuses the message, every
    row of the batch is removed again and its callers get UNAVAILABLE."""
    metrics.TRIGGER_BATCH_SIZE.observe(len(triggers))
    config = await ctx.configs.snapshot(store.code)
    plans: dict[tuple[str, str, tuple[str, ...] | None], tuple[list[dict], str | None]] = {}
    results: list[TriggerResult] = []
    rows: list[dict[str, Any]] = []
    batch_rows: dict[str, list[dict[str, Any]]] = {}  # trigger id → rows, for replays
    keys: list[str] = []
    created = now()  # one moment for the batch's rows
    for trigger in triggers:
        ids = tuple(trigger.action_ids) if trigger.action_ids is not None else None
        which = (trigger.event, trigger.source, ids)
        if which not in plans:
            plans[which] = await plan(store, config, trigger)
        actions, reason = plans[which]
        trigger_id = str(row_id(created))
        if trigger.idempotency_key is not None:
            first = await store.log.remember(trigger.idempotency_key, {
                "trigger_id": trigger_id, "event": trigger.event, "source": trigger.source,
                "reason": reason})
            if first is not None:
                replay = Trigger(first["event"], first["source"], {}, trigger.occurred_at)
                earlier = batch_rows.get(first["trigger_id"])
                if earlier is None:
                    earlier = await store.log.by_trigger(first["trigger_id"])
                may_read = ctx.principal is not None and ctx.principal.role in READ
                results.append(result(first["trigger_id"], replay, first["reason"],
                                      replayed(earlier, may_read)))
                continue
            keys.append(trigger.idempotency_key)
        if reason is not None:
            mine = [new_row(trigger, trigger_id, None, "SKIPPED", reason, created)]
        else:
            mine = [new_row(trigger, trigger_id, a, "QUEUED", "queued", created)
                    for a in actions]
        batch_rows[trigger_id] = mine
        rows += mine
        results.append(result(trigger_id, trigger, reason, mine))
    await store.log.insert(rows)
    queued = [r for r in rows if r["status"] == "QUEUED"]
    try:
        await ctx.dispatcher.enqueue(store.code, queued)
    except Exception as exc:  # the broker's error types differ (Redis, RabbitMQ)
        log.warning("could not queue %d deliveries: %s", len(queued), exc)
        await store.log.remove([r["_id"] for r in rows])
        if keys:
            await store.log.idempotency.delete_many({"_id": {"$in": keys}})
        for event, count in Counter(t.event for t in triggers).items():
            metrics.TRIGGERS.labels(event, "refused").inc(count)
        raise Unavailable("the delivery queue is unavailable; nothing was recorded, "
                          "send the trigger again") from None
    await ctx.dispatcher.publish(store.code, rows)
    counted = Counter((r.event.value, "accepted" if r.accepted else "skipped") for r in results)
    for labels, count in counted.items():
        metrics.TRIGGERS.labels(*labels).inc(count)
    return results


@dataclass(frozen=True)
class Call:
    """A triggerEvent call waiting in the intake: its context, store and checked trigger."""

    ctx: Context
    store: TenantStore
    trigger: Trigger


async def run_calls(calls: list[Call]) -> list[TriggerResult]:
    """Concurrent calls of one tenant as one batch, with the first one's context and store."""
    return await run(calls[0].ctx, calls[0].store, [call.trigger for call in calls])


async def trigger_event(info: strawberry.Info, input: TriggerInput) -> TriggerResult:
    """Checked and authorised alone; then run in one batch with the tenant's concurrent
    calls (``resolvers/intake.py``), so a bad input or a wrong key affects no one else."""
    store = await info.context.tenant_store(TRIGGER)
    call = Call(info.context, store, check_trigger(input, "input"))
    return await info.context.intake.join(store.code, call, run_calls)


async def trigger_events(info: strawberry.Info, inputs: list[TriggerInput]) -> list[TriggerResult]:
    """Every input is checked before any is run, so a bad one writes nothing."""
    store = await info.context.tenant_store(TRIGGER)
    if len(inputs) > MAX_BATCH:
        raise BadInput(f"inputs holds {len(inputs)} triggers; at most {MAX_BATCH} are allowed "
                       "per batch", field="inputs")
    triggers = [check_trigger(data, f"inputs[{i}]") for i, data in enumerate(inputs)]
    return await run(info.context, store, triggers)


async def test_event(
    info: strawberry.Info, event: EventType, params: strawberry.scalars.JSON | None = None,
    action_ids: list[strawberry.ID] | None = None,
) -> TriggerResult:
    """Runs even while actions are disabled or the event is inactive; source TEST."""
    store = await info.context.tenant_store(WRITE)
    ids = None
    if action_ids is not None:
        ids = list(dict.fromkeys(str(i) for i in action_ids))
        known = await store.existing_action_ids(ids)
        for i, action_id in enumerate(ids):
            if action_id not in known:
                raise BadInput(f"no action with id {action_id[:40]!r}", field=f"actionIds[{i}]")
    trigger = Trigger(event=event.value, source="TEST", params=check_params(params, "params"),
                      occurred_at=now(), action_ids=ids)
    return (await run(info.context, store, [trigger]))[0]


async def retry_activity(info: strawberry.Info, id: strawberry.ID) -> Activity:
    """Send a FAILED delivery again: a new attempt, with a fresh retry schedule."""
    store = await info.context.tenant_store(WRITE)
    row = await store.log.get(id)
    if row is None:
        raise NotFound(f"no activity with id {id[:40]!r}", field="id")
    if row["status"] != "FAILED" or row["action_id"] is None:
        raise BadInput(f"only FAILED deliveries can be retried; this one is {row['status']}",
                       field="id")
    queued = await store.log.record(row["_id"], {
        "status": "QUEUED", "message": f"queued again after {row['attempts']} attempts",
        "cycle_start": row["attempts"], "next_attempt_at": None,
    }, expect="FAILED")
    if queued is None:
        raise BadInput("this delivery changed meanwhile; reload it", field="id")
    try:
        await info.context.dispatcher.enqueue(store.code, [queued])
    except Exception as exc:
        log.warning("could not queue retry of %s: %s", row["_id"], exc)
        await store.log.record(row["_id"], {k: row[k] for k in
                                            ("status", "message", "cycle_start")})
        raise Unavailable("the delivery queue is unavailable; try again shortly") from None
    await info.context.dispatcher.publish(store.code, [queued])
    return Activity.from_doc(queued)
