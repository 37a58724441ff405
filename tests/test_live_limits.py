"""Live fan-out is bounded: connections and subscriptions per key and per tenant, operations
per connection, rows a subscription may fall behind (a client that never reads is closed
with 4408), and a row executed once for every subscription of the same query."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from dispatch.live import ActivityHub, encode
from event_manager.config import Settings
from resolvers.context import Context
from schema import schema
from tenants.database import Database
from tenants.keys import Principal
from tests.conftest import TenantHandle, wait_until
from tests.support import api_process
from tests.test_sessions import SUBSCRIBE, closed_within, new_key, session
from tests.test_subscription import probe, ready, until_live

LIMITS = {
    "EVENT_MANAGER_LIVE_CONNECTIONS_PER_KEY": "2",
    "EVENT_MANAGER_LIVE_CONNECTIONS_PER_TENANT": "3",
    "EVENT_MANAGER_LIVE_SUBSCRIPTIONS_PER_CONNECTION": "40",
    "EVENT_MANAGER_LIVE_SUBSCRIPTIONS_PER_KEY": "40",
    "EVENT_MANAGER_LIVE_SUBSCRIPTIONS_PER_TENANT": "50",
    "EVENT_MANAGER_LIVE_SEND_QUEUE": "20",
}


@pytest.fixture(scope="module")
def limited_api(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An API process of its own with small live limits (``LIMITS``)."""
    log = tmp_path_factory.mktemp("limited") / "api.log"
    with api_process({**env, **LIMITS}, log) as (url, _):
        wait_until(lambda: ready(url))
        yield url


def subscribe(ws: ClientConnection, n: int, query: str = SUBSCRIBE) -> None:
    ws.send(json.dumps({"id": str(n), "type": "subscribe", "payload": {"query": query}}))


def test_a_key_s_connection_over_its_limit_is_closed_with_4429(
        limited_api: str, tenant: TenantHandle) -> None:
    viewer, _ = new_key(tenant, "VIEWER")
    with session(limited_api, viewer.key), session(limited_api, viewer.key):
        url = limited_api.replace("http://", "ws://") + "/graphql"
        with connect(url, subprotocols=["graphql-transport-ws"], open_timeout=10) as third:
            third.send(json.dumps({"type": "connection_init",
                                   "payload": {"Authorization": f"Bearer {viewer.key}"}}))
            code, reason, before = closed_within(third, 5.0)
    assert (code, before) == (4429, [])
    assert reason == ("too many connections: this API key holds 2 already "
                      "(EVENT_MANAGER_LIVE_CONNECTIONS_PER_KEY)")
    with session(limited_api, viewer.key):  # a closed connection frees its place
        pass


def test_a_tenant_s_connection_over_its_limit_is_closed_with_4429(
        limited_api: str, tenant: TenantHandle) -> None:
    keys = [new_key(tenant, "VIEWER")[0] for _ in range(4)]
    with session(limited_api, keys[0].key), session(limited_api, keys[1].key), \
            session(limited_api, keys[2].key):
        url = limited_api.replace("http://", "ws://") + "/graphql"
        with connect(url, subprotocols=["graphql-transport-ws"], open_timeout=10) as fourth:
            fourth.send(json.dumps({"type": "connection_init",
                                    "payload": {"Authorization": f"Bearer {keys[3].key}"}}))
            code, reason, _ = closed_within(fourth, 5.0)
    assert code == 4429
    assert reason == (f"too many connections: tenant {tenant.code!r} holds 3 already "
                      "(EVENT_MANAGER_LIVE_CONNECTIONS_PER_TENANT)")


def all_live(ws: ClientConnection, tenant: TenantHandle, subscriptions: int) -> None:
    """Every one of the connection's ``subscriptions`` has delivered a probe's row. There
    is no 'subscribed' acknowledgement, and a loaded API may take a while to start the
    last ones: probe again until each subscription id has answered."""
    live: set[str] = set()
    for _ in range(30):
        probe(tenant)
        try:
            while len(live) < subscriptions:
                message = json.loads(ws.recv(timeout=1))
                if message["type"] == "next" and (message["payload"].get("data") or {}).get(
                        "activity"):
                    live.add(message["id"])
            return
        except TimeoutError:
            continue
    raise AssertionError(f"{len(live)} of {subscriptions} subscriptions went live")


def refusals(ws: ClientConnection, wanted: int) -> list[dict[str, Any]]:
    """The first ``wanted`` refusals: subscriptions that answer with errors."""
    found = []
    while len(found) < wanted:
        message = json.loads(ws.recv(timeout=10))
        if message["type"] == "error":
            found.append(message["payload"][0])
        elif message["type"] == "next" and message["payload"].get("errors"):
            found.append(message["payload"]["errors"][0])
    return found


