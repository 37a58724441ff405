"""The receiver's rate limit (``policy.maxRequestsPerSecond``, ``dispatch.pace``): across
all worker processes an action's requests never exceed the limit, allowing one burst of
it; deliveries wait in order instead of failing, and while they wait they hold no worker
slot; a 429 with Retry-After slows that action only.

An installation of its own (API and ``worker --processes 2`` on the shared services,
under a database prefix of its own). That waiting deliveries hold no slot is read from
what the worker processes publish they hold (``dispatch.recovery.Liveness``) while 10 or
more wait. What is asserted at the receiver (one clock: it runs in this process):

- with a limit of r requests/s (burst b = ceil(r)), every window of w seconds holds at
  most ``b + r·w`` requests: for r = 5, at most 10 in any 1 s (the limit plus one burst),
  15 in any 2 s, 20 in any 3 s; so n requests span at least ``(n - b) / r`` seconds;
- order: the turns the waiting deliveries reserved follow the order their triggers were
  accepted strictly; at the receiver, a delivery is at most one place from it (the
  burst's, sent at once, in any order among themselves);
- lower bounds on waits (a 429's Retry-After), never upper bounds on durations.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from dispatch.pace import MAX_WAITS, Limit, Pace, throttled
from event_manager.config import Settings
from tests.conftest import TenantHandle, make_tenant, wait_until
from tests.installation import Installation, installation
from tests.receiver import Receiver, Reply
from tests.support import times_said
from tests.test_delivery import ROW, in_zone
from tests.test_imports import IMPORT, MASTER_IMPORT, collection, request

RATE = 5
BURST = 5
COUNT = 40


@pytest.fixture(scope="module")
def paced(settings: Settings, mongo: Any, redis_client: redis.Redis,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    """API and two worker processes of their own."""
    with installation(settings, mongo, redis_client, tmp_path_factory.mktemp("pace"), "pace",
                      processes=2, worker_in_flight=64, tenant_in_flight=64,
                      retry_in_flight=8) as place:
        yield place


@pytest.fixture
def place(paced: Installation, mongo: Any) -> TenantHandle:
    return make_tenant(paced.system, mongo, paced.settings)


def action(tenant: TenantHandle, receiver: Receiver, name: str, event: str = "HANGUP",
           path: str = "?seq={{seq}}", **policy: Any) -> str:
    """An action GETting /<tenant>/<name><path>, attached to ``event`` (with the actions
    attached already), actions enabled."""
    made = tenant.admin("mutation($i: ActionInput!) { createAction(input: $i) { id } }", i={
        "name": name, "method": "GET", "url": f"{receiver.url}/{tenant.code}/{name}{path}",
        **({"policy": policy} if policy else {})}).data["createAction"]["id"]
    attached = tenant.admin("query($t: EventType!) { event(type: $t) { actions { id } } }",
                            t=event).data["event"]["actions"]
    tenant.admin("mutation($t: EventType!, $ids: [ID!]) { updateEvent(type: $t, input: "
                 "{active: true, actionIds: $ids}) { type } updateSettings(input: "
                 "{actionsEnabled: true}) { actionsEnabled } }", t=event,
                 ids=[a["id"] for a in attached] + [made]).data
    return made


def trigger_all(tenant: TenantHandle, event: str, seqs: range) -> list[dict[str, Any]]:
    """One ``triggerEvents`` call: the triggers accepted in the order of ``seqs``."""
    found = tenant.admin(f"""mutation($i: [TriggerInput!]!) {{ triggerEvents(inputs: $i) {{
        accepted activities {{ {ROW} }} }} }}""", i=[
        {"event": event, "params": {"seq": str(seq)}} for seq in seqs]).data["triggerEvents"]
    assert all(t["accepted"] for t in found)
    return found


def seqs(receiver: Receiver, path: str) -> list[int]:
    return [int(r.query.removeprefix("seq=")) for r in receiver.received(path)]


def most_in_window(times: list[float], width: float) -> int:
    """The most requests in any half-open window ``[t, t + width)``."""
    times = sorted(times)
    most, start = 0, 0
    for end, moment in enumerate(times):
        while moment - times[start] >= width:
            start += 1
        most = max(most, end - start + 1)
    return most


def all_rows(tenant: TenantHandle) -> list[dict[str, Any]]:
    return tenant.admin(f"query {{ activity(first: 100) {{ items {{ {ROW} }} }} }}"
                        ).data["activity"]["items"]


def test_a_burst_of_deliveries_goes_out_at_the_limit_in_order_without_holding_slots(
        paced: Installation, place: TenantHandle, receiver: Receiver,
        redis_client: redis.Redis) -> None:
    """40 triggers at once to a CRM limited to 5 requests/s: 5 at once, then 5 a second,
    the waiting ones in the order accepted (their turns, in their rows, strictly so);
    while they wait no worker holds them, and an unlimited action of the same tenant
    flows meanwhile."""
    limited, free = f"/{place.code}/crm", f"/{place.code}/free"
    in_zone(place, "America/Los_Angeles")  # the turn in the row: in the tenant's zone
    action(place, receiver, "crm", maxRequestsPerSecond=RATE)
    action(place, receiver, "free", event="ANSWERED_CALL")
    accepted = trigger_all(place, "HANGUP", range(COUNT))
    ids = {t["activities"][0]["id"] for t in accepted}
    trigger_all(place, "ANSWERED_CALL", range(8))

    shown = wait_until(lambda: [r for r in all_rows(place) if r["status"] == "QUEUED"
                                and r["message"].startswith("waiting")], 30, "a waiting row")
    assert re.fullmatch(r"waiting for the receiver's limit of 5 requests/s until "
                        r"\d\d:\d\d:\d\d \(America/Los_Angeles\)", shown[0]["message"])
    receiver.wait_for(free, count=8, timeout=60)
    assert len(receiver.received(limited)) <= COUNT - 10  # B's 8 came while 10+ waited

    samples = []  # (A's rows QUEUED, A's deliveries the worker processes hold)
    receiver.wait_for(limited, count=10, timeout=60)
    while len(receiver.received(limited)) < COUNT - 10:
        queued = place.collection("activity").count_documents(
            {"event": "HANGUP", "status": "QUEUED"})
        samples.append((queued, len(held_by_workers(redis_client, paced.settings) & ids)))
        time.sleep(0.2)
    assert any(queued >= 15 for queued, _ in samples), samples
    # Held: those about to go at their turn and in flight, as the processes last announced
    # them (a busy machine's announcements lag a little): never the 10 or more waiting.
    assert all(held <= BURST for queued, held in samples if queued >= 10), samples

    arrived = receiver.wait_for(limited, count=COUNT, timeout=120)
    order = seqs(receiver, limited)
    assert sorted(order) == list(range(COUNT))
    # The waiting ones arrive in the order accepted; one that came back from the broker a
    # little late may swap with its neighbour (turns are 200 ms apart), never more.
    waited = [s for s in order if s >= BURST]
    assert all(abs(seq - place_) <= 1 for place_, seq in enumerate(waited, BURST)), waited
    turns = sorted((int(d["params"]["seq"]), d.get("turn")) for d in place.collection(
        "activity").find({"event": "HANGUP"}, {"params": 1, "turn": 1}))
    assert [seq for seq, turn in turns if turn is None] == list(range(BURST))  # the burst
    assert [t[1] for _, t in turns[BURST:]] == sorted(t[1] for _, t in turns[BURST:])
    times = [r.at for r in arrived]
    for width in (1, 2, 3):
        assert most_in_window(times, width) <= BURST + RATE * width, width
    assert times[-1] - times[0] >= (COUNT - BURST) / RATE - 0.2
    rows = wait_until(lambda: (found := all_rows(place)) and all(
        r["status"] == "SUCCEEDED" for r in found) and found, 60, "every row SUCCEEDED")
    assert len(rows) == COUNT + 8
    assert {r["attempts"] for r in rows} == {1}  # waiting is not an attempt


def held_by_workers(client: redis.Redis, settings: Settings) -> set[str]:
    """The deliveries the worker processes say they hold (``dispatch.recovery.Liveness``)."""
    keys = list(client.scan_iter(f"{settings.database}:holding:*"))
    return {i for value in client.mget(keys) if value for i in json.loads(value)} if keys else set()


def test_deliveries_waiting_when_every_worker_is_killed_are_sent_within_the_limit(
        paced: Installation, place: TenantHandle, receiver: Receiver) -> None:
    """Both worker processes are killed while deliveries wait (their delayed messages,
    held in the killed processes, are lost): once workers run again, recovery sends every
    one (a waiting row is due at its turn), each once, still within the limit."""
    path = f"/{place.code}/kill"
    action(place, receiver, "kill", maxRequestsPerSecond=RATE)
    trigger_all(place, "HANGUP", range(30))
    receiver.wait_for(path, count=10, timeout=60)
    paced.kill_worker()
    try:
        assert len(receiver.received(path)) < 30  # some were still waiting
    finally:
        paced.start_worker()
    arrived = receiver.wait_for(path, count=30, timeout=120)
    wait_until(lambda: (rows := all_rows(place)) and all(
        r["status"] == "SUCCEEDED" for r in rows), 120, "every row SUCCEEDED")
    arrived = receiver.received(path)
    assert sorted(set(seqs(receiver, path))) == list(range(30))
    assert len(arrived) <= 31  # only an attempt under way at the kill may go twice
    times = [r.at for r in arrived]
    for width in (1, 2, 3):
        assert most_in_window(times, width) <= BURST + RATE * width, width


def test_a_429_with_retry_after_slows_that_action_only(place: TenantHandle,
                                                       receiver: Receiver) -> None:
    """The CRM answers delivery 0 with 429, Retry-After: 2 three times: each time the
    whole action waits 2 s (delivery 1, triggered meanwhile, too), and those 429s are
    not counted against the retries (2 in this run's schedule: counted, the third 429
    would end it FAILED); the other action keeps flowing meanwhile."""
    busy, free = f"/{place.code}/busy", f"/{place.code}/other"
    action(place, receiver, "busy", path="/{{seq}}", maxRequestsPerSecond=RATE)
    action(place, receiver, "other", event="ANSWERED_CALL")
    receiver.script(f"{busy}/0", *[Reply(429, headers={"Retry-After": "2"})] * 3)
    trigger_all(place, "HANGUP", range(1))
    first = receiver.wait_for(f"{busy}/0", count=1, timeout=30)[0]
    trigger_all(place, "HANGUP", range(1, 2))
    trigger_all(place, "ANSWERED_CALL", range(4))
    others = receiver.wait_for(free, count=4, timeout=30)
    [later] = receiver.wait_for(f"{busy}/1", count=1, timeout=30)
    assert later.at - first.at >= 2.0  # the action's other delivery waited for the pause
    assert max(r.at for r in others) < later.at  # the other action did not wait
    attempts = receiver.wait_for(f"{busy}/0", count=4, timeout=60)
    for before, after in zip(attempts, attempts[1:], strict=False):
        assert after.at - before.at >= 2.0
    rows = wait_until(lambda: (found := all_rows(place)) and len(found) == 6 and all(
        r["status"] == "SUCCEEDED" for r in found) and found, 60, "every row SUCCEEDED")
    assert sorted(r["attempts"] for r in rows) == [1] * 5 + [4]  # three 429s not counted


def test_a_delivery_whose_turn_comes_after_it_expires_ends_expired(
        place: TenantHandle, receiver: Receiver) -> None:
    """1 request/s and an expiry of 3 s: of 8 triggers at once, those whose turn would
    come after their deadline end EXPIRED at once, saying why, and are never sent. (On a
    slow machine a delivery may be late before it asks for a turn: it ends EXPIRED too,
    saying how late.)"""
    path = f"/{place.code}/slow"
    in_zone(place, "Asia/Tokyo")
    action(place, receiver, "slow", maxRequestsPerSecond=1, expireAfterSeconds=3)
    trigger_all(place, "HANGUP", range(8))
    rows = wait_until(lambda: (found := all_rows(place)) and len(found) == 8 and all(
        r["status"] in ("SUCCEEDED", "EXPIRED") for r in found) and found, 60, "rows ended")
    sent = [r for r in rows if r["status"] == "SUCCEEDED"]
    expired = [r for r in rows if r["status"] == "EXPIRED"]
    assert len(sent) >= 1 and len(expired) >= 4  # turns 1 s apart: 4 at most in 3 s
    by_turn = [r for r in expired if re.fullmatch(
        r"not sent: the receiver's limit of 1 request/s gives it a turn at \S+ "
        r"\(Asia/Tokyo\), after it expires at \S+ \(Asia/Tokyo\)", r["message"])]
    assert by_turn, [r["message"] for r in expired]
    for row in by_turn:
        turn, ends = times_said(row["message"], "Asia/Tokyo")
        assert turn >= ends
    for row in expired:
        assert row in by_turn or re.fullmatch(
            r"not sent: \d+ s late \(the action allows 3 s after the event at \S+ "
            r"\(Asia/Tokyo\)\)", row["message"]), row["message"]
    assert len(receiver.received(path)) == len(sent)
    times = [r.at for r in receiver.received(path)]
    assert most_in_window(times, 1) <= 2  # burst 1, plus 1 a second


def test_a_calls_deliveries_keep_their_order_while_they_wait_for_the_limit(
        place: TenantHandle, receiver: Receiver) -> None:
    """PER_CALL and 1 request/s: the call's next delivery stays HELD while the one before
    waits for its turn, then takes its own; other calls' deliveries take turns between."""
    path = f"/{place.code}/calls"
    made = action(place, receiver, "calls", event="RINGING", path="?seq={{seq}}",
                  maxRequestsPerSecond=1, order="PER_CALL")
    for event in ("ANSWERED_CALL", "HANGUP"):
        place.admin("mutation($t: EventType!, $ids: [ID!]) { updateEvent(type: $t, input: "
                    "{active: true, actionIds: $ids}) { type } }", t=event, ids=[made]).data
    steps = [("RINGING", "c0"), ("RINGING", "c1"), ("ANSWERED_CALL", "c1"),
             ("HANGUP", "c1"), ("RINGING", "c2")]
    found = place.admin(f"""mutation($i: [TriggerInput!]!) {{ triggerEvents(inputs: $i) {{
        activities {{ {ROW} }} }} }}""", i=[
        {"event": event, "params": {"seq": f"{call}-{event}", "call_id": call}}
        for event, call in steps]).data["triggerEvents"]
    assert [t["activities"][0]["status"] for t in found] == [
        "QUEUED", "QUEUED", "HELD", "HELD", "QUEUED"]
    arrived = receiver.wait_for(path, count=5, timeout=60)
    order = [r.query.removeprefix("seq=") for r in arrived]
    assert [s for s in order if s.startswith("c1")] == [
        "c1-RINGING", "c1-ANSWERED_CALL", "c1-HANGUP"]
    assert most_in_window([r.at for r in arrived], 1) <= 2  # a burst of 1, then 1 a second
    wait_until(lambda: (rows := all_rows(place)) and len(rows) == 5 and all(
        r["status"] == "SUCCEEDED" for r in rows), 60, "every row SUCCEEDED")


