"""Fair shares of a worker process's delivery slots between tenants, and between the
actions of a tenant.

A worker process has ``total`` deliveries in flight at most (``worker_in_flight``,
1,000). Taken first come, first served, one tenant with 1,000 deliveries to an endpoint
that answers in 8 s would hold every slot for 8 s, and another tenant's first attempt
would wait that long. ``FairShares`` hands the slots out instead:

- a tenant has at most ``per_tenant`` deliveries in flight (``tenant_in_flight``, 400:
  2,000/s to an endpoint answering in 200 ms): the rest of the slots stay free for the
  others; one action of the tenant has at most ``per_action`` of them
  (``action_in_flight``, 300), so a dead endpoint leaves room for the tenant's healthy
  ones. Deliveries beyond wait, each action's in a line of its own, in the order they
  came;
- a slot that frees goes to the waiting tenant with the fewest in flight (in turn on a
  tie), within it to the action with the fewest in flight, and to a first attempt
  before any retry; retries hold at most ``retries`` slots at once (``retry_in_flight``,
  500), so a failing tenant's retries never take the place of first attempts, and one
  action's retries at most ``retries_per_action`` (``retry_action_in_flight``, 50): a
  dead endpoint with thousands of retries due sends them a few at a time instead of in
  waves of 300 that time out together and write their outcomes at once;
- an action's line holds at most ``per_action`` deliveries (its retries' line,
  ``retries_per_action``): ``offer`` refuses more, and
  the caller hands them back to the broker for a moment (``dispatch.runtime``) instead of
  making the broker's threads wait, which would hold up every tenant's messages.

Pure bookkeeping, no I/O: ``start`` is called for each delivery that may begin now,
``finished`` when it ends. ``FairGate`` does the same for the few database calls the
worker lets run at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dispatch.view import MessageView


@dataclass(eq=False)
class Delivery:
    """One delivery a message asked for: its tenant, its row's id, and what it carries."""

    tenant: str
    activity_id: str
    row: dict[str, Any] | None = None
    """The row as the message carries it, or None (read from the database then)."""
    view: MessageView | None = None
    """The tenant's view, shared by the deliveries of one message (``Deliverer.deliver``)."""
    retry: bool = False
    trace_context: dict[str, str] | None = None
    """The context the message was sent in (``event_manager.tracing``), when it says."""

    @property
    def action(self) -> str | None:
        """The action it is for, when the message says (recovery's messages do not: their
        deliveries share one line)."""
        return str(self.row.get("action_id")) if self.row is not None else None

    @property
    def key(self) -> tuple[str, str | None]:
        return self.tenant, self.action


def count_down(counter: Counter[Any], key: Any) -> None:
    """One less of ``key``; a key down to none leaves the counter (counters of tenants and
    actions in flight stay as small as what is in flight)."""
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]


def is_retry(row: dict[str, Any] | None) -> bool:
    """A planned retry carries its row RETRYING; a first attempt's is QUEUED. A row the
    message does not carry (recovery's messages) counts as a first attempt."""
    return row is not None and row.get("status") == "RETRYING"


Key = tuple[str, str | None]
"""(tenant, action)."""


class _TenantLines:
    """One tenant's waiting deliveries: a FIFO line per action, and whose turn is next."""

    def __init__(self) -> None:
        self.lines: dict[str | None, deque[Delivery]] = {}
        self.turns: deque[str | None] = deque()

    def push(self, item: Delivery) -> None:
        line = self.lines.get(item.action)
        if line is None:
            line = self.lines[item.action] = deque()
            self.turns.append(item.action)
        line.append(item)

    def pick(self, tenant: str, may_start: Callable[[Key], bool],
             running: Counter[Key]) -> list[str | None]:
        """The action whose first delivery starts next, as a list of one: of those
        allowed to start, the one with the fewest in flight (the earliest in turn on a
        tie); an empty list when none may start."""
        chosen: list[str | None] = []
        for action in self.turns:
            key = (tenant, action)
            if may_start(key) and (not chosen or running[key] < running[(tenant, chosen[0])]):
                chosen = [action]
        return chosen

    def pop(self, action: str | None) -> Delivery:
        line = self.lines[action]
        item = line.popleft()
        self.turns.remove(action)
        if line:
            self.turns.append(action)
        else:
            del self.lines[action]
        return item


