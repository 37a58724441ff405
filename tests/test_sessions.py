"""Access ends everywhere at once: a revoked key, a tenant switched off, closes every
WebSocket that relies on it within a second, with a close code and a reason, and nothing
more runs on it, whichever API process holds the socket."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from event_manager.config import Settings
from tenants.keys import API_KEYS, hash_key
from tests.conftest import Client, TenantHandle, wait_until
from tests.support import api_process
from tests.test_subscription import ROW, probe, ready, subscription, until_live

SUBSCRIBE = f"subscription {{ activity {{ {ROW} }} }}"


@contextmanager
def session(api_url: str, key: str, tenant: str | None = None) -> Iterator[ClientConnection]:
    """An acknowledged graphql-transport-ws connection, no operation yet."""
    url = api_url.replace("http://", "ws://") + "/graphql"
    payload = {"Authorization": f"Bearer {key}"}
    if tenant:
        payload["X-Tenant"] = tenant
    with connect(url, subprotocols=["graphql-transport-ws"], open_timeout=10) as ws:
        ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        assert json.loads(ws.recv(timeout=10))["type"] == "connection_ack"
        yield ws


def closed_within(ws: ClientConnection, seconds: float) -> tuple[int, str, list[Any]]:
    """The close code and reason the server sent within ``seconds``, and the messages
    that came before it."""
    deadline = time.monotonic() + seconds
    before = []
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"still open after {seconds} s; got {before}")
            before.append(json.loads(ws.recv(timeout=remaining)))
    assert closed.value.rcvd is not None, "dropped without a close frame"
    return closed.value.rcvd.code, closed.value.rcvd.reason, before


def new_key(tenant: TenantHandle, role: str) -> tuple[Client, str]:
    """A new key of the tenant, and its id."""
    made = tenant.system("""mutation($role: Role!, $t: String) {
        createApiKey(role: $role, label: "session", tenant: $t) { key info { id } } }""",
                         role=role, t=tenant.code).data["createApiKey"]
    return Client(tenant.admin.url, made["key"]), made["info"]["id"]


def revoke(tenant: TenantHandle, key_id: str) -> None:
    assert tenant.system("mutation($id: ID!) { revokeApiKey(id: $id) }", id=key_id).data


def switch(tenant: TenantHandle, enabled: bool) -> None:
    Client(tenant.system.url, tenant.system.key)(
        "mutation($c: String!, $e: Boolean!) { setEventManagerEnabled(code: $c, enabled: $e) "
        "{ code } }", c=tenant.code, e=enabled).data


def test_a_revoked_key_s_subscription_ends_and_its_socket_closes_within_a_second(
        api_url: str, tenant: TenantHandle) -> None:
    viewer, key_id = new_key(tenant, "VIEWER")
    with subscription(api_url, viewer.key, SUBSCRIBE) as ws:
        until_live(ws, tenant)
        revoke(tenant, key_id)
        code, reason, before = closed_within(ws, 1.0)
        assert (code, reason) == (4401, "unknown or revoked API key")
        assert all(m["type"] == "next" for m in before), before


def test_a_revoked_key_s_socket_cannot_create_an_api_key(api_url: str,
                                                          tenant: TenantHandle) -> None:
    """The issue's case: the mutation sent right after the revocation was answered is
    not run (the socket closes instead), and no key is made."""
    admin, key_id = new_key(tenant, "TENANT_ADMIN")
    keys_before = tenant.admin("{ apiKeys { id } }").data["apiKeys"]
    with session(api_url, admin.key) as ws:
        revoke(tenant, key_id)
        with contextlib.suppress(ConnectionClosed):  # closed already by the notice
            ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {
                "query": 'mutation { createApiKey(role: TENANT_ADMIN, label: "after") { key } }'
            }}))
            ws.send(json.dumps({"id": "2", "type": "subscribe",
                                "payload": {"query": "{ me { role } }"}}))
        code, reason, before = closed_within(ws, 1.0)
    assert code == 4401 and "revoked" in reason
    assert before == [], before  # neither the mutation nor the query answered
    assert tenant.admin("{ apiKeys { id } }").data["apiKeys"] == keys_before


def test_other_keys_sockets_stay_open_when_one_key_is_revoked(api_url: str,
                                                              tenant: TenantHandle) -> None:
    (_, revoked), (kept, _) = new_key(tenant, "VIEWER"), new_key(tenant, "VIEWER")
    with subscription(api_url, kept.key, SUBSCRIBE) as ws:
        until_live(ws, tenant)
        revoke(tenant, revoked)
        trigger_id = probe(tenant)
        message = json.loads(ws.recv(timeout=10))
        while message["payload"]["data"]["activity"]["triggerId"] != trigger_id:
            message = json.loads(ws.recv(timeout=10))


def test_a_tenant_switched_off_closes_every_socket_acting_in_it(
        api_url: str, tenant: TenantHandle, other_tenant: TenantHandle) -> None:
    """Its admin's, its viewer's, and a SYSTEM_ADMIN key's acting in it (X-Tenant); a
    SYSTEM_ADMIN socket acting in no tenant, and another tenant's, stay open."""
    viewer = tenant.key("VIEWER")
    with subscription(api_url, viewer.key, SUBSCRIBE) as watching, \
            session(api_url, tenant.admin.key) as admin, \
            session(api_url, tenant.system.key, tenant.code) as system_in_tenant, \
            session(api_url, tenant.system.key) as system_alone, \
            session(api_url, other_tenant.admin.key) as other:
        until_live(watching, tenant)
        switch(tenant, False)
        expected = f"the Event Manager is switched off for tenant {tenant.code!r}"
        for ws in (watching, admin, system_in_tenant):
            code, reason, _ = closed_within(ws, 1.0)
            assert (code, reason) == (4403, expected)
        for ws in (system_alone, other):
            ws.send(json.dumps({"id": "1", "type": "subscribe",
                                "payload": {"query": "{ me { role } }"}}))
            assert json.loads(ws.recv(timeout=10))["type"] == "next"