def test_429s_not_counted_are_bounded_per_delivery() -> None:
    """After ``MAX_WAITS`` of them, a 429 counts as an attempt like a 503."""
    row = {"attempts": 3, "cycle_start": 0, "waits": 0}
    changes = {"http_status": 429, "status": "RETRYING", "message": "429 Too Many Requests"}
    seconds, waited = throttled(row, changes, "2", "Asia/Tokyo") or (None, {})
    assert (seconds, waited["waits"], waited["cycle_start"]) == (2.0, 1, 1)
    assert re.fullmatch(r"429 Too Many Requests \(the receiver asked to wait 2 s\), retry at "
                        r"\d\d:\d\d:\d\d \(Asia/Tokyo\), not counted against the retries",
                        waited["message"])
    [at] = times_said(waited["message"], "Asia/Tokyo")
    assert 0 < (at - datetime.now(UTC)).total_seconds() <= 2
    assert throttled(row, changes, None, "UTC") is None  # no Retry-After: the retry schedule
    assert throttled({**row, "waits": MAX_WAITS}, changes, "2", "UTC") is None
    assert throttled(row, {**changes, "http_status": 503}, "2", "UTC") is None


@pytest.mark.parametrize("value", [0, -1, 0.001, 10_001, 1e12])
def test_the_limit_is_bounded(place: TenantHandle, value: float) -> None:
    reply = place.admin("mutation($i: ActionInput!) { createAction(input: $i) { id } }", i={
        "name": "x", "url": "http://127.0.0.1:1/x", "policy": {"maxRequestsPerSecond": value}})
    assert (reply.code, reply.field) == ("BAD_USER_INPUT", "input.policy.maxRequestsPerSecond")
    assert "between 0.01" in reply.error["message"]


