"""The receiver's rate limit (``policy.maxRequestsPerSecond``): across all worker
processes, an action's requests go out at that rate at most, allowing one burst of the
limit; deliveries beyond it wait for their turn, in order, instead of failing.

A CRM whose API takes 10 requests/s gets, from a burst of 40 calls, 10 requests at once
and then one every 100 ms: any 1 s window at the receiver holds at most 10 + 10.

How: each action has a hash in Redis (``<database>:pace:<tenant>:<action id>``) shared by
every worker process, and one Lua script (``SCRIPT``) keeps it with the generic cell
rate algorithm (GCRA): a theoretical arrival time that moves one emission interval
(1/rate) per request, a tolerance of ``burst - 1`` intervals, the Redis server's clock.

1. Before its row is claimed, a delivery *reserves* its turn (``Pace.reserve``): the
   earliest send time not taken yet. Turns are handed out in the order deliveries ask,
   so they keep their order. A turn more than ``READY_SECONDS`` away is not waited for
   in a worker slot: the row is written QUEUED (or RETRYING) "waiting for the receiver's
   limit of 10 requests/s until 19:31:05 (Asia/Tokyo)" (in the tenant's zone) with the
   turn in it, and the delivery goes back to the broker with that delay; on its return
   it sends without reserving again.
   A turn after the delivery's expiry is not taken: the delivery ends EXPIRED at once.
2. Just before its request leaves, each delivery takes a *send* slot of a second
   bucket with the same rate (``Pace.sending``), measured at the moment of sending: a
   worker that came back late from the broker does not bunch up with the next ones
   (it waits, in its slot, for the few milliseconds that lateness costs).
3. A 429 with ``Retry-After`` (seconds or an HTTP date, at most an hour) pauses that
   action (``Pace.pause``): no turn falls before the pause ends, turns reserved before
   it are taken again, and sending resumes at the limit's pace, without a burst. The
   delivery is sent again when the pause ends; that 429 is not counted against the
   retry schedule's attempts, up to ``MAX_WAITS`` times per delivery (then it counts).

An action without a limit never touches Redis here.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from dispatch import policy, retry
from dispatch.live import Publisher
from dispatch.shares import is_retry
from event_manager.zones import clock
from tenants.activity import CLAIMABLE, EARLY
from tenants.database import now

if TYPE_CHECKING:
    from dispatch.delivery import Enqueue
    from dispatch.view import TenantView

READY_SECONDS = 0.02
"""A turn this close is waited for in the worker's slot; a later one, at the broker."""
MAX_WAITS = 50
"""429s with Retry-After of one delivery not counted as attempts; later ones count."""
IDLE_SECONDS = 60
"""An action's hash outlives its last turn by this much, then Redis drops it."""
REDIS_SECONDS = 5.0
"""A Redis that does not answer a turn within this long fails the delivery's step (as an
outage: recovery queues it again), rather than holding the action's line here."""

SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval, tolerance = tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'r', 'a', 'p')
local r, a, p = tonumber(state[1]) or 0, tonumber(state[2]) or 0, tonumber(state[3]) or 0
local at
if ARGV[1] == 'reserve' then
  local held, within = tonumber(ARGV[4]), tonumber(ARGV[5])
  if held >= p then return {held, now} end
  at = math.max(now, p, r - tolerance)
  if within >= 0 and at > now + within then return {-1, now, at} end
  r = math.max(r, at) + interval
elseif ARGV[1] == 'send' then
  at = math.max(now, a - tolerance)
  a = math.max(a, at) + interval
else
  p = math.max(p, now + tonumber(ARGV[4]))
  r = math.max(r, p + tolerance)
  a = math.max(a, p + tolerance)
  at = p
end
redis.call('HSET', KEYS[1], 'r', string.format('%.0f', r), 'a', string.format('%.0f', a),
           'p', string.format('%.0f', p))
