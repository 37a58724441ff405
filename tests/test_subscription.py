"""The activity subscription over WebSocket (graphql-transport-ws), fed through Redis from
the worker process; filtered and tenant-isolated."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from event_manager.config import Settings
from tests.conftest import CLI, TenantHandle, free_port, wait_until
from tests.receiver import Receiver
from tests.test_delivery import hook

ROW = "id triggerId status event source"


@contextmanager
def subscription(api_url: str, key: str, query: str,
                 variables: dict | None = None) -> Iterator[ClientConnection]:
    url = api_url.replace("http://", "ws://") + "/graphql"
    with connect(url, subprotocols=["graphql-transport-ws"], open_timeout=10) as ws:
        ws.send(json.dumps({"type": "connection_init",
                            "payload": {"Authorization": f"Bearer {key}"}}))
        assert json.loads(ws.recv(timeout=10))["type"] == "connection_ack"
        ws.send(json.dumps({"id": "1", "type": "subscribe",
                            "payload": {"query": query, "variables": variables or {}}}))
        yield ws


def next_row(ws: ClientConnection, timeout: float = 10.0) -> dict[str, Any]:
    message = json.loads(ws.recv(timeout=timeout))
    assert message["type"] == "next", message
    assert "errors" not in message["payload"], message["payload"]
    return message["payload"]["data"]["activity"]


def probe(tenant: TenantHandle) -> str:
    """A SKIPPED trigger of the tenant; its id."""
    reply = tenant.admin("mutation { testEvent(event: INCOMING_CALL) { triggerId } }")
    return reply.data["testEvent"]["triggerId"]


def until_live(ws: ClientConnection, tenant: TenantHandle) -> None:
    """There is no 'subscribed' acknowledgement: probe until a probe's row arrives."""
    for _ in range(50):
        trigger_id = probe(tenant)
        try:
            while next_row(ws, timeout=0.3)["triggerId"] != trigger_id:
                pass
            return
        except TimeoutError:
            continue
    raise AssertionError("the subscription never went live")


def test_a_dashboard_sees_queued_sending_succeeded(api_url: str, tenant: TenantHandle,
                                                   receiver: Receiver, worker: Any) -> None:
    hook(tenant, receiver, "live")
    with subscription(api_url, tenant.admin.key, f"subscription {{ activity {{ {ROW} }} }}") as ws:
        until_live(ws, tenant)
        fired = tenant.admin("mutation { triggerEvent(input: {event: HANGUP}) { triggerId } }")
        trigger_id = fired.data["triggerEvent"]["triggerId"]
        statuses = []
        while "SUCCEEDED" not in statuses:
            row = next_row(ws)
            if row["triggerId"] == trigger_id:
                statuses.append(row["status"])
    assert statuses == ["QUEUED", "SENDING", "SUCCEEDED"]


def test_another_tenant_sees_nothing(api_url: str, tenant: TenantHandle,
                                     other_tenant: TenantHandle, receiver: Receiver,
                                     worker: Any) -> None:
    hook(tenant, receiver, "private")
    with subscription(api_url, other_tenant.admin.key,
                      f"subscription {{ activity {{ {ROW} }} }}") as ws:
        until_live(ws, other_tenant)
        for _ in range(3):
            tenant.admin("mutation { triggerEvent(input: {event: HANGUP}) { triggerId } }").data
        receiver.wait_for(f"/{tenant.code}/private", 3)
        # Rows are published in order; the other tenant's next row must be its own probe.
        own = probe(other_tenant)
        assert next_row(ws)["triggerId"] == own


