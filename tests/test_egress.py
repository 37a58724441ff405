"""Egress through the operator's HTTP proxy, and receivers whose certificates come from a
private CA (``dispatch.egress``). A worker of its own goes out through a real forward
proxy (``tests/proxy.py``) with credentials, straight to ``localhost`` (its no-proxy
list), and trusts CA 1 from ``EVENT_MANAGER_OUTBOUND_CA_FILE``; receivers answer https
with certificates of CA 1 and of CA 2, made with ``cryptography`` (``tests/tls.py``)."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from aiohttp.abc import AbstractResolver
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from pydantic import ValidationError
from yarl import URL

from dispatch.egress import Destinations, Egress, NoProxy, check_through_proxy
from dispatch.guard import DestinationRefused, OutboundGuard
from event_manager.config import Settings
from tests.conftest import TenantHandle, make_tenant
from tests.installation import Installation, installation
from tests.proxy import ForwardProxy
from tests.receiver import Receiver
from tests.test_delivery import attach, enable, make_action, settled, trigger
from tests.tls import PrivateCA

SECRET = "proxy-secret"


@pytest.fixture(scope="module")
def proxy() -> Iterator[ForwardProxy]:
    proxy = ForwardProxy().start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def ca1() -> PrivateCA:
    return PrivateCA("Event Manager test CA 1")


@pytest.fixture(scope="module")
def ca2() -> PrivateCA:
    return PrivateCA("Event Manager test CA 2")


@pytest.fixture(scope="module")
def tls1(ca1: PrivateCA) -> Iterator[Receiver]:
    receiver = Receiver(ca1.server_context()).start()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="module")
def tls2(ca2: PrivateCA) -> Iterator[Receiver]:
    receiver = Receiver(ca2.server_context()).start()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="module")
def egress(settings: Settings, mongo: Any, redis_client: redis.Redis, proxy: ForwardProxy,
           ca1: PrivateCA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    folder = tmp_path_factory.mktemp("egress")
    (folder / "ca1.pem").write_text(ca1.pem)
    with installation(settings, mongo, redis_client, folder, "egress",
                      outbound_proxy=proxy.url.replace("http://", f"http://pbx:{SECRET}@"),
                      outbound_no_proxy="localhost, 192.0.2.0/24",
                      outbound_ca_file=str(folder / "ca1.pem"),
                      retry_schedule="0.2") as place:
        yield place


@pytest.fixture
def tenant(egress: Installation, mongo: Any) -> TenantHandle:
    made = make_tenant(egress.system, mongo, egress.settings)
    enable(made)
    return made


def sent(tenant: TenantHandle, url: str, name: str = "crm", **fields: Any) -> dict[str, Any]:
    """A HANGUP to the action ``name`` GETting ``url`` (the only one attached): its row
    once it ended."""
    attach(tenant, "HANGUP", make_action(tenant, name=name, method="GET", url=url, **fields))
    [row] = settled(tenant, trigger(tenant, "HANGUP")["triggerId"])
    return row


def test_requests_go_through_the_proxy_with_its_credentials(
        tenant: TenantHandle, receiver: Receiver, proxy: ForwardProxy) -> None:
    url = f"{receiver.url}/{tenant.code}/plain?x=1"
    row = sent(tenant, url)
    assert row["status"] == "SUCCEEDED", row["message"]
    assert [r.query for r in receiver.received(f"/{tenant.code}/plain")] == ["x=1"]
    [passed] = [p for p in proxy.passed if p.target == url]
    assert passed.method == "GET"
    assert passed.authorization == "Basic " + base64.b64encode(
        f"pbx:{SECRET}".encode()).decode()


def test_hosts_of_the_no_proxy_list_go_straight(tenant: TenantHandle, receiver: Receiver,
                                                proxy: ForwardProxy) -> None:
    url = f"http://localhost:{receiver.port}/{tenant.code}/straight"
    row = sent(tenant, url)
    assert row["status"] == "SUCCEEDED", row["message"]
    assert len(receiver.received(f"/{tenant.code}/straight")) == 1
    assert not any(tenant.code in target for target in proxy.targets())


def test_a_receiver_of_the_ca_in_the_ca_file_is_trusted_through_the_tunnel(
        tenant: TenantHandle, tls1: Receiver, proxy: ForwardProxy) -> None:
    row = sent(tenant, f"{tls1.url}/{tenant.code}/tls")
    assert row["status"] == "SUCCEEDED", row["message"]
    assert len(tls1.received(f"/{tenant.code}/tls")) == 1
    assert f"127.0.0.1:{tls1.port}" in proxy.targets()  # CONNECT


def test_an_actions_own_ca_is_trusted_for_its_requests_only(
        tenant: TenantHandle, tls2: Receiver, ca2: PrivateCA) -> None:
    """CA 2 is not in the CA file: the action fails on the certificate until its own
    caCertificate trusts CA 2."""
    path = f"/{tenant.code}/own"
    refused = sent(tenant, f"{tls2.url}{path}")
    assert refused["status"] == "FAILED"
    assert "certificate" in refused["message"], refused["message"]
    assert tls2.received(path) == []
    trusted = sent(tenant, f"{tls2.url}{path}", "trusting", caCertificate=ca2.pem)
    assert trusted["status"] == "SUCCEEDED", trusted["message"]
    assert len(tls2.received(path)) == 1


def test_the_guard_judges_the_destination_not_the_proxy(
        tenant: TenantHandle, proxy: ForwardProxy) -> None:
    """The proxy is on 127.0.0.1 (allowed) but a private destination outside the allow
    list is refused before anything reaches the proxy."""
    before = len(proxy.passed)
    row = sent(tenant, "http://10.1.2.3:8080/inside")
    assert (row["status"], row["attempts"]) == ("FAILED", 1)
    assert row["message"].startswith("destination refused: "), row["message"]
    assert len(proxy.passed) == before


def test_the_proxied_session_judges_a_names_addresses_before_the_proxy_sees_it(
        proxy: ForwardProxy, receiver: Receiver) -> None:
    """``localhost`` resolves to a loopback address, which this guard refuses: the
    request never reaches the proxy. The same guard allowing loopback sends it."""
    async def get(*allowed: str) -> str:
        guard = OutboundGuard([ipaddress.ip_network(a) for a in allowed])
        egress = Egress(guard, URL(proxy.url))
        url = URL(f"http://localhost:{receiver.port}/judged")
        session, through = egress.route(url)
        try:
            async with session.get(url, proxy=through) as response:
                return str(response.status)
        except DestinationRefused as refused:
            return str(refused)
        finally:
            await egress.close()

    before = len(proxy.passed)
    assert "is a loopback address; allowed only by" in asyncio.run(get())
    assert len(proxy.passed) == before
    assert asyncio.run(get("127.0.0.0/8", "::1/128")) == "200"
    assert len(proxy.passed) == before + 1


def test_a_name_is_resolved_and_judged_before_it_goes_through_the_proxy() -> None:
    """Every address the name resolves to here must pass: the proxy may use any."""
    async def check(url: str, *allowed: str) -> str | None:
        guard = OutboundGuard([ipaddress.ip_network(a) for a in allowed])
        destinations = Destinations()
        try:
            await check_through_proxy(guard, URL(url), destinations)
        except DestinationRefused as refused:
            return str(refused)
        finally:
            await destinations.close()
        return None

    assert "does not resolve here" in asyncio.run(check("http://nowhere.invalid/x"))
    assert "127.0.0.1" in asyncio.run(check("http://localhost:9/x"))
    assert asyncio.run(check("http://localhost:9/x", "127.0.0.0/8", "::1/128")) is None
    assert "10.1.2.3" in asyncio.run(check("http://10.1.2.3/x"))
    assert asyncio.run(check("http://93.184.215.14/x")) is None  # public: not resolved


def test_proxied_destinations_are_looked_up_once_per_ttl_and_failures_not_kept() -> None:
    """A proxied request's host is resolved for the guard at most once per ``ttl`` (a
    resolver that counts stands in for DNS: the cache is the unit); the guard still
    judges the kept addresses on every request."""
    lookups: list[str] = []

    class Counting(AbstractResolver):
        async def resolve(self, host: str, port: int = 0,
                          family: socket.AddressFamily = socket.AF_INET) -> Any:
            lookups.append(host)
            if host.endswith(".invalid"):
                raise OSError(-2, "Name or service not known")
            return [{"hostname": host, "host": "127.0.0.1", "port": port,
                     "family": socket.AF_INET, "proto": 0, "flags": 0}]

        async def close(self) -> None:
            pass

    loopback = OutboundGuard([ipaddress.ip_network("127.0.0.0/8")])

    async def check(destinations: Destinations, url: str,
                    guard: OutboundGuard = loopback) -> str | None:
        destinations._resolver = Counting()
        try:
            await check_through_proxy(guard, URL(url), destinations)
        except DestinationRefused as refused:
            return str(refused)
        return None

    async def go() -> list[str | None]:
        kept = Destinations(ttl=60, size=2)
        outcomes = [await check(kept, "http://a.test/1"), await check(kept, "http://a.test/2"),
                    await check(kept, "http://a.test/3", OutboundGuard([]))]
        outcomes += [await check(kept, "http://x.invalid/"), await check(kept, "http://x.invalid/")]
        for host in ("b.test", "c.test", "a.test"):  # a.test was the oldest of three
            outcomes.append(await check(kept, f"http://{host}/"))
        assert len(kept._answers) == 2
        brief = Destinations(ttl=0)
        outcomes += [await check(brief, "http://d.test/"), await check(brief, "http://d.test/")]
        return outcomes

    outcomes = asyncio.run(go())
    assert outcomes[:2] == [None, None]
    assert "loopback" in (outcomes[2] or "")  # judged again, from what was kept
    assert ["does not resolve here" in (o or "") for o in outcomes[3:5]] == [True, True]
    assert outcomes[5:] == [None] * 5
    assert lookups == ["a.test", "x.invalid", "x.invalid", "b.test", "c.test", "a.test",
                       "d.test", "d.test"]


def test_the_no_proxy_list() -> None:
    rules = NoProxy.parse(" Example.com, .corp.test,10.0.0.0/8 ,[::1], ")
    for host in ("example.com", "api.example.com", "EXAMPLE.COM.", "x.corp.test",
                 "corp.test", "10.2.3.4", "[::1]", "::1"):
        assert rules.matches(host), host
    for host in ("badexample.com", "example.co", "11.0.0.1", "corp.tests"):
        assert not rules.matches(host), host
    assert NoProxy.parse("*").matches("anything.at.all")
    assert not NoProxy.parse("").matches("example.com")


def test_an_actions_tls_context_is_made_once_per_certificate(ca1: PrivateCA,
                                                             ca2: PrivateCA) -> None:
    async def contexts() -> tuple[Any, ...]:
        egress = Egress(OutboundGuard())
        try:
            return (egress.ssl_for(None), egress.ssl_for(ca1.pem), egress.ssl_for(ca1.pem),
                    egress.ssl_for(ca2.pem), len(egress.contexts))
        finally:
            await egress.close()

    plain, first, again, other, kept = asyncio.run(contexts())
    assert plain is True and first is again and other is not first and kept == 2


# --- what is accepted ------------------------------------------------------------------

def expired_pem() -> str:
    ca = PrivateCA("Expired CA")
    now = datetime.now(UTC)
    old = (x509.CertificateBuilder().subject_name(ca.certificate.subject)
           .issuer_name(ca.certificate.subject).public_key(ca.key.public_key())
           .serial_number(1).not_valid_before(now - timedelta(days=30))
           .not_valid_after(now - timedelta(days=1)).sign(ca.key, hashes.SHA256()))
    return old.public_bytes(serialization.Encoding.PEM).decode()


def test_an_action_ca_certificate_is_checked_stored_shown_and_removed(
        tenant: TenantHandle, ca1: PrivateCA) -> None:
    create = "mutation($i: ActionInput!) { createAction(input: $i) { id caCertificate } }"
    base = {"name": "tls", "url": "https://crm.example.com/hook"}
    for bad, said in (("not a certificate", "is not a PEM certificate"),
                      (expired_pem(), "expired on"),
                      ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
                       "is not a PEM certificate")):
        reply = tenant.admin(create, i={**base, "caCertificate": bad})
        assert reply.code == "BAD_USER_INPUT" and reply.field == "input.caCertificate", reply.body
        assert said in reply.error["message"]
    made = tenant.admin(create, i={**base, "caCertificate": f"my CA:\n{ca1.pem}\n"})
    action = made.data["createAction"]
    assert action["caCertificate"] == ca1.pem  # re-encoded, the words around dropped
    update = ("mutation($id: ID!, $i: ActionInput!) { updateAction(id: $id, input: $i) "
              "{ caCertificate } }")
    kept = tenant.admin(update, id=action["id"], i=base).data["updateAction"]
    assert kept["caCertificate"] == ca1.pem  # null keeps it
    removed = tenant.admin(update, id=action["id"], i={**base, "caCertificate": ""})
    assert removed.data["updateAction"]["caCertificate"] is None


@pytest.mark.parametrize(("field", "value", "said"), [
    ("outbound_proxy", "socks5://proxy:1080", "is not a proxy URL"),
    ("outbound_proxy", "proxy:3128", "is not a proxy URL"),
    ("outbound_ca_file", "/nonexistent/ca.pem", "is not a readable PEM file"),
    ("outbound_ca_file", __file__, "is not a readable PEM file"),
])
def test_egress_settings_are_checked_naming_the_setting(field: str, value: str,
                                                        said: str) -> None:
    with pytest.raises(ValidationError, match=field) as error:
        Settings(**{field: value})
    assert said in str(error.value)