class _Lines:
    """Waiting deliveries, per tenant and action, and whose turn is next."""

    def __init__(self) -> None:
        self.tenants: dict[str, _TenantLines] = {}
        self.turns: deque[str] = deque()
        self.count = 0

    def length(self, key: Key) -> int:
        lines = self.tenants.get(key[0])
        line = lines.lines.get(key[1]) if lines else None
        return len(line) if line else 0

    def push(self, item: Delivery) -> None:
        lines = self.tenants.get(item.tenant)
        if lines is None:
            lines = self.tenants[item.tenant] = _TenantLines()
            self.turns.append(item.tenant)
        lines.push(item)
        self.count += 1

    def pop(self, may_start: Callable[[Key], bool], running: Counter[str],
            running_actions: Counter[Key]) -> Delivery | None:
        """The next delivery of the tenant with the fewest in flight, of those with one
        allowed to start (the earliest in turn on a tie), of its action with the fewest
        in flight; that tenant and action go to the back of their turns."""
        chosen: Key | None = None
        for tenant in self.turns:
            if chosen is not None and running[tenant] >= running[chosen[0]]:
                continue
            for action in self.tenants[tenant].pick(tenant, may_start, running_actions):
                chosen = (tenant, action)
        if chosen is None:
            return None
        tenant, action = chosen
        lines = self.tenants[tenant]
        item = lines.pop(action)
        self.count -= 1
        self.turns.remove(tenant)
        if lines.lines:
            self.turns.append(tenant)
        else:
            del self.tenants[tenant]
        return item

    def drain(self) -> list[Delivery]:
        items = [item for lines in self.tenants.values() for line in lines.lines.values()
                 for item in line]
        self.tenants.clear()
        self.turns.clear()
        self.count = 0
        return items


class FairShares:
    def __init__(self, start: Callable[[Delivery], None], *, total: int, per_tenant: int,
                 retries: int, per_action: int | None = None,
                 retries_per_action: int | None = None) -> None:
        self.start = start
        self.total = total
        self.per_tenant = min(per_tenant, total)
        self.per_action = min(per_action or self.per_tenant, self.per_tenant)
        self.retries = min(retries, total)
        self.retries_per_action = min(retries_per_action or self.per_action, self.per_action)
        """One action's retries in flight at most: a dead endpoint's retries go a few at
        a time, not in waves of ``per_action`` that take the database and the CPU."""
        self.running: Counter[str] = Counter()
        """Deliveries in flight, by tenant."""
        self.running_actions: Counter[Key] = Counter()
        """Deliveries in flight, by tenant and action."""
        self.running_action_retries: Counter[Key] = Counter()
        """Retries in flight, by tenant and action."""
        self.running_total = 0
        self.running_retries = 0
        self.first = _Lines()
        self.again = _Lines()
        """Retries waiting: served only when no first attempt may start."""

    @property
    def waiting(self) -> int:
        return self.first.count + self.again.count

    def offer(self, item: Delivery) -> bool:
        """Start ``item`` now or put it in its action's line; False when that line is
        full (the caller hands it back to the broker)."""
        lines = self.again if item.retry else self.first
        if lines.length(item.key) >= (self.retries_per_action if item.retry
                                      else self.per_action):
            return False
        lines.push(item)
        self._pump()
        return True

    def finished(self, item: Delivery) -> None:
        count_down(self.running, item.tenant)
        count_down(self.running_actions, item.key)
        self.running_total -= 1
        if item.retry:
            self.running_retries -= 1
            count_down(self.running_action_retries, item.key)
        self._pump()

    def release_all(self) -> None:
        """Start every waiting delivery whatever the shares (a stopping worker hands
        them back to the queue this way: ``Deliverer.stop``)."""
        for item in self.first.drain() + self.again.drain():
            self._begin(item)

    def _may_start(self, key: Key) -> bool:
        return (self.running[key[0]] < self.per_tenant
                and self.running_actions[key] < self.per_action)

    def _may_retry(self, key: Key) -> bool:
        return (self._may_start(key)
                and self.running_action_retries[key] < self.retries_per_action)

    def _pump(self) -> None:
        while self.running_total < self.total:
            item = self.first.pop(self._may_start, self.running, self.running_actions)
            if item is None and self.running_retries < self.retries:
                item = self.again.pop(self._may_retry, self.running, self.running_actions)
            if item is None:
                return
            self._begin(item)

    def _begin(self, item: Delivery) -> None:
        self.running[item.tenant] += 1
        self.running_actions[item.key] += 1
        self.running_total += 1
        if item.retry:
            self.running_retries += 1
            self.running_action_retries[item.key] += 1
        self.start(item)