def test_a_socket_of_a_switched_off_tenant_is_refused_at_connection(
        api_url: str, tenant: TenantHandle) -> None:
    switch(tenant, False)
    url = api_url.replace("http://", "ws://") + "/graphql"
    with connect(url, subprotocols=["graphql-transport-ws"], open_timeout=10) as ws:
        ws.send(json.dumps({"type": "connection_init",
                            "payload": {"Authorization": f"Bearer {tenant.admin.key}"}}))
        code, reason, before = closed_within(ws, 5.0)
    assert (code, before) == (4403, [])
    assert reason == f"the Event Manager is switched off for tenant {tenant.code!r}"


def test_a_revocation_made_through_another_api_process_closes_the_socket(
        env: dict[str, str], api_url: str, tenant: TenantHandle, tmp_path: Path) -> None:
    """The socket is held by a second API process; the key is revoked through the first.
    No operation runs on the socket meanwhile: only the notice can close it."""
    with api_process(env, tmp_path / "api.log") as (url, _):
        wait_until(lambda: ready(url))
        viewer, key_id = new_key(tenant, "VIEWER")
        with subscription(url, viewer.key, SUBSCRIBE) as ws:
            until_live(ws, tenant)
            revoke(tenant, key_id)
            code, reason, _ = closed_within(ws, 1.0)
            assert code == 4401 and "revoked" in reason


def test_a_tenant_removed_elsewhere_closes_its_sockets_at_the_notice(
        api_url: str, tenant: TenantHandle, mongo: Any, redis_client: Any,
        settings: Settings) -> None:
    """What a connection relies on is gone: the tenant's registration is deleted (as an
    operator's script would), its change stamped and announced. The API re-checks the
    socket, finds no tenant, and closes it."""
    with session(api_url, tenant.admin.key) as ws:
        mongo[settings.system_database]["tenants"].delete_one({"_id": tenant.code})
        redis_client.set(f"{settings.database}:config:{tenant.code}", "deleted")
        redis_client.publish(f"{settings.database}:access", tenant.code)
        code, reason, _ = closed_within(ws, 1.0)
    assert (code, reason) == (4403, f"there is no tenant {tenant.code!r}")


def test_an_operation_checks_the_key_again_when_no_notice_came(
        api_url: str, tenant: TenantHandle, mongo: Any, redis_client: Any,
        settings: Settings) -> None:
    """The safety net: the key is revoked and the change stamped, but the notice is lost
    (nothing is published). The next operation on the socket finds the key revoked,
    is not run, and the socket closes with 4401."""
    admin, _ = new_key(tenant, "TENANT_ADMIN")
    with session(api_url, admin.key) as ws:
        mongo[settings.system_database]["api_key_hashes"].update_one(
            {"_id": hash_key(admin.key)}, {"$set": {"revoked": True}})
        redis_client.set(f"{settings.database}:config:{API_KEYS}", "revoked quietly")
        ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {
            "query": 'mutation { createApiKey(role: VIEWER, label: "quiet") { key } }'}}))
        code, reason, before = closed_within(ws, 1.0)
    assert (code, reason, before) == (4401, "unknown or revoked API key", [])


def test_a_close_reason_quoting_a_long_client_text_is_cut_to_fit_the_close_frame(
        api_url: str, tenant: TenantHandle) -> None:
    """Strawberry's "Unknown message type: …" quotes the client; a reason over 123 bytes
    made the close fail with a protocol error, and the client got no close frame."""
    with session(api_url, tenant.admin.key) as ws:
        ws.send(json.dumps({"type": "é" * 300}))
        code, reason, _ = closed_within(ws, 5.0)
    assert code == 4400 and reason.startswith("Unknown message type: éé")
    assert len(reason.encode()) <= 123
