"""Triggers: the PBX reports a call event; every attached action becomes a QUEUED
delivery, or the trigger is recorded as one SKIPPED row saying why nothing is sent.

The mutation returns as soon as the rows are written and the message is queued; it never
waits for the third party. If the queue cannot take the message, what was written is
removed again and the caller gets UNAVAILABLE, so a retry by the PBX sends once. Params
are checked against what the database can store (64-bit integers, finite numbers, names
without '.'), so a value fails here, naming ``inputs[3].params.duration``, not in the
write; a value the database refuses all the same fails its own trigger alone
(``resolvers/batch.py``).

``triggerEvent`` calls of one tenant that arrive while its previous batch is being written
are written together as the next batch (``resolvers/intake.py``): a call alone returns at
once; under load, after the batch in progress and its own.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import strawberry

from dispatch import policy
from event_manager.errors import ApiError, BadInput, NotFound, Unavailable
from event_manager.wording import counted
from resolvers.batch import Scalar, Trigger, may_read, run
from resolvers.context import TRIGGER, WRITE, Context
from resolvers.intake import MAX_BATCH
from resolvers.validation import TAG_NAME
from schema.activity import Activity, TriggerInput, TriggerResult
from schema.enums import EventType
from tenants.database import now
from tenants.store import TenantStore

log = logging.getLogger("event_manager.api")

MAX_PARAMS = 100
MAX_PARAM_VALUE = 4096
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
"""What the store holds (BSON's int64): a larger whole number failed at the database."""
MAX_KEY = 200


def check_params(params: Any, field: str) -> dict[str, Scalar]:
    """One flat object of string, number, boolean (or null) values with tag-like keys,
    each one what the database can hold: names without '.', whole numbers within 64
    bits, finite numbers. At most 100 names of 4,096 characters each: about 1.6 MB of
    BSON at 4 bytes a character, far below the 16 MB of a MongoDB document."""
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
        if "." in key:
            raise BadInput(f"{key!r}: a name in params may not contain '.', which the "
                           "database cannot store in a field name; use '_' or '-'",
                           field=f"{field}.{key}")
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
                   occurred_at=occurred, idempotency_key=key, params_field=f"{field}.params")


@dataclass(frozen=True)
class Call:
    """A triggerEvent call waiting in the intake: its context, store and checked trigger."""

    ctx: Context
    store: TenantStore
    trigger: Trigger


async def run_calls(calls: list[Call]) -> list[TriggerResult | ApiError]:
    """Concurrent calls of one tenant as one batch, with the first one's context and
    store; each call's result or its own error. The batch plans with the config snapshot
    its calls read when they arrived if they all read the same one (a call alone always
    did), else with one read now, after all of them arrived."""
    first, code = calls[0].ctx, calls[0].store.code
    read = {await call.ctx.config(code) for call in calls}
    config = read.pop() if len(read) == 1 else await first.configs.snapshot(code)
    return await run(first, calls[0].store, [call.trigger for call in calls],
                     readers=[may_read(call.ctx) for call in calls], config=config)


async def trigger_event(info: strawberry.Info, input: TriggerInput) -> TriggerResult:
    """Checked and authorised alone; then run in one batch with the tenant's concurrent
    calls (``resolvers/intake.py``), so a bad input, a wrong key or a value the database
    refuses affects no one else."""
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
    outcomes = await run(info.context, store, triggers, together=True)
    for outcome in outcomes:
        if isinstance(outcome, ApiError):
            raise outcome
    return outcomes  # type: ignore[return-value]


async def test_event(
    info: strawberry.Info, event: EventType,
    params: strawberry.scalars.JSON | None = {},  # noqa: B006 (the contract's; never mutated)
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
                      occurred_at=now(), action_ids=ids, params_field="params")
    [outcome] = await run(info.context, store, [trigger])
    if isinstance(outcome, ApiError):
        raise outcome
    return outcome


async def retry_activity(info: strawberry.Info, id: strawberry.ID) -> Activity:
    """Send a FAILED delivery again: a new attempt, with a fresh retry schedule, and a
    fresh expiry counted from now (``dispatch.policy``). An EXPIRED one is refused, saying
    why."""
    store = await info.context.tenant_store(WRITE)
    row = await store.log.get(id)
    if row is None:
        raise NotFound(f"no activity with id {id[:40]!r}", field="id")
    if row["status"] == "EXPIRED":
        raise BadInput(policy.refusal(row, (await store.get_settings())["timezone"]), field="id")
    if row["status"] != "FAILED" or row["action_id"] is None:
        raise BadInput(f"only FAILED deliveries can be retried; this one is {row['status']}",
                       field="id")
    queued = await store.log.record(row["_id"], {
        "status": "QUEUED", "message": f"queued again after {counted(row['attempts'], 'attempt')}",
        "cycle_start": row["attempts"], "cycle_at": now(), "next_attempt_at": None,
    }, expect="FAILED")
    if queued is None:
        raise BadInput("this delivery changed meanwhile; reload it", field="id")
    try:
        await info.context.dispatcher.enqueue(store.code, [queued], publish=[queued])
    except Exception as exc:
        log.warning("could not queue retry of %s: %s", row["_id"], exc)
        await store.log.record(row["_id"], {k: row.get(k) for k in
                                            ("status", "message", "cycle_start", "cycle_at")})
        raise Unavailable("the delivery queue is unavailable; try again shortly") from None
    store.log.reopened(row)
    return Activity.from_doc(queued)