class FairGate:
    """``asyncio.Semaphore(size)`` whose waiters are let in by tenant in turn, and within
    a tenant by action in turn, not in the order they came: when 400 deliveries of one
    tenant end at once and queue their 400 outcome writes, another tenant's one write
    goes in next, not 401st; when 300 deliveries to one dead endpoint queue their claims,
    the tenant's next delivery to a healthy one goes in next. Waiters for retries
    (``later=True``) are let in only when no other waits: when a thousand retries come
    due together, a first attempt's claim goes in next, not behind them.

    ``async with gate.slot("acme", action_id): ...``
    """

    def __init__(self, size: int) -> None:
        self.free = size
        self.first = _Waiters()
        self.later = _Waiters()

    @contextlib.asynccontextmanager
    async def slot(self, tenant: str, action: str | None = None,
                   later: bool = False) -> AsyncIterator[None]:
        if self.free > 0 and not self.first.turns and not self.later.turns:
            self.free -= 1
        else:
            entry: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            (self.later if later else self.first).push(tenant, action, entry)
            try:
                await entry
            except asyncio.CancelledError:
                if entry.done() and not entry.cancelled():  # let in, then cancelled
                    self._release()
                raise
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        """Hand the slot to the next waiter still waiting (first attempts' before
        retries', tenants in turn, then actions), else free it."""
        if not (self.first.admit() or self.later.admit()):
            self.free += 1


class _Waiters:
    """``FairGate``'s waiters of one class: per tenant, a FIFO line per action; tenants
    take turns, and the actions of each tenant."""

    def __init__(self) -> None:
        self.tenants: dict[str, dict[str | None, deque[asyncio.Future[None]]]] = {}
        self.turns: deque[str] = deque()
        self.action_turns: dict[str, deque[str | None]] = {}

    def push(self, tenant: str, action: str | None, entry: asyncio.Future[None]) -> None:
        lines = self.tenants.get(tenant)
        if lines is None:
            lines = self.tenants[tenant] = {}
            self.action_turns[tenant] = deque()
            self.turns.append(tenant)
        line = lines.get(action)
        if line is None:
            line = lines[action] = deque()
            self.action_turns[tenant].append(action)
        line.append(entry)

    def admit(self) -> bool:
        """Let the next waiter in; False when none waits (a cancelled waiter is
        skipped)."""
        while self.turns:
            tenant = self.turns.popleft()
            lines, actions = self.tenants[tenant], self.action_turns[tenant]
            action = actions.popleft()
            line = lines[action]
            entry = line.popleft()
            if line:
                actions.append(action)
            else:
                del lines[action]
            if lines:
                self.turns.append(tenant)
            else:
                del self.tenants[tenant], self.action_turns[tenant]
            if not entry.done():
                entry.set_result(None)
                return True
        return False