def test_the_filter_applies_to_the_stream(api_url: str, tenant: TenantHandle,
                                          receiver: Receiver, worker: Any) -> None:
    hook(tenant, receiver, "filtered")
    query = f"subscription($f: ActivityFilter) {{ activity(filter: $f) {{ {ROW} }} }}"
    with subscription(api_url, tenant.admin.key, query,
                      {"f": {"statuses": ["SUCCEEDED", "SKIPPED"]}}) as ws:
        until_live(ws, tenant)
        fired = tenant.admin("mutation { triggerEvent(input: {event: HANGUP}) { triggerId } }")
        trigger_id = fired.data["triggerEvent"]["triggerId"]
        row = next_row(ws)
        while row["triggerId"] != trigger_id:
            row = next_row(ws)
        assert row["status"] == "SUCCEEDED"


def test_a_viewer_may_watch_but_a_pbx_key_may_not(api_url: str, tenant: TenantHandle) -> None:
    viewer = tenant.key("VIEWER")
    with subscription(api_url, viewer.key, f"subscription {{ activity {{ {ROW} }} }}") as ws:
        until_live(ws, tenant)
    pbx = tenant.key("PBX")
    with subscription(api_url, pbx.key, f"subscription {{ activity {{ {ROW} }} }}") as ws:
        message = json.loads(ws.recv(timeout=10))
        # An error raised by the resolver travels as 'next' with errors (the protocol
        # keeps 'error' for validation errors).
        assert message["type"] == "next", message
        assert message["payload"]["errors"][0]["extensions"]["code"] == "FORBIDDEN", message


@pytest.mark.parametrize("key", [None, "em_" + "x" * 43])
def test_a_connection_without_a_valid_key_is_refused(api_url: str, key: str | None) -> None:
    url = api_url.replace("http://", "ws://") + "/graphql"
    with connect(url, subprotocols=["graphql-transport-ws"], open_timeout=10) as ws:
        payload = {"Authorization": f"Bearer {key}"} if key else {}
        ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd.code == 4403


def test_stopping_the_api_closes_subscriptions_cleanly(
        env: dict[str, str], tenant: TenantHandle, tmp_path: Path) -> None:
    """SIGTERM to an API process: subscribers get a close frame (not a dropped
    connection), and the process shuts down in order, without a traceback."""
    port = free_port()
    log = tmp_path / "api.log"
    with log.open("w") as out:
        api = subprocess.Popen([*CLI, "serve", "--port", str(port)], env=env, stdout=out,
                               stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: ready(url))
        with subscription(url, tenant.admin.key, f"subscription {{ activity {{ {ROW} }} }}"
                          ) as ws:
            until_live(ws, tenant)
            api.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    ws.recv(timeout=30)
        assert closed.value.rcvd is not None, "dropped without a close frame"
        assert closed.value.rcvd.code in (1000, 1001, 1012), closed.value.rcvd
        # uvicorn shuts down gracefully, then re-raises the signal it caught (-15).
        assert api.wait(timeout=60) in (0, -signal.SIGTERM)
    finally:
        if api.poll() is None:
            api.kill()
    output = log.read_text()
    assert "Application shutdown complete" in output and "Traceback" not in output


def ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_an_api_listens_only_to_the_tenants_its_clients_watch(
        api_url: str, tenant: TenantHandle, settings: Settings, redis_client: Any) -> None:
    """Rows of a tenant nobody watches reach no API process (three rows per delivery,
    each read and dropped, were a tenth of the API's CPU at one trigger per request);
    the first subscription of a tenant listens to its channel, the last one to end stops."""
    channel = settings.live_channel_prefix + tenant.code

    def listeners() -> int:
        return dict(redis_client.pubsub_numsub(channel)).get(channel.encode(), 0)

    assert redis_client.publish(channel, "[]") == 0  # no API process received it
    with subscription(api_url, tenant.admin.key, f"subscription {{ activity {{ {ROW} }} }}") as ws:
        until_live(ws, tenant)
        assert listeners() == 1
        with subscription(api_url, tenant.admin.key,
                          f"subscription {{ activity {{ {ROW} }} }}") as second:
            until_live(second, tenant)
            assert listeners() == 1  # one per API process, however many watch
        until_live(ws, tenant)  # the first one still gets its rows
    wait_until(lambda: listeners() == 0, timeout=10, what="the channel left")
