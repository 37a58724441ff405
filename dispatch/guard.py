"""Outbound guard: tenant-defined webhooks may reach only public http(s) destinations.

Addresses that are loopback, private, link-local, multicast, reserved, unspecified or
shared (100.64.0.0/10), or IPv4-mapped/6to4 forms of those, are refused unless they lie
inside an allowed network (``EVENT_MANAGER_OUTBOUND_ALLOW``).

The check applies to the address actually connected to: the session's resolver drops
refused answers, so a DNS-rebinding name cannot slip past an earlier lookup. aiohttp
never calls the resolver for IP-literal hosts, so those are checked on the URL
(``check_url``), both by the caller and by a session middleware on every request.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_HINT = "allowed only by EVENT_MANAGER_OUTBOUND_ALLOW"
_SHARED = ipaddress.ip_network("100.64.0.0/10")


DNS_TTL = 10
"""Seconds a DNS answer is kept by the outbound sessions (``dispatch.egress`` too)."""


class DestinationRefused(Exception):
    """The destination is not allowed; the message says why. Never worth retrying.

    Deliberately not an OSError: aiohttp wraps OSErrors from the resolver into
    ClientConnectorDNSError, which callers would take for a retryable connection error.
    This exception passes through ``session.request(...)`` unchanged (see ``refusal``).
    """


def _kind(ip: IPAddress) -> str | None:
    """What kind of non-public address ``ip`` is, or None for a public unicast one."""
    if ip.is_loopback:
        return "a loopback"
    if ip.is_unspecified:
        return "an unspecified"
    if ip.is_link_local:
        return "a link-local"
    if ip.is_multicast:
        return "a multicast"
    if ip.version == 4 and ip in _SHARED:
        return "a shared (carrier-grade NAT)"
    if ip.is_reserved:
        return "a reserved"
    if ip.is_private:
        return "a private"
    if not ip.is_global:
        return "a non-global"
    return None


class OutboundGuard:
    def __init__(self, allowed: Sequence[IPNetwork] = ()) -> None:
        self.allowed = tuple(allowed)

    def _reason(self, ip: IPAddress) -> str | None:
        """Why ``ip`` is refused ("10.0.0.1 is a private address"), or None if allowed."""
        if any(ip in net for net in self.allowed):
            return None
        if ip.version == 6 and (mapped := ip.ipv4_mapped) is not None:
            # A dual-stack socket connecting to ::ffff:a.b.c.d reaches the IPv4 host.
            if not (kind := _kind(mapped)) or any(mapped in net for net in self.allowed):
                return None
            return f"{ip} maps to {mapped}, {kind} address"
        if kind := _kind(ip):
            return f"{ip} is {kind} address"
        if ip.version == 6 and (embedded := ip.sixtofour) is not None:
            if kind := _kind(embedded):
                return f"{ip} embeds {embedded}, {kind} address"
        return None

    def check_address(self, address: str) -> None:
        """Raise DestinationRefused unless ``address`` (an IP literal) may be connected to."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            raise DestinationRefused(f"{address!r} is not an IP address") from None
        if reason := self._reason(ip):
            raise DestinationRefused(f"{reason}; {_HINT}")

    def check_url(self, url: str | URL) -> None:
        """Raise DestinationRefused unless ``url`` is http(s) with a host, and an
        IP-literal host is allowed. Host names are checked later, when resolved."""
        try:
            parsed = URL(url)
        except (ValueError, TypeError):
            raise DestinationRefused(f"{url!r} is not a valid URL") from None
        if parsed.scheme not in ("http", "https"):
            raise DestinationRefused(f"scheme {parsed.scheme!r} is not allowed; use http or https")
        host = parsed.raw_host
        if not host:
            raise DestinationRefused(f"{str(url)!r} has no host")
        # aiohttp 3.14 connector.TCPConnector._resolve_host returns IP-literal hosts as-is
        # without calling the resolver (`if is_ip_address(host): return [{...}]`), where
        # helpers.is_ip_address is the heuristic `":" in host or digits-and-dots`.
        # Mirror that heuristic so anything aiohttp would connect to directly is checked
        # here; a non-canonical form such as "127.1" fails ip_address() and is refused
        # (aiohttp 3.14 rejects those too; older versions passed them to the socket).
        if ":" in host or host.replace(".", "").isdigit():
            self.check_address(host.replace("%25", "%"))  # zone id as yarl keeps it encoded


class _GuardedResolver(AbstractResolver):
    """Wraps aiohttp's default resolver and drops every answer the guard refuses."""

    def __init__(self, guard: OutboundGuard) -> None:
        self._guard = guard
        self._inner = aiohttp.DefaultResolver()  # ThreadedResolver unless aiodns is installed

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answers = await self._inner.resolve(host, port, family)
        reasons = [self._guard._reason(ipaddress.ip_address(a["host"])) for a in answers]
        kept = [answer for answer, reason in zip(answers, reasons, strict=True) if reason is None]
        if answers and not kept:
            # Not an OSError, so aiohttp lets it through unwrapped (see DestinationRefused).
            raise DestinationRefused(
                f"{host} resolves only to refused addresses ({'; '.join(map(str, reasons))}); "
                + _HINT
            )
        return kept

    async def close(self) -> None:
        await self._inner.close()


def create_session(guard: OutboundGuard, *, limit: int = 1000,
                   middlewares: Sequence[aiohttp.ClientMiddlewareType] = (),
                   ) -> aiohttp.ClientSession:
    """A ClientSession whose every connection passes ``guard``, ``middlewares`` after the
    guard's. Call inside a running loop.

    Callers still pass ``allow_redirects=False`` (aiohttp has no session-wide default);
    should a redirect be followed anyway, the middleware checks each hop's URL and the
    resolver each hop's addresses.
    """

    async def check_each_request(
        request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        guard.check_url(request.url)
        return await handler(request)

    connector = aiohttp.TCPConnector(
        limit=limit,
        resolver=_GuardedResolver(guard),
        # The cache holds only answers the resolver already filtered, so it cannot
        # reopen the rebinding gap; a short TTL still re-checks a changed answer soon.
        ttl_dns_cache=DNS_TTL,
    )
    return aiohttp.ClientSession(
        connector=connector,
        trust_env=False,  # no proxies or .netrc credentials from the environment
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=True,
        middlewares=(check_each_request, *middlewares),
    )


def refusal(error: BaseException) -> DestinationRefused | None:
    """The DestinationRefused behind an exception from ``session.request(...)``, else None.

    With aiohttp 3.14 the refusal arrives unwrapped; wrapped forms (``os_error`` of a
    ClientConnectorError, ``__cause__``/``__context__`` chains) are searched as well.
    """
    pending: list[Any] = [error]
    seen: set[int] = set()
    while pending:
        exc = pending.pop()
        if exc is None or id(exc) in seen:
            continue
        seen.add(id(exc))
        if isinstance(exc, DestinationRefused):
            return exc
        pending += [getattr(exc, "os_error", None), exc.__cause__, exc.__context__]
    return None
