"""Fair shares of a worker process's delivery slots between tenants.

A worker process has ``total`` deliveries in flight at most (``worker_in_flight``,
1,000). Taken first come, first served, one tenant with 1,000 deliveries to an endpoint
that answers in 8 s would hold every slot for 8 s, and another tenant's first attempt
would wait that long. ``FairShares`` hands the slots out instead:

- a tenant has at most ``per_tenant`` deliveries in flight (``tenant_in_flight``, 400:
  2,000/s to an endpoint answering in 200 ms): the rest of the slots stay free for the
  others; its next deliveries wait in a line of its own, in the order they came;
- a slot that frees goes to the waiting tenant with the fewest in flight (in turn on a
  tie), and to a first attempt before any retry; retries hold at most ``retries`` slots
  at once (``retry_in_flight``, 500), so a failing tenant's retries never take the
  place of first attempts;
- a tenant's line holds at most ``per_tenant`` deliveries: ``offer`` refuses more, and
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


def is_retry(row: dict[str, Any] | None) -> bool:
    """A planned retry carries its row RETRYING; a first attempt's is QUEUED. A row the
    message does not carry (recovery's messages) counts as a first attempt."""
    return row is not None and row.get("status") == "RETRYING"


class _Lines:
    """Waiting deliveries, a FIFO line per tenant, and whose turn is next."""

    def __init__(self) -> None:
        self.lines: dict[str, deque[Delivery]] = {}
        self.turns: deque[str] = deque()
        self.count = 0

    def length(self, tenant: str) -> int:
        line = self.lines.get(tenant)
        return len(line) if line else 0

    def push(self, item: Delivery) -> None:
        line = self.lines.get(item.tenant)
        if line is None:
            line = self.lines[item.tenant] = deque()
            self.turns.append(item.tenant)
        line.append(item)
        self.count += 1

    def pop(self, running: Counter[str], cap: int) -> Delivery | None:
        """The first delivery of the tenant with the fewest in flight, of those below
        ``cap`` (the earliest in turn on a tie); that tenant goes to the back of the
        turns."""
        chosen = None
        for tenant in self.turns:
            if running[tenant] < cap and (chosen is None or running[tenant] < running[chosen]):
                chosen = tenant
        if chosen is None:
            return None
        line = self.lines[chosen]
        item = line.popleft()
        self.count -= 1
        self.turns.remove(chosen)
        if line:
            self.turns.append(chosen)
        else:
            del self.lines[chosen]
        return item

    def drain(self) -> list[Delivery]:
        items = [item for line in self.lines.values() for item in line]
        self.lines.clear()
        self.turns.clear()
        self.count = 0
        return items


class FairShares:
    def __init__(self, start: Callable[[Delivery], None], *, total: int, per_tenant: int,
                 retries: int) -> None:
        self.start = start
        self.total = total
        self.per_tenant = min(per_tenant, total)
        self.retries = min(retries, total)
        self.running: Counter[str] = Counter()
        """Deliveries in flight, by tenant."""
        self.running_total = 0
        self.running_retries = 0
        self.first = _Lines()
        self.again = _Lines()
        """Retries waiting: served only when no first attempt may start."""

    @property
    def waiting(self) -> int:
        return self.first.count + self.again.count

    def offer(self, item: Delivery) -> bool:
        """Start ``item`` now or put it in its tenant's line; False when that line is
        full (the caller hands it back to the broker)."""
        lines = self.again if item.retry else self.first
        if lines.length(item.tenant) >= self.per_tenant:
            return False
        lines.push(item)
        self._pump()
        return True

    def finished(self, item: Delivery) -> None:
        self.running[item.tenant] -= 1
        if self.running[item.tenant] <= 0:
            del self.running[item.tenant]
        self.running_total -= 1
        if item.retry:
            self.running_retries -= 1
        self._pump()

    def release_all(self) -> None:
        """Start every waiting delivery whatever the shares (a stopping worker hands
        them back to the queue this way: ``Deliverer.stop``)."""
        for item in self.first.drain() + self.again.drain():
            self._begin(item)

    def _pump(self) -> None:
        while self.running_total < self.total:
            item = self.first.pop(self.running, self.per_tenant)
            if item is None and self.running_retries < self.retries:
                item = self.again.pop(self.running, self.per_tenant)
            if item is None:
                return
            self._begin(item)

    def _begin(self, item: Delivery) -> None:
        self.running[item.tenant] += 1
        self.running_total += 1
        if item.retry:
            self.running_retries += 1
        self.start(item)


class FairGate:
    """``asyncio.Semaphore(size)`` whose waiters are let in by tenant in turn, not in
    the order they came: when 400 deliveries of one tenant end at once and queue their
    400 outcome writes, another tenant's one write goes in next, not 401st. Waiters for
    retries (``later=True``) are let in only when no other waits: when a thousand
    retries of a dead endpoint come due together, a first attempt's claim (of the same
    tenant too) goes in next, not behind them.

    ``async with gate.slot("acme"): ...``
    """

    def __init__(self, size: int) -> None:
        self.free = size
        self.first = _Waiters()
        self.later = _Waiters()

    @contextlib.asynccontextmanager
    async def slot(self, tenant: str, later: bool = False) -> AsyncIterator[None]:
        if self.free > 0 and not self.first.turns and not self.later.turns:
            self.free -= 1
        else:
            entry: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            (self.later if later else self.first).push(tenant, entry)
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
        retries', tenants in turn), else free it."""
        if not (self.first.admit() or self.later.admit()):
            self.free += 1


class _Waiters:
    """``FairGate``'s waiters of one class: a FIFO line per tenant, and whose turn is
    next."""

    def __init__(self) -> None:
        self.lines: dict[str, deque[asyncio.Future[None]]] = {}
        self.turns: deque[str] = deque()

    def push(self, tenant: str, entry: asyncio.Future[None]) -> None:
        line = self.lines.get(tenant)
        if line is None:
            line = self.lines[tenant] = deque()
            self.turns.append(tenant)
        line.append(entry)

    def admit(self) -> bool:
        """Let the next tenant's first waiter in; False when none waits (a cancelled
        waiter is skipped)."""
        while self.turns:
            tenant = self.turns.popleft()
            line = self.lines[tenant]
            entry = line.popleft()
            if line:
                self.turns.append(tenant)
            else:
                del self.lines[tenant]
            if not entry.done():
                entry.set_result(None)
                return True
        return False
