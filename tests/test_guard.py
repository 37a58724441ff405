"""The outbound guard against a real aiohttp server on 127.0.0.1 (no mocks).

Only loopback traffic is ever sent; public addresses are checked with check_address only.
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web

from dispatch.guard import DestinationRefused, OutboundGuard, create_session, refusal
from tests.conftest import free_port

LOOPBACK = [ipaddress.ip_network("127.0.0.0/8")]


@dataclass
class Server:
    port: int
    hits: list[str] = field(default_factory=list)

    def url(self, path: str = "/", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    srv = Server(port=0)

    async def hello(request: web.Request) -> web.Response:
        srv.hits.append(request.path)
        return web.Response(text="hello")

    async def redirect(request: web.Request) -> web.Response:
        srv.hits.append(request.path)
        raise web.HTTPFound(request.query.get("to", "/elsewhere"))

    app = web.Application()
    app.router.add_get("/", hello)
    app.router.add_get("/elsewhere", hello)
    app.router.add_get("/redirect", redirect)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    srv.port = runner.addresses[0][1]
    try:
        yield srv
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_loopback_refused_without_allow_list(server: Server, host: str) -> None:
    async with create_session(OutboundGuard()) as session:
        with pytest.raises(Exception) as caught:
            await session.get(server.url(host=host), allow_redirects=False)
    refused = refusal(caught.value)
    assert refused is not None, caught.value
    assert "loopback" in str(refused) and "EVENT_MANAGER_OUTBOUND_ALLOW" in str(refused)
    # aiohttp 3.14 lets the refusal through unwrapped (it is not an OSError).
    assert isinstance(caught.value, DestinationRefused)
    assert server.hits == []


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_loopback_allowed_by_allow_list(server: Server, host: str) -> None:
    async with create_session(OutboundGuard(LOOPBACK)) as session:
        async with session.get(server.url(host=host), allow_redirects=False) as response:
            assert response.status == 200
            assert await response.text() == "hello"
    assert server.hits == ["/"]


@pytest.mark.parametrize(
    "address",
    ["10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
     "::", "::1", "fe80::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "224.0.0.1", "ff02::1",
     "240.0.0.1", "255.255.255.255", "fc00::1", "2002:7f00:1::", "not-an-ip"],
)
def test_check_address_refuses(address: str) -> None:
    with pytest.raises(DestinationRefused):
        OutboundGuard().check_address(address)


@pytest.mark.parametrize("address", ["8.8.8.8", "2001:4860:4860::8888", "::ffff:8.8.8.8"])
def test_check_address_allows_public(address: str) -> None:
    OutboundGuard().check_address(address)  # no traffic is sent


def test_check_address_messages_and_allow_list() -> None:
    with pytest.raises(DestinationRefused, match=r"^127\.0\.0\.1 is a loopback address; "
                       r"allowed only by EVENT_MANAGER_OUTBOUND_ALLOW$"):
        OutboundGuard().check_address("127.0.0.1")
    with pytest.raises(DestinationRefused, match="100.64.0.1 is a shared"):
        OutboundGuard().check_address("100.64.0.1")
    guard = OutboundGuard(LOOPBACK)
    guard.check_address("127.0.0.1")
    guard.check_address("::ffff:127.0.0.1")
    with pytest.raises(DestinationRefused, match="::1 is a loopback"):
        guard.check_address("::1")
    with pytest.raises(DestinationRefused, match="private"):
        guard.check_address("10.0.0.1")


@pytest.mark.parametrize(
    "url, why",
    [("ftp://x", "scheme 'ftp'"), ("file:///etc/passwd", "scheme 'file'"),
     ("http://", "no host"), ("http://127.1/", "not an IP address"),
     ("http://2130706433/", "not an IP address"), ("http://[fe80::1%25eth0]/", "link-local")],
)
def test_check_url_refuses(url: str, why: str) -> None:
    with pytest.raises(DestinationRefused, match=why):
        OutboundGuard(LOOPBACK).check_url(url)


def test_check_url_ip_literal_unless_allowed() -> None:
    port = free_port()
    with pytest.raises(DestinationRefused, match="::1 is a loopback"):
        OutboundGuard().check_url(f"http://[::1]:{port}/")
    OutboundGuard([ipaddress.ip_network("::1/128")]).check_url(f"http://[::1]:{port}/")
    OutboundGuard().check_url("https://example.com/hook")  # names are checked when resolved


async def test_session_refuses_ip_literal_even_without_check_url(server: Server) -> None:
    # aiohttp does not resolve IP literals; the session's middleware checks them.
    async with create_session(OutboundGuard()) as session:
        with pytest.raises(DestinationRefused):
            await session.get(server.url(), allow_redirects=False)
    assert server.hits == []


async def test_redirect_not_followed(server: Server) -> None:
    async with create_session(OutboundGuard(LOOPBACK)) as session:
        async with session.get(server.url("/redirect"), allow_redirects=False) as response:
            assert response.status == 302
            assert response.headers["Location"] == "/elsewhere"
    assert server.hits == ["/redirect"]


async def test_followed_redirect_hop_is_still_checked(server: Server) -> None:
    target = f"http://[::1]:{server.port}/"
    async with create_session(OutboundGuard(LOOPBACK)) as session:
        with pytest.raises(DestinationRefused, match="::1 is a loopback"):
            await session.get(server.url("/redirect"), params={"to": target})
    assert server.hits == ["/redirect"]


async def test_refusal_ignores_other_errors() -> None:
    port = free_port()  # nothing listens there
    async with create_session(OutboundGuard(LOOPBACK)) as session:
        with pytest.raises(aiohttp.ClientConnectorError) as caught:
            await session.get(f"http://127.0.0.1:{port}/", allow_redirects=False)
    assert refusal(caught.value) is None
    assert refusal(ValueError("x")) is None
    inner = DestinationRefused("10.0.0.1 is a private address")
    try:
        try:
            raise inner
        except DestinationRefused as exc:
            raise RuntimeError("wrapped") from exc
    except RuntimeError as wrapped:
        assert refusal(wrapped) is inner
