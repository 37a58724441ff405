"""The worker keeps a tenant's actions, settings and parameters in memory between
messages, and loads them again as soon as the API stamps a change (dispatch/stamps.py).
With the real worker process (one process) and receiver."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import httpx
import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient

from dispatch.stamps import (
    POLL_SECONDS,
    RESTAMP_SECONDS,
    STALE_MARK,
    ConfigCache,
    ConfigStamps,
)
from event_manager.app import create_app
from event_manager.config import Settings
from tests.conftest import TenantHandle
from tests.receiver import Receiver
from tests.test_delivery import hook, settled, trigger

pytestmark = pytest.mark.usefixtures("worker")


def delivered_to(tenant: TenantHandle, receiver: Receiver, path: str) -> list:
    [row] = settled(tenant, trigger(tenant, "HANGUP")["triggerId"])
    assert row["status"] == "SUCCEEDED", row["message"]
    return receiver.received(f"/{tenant.code}/{path}")


def test_an_edited_action_is_used_by_the_very_next_delivery(tenant: TenantHandle,
                                                            receiver: Receiver) -> None:
    action = hook(tenant, receiver, "before")
    assert len(delivered_to(tenant, receiver, "before")) == 1

    tenant.admin("""mutation($id: ID!, $i: ActionInput!) { updateAction(id: $id, input: $i)
                    { id } }""", id=action,
                 i={"name": "after", "url": f"{receiver.url}/{tenant.code}/after"}).data

    assert len(delivered_to(tenant, receiver, "after")) == 1
    assert len(receiver.received(f"/{tenant.code}/before")) == 1


def test_a_changed_parameter_is_used_by_the_very_next_delivery(tenant: TenantHandle,
                                                              receiver: Receiver) -> None:
    tenant.admin('mutation { createParameter(input: {tag: "crm_token", value: "one"}) '
                 "{ tag } }").data
    hook(tenant, receiver, "token", url=f"{receiver.url}/{tenant.code}/token?t={{{{crm_token}}}}")
    delivered_to(tenant, receiver, "token")

    tenant.admin('mutation { updateParameter(tag: "crm_token", input: {tag: "crm_token", '
                 'value: "two"}) { tag } }').data

    assert [r.query for r in delivered_to(tenant, receiver, "token")] == ["t=one", "t=two"]


def test_while_nothing_is_stamped_the_worker_reads_no_configuration(
        tenant: TenantHandle, receiver: Receiver, redis_client, settings: Settings) -> None:
    """A change written behind the API's back is not seen until a stamp says so: proof
    that deliveries reuse what the worker loaded instead of reading it each time."""
    action = hook(tenant, receiver, "cached")
    assert len(delivered_to(tenant, receiver, "cached")) == 1
    tenant.collection("actions").update_one(
        {"_id": ObjectId(action)},
        {"$set": {"url": f"{receiver.url}/{tenant.code}/moved"}})

    assert len(delivered_to(tenant, receiver, "cached")) == 2  # held: still the old URL

    redis_client.set(f"{settings.database}:config:{tenant.code}", "a new stamp")
    assert len(delivered_to(tenant, receiver, "moved")) == 1


def test_settings_changes_reach_the_worker(tenant: TenantHandle, receiver: Receiver) -> None:
    hook(tenant, receiver, "clock", url=f"{receiver.url}/{tenant.code}/clock?at={{{{time}}}}")

    def at_eight_utc() -> None:
        reply = tenant.admin("""mutation { triggerEvent(input: {event: HANGUP,
                                occurredAt: "2024-03-10T20:00:00Z"}) { triggerId } }""")
        settled(tenant, reply.data["triggerEvent"]["triggerId"])

    at_eight_utc()
    tenant.admin('mutation { updateSettings(input: {timezone: "Asia/Tokyo"}) '
                 "{ timezone } }").data
    at_eight_utc()

    assert [r.query for r in receiver.received(f"/{tenant.code}/clock")] == \
        ["at=20:00:00", "at=05:00:00"]


def test_the_next_trigger_sees_each_change_of_events_settings_and_actions(
        tenant: TenantHandle, receiver: Receiver) -> None:
    """The API keeps what a trigger reads (event, settings, action names) too."""
    def outcome() -> tuple[bool, str | None, list[str | None]]:
        result = trigger(tenant, "HANGUP")
        return (result["accepted"], result["reason"],
                [a["actionName"] for a in result["activities"]])

    action = hook(tenant, receiver, "first name", url=f"{receiver.url}/{tenant.code}/x")
    assert outcome() == (True, None, ["first name"])
    tenant.admin("""mutation($id: ID!, $i: ActionInput!) { updateAction(id: $id, input: $i)
                    { id } }""", id=action,
                 i={"name": "second name", "url": f"{receiver.url}/{tenant.code}/x"}).data
    assert outcome() == (True, None, ["second name"])

    tenant.admin("mutation { updateEvent(type: HANGUP, input: {active: false}) { type } }").data
    assert outcome() == (False, "the Hangup event is not active", [None])
    tenant.admin("mutation { updateEvent(type: HANGUP, input: {active: true}) { type } }").data
    tenant.admin("mutation { updateSettings(input: {actionsEnabled: false}) "
                 "{ actionsEnabled } }").data
    assert outcome() == (False, "actions are disabled for all events in Settings", [None])
    tenant.admin("mutation { updateSettings(input: {actionsEnabled: true}) "
                 "{ actionsEnabled } }").data
    assert outcome() == (True, None, ["second name"])
    tenant.admin("mutation($id: ID!) { deleteAction(id: $id) }", id=action).data
    assert outcome() == (False, "no actions are attached to Hangup", [None])


class FakeRedis:
    """Answers MGET from a dict, or fails like a Redis that is down; refuses ``refusals``
    SETs first."""

    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}
        self.down = False
        self.reads: list[list[str]] = []
        self.refusals = 0

    async def set(self, key: str, value: str) -> None:
        if self.refusals:
            self.refusals -= 1
            raise OSError("OOM command not allowed when used memory > 'maxmemory'")
        self.values[key] = value.encode()

    async def mget(self, keys: list[str]) -> list[bytes | None]:
        self.reads.append(keys)
        values = [self.values.get(k) for k in keys]  # as Redis had them when asked
        await asyncio.sleep(0)  # the answer's way back: others may ask meanwhile
        if self.down:
            raise OSError("connection refused")
        return values


def reads_of(cache: ConfigCache, steps: list[Callable[[], None]]) -> int:
    """How many times the settings were loaded: once per step, through the cache."""
    reads: list[int] = []

    async def load() -> dict:
        reads.append(1)
        return {"timezone": "UTC"}

    async def run() -> None:
        for step in steps:
            step()
            await (await cache.snapshot("acme")).part("settings", load)

    asyncio.run(run())
    return len(reads)


def test_a_snapshot_is_kept_while_the_stamp_stays() -> None:
    redis = FakeRedis()
    cache = ConfigCache(ConfigStamps(redis, "x:"))  # type: ignore[arg-type]
    same = lambda: None  # noqa: E731
    changed = lambda: redis.values.update({"x:acme": os.urandom(8)})  # noqa: E731
    assert reads_of(cache, [same, same, same]) == 1
    assert reads_of(cache, [changed, same, changed, same]) == 2


def test_a_snapshot_expires_even_without_a_stamp() -> None:
    cache = ConfigCache(ConfigStamps(FakeRedis(), "x:"), seconds=0.0)  # type: ignore[arg-type]
    assert reads_of(cache, [lambda: None] * 3) == 3


def test_without_an_answer_from_redis_nothing_is_kept() -> None:
    redis = FakeRedis()
    cache = ConfigCache(ConfigStamps(redis, "x:"))  # type: ignore[arg-type]
    assert reads_of(cache, [lambda: None]) == 1 and "acme" in cache.held
    redis.down = True
    assert reads_of(cache, [lambda: None] * 3) == 3 and cache.held == {}


def test_a_stamp_redis_refused_is_written_again_until_it_takes_it() -> None:
    """A change whose stamp Redis refused (three times) is stamped once Redis takes
    writes again, within ``RESTAMP_SECONDS`` of it; the caller was answered at once."""
    redis = FakeRedis()
    stamps = ConfigStamps(redis, "x:")  # type: ignore[arg-type]
    redis.refusals = 3

    async def run() -> tuple[float, float]:
        began = time.monotonic()
        await stamps.touch("acme")
        answered = time.monotonic() - began
        assert "x:acme" not in redis.values and set(stamps.unstamped) == {"acme"}
        while "x:acme" not in redis.values:
            await asyncio.sleep(0.01)
        return answered, time.monotonic() - began

    answered, stamped = asyncio.run(run())
    assert answered < RESTAMP_SECONDS
    assert 2 * RESTAMP_SECONDS <= stamped < 4 * RESTAMP_SECONDS, "two more refusals, then"
    assert stamps.unstamped == {}


def test_a_refused_stamp_makes_this_process_forget_the_tenant_at_once() -> None:
    """The process that made the change uses it on its very next trigger: it does not
    wait for the marks (``ConfigCache.forget``)."""
    redis = FakeRedis()
    stamps = ConfigStamps(redis, "x:")  # type: ignore[arg-type]
    cache = ConfigCache(stamps)
    assert reads_of(cache, [lambda: None, lambda: None]) == 1 and "acme" in cache.held
    redis.refusals = 1
    asyncio.run(stamps.touch("acme"))
    assert "acme" not in cache.held
    assert reads_of(cache, [lambda: None]) == 1


def test_a_new_mark_drops_the_tenant_once_and_old_marks_are_removed(settings: Settings,
                                                                     mongo: Any) -> None:
    """On the real server: a process that reads a mark it had not seen forgets that
    tenant (once: the mark seen again changes nothing); a mark older than
    ``STALE_MARK`` (left by a process that stopped before Redis took its stamp) is
    removed by whoever reads the marks."""
    name = f"{settings.database}_marks_{uuid4().hex[:6]}"
    now = datetime.now(UTC)
    mongo[name]["config_changes"].insert_many([
        {"_id": "gone", "token": "a", "at": now - STALE_MARK - timedelta(minutes=1)},
        {"_id": "acme", "token": "b", "at": now}])

    async def run() -> tuple[list[str], list[str]]:
        client: AsyncMongoClient = AsyncMongoClient(settings.mongodb_url, tz_aware=True)
        stamps = ConfigStamps(FakeRedis(), "x:", client[name]["config_changes"])  # type: ignore[arg-type]
        cache = ConfigCache(stamps)
        forgotten: list[str] = []
        cache.forget = forgotten.append  # type: ignore[method-assign]
        try:
            await cache.snapshot("acme")
            first = list(forgotten)
            await asyncio.sleep(POLL_SECONDS)
            await cache.snapshot("acme")
            return first, forgotten
        finally:
            await client.close()

    try:
        first, after = asyncio.run(run())
        assert sorted(first) == ["acme", "gone"]
        assert sorted(after) == ["acme", "gone"]  # read again: nothing new
        assert [d["_id"] for d in mongo[name]["config_changes"].find()] == ["acme"]
    finally:
        mongo.drop_database(name)


def test_the_snapshots_of_the_least_recently_used_tenants_are_dropped_past_the_bound() -> None:
    """``cached_tenants`` snapshots at most: a tenant asked for again stays, the one
    asked for least recently goes, and its next use reads the database again."""
    cache = ConfigCache(ConfigStamps(FakeRedis(), "x:"), tenants=3)  # type: ignore[arg-type]
    reads: list[str] = []

    async def use(*tenants: str) -> None:
        for tenant in tenants:
            async def load(name: str = tenant) -> str:
                reads.append(name)
                return name

            await (await cache.snapshot(tenant)).part("settings", load)

    asyncio.run(use("a", "b", "c", "a", "d"))
    assert list(cache.held) == ["c", "a", "d"], "b, least recently used, dropped"
    assert reads == ["a", "b", "c", "d"]
    asyncio.run(use("a", "b"))
    assert reads == ["a", "b", "c", "d", "b"], "a kept; b read again"
    assert list(cache.held) == ["d", "a", "b"]
    asyncio.run(use(*[f"t{i}" for i in range(1000)]))
    assert len(cache.held) == 3


def test_stamps_asked_for_together_are_read_in_one_round_trip() -> None:
    """The requests of one turn of the event loop share one MGET; a read asked for while
    one is on its way waits for the next, which sees a change made meanwhile."""
    redis = FakeRedis()
    stamps = ConfigStamps(redis, "x:")  # type: ignore[arg-type]
    redis.values["x:b"] = b"1"

    async def run() -> tuple[list, bytes | None]:
        first = [asyncio.ensure_future(stamps.current(c)) for c in ["a", "b", "a", "c"] * 8]
        while not redis.reads:  # until the MGET is on its way (not answered yet)
            await asyncio.sleep(0)
        redis.values["x:b"] = b"2"
        later = asyncio.ensure_future(stamps.current("b"))
        return await asyncio.gather(*first), await later

    first, later = asyncio.run(run())
    assert first == [None, b"1", None, None] * 8
    assert later == b"2"
    assert [sorted(keys) for keys in redis.reads] == [["x:a", "x:b", "x:c"], ["x:b"]]


def test_a_failed_stamp_read_reaches_every_reader() -> None:
    redis = FakeRedis()
    redis.down = True
    stamps = ConfigStamps(redis, "x:")  # type: ignore[arg-type]

    async def run() -> list:
        return await asyncio.gather(*(stamps.current(c) for c in "abc"),
                                    return_exceptions=True)

    assert [type(e) for e in asyncio.run(run())] == [OSError] * 3
    assert len(redis.reads) == 1


class CountedReads:
    """The API's real Redis client, counting the stamp reads (MGET) made through it."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self.reads = 0

    async def mget(self, keys: list[str]) -> list[Any]:
        self.reads += 1
        return await self.redis.mget(keys)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.redis, name)


@pytest.mark.parametrize("role", ["PBX", "SYSTEM_ADMIN"])
def test_a_trigger_reads_its_stamps_in_one_round_trip(tenant: TenantHandle, settings: Settings,
                                                      role: str) -> None:
    """The keys' stamp and the caller's tenant's stamp, read together once the key is
    known; the tenant's snapshot read for the request is the one its batch plans with
    (three MGETs per trigger before)."""
    client = tenant.key("PBX") if role == "PBX" else tenant.system
    headers = {"Authorization": f"Bearer {client.key}",
               **({"X-Tenant": tenant.code} if client.tenant else {})}
    app = create_app(settings)

    async def run() -> int:
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
            stamps = app.state.services.stamps
            stamps.redis = counted = CountedReads(stamps.redis)

            async def trigger() -> None:
                reply = await http.post("/graphql", headers=headers, json={
                    "query": "mutation { triggerEvent(input: {event: HANGUP}) { accepted } }"})
                assert reply.json()["data"]["triggerEvent"] is not None, reply.json()

            await trigger()  # the first call of a key looks it up
            counted.reads = 0
            for _ in range(4):
                await trigger()
            return counted.reads

    assert asyncio.run(run()) == 4
