"""Pausing an action whose endpoint keeps failing (``dispatch.breaker``): the rule on a
clock of the test's own, then with the session's worker and a real receiver."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from dispatch.breaker import (
    FIRST_PAUSE_SECONDS,
    LONGEST_PAUSE_SECONDS,
    PROBE_SECONDS,
    SLOTS,
    SPREAD,
    Breakers,
    Change,
)
from event_manager.config import Settings
from tests.conftest import TenantHandle, make_tenant, wait_until
from tests.installation import Installation, installation
from tests.receiver import Receiver, Reply
from tests.test_delivery import ROW, attach, enable, make_action, trigger

KEY = ("acme", "a1")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def breakers(after: int = 3) -> tuple[Breakers, Clock]:
    clock = Clock()
    return Breakers(after, clock), clock


def fail(b: Breakers, times: int = 1, started: float | None = None,
         version: object = 1) -> Change | None:
    change = None
    for _ in range(times):
        change = b.attempted(KEY, version, False, b.clock() if started is None else started,
                             "timed out after 5 s")
    return change


def test_an_action_is_paused_after_its_attempts_fail_in_a_row_and_not_before() -> None:
    b, _ = breakers(after=3)
    assert fail(b, 2) is None and b.wait(KEY, 1, "r1") is None
    assert b.attempted(KEY, 1, True, b.clock()) is None  # a success starts the count anew
    assert fail(b, 2) is None and not b.paused(KEY)
    change = fail(b)
    assert change == Change(FIRST_PAUSE_SECONDS, "3 attempts in a row failed (last: timed out "
                            "after 5 s); its deliveries wait while one of them tries the "
                            "endpoint")
    wait = b.wait(KEY, 1, "r1")
    assert wait is not None and FIRST_PAUSE_SECONDS <= wait <= FIRST_PAUSE_SECONDS * (1 + SPREAD)
    assert b.wait(("acme", "other"), 1, "r1") is None, "other actions go on"


def test_after_the_pause_one_delivery_probes_and_its_outcome_decides() -> None:
    b, clock = breakers(after=1)
    fail(b)
    clock.now += FIRST_PAUSE_SECONDS
    assert b.wait(KEY, 1, "r1") is None, "the first after the pause is the probe"
    held = b.wait(KEY, 1, "r1")
    assert held is not None and held > 0, "the others wait while it is out"
    assert fail(b, started=clock.now - 10) is None, "an attempt begun before tells nothing"
    change = fail(b)
    assert change is not None and change.seconds == FIRST_PAUSE_SECONDS * 2, (
        "the probe failed: paused again, twice as long")
    for _ in range(10):
        clock.now += LONGEST_PAUSE_SECONDS
        assert b.wait(KEY, 1, "r1") is None
        change = fail(b)
    assert change is not None and change.seconds == LONGEST_PAUSE_SECONDS, "a minute at most"
    clock.now += LONGEST_PAUSE_SECONDS
    assert b.wait(KEY, 1, "r1") is None
    assert b.attempted(KEY, 1, True, clock.now) == Change(None), "the probe answered"
    assert b.wait(KEY, 1, "r1") is None and not b.paused(KEY)


def test_deliveries_held_together_come_back_together_in_a_few_slots() -> None:
    """2,000 deliveries held in one pause come back at 8 moments over half a pause after
    it, the same ones together pause after pause (one message per slot and step)."""
    b, clock = breakers(after=1)
    fail(b)
    ids = [f"{i:024x}" for i in range(2000)]
    backs = {round(clock.now + b.wait(KEY, 1, i), 6) for i in ids}  # type: ignore[operator]
    assert len(backs) == SLOTS
    assert min(backs) == clock.now + FIRST_PAUSE_SECONDS
    assert max(backs) < clock.now + FIRST_PAUSE_SECONDS * (1 + SPREAD)
    clock.now += 1.5  # later arrivals aim at the same moments
    assert {round(clock.now + b.wait(KEY, 1, i), 6) for i in ids} == backs  # type: ignore[operator]


def test_a_probe_that_says_nothing_lets_another_probe_later() -> None:
    b, clock = breakers(after=1)
    fail(b)
    clock.now += FIRST_PAUSE_SECONDS
    assert b.wait(KEY, 1, "r1") is None  # the probe, which then expires without an attempt
    clock.now += PROBE_SECONDS - 1
    assert b.wait(KEY, 1, "r1") is not None
    clock.now += 1
    assert b.wait(KEY, 1, "r1") is None


def test_an_edited_action_is_counted_anew_and_not_paused() -> None:
    b, _ = breakers(after=1)
    fail(b, version="before")
    assert b.wait(KEY, "before", "r1") is not None
    assert b.wait(KEY, "after", "r1") is None and not b.paused(KEY)
    assert fail(b, version="after") is not None, "counted anew"


def test_zero_never_pauses() -> None:
    b, _ = breakers(after=0)
    assert fail(b, 1000) is None and b.wait(KEY, 1, "r1") is None


def test_deliveries_handed_back_are_held_until_a_little_after_their_return() -> None:
    b, clock = breakers()
    b.held(["r1", "r2"], 5.0)
    clock.now += 3
    b.held(["r3"], 5.0)
    assert sorted(b.holding(grace=10)) == ["r1", "r2", "r3"]
    clock.now += 13
    assert b.holding(grace=10) == ["r3"]
    clock.now += 3
    assert b.holding(grace=10) == []


HEALTH = "health { consecutiveFailures pausedUntil pausedReason }"


def action_health(tenant: TenantHandle, action_id: str) -> dict[str, Any]:
    reply = tenant.admin(f"query($id: ID!) {{ action(id: $id) {{ {HEALTH} }} }}", id=action_id)
    return reply.data["action"]["health"]


def all_rows(tenant: TenantHandle) -> list[dict[str, Any]]:
    reply = tenant.admin(f"{{ activity(first: 100) {{ items {{ {ROW} }} }} }}")
    return reply.data["activity"]["items"]


@pytest.fixture(scope="module")
def pausing(settings: Settings, mongo: Any, redis_client: redis.Redis,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    """A worker whose second retry comes 3 s after the first: the 20 first retries have
    all failed, and the action is paused, before any second retry is due, however slowly
    the machine sends the first ones (with the session's 0.2 s and 0.4 s, a slow
    machine's second retries overtook its last first retries)."""
    with installation(settings, mongo, redis_client, tmp_path_factory.mktemp("pausing"),
                      "pause", retry_schedule="0.2,3", pause_after_failures=20) as place:
        yield place


def test_a_dead_endpoint_pauses_its_action_until_a_probe_answers(
        pausing: Installation, mongo: Any, receiver: Receiver) -> None:
    """20 deliveries to an endpoint answering 503: their first attempts (in the worker's
    first-attempts process) and first retries (in its retry process) fail, and each
    process pauses the action for 5 s; the second retries, due 3 s after the first, are
    not sent while it is paused. Once the endpoint answers, a probe ends the pause and
    every delivery succeeds, the attempts they waited through not counted."""
    tenant = make_tenant(pausing.system, mongo, pausing.settings)
    path = f"/{tenant.code}/down"
    receiver.script(path, *[Reply(503, "down")] * 1000)
    action = make_action(tenant, name="CRM", url=f"{receiver.url}{path}")
    attach(tenant, "ANSWERED_CALL", action)
    enable(tenant)
    for _ in range(20):
        trigger(tenant, "ANSWERED_CALL")
    first_retries = receiver.wait_for(path, 40)
    paused = wait_until(lambda: (h := action_health(tenant, action))["pausedUntil"] and h,
                        what="the pause shown in the action's health")
    assert paused["pausedReason"] == (
        "20 attempts in a row failed (last: 503 Service Unavailable); its deliveries wait "
        "while one of them tries the endpoint")
    every_second_retry_due = first_retries[39].at + 3.5  # the pause ends 5 s after it
    time.sleep(max(0.0, every_second_retry_due - time.monotonic()))
    assert len(receiver.received(path)) == 40, "the second retries wait for the pause"
    assert {r["status"] for r in all_rows(tenant)} == {"RETRYING"}

    receiver.script(path)  # the endpoint is back
    done = wait_until(lambda: (found := all_rows(tenant)) and all(
        r["status"] == "SUCCEEDED" for r in found) and found, timeout=90,
        what="every delivery sent once the endpoint answers")
    assert len(done) == 20 and {r["attempts"] for r in done} == {3}
    wait_until(lambda: action_health(tenant, action)["pausedUntil"] is None,
               what="the pause ended in the action's health")
