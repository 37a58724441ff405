"""How a worker process hands out its delivery slots (``dispatch.shares``) and which
renders leave the event loop (``dispatch.lane``): pure logic, no services."""

from __future__ import annotations

import asyncio
import threading

from dispatch.lane import RenderLane, render_size_bound
from dispatch.shares import Delivery, FairGate, FairShares, is_retry


class Slots:
    """FairShares with a record of what it started, and a way to end a delivery."""

    def __init__(self, total: int = 4, per_tenant: int = 2, retries: int = 1,
                 per_action: int | None = None, retries_per_action: int | None = None
                 ) -> None:
        self.started: list[Delivery] = []
        self.shares = FairShares(self.started.append, total=total, per_tenant=per_tenant,
                                 retries=retries, per_action=per_action,
                                 retries_per_action=retries_per_action)

    def offer(self, tenant: str, name: str, retry: bool = False,
              action: str | None = None) -> bool:
        row = None if action is None else {"action_id": action,
                                           "status": "RETRYING" if retry else "QUEUED"}
        return self.shares.offer(Delivery(tenant, name, row, retry=retry))

    def names(self) -> list[str]:
        return [d.activity_id for d in self.started]

    def finish(self, name: str) -> None:
        self.shares.finished(next(d for d in self.started if d.activity_id == name))


def test_a_tenant_over_its_share_waits_while_another_starts_at_once() -> None:
    slots = Slots(total=4, per_tenant=2)
    for name in ("a1", "a2", "a3", "a4"):
        slots.offer("a", name)
    slots.offer("b", "b1")
    assert slots.names() == ["a1", "a2", "b1"]
    assert slots.shares.waiting == 2


def test_a_hanging_action_leaves_room_for_the_tenants_other_actions() -> None:
    """A dead endpoint's burst takes at most ``per_action`` of its tenant's slots; the
    tenant's healthy action starts at once, ahead of the burst's waiting deliveries."""
    slots = Slots(total=10, per_tenant=4, per_action=3)
    for n in range(6):
        slots.offer("a", f"dead{n}", action="dead")
    assert slots.names() == ["dead0", "dead1", "dead2"]
    slots.offer("a", "healthy1", action="healthy")
    assert slots.names()[-1] == "healthy1"
    slots.offer("a", "healthy2", action="healthy")  # the tenant's share is full: it waits
    slots.finish("dead0")  # the free slot goes to the action with fewer in flight
    assert slots.names()[-1] == "healthy2"
    slots.finish("healthy1")
    assert slots.names()[-1] == "dead3"


def test_an_actions_full_line_refuses_it_but_not_the_tenants_other_actions() -> None:
    slots = Slots(total=10, per_tenant=2, per_action=2)
    accepted = [slots.offer("a", f"dead{n}", action="dead") for n in range(5)]
    assert accepted == [True, True, True, True, False]  # 2 in flight, 2 waiting
    assert slots.offer("a", "healthy1", action="healthy")
    slots.finish("dead0")
    assert slots.names()[-1] == "healthy1"


def test_a_tenants_waiting_deliveries_start_in_the_order_they_came() -> None:
    slots = Slots(total=4, per_tenant=2)
    for name in ("a1", "a2", "a3", "a4"):
        slots.offer("a", name)
    slots.finish("a2")
    slots.finish("a1")
    assert slots.names() == ["a1", "a2", "a3", "a4"]


def test_a_free_slot_goes_to_the_waiting_tenant_with_the_fewest_in_flight() -> None:
    slots = Slots(total=2, per_tenant=2)
    for name in ("a1", "a2", "a3", "a4"):
        slots.offer("a", name)
    for name in ("b1", "b2"):
        slots.offer("b", name)
    slots.finish("a1")
    slots.finish("a2")
    assert slots.names() == ["a1", "a2", "b1", "a3"]
    slots.finish("a3")  # now a has none in flight, b one
    assert slots.names() == ["a1", "a2", "b1", "a3", "a4"]


def test_a_free_slot_goes_to_a_first_attempt_before_a_retry() -> None:
    slots = Slots(total=2, per_tenant=2, retries=2)
    slots.offer("a", "a1")
    slots.offer("a", "a2")
    slots.offer("a", "retry", retry=True)
    slots.offer("b", "b1")
    slots.finish("a1")
    assert slots.names() == ["a1", "a2", "b1"]


def test_retries_hold_at_most_their_share_of_the_slots() -> None:
    slots = Slots(total=4, per_tenant=4, retries=1)
    slots.offer("a", "r1", retry=True)
    slots.offer("a", "r2", retry=True)
    slots.offer("b", "b1")
    assert slots.names() == ["r1", "b1"]
    slots.finish("r1")
    assert slots.names() == ["r1", "b1", "r2"]


def test_a_dead_endpoints_retries_go_a_few_at_a_time() -> None:
    """Of an action's slots, its retries take at most ``retries_per_action``; its first
    attempts and the tenant's other actions' retries are not held by them, and its
    retries' line holds as many again (beyond, they go back to the broker)."""
    slots = Slots(total=20, per_tenant=10, retries=10, per_action=6, retries_per_action=2)
    accepted = [slots.offer("a", f"dead{n}", retry=True, action="dead") for n in range(5)]
    assert accepted == [True, True, True, True, False]  # 2 in flight, 2 waiting
    assert slots.names() == ["dead0", "dead1"]
    slots.offer("a", "first", action="dead")
    slots.offer("a", "other", retry=True, action="other")
    assert slots.names() == ["dead0", "dead1", "first", "other"]
    slots.finish("dead0")
    assert slots.names()[-1] == "dead2"
    assert slots.shares.waiting == 1


