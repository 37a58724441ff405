"""How a worker process hands out its delivery slots (``dispatch.shares``) and which
renders leave the event loop (``dispatch.lane``): pure logic, no services."""

from __future__ import annotations

import asyncio
import threading

from dispatch.lane import RenderLane, render_size_bound
from dispatch.shares import Delivery, FairShares, is_retry


class Slots:
    """FairShares with a record of what it started, and a way to end a delivery."""

    def __init__(self, total: int = 4, per_tenant: int = 2, retries: int = 1) -> None:
        self.started: list[Delivery] = []
        self.shares = FairShares(self.started.append, total=total, per_tenant=per_tenant,
                                 retries=retries)

    def offer(self, tenant: str, name: str, retry: bool = False) -> bool:
        return self.shares.offer(Delivery(tenant, name, retry=retry))

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
        return await lane.run(heavy, lambda: threading.current_thread().name)

    try:
        assert asyncio.run(where(False)) == threading.current_thread().name
        assert asyncio.run(where(True)).startswith("render-lane")
    finally:
        lane.close()
