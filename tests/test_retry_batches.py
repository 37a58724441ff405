"""Planned retries due together go as one message (``dispatch.retry_batches``): pure
logic, with a recording ``enqueue``."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from dispatch.retry_batches import MAX_BATCH, STEP, RetryBatches


class Sent:
    def __init__(self, fail: bool = False) -> None:
        self.messages: list[tuple[str, list[str], float, bool]] = []
        self.fail = fail

    async def __call__(self, tenant: str, ids: list[str], delay: float,
                       rows: list[dict[str, Any]] | None, later: bool = False) -> None:
        await asyncio.sleep(0)
        if self.fail:
            raise ConnectionError("the broker is down")
        assert rows is not None and [r["_id"] for r in rows] == ids
        self.messages.append((tenant, list(ids), delay, later))


def plan_all(sent: Sent, plans: list[tuple[str, str, float]]) -> list[BaseException | None]:
    async def run() -> list[BaseException | None]:
        batches = RetryBatches(sent)
        return await asyncio.gather(*(batches.plan(t, i, d, {"_id": i}) for t, i, d in plans),
                                    return_exceptions=True)

    return asyncio.run(run())


def test_retries_due_together_share_one_later_message_sent_no_earlier_than_due() -> None:
    sent = Sent()
    plan_all(sent, [("acme", f"r{n}", 3.0) for n in range(5)])
    [(tenant, ids, delay, later)] = sent.messages
    assert (tenant, ids, later) == ("acme", [f"r{n}" for n in range(5)], True)
    assert 3.0 - 0.1 <= delay <= 3.0 + STEP


def test_other_tenants_and_other_due_times_get_messages_of_their_own() -> None:
    sent = Sent()
    plan_all(sent, [("acme", "a1", 3.0), ("beta", "b1", 3.0), ("acme", "a2", 30.0)])
    assert sorted((t, ids) for t, ids, _, _ in sent.messages) == [
        ("acme", ["a1"]), ("acme", ["a2"]), ("beta", ["b1"])]


def test_a_batch_holds_at_most_max_batch_retries() -> None:
    sent = Sent()
    plan_all(sent, [("acme", f"r{n}", 3.0) for n in range(MAX_BATCH * 2 + 7)])
    assert sorted(len(ids) for _, ids, _, _ in sent.messages) == [7, MAX_BATCH, MAX_BATCH]


def test_when_the_broker_fails_every_retry_of_the_batch_fails() -> None:
    outcomes = plan_all(Sent(fail=True), [("acme", f"r{n}", 3.0) for n in range(3)])
    assert all(isinstance(o, ConnectionError) for o in outcomes)


def test_a_cancelled_caller_leaves_the_others_theirs() -> None:
    async def run() -> list[Any]:
        sent = Sent()
        batches = RetryBatches(sent)
        first = asyncio.ensure_future(batches.plan("acme", "r1", 3.0, {"_id": "r1"}))
        second = asyncio.ensure_future(batches.plan("acme", "r2", 3.0, {"_id": "r2"}))
        await asyncio.sleep(0)
        first.cancel()
        await second
        with pytest.raises(asyncio.CancelledError):
            await first
        return sent.messages

    [(_, ids, _, _)] = asyncio.run(run())
    assert ids == ["r1", "r2"]