redis.call('PEXPIRE', KEYS[1], math.ceil((math.max(r, a, p) - now) / 1000) + ARGV[6] * 1000)
return {at, now}
"""
"""KEYS[1]: the action's hash (``r``: reservations' and ``a``: sends' theoretical arrival
times, ``p``: paused until; microseconds of the Redis clock). ARGV: the command
(``reserve``, ``send`` or ``pause``), the interval and tolerance (µs), then: for
``reserve``, the turn the delivery holds (-1: none) and within how many µs it must be
sent (-1: any time); for ``pause``, for how many µs; last, ``IDLE_SECONDS``. Replies
``{turn, now}``; ``{-1, now, turn}`` when the turn would come too late."""


@dataclass(frozen=True)
class Limit:
    """An action's rate: ``Limit(10)``: an interval of 100,000 µs, a burst of 10
    (a tolerance of 9 intervals). Below one request a second, a burst of one."""

    rate: float

    @property
    def interval(self) -> int:
        return max(1, round(1_000_000 / self.rate))

    @property
    def tolerance(self) -> int:
        return (math.ceil(self.rate) - 1) * self.interval

    @property
    def shown(self) -> str:
        return f"{self.rate:g} request{'' if self.rate == 1 else 's'}/s"


def limit_of(action: dict[str, Any] | None) -> Limit | None:
    rate = policy.of(action or {})["max_requests_per_second"]
    return Limit(rate) if rate else None


@dataclass(frozen=True)
class Turn:
    """A reservation: ``at`` on the Redis clock (µs), ``wait`` seconds from when it was
    made, ``when`` on this machine's clock; ``late`` when it would come after the
    delivery's deadline (and was not taken)."""

    at: int
    wait: float
    when: datetime
    late: bool = False

    @classmethod
    def of(cls, at: int, redis_now: int, late: bool = False) -> Turn:
        wait = max(0.0, (at - redis_now) / 1e6)
        return cls(at, wait, datetime.now(UTC) + timedelta(seconds=wait), late)


class Pace:
    """The actions' rate limits in Redis (``SCRIPT``); ``prefix``: ``<database>:pace:``."""

    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._sha: str | None = None
        self._lines: dict[str, tuple[asyncio.Lock, list[int]]] = {}
        """Per action: the lock its reservations take in turn, and how many want it."""

    async def reserve(self, tenant: str, action_id: str, limit: Limit, held: int | None,
                      within: float | None) -> Turn:
        """The delivery's turn: ``held`` (a turn it reserved before) while a pause has not
        voided it, else the next one free. ``within``: seconds left before it expires."""
        async with self._in_line(f"{tenant}:{action_id}"):
            reply = await self._run(tenant, action_id, limit, "reserve",
                                    -1 if held is None else held,
                                    -1 if within is None else max(0, int(within * 1_000_000)))
        if reply[0] < 0:
            return Turn.of(int(reply[2]), int(reply[1]), late=True)
        return Turn.of(int(reply[0]), int(reply[1]))

    async def sending(self, tenant: str, action_id: str, limit: Limit) -> float:
        """Take a send slot now: how many seconds to wait before sending (0 on time)."""
        at, now = await self._run(tenant, action_id, limit, "send")
        return max(0.0, (int(at) - int(now)) / 1e6)

    async def pause(self, tenant: str, action_id: str, limit: Limit, seconds: float) -> None:
        """No request of the action for ``seconds`` (a 429's Retry-After), then its pace."""
        await self._run(tenant, action_id, limit, "pause", int(seconds * 1_000_000))

    @contextlib.asynccontextmanager
    async def _in_line(self, key: str) -> AsyncIterator[None]:
        """One reservation of an action at a time in this process, in the order they were
        asked for: sent at once, on the pool's several connections, they would reach
        Redis in any order (40 at once came in reverse), and the turns with them."""
        lock, wanting = self._lines.setdefault(key, (asyncio.Lock(), [0]))
        wanting[0] += 1
        try:
            async with lock:
                yield
        finally:
            wanting[0] -= 1
            if not wanting[0]:
                del self._lines[key]

    async def _run(self, tenant: str, action_id: str, limit: Limit, command: str,
                   *args: int) -> list[Any]:
        key = f"{self.prefix}{tenant}:{action_id}"
        argv = [command, limit.interval, limit.tolerance, *args, *[0] * (2 - len(args)),
                IDLE_SECONDS]
        async with asyncio.timeout(REDIS_SECONDS):
            if self._sha is None:
                self._sha = await self.redis.script_load(SCRIPT)
            try:
                return await self.redis.evalsha(self._sha, 1, key, *argv)
            except NoScriptError:  # Redis restarted
                self._sha = await self.redis.script_load(SCRIPT)
                return await self.redis.evalsha(self._sha, 1, key, *argv)


