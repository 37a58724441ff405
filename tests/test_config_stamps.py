"""The worker keeps a tenant's actions, settings and parameters in memory between
messages, and loads them again as soon as the API stamps a change (dispatch/stamps.py).
With the real worker process (one process) and receiver."""

from __future__ import annotations

import asyncio

import pytest
from bson import ObjectId

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


def test_a_lost_redis_makes_the_worker_read_the_database(tenant: TenantHandle) -> None:
    """Without a stamp the cache is not trusted (Deliverer._config, unit of logic)."""
    from dispatch.delivery import Deliverer
    from dispatch.stamps import ConfigStamps

    class Broken:
        async def get(self, key: str) -> None:
            raise OSError("connection refused")

    reads: list[str] = []

    class Store:
        code = tenant.code

        async def get_settings(self) -> dict:
            reads.append("settings")
            return {"timezone": "UTC"}

        async def parameter_values(self) -> list:
            reads.append("parameters")
            return []

    deliverer = Deliverer.__new__(Deliverer)
    deliverer.stamps = ConfigStamps(Broken(), "x:")  # type: ignore[arg-type]
    deliverer.configs = {}
    deliverer.db_gate = asyncio.Semaphore(1)

    async def twice() -> None:
        await deliverer._config(Store())  # type: ignore[arg-type]
        await deliverer._config(Store())  # type: ignore[arg-type]

    asyncio.run(twice())
    assert reads == ["settings", "parameters"] * 2 and deliverer.configs == {}