def test_the_limit_is_stored_and_shown(place: TenantHandle, receiver: Receiver) -> None:
    made = action(place, receiver, "shown", maxRequestsPerSecond=10, order="PER_CALL")
    query = "query($id: ID!) { action(id: $id) { policy { order maxRequestsPerSecond } } }"
    assert place.admin(query, id=made).data["action"]["policy"] == {
        "order": "PER_CALL", "maxRequestsPerSecond": 10.0}
    plain = action(place, receiver, "plain")
    assert place.admin(query, id=plain).data["action"]["policy"] == {
        "order": "ANY", "maxRequestsPerSecond": None}


def test_a_master_action_is_copied_with_its_limit_and_postman_sets_none(
        paced: Installation, place: TenantHandle, mongo: Any) -> None:
    master = make_tenant(paced.system, mongo, paced.settings, master=True)
    made = master.admin("mutation($i: ActionInput!) { createAction(input: $i) { id } }", i={
        "name": "crm", "url": "http://127.0.0.1:1/crm",
        "policy": {"maxRequestsPerSecond": 10}}).data["createAction"]["id"]
    place.admin(MASTER_IMPORT, ids=[made], p="SKIP").data
    imported = place.admin(IMPORT, c=collection(request("crm2")), refs=None, p="SKIP").data
    assert imported["importPostmanCollection"]["imported"]
    shown = {a["name"]: a["policy"]["maxRequestsPerSecond"] for a in place.admin(
        "{ actions { name policy { maxRequestsPerSecond } } }").data["actions"]}
    assert shown == {"crm": 10.0, "crm2": None}