@dataclass(frozen=True)
class Ready:
    """What ``take_turn`` leaves to the claim: the row to claim (None: read it there), and
    the changes that end it EXPIRED when its turn would come after its deadline."""

    row: dict[str, Any] | None
    ends: dict[str, Any] | None = None


async def take_turn(pace: Pace | None, view: TenantView, activity_id: str,
                    known: dict[str, Any] | None, publisher: Publisher,
                    enqueue: Enqueue) -> Ready | None:
    """Before the claim: the delivery's turn under its action's limit, waited for here
    when it is at most ``READY_SECONDS`` away; None when it waits for it at the broker
    (its row says so, and carries the turn). A row not claimable, of an action without a
    limit, or a planned retry not due yet, goes on to the claim as it is."""
    if pace is None:
        return Ready(known)
    row = known or await view.row(activity_id)
    if row is None or row["status"] not in CLAIMABLE:
        return Ready(known)
    due = row.get("next_attempt_at")
    if row["status"] == "RETRYING" and due is not None and due > now() + EARLY:
        return Ready(row)  # an early copy: the claim refuses it
    action, settings = await view.action_and_settings(row["action_id"] or "")
    limit, timezone = limit_of(action), settings.get("timezone")
    if action is None or limit is None:
        return Ready(row)
    ends = policy.deadline(row, action)
    within = None if ends is None else max(0.0, (ends - now()).total_seconds())
    turn = await pace.reserve(view.code, row["action_id"], limit, held_turn(row), within)
    if turn.late:
        return Ready(row, too_late(row, action, limit, turn, timezone))
    if turn.wait <= READY_SECONDS:
        await asyncio.sleep(turn.wait)
        return Ready(row)
    waiting = await view.wait(row, wait_changes(row, limit, turn, timezone))
    if waiting is not None:  # else it moved on meanwhile: sent, or taken back
        await publisher.publish(view.code, [waiting])
        await enqueue(view.code, [activity_id], retry.seconds_until(turn.when), [waiting],
                      later=is_retry(row))
    return None


def held_turn(row: dict[str, Any]) -> int | None:
    """The turn the row holds for its next attempt (``turn``: [attempts, µs]), if any."""
    turn = row.get("turn")
    if isinstance(turn, list) and len(turn) == 2 and turn[0] == row["attempts"]:
        return int(turn[1])
    return None


def wait_changes(row: dict[str, Any], limit: Limit, turn: Turn,
                 timezone: str | None) -> dict[str, Any]:
    """The changes of a row that waits for its turn (its status stays as it is)."""
    return {"message": f"waiting for the receiver's limit of {limit.shown} until "
                       f"{clock(turn.when, timezone)}",
            "next_attempt_at": turn.when, "turn": [row["attempts"], turn.at]}


def too_late(row: dict[str, Any], action: dict[str, Any], limit: Limit,
             turn: Turn, timezone: str | None) -> dict[str, Any]:
    """The changes that end a row EXPIRED whose turn would come after its deadline."""
    ends = policy.deadline(row, action)
    assert ends is not None
    return {"status": "EXPIRED", "next_attempt_at": None, "message": (
        f"not sent: the receiver's limit of {limit.shown} gives it a turn at "
        f"{clock(turn.when, timezone)}, after it expires at {clock(ends, timezone)}")}


def throttled(row: dict[str, Any], changes: dict[str, Any], retry_after: str | None,
              timezone: str | None) -> tuple[float, dict[str, Any]] | None:
    """A 429 with Retry-After: the pause it asks for, and the attempt's changes that send
    the delivery again then, not counted (``cycle_start`` moves with it); None when it is
    some other answer, or this delivery has waited ``MAX_WAITS`` times already."""
    seconds = retry.retry_after_seconds(retry_after)
    waits = row.get("waits", 0)
    if changes.get("http_status") != 429 or seconds is None or waits >= MAX_WAITS:
        return None
    at = datetime.now(UTC) + timedelta(seconds=seconds)
    return seconds, {
        **changes, "status": "RETRYING", "next_attempt_at": at, "waits": waits + 1,
        "cycle_start": row.get("cycle_start", 0) + 1,
        "message": f"429 Too Many Requests (the receiver asked to wait {seconds:g} s), "
                   f"retry at {clock(at, timezone)}, not counted against the retries"}