def test_a_full_line_refuses_more_so_they_go_back_to_the_broker() -> None:
    slots = Slots(total=4, per_tenant=1)
    assert [slots.offer("a", f"a{i}") for i in range(3)] == [True, True, False]
    assert slots.offer("b", "b1")


def test_a_stopping_worker_starts_every_waiting_delivery() -> None:
    slots = Slots(total=4, per_tenant=1)
    for name in ("a1", "a2"):
        slots.offer("a", name)
    slots.offer("a", "r1", retry=True)
    slots.shares.release_all()
    assert slots.names() == ["a1", "a2", "r1"] and slots.shares.waiting == 0


def test_only_a_row_carried_as_retrying_is_a_retry() -> None:
    assert is_retry({"status": "RETRYING"})
    assert not is_retry({"status": "QUEUED"}) and not is_retry(None)


def test_render_size_bound_counts_each_placeholder_at_the_longest_value() -> None:
    action = {"url": "http://x/{{a}}", "raw_body": "{{big}}" * 3, "headers": [
        {"key": "X-{{a}}", "value": "v"}]}
    texts = len("http://x/{{a}}") + 21 + len("X-{{a}}") + 1
    assert render_size_bound(action, {"a": "1", "big": "x" * 100}) == texts + 5 * 100


def test_a_big_render_runs_beside_the_event_loop_and_a_small_one_on_it() -> None:
    lane = RenderLane(heavy_chars=1000)
    small = {"raw_body": "{{a}}"}
    big = {"raw_body": "{{a}}" * 100}
    values = {"a": "x" * 20}
    assert not lane.is_heavy(small, values) and lane.is_heavy(big, values)

    async def where(heavy: bool) -> str:
        return await lane.run("t1", heavy, lambda: threading.current_thread().name)

    try:
        assert asyncio.run(where(False)) == threading.current_thread().name
        assert asyncio.run(where(True)).startswith("render-lane")
    finally:
        lane.close()


def admitted(*waiters: tuple[str, str, str | None, bool]) -> list[str]:
    """The names of ``waiters`` (name, tenant, action, later), queued in this order at a
    ``FairGate(1)`` held meanwhile by tenant "a", in the order the gate lets them in."""
    async def scenario() -> list[str]:
        gate, order = FairGate(1), []
        held = asyncio.Event()

        async def enter(name: str, tenant: str, action: str | None, later: bool) -> None:
            async with gate.slot(tenant, action, later=later):
                order.append(name)
                await asyncio.sleep(0)

        async def holder() -> None:
            async with gate.slot("a"):
                held.set()
                await asyncio.sleep(0.01)

        first = asyncio.create_task(holder())
        await held.wait()
        waiting = [asyncio.create_task(enter(*waiter)) for waiter in waiters]
        await asyncio.gather(first, *waiting)
        return order

    return asyncio.run(scenario())


def test_a_gate_lets_waiting_tenants_in_in_turn() -> None:
    assert admitted(("a1", "a", None, False), ("a2", "a", None, False),
                    ("a3", "a", None, False), ("b1", "b", None, False)) == ["a1", "b1", "a2", "a3"]


def test_a_gate_lets_first_attempts_in_before_retries_of_the_same_tenant() -> None:
    """A thousand retries of a dead endpoint come due together and queue their claims:
    a first attempt's claim, of the same tenant, goes in next, not behind them."""
    retries = [(f"r{n}", "a", "dead", True) for n in range(3)]
    assert admitted(*retries, ("first", "a", "healthy", False)) == ["first", "r0", "r1", "r2"]


def test_a_gate_lets_a_tenants_actions_in_in_turn() -> None:
    """300 claims of deliveries to one dead endpoint wait: the tenant's claim for a
    healthy action goes in next."""
    assert admitted(("d1", "a", "dead", False), ("d2", "a", "dead", False),
                    ("d3", "a", "dead", False), ("h1", "a", "healthy", False)) == [
        "d1", "h1", "d2", "d3"]


def test_a_cancelled_waiter_leaves_the_gate_to_the_next() -> None:
    async def scenario() -> list[str]:
        gate, order = FairGate(1), []

        async def enter(name: str) -> None:
            async with gate.slot(name):
                order.append(name)

        async with gate.slot("a"):
            gone = asyncio.create_task(enter("b"))
            kept = asyncio.create_task(enter("c"))
            await asyncio.sleep(0)
            gone.cancel()
        await kept
        async with gate.slot("d"):  # the slot was given back, not lost
            order.append("d")
        return order

    assert asyncio.run(scenario()) == ["c", "d"]


def test_big_renders_of_two_tenants_take_the_lane_in_turn() -> None:
    """Tenant a queues three big renders, then b one: b's runs after a's next one, not
    after all of them."""
    lane = RenderLane(heavy_chars=0)
    release = threading.Event()
    order: list[str] = []

    def render(name: str) -> None:
        if name == "a0":
            release.wait(10)  # a0 holds the lane until every render is queued
        order.append(name)

    async def scenario() -> None:
        first = asyncio.create_task(lane.run("a", True, render, "a0"))
        await asyncio.sleep(0.05)
        rest = [asyncio.create_task(lane.run(t, True, render, n))
                for t, n in (("a", "a1"), ("a", "a2"), ("b", "b0"))]
        await asyncio.sleep(0.05)
        release.set()
        await asyncio.gather(first, *rest)

    try:
        asyncio.run(scenario())
    finally:
        lane.close()
    assert order == ["a0", "a1", "b0", "a2"]