def test_subscriptions_over_a_key_s_limit_are_refused_naming_it(
        limited_api: str, tenant: TenantHandle) -> None:
    viewer, _ = new_key(tenant, "VIEWER")
    with session(limited_api, viewer.key) as one, session(limited_api, viewer.key) as two:
        for n in range(30):
            subscribe(one, n)
        all_live(one, tenant, 30)
        for n in range(12):
            subscribe(two, n)
        [refused] = refusals(two, 1)
    assert refused["extensions"]["code"] == "BAD_USER_INPUT"
    assert refused["message"] == ("too many live subscriptions: this API key holds 40 "
                                  "already (EVENT_MANAGER_LIVE_SUBSCRIPTIONS_PER_KEY)")


def test_subscriptions_over_a_tenant_s_limit_are_refused_naming_it(
        limited_api: str, tenant: TenantHandle) -> None:
    first, second = new_key(tenant, "VIEWER")[0], new_key(tenant, "VIEWER")[0]
    with session(limited_api, first.key) as one, session(limited_api, second.key) as two:
        for n in range(30):
            subscribe(one, n)
        all_live(one, tenant, 30)
        for n in range(21):
            subscribe(two, n)
        [refused] = refusals(two, 1)
    assert refused["message"] == (f"too many live subscriptions: tenant {tenant.code!r} holds "
                                  "50 already (EVENT_MANAGER_LIVE_SUBSCRIPTIONS_PER_TENANT)")


def test_operations_over_a_connection_s_limit_are_refused_naming_it(
        limited_api: str, tenant: TenantHandle) -> None:
    with session(limited_api, tenant.admin.key) as ws:
        for n in range(41):
            subscribe(ws, n)
        [refused] = refusals(ws, 1)
    assert refused["extensions"]["code"] == "BAD_USER_INPUT"
    assert refused["message"] == ("too many operations on this connection: at most 40 run at "
                                  "once (EVENT_MANAGER_LIVE_SUBSCRIPTIONS_PER_CONNECTION)")


def test_a_client_that_never_reads_is_closed_as_a_slow_consumer(
        limited_api: str, tenant: TenantHandle) -> None:
    """Its socket buffer is tiny and it reads nothing while rows pile up: once a
    subscription is 20 rows behind, the API drops what waits and closes with 4408; the
    client sees the close after what was already on the wire."""
    url = limited_api.replace("http://", "ws://") + "/graphql"
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect(("127.0.0.1", int(limited_api.rsplit(":", 1)[1])))
    with connect(url, sock=raw, subprotocols=["graphql-transport-ws"], open_timeout=10,
                 max_queue=1) as ws:
        ws.send(json.dumps({"type": "connection_init",
                            "payload": {"Authorization": f"Bearer {tenant.admin.key}"}}))
        assert json.loads(ws.recv(timeout=10))["type"] == "connection_ack"
        for n in range(40):
            subscribe(ws, n)
        until_live(ws, tenant)
        skipped = [{"event": "HANGUP"}] * 500  # actions are disabled: 500 SKIPPED rows
        for _ in range(3):  # 40 subscriptions × 1,500 rows: ~10 MB, more than buffers hold
            tenant.admin("mutation($i: [TriggerInput!]!) { triggerEvents(inputs: $i) "
                         "{ triggerId } }", i=skipped).data
        code, reason, before = closed_within(ws, 30.0)
    assert code == 4408
    assert reason == "slow consumer: a subscription fell 20 rows behind " \
                     "(EVENT_MANAGER_LIVE_SEND_QUEUE)"
    assert len(before) < 40 * 1500


async def test_a_row_is_executed_once_for_every_subscription_of_the_same_query(
        settings: Settings, tenant: TenantHandle) -> None:
    """Three subscriptions of one query get the very same result object for a row (one
    execution, one JSON text); a fourth with another query gets its own."""
    probe(tenant)
    doc = tenant.collection("activity").find_one({})
    db = Database(settings)
    hub = ActivityHub(None, "live:")  # type: ignore[arg-type]  # fed by hand, not by Redis
    context = Context(db=db, settings=settings, hub=hub,
                      principal=Principal(key_id="k", role="VIEWER", tenant=tenant.code))
    other = "subscription { activity { id status } }"
    streams = [await schema.subscribe(q, context_value=context)
               for q in (SUBSCRIBE, SUBSCRIBE, SUBSCRIBE, other)]
    try:
        firsts = [asyncio.ensure_future(anext(s)) for s in streams]  # type: ignore[arg-type]
        while hub.count < 4:
            await asyncio.sleep(0.01)
        hub._fan_out(tenant.code, f"[{encode(doc)}]".encode())
        results = await asyncio.wait_for(asyncio.gather(*firsts), 10)
    finally:
        for stream in streams:
            await stream.aclose()  # type: ignore[union-attr]
        await db.close()
    assert not any(r.errors for r in results)
    assert results[0].data is results[1].data is results[2].data
    assert results[3].data is not results[0].data
    assert results[3].data == {"activity": {"id": str(doc["_id"]), "status": doc["status"]}}