# The reservations themselves, against the real Redis (``dispatch.pace.SCRIPT``).

def test_turns_follow_the_rate_after_one_burst_and_a_pause_voids_earlier_ones(
        settings: Settings, redis_client: redis.Redis) -> None:
    async def run() -> None:
        client = aioredis.from_url(settings.redis_url)
        pace = Pace(client, f"{settings.database}:pace-test:")
        limit = Limit(5)
        try:
            turns = [await pace.reserve("t", "a", limit, None, None) for _ in range(8)]
            base = turns[0].at
            # a burst of 5, then one every 200 ms
            assert [round((t.at - base) / 2e5) for t in turns] == [0] * 5 + [1, 2, 3]
            held = await pace.reserve("t", "a", limit, turns[7].at, None)
            assert held.at == turns[7].at  # a turn held is kept, not reserved again
            late = await pace.reserve("t", "a", limit, None, 0.1)  # due within 0.1 s
            assert late.late and late.at - base == 4 * limit.interval
            await pace.pause("t", "a", limit, 3.0)
            again = await pace.reserve("t", "a", limit, turns[7].at, None)
            assert again.at - base >= 3_000_000  # the turn held was voided by the pause
            after = await pace.reserve("t", "a", limit, None, None)
            assert after.at - again.at == limit.interval  # no burst after a pause
            other = await pace.reserve("t", "b", limit, None, None)
            assert other.wait == 0.0  # another action is not paused
        finally:
            await client.delete(f"{settings.database}:pace-test:t:a",
                                f"{settings.database}:pace-test:t:b")
            await client.aclose()

    asyncio.run(run())
