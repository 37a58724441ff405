"""Where a delivery's request goes out, and which certificates it trusts.

- **The operator's HTTP proxy** (``EVENT_MANAGER_OUTBOUND_PROXY``): every request goes
  through it (``CONNECT`` for https, the absolute URL for http), except those to a host
  of ``EVENT_MANAGER_OUTBOUND_NO_PROXY``, which go straight. The outbound guard still
  judges the destination, not the proxy: before a request leaves through the proxy, its
  host's addresses are resolved here and every one must pass the guard (the proxy may
  pick any of them); a name that does not resolve here is refused, since it could not be
  judged. Answers are kept ``DNS_TTL`` seconds, as the straight session keeps its own.
  The proxied session's connections go only to the proxy: its resolver answers for the
  proxy's host and nothing else, so nothing reaches another address by mistake.
- **Private CAs**: ``EVENT_MANAGER_OUTBOUND_CA_FILE`` (PEM) is trusted besides the
  system's certificates, for every request; an action's own ``caCertificate`` is trusted
  besides those for that action's requests only. Contexts are made once per certificate
  and kept (``MAX_CONTEXTS``, the least recently used dropped first).
"""

from __future__ import annotations

import hashlib
import ipaddress
import socket
import ssl
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from dispatch.guard import DNS_TTL, DestinationRefused, OutboundGuard, create_session
from event_manager import tracing
from event_manager.config import Settings

MAX_CONTEXTS = 256
"""TLS contexts kept for actions' own CA certificates, one per distinct certificate."""
DNS_ENTRIES = 1024
"""Hosts whose answers ``Destinations`` keeps at most."""


@dataclass(frozen=True)
class NoProxy:
    """``EVENT_MANAGER_OUTBOUND_NO_PROXY``: hosts that go straight. ``*`` is every host;
    ``example.com`` (or ``.example.com``) is that domain and its subdomains; an address
    or a CIDR (``10.0.0.0/8``) is the addresses written in the URL."""

    everything: bool = False
    domains: tuple[str, ...] = ()
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def parse(cls, value: str) -> NoProxy:
        domains, networks, everything = [], [], False
        for part in (p.strip().lower() for p in value.split(",")):
            if not part:
                continue
            if part == "*":
                everything = True
                continue
            try:
                networks.append(ipaddress.ip_network(part.strip("[]"), strict=False))
            except ValueError:
                domains.append(part.lstrip("."))
        return cls(everything, tuple(domains), tuple(networks))

    def matches(self, host: str) -> bool:
        host = host.lower().rstrip(".").strip("[]")
        if self.everything:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return any(host == d or host.endswith("." + d) for d in self.domains)
        return any(address in network for network in self.networks)


class _OnlyTheProxy(AbstractResolver):
    """The proxied session's resolver: the proxy's host, and nothing else."""

    def __init__(self, proxy_host: str) -> None:
        self._host = proxy_host
        self._inner = aiohttp.DefaultResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        if host != self._host:
            raise DestinationRefused(f"{host} was to be reached straight from the proxied "
                                     "session, which reaches only the proxy")
        return await self._inner.resolve(host, port, family)

    async def close(self) -> None:
        await self._inner.close()


class Destinations:
    """The addresses of proxied requests' hosts, as resolved here, each answer kept for
    ``ttl`` seconds (as the straight session's ``ttl_dns_cache``) and at most ``size`` of
    them (the oldest dropped first); a failure is not kept. The guard judges the
    addresses on every request, so what is kept is only what DNS said."""

    def __init__(self, ttl: float = DNS_TTL, size: int = DNS_ENTRIES) -> None:
        self.ttl, self.size = ttl, size
        self._resolver: AbstractResolver | None = None
        self._answers: OrderedDict[str, tuple[float, list[str]]] = OrderedDict()

    async def addresses(self, host: str) -> list[str]:
        kept = self._answers.get(host)
        if kept is not None and kept[0] > time.monotonic():
            return kept[1]
        if self._resolver is None:
            self._resolver = aiohttp.DefaultResolver()
        try:
            answers = await self._resolver.resolve(host, 0, socket.AF_UNSPEC)
        except OSError as exc:
            raise DestinationRefused(
                f"{host} does not resolve here ({exc}), so it cannot be checked before it "
                "is sent through the proxy") from None
        found = [answer["host"] for answer in answers]
        self._answers.pop(host, None)
        self._answers[host] = (time.monotonic() + self.ttl, found)
        while len(self._answers) > self.size:
            self._answers.popitem(last=False)
        return found

    async def close(self) -> None:
        if self._resolver is not None:
            await self._resolver.close()


async def check_through_proxy(guard: OutboundGuard, url: URL,
                              destinations: Destinations) -> None:
    """The destination of a request that leaves through the proxy: every address its
    host resolves to here (looked up in ``destinations``) passes the guard (an address
    written in the URL is checked as it is)."""
    guard.check_url(url)
    host = (url.raw_host or "").strip("[]")
    try:
        ipaddress.ip_address(host)
        return  # checked by check_url
    except ValueError:
        pass
    for address in await destinations.addresses(host):
        guard.check_address(address)


def proxied_session(guard: OutboundGuard, proxy: URL, destinations: Destinations, *,
                    limit: int, middlewares: Sequence[aiohttp.ClientMiddlewareType] = (),
                    ) -> aiohttp.ClientSession:
    """A session that reaches only ``proxy``, each request's destination checked first
    (its host's addresses looked up in ``destinations``), then ``middlewares``."""

    async def check_destination(request: aiohttp.ClientRequest,
                                handler: aiohttp.ClientHandlerType) -> aiohttp.ClientResponse:
        await check_through_proxy(guard, request.url, destinations)
        return await handler(request)

    connector = aiohttp.TCPConnector(
        limit=limit, resolver=_OnlyTheProxy(proxy.raw_host or ""),
        ttl_dns_cache=DNS_TTL)
    return aiohttp.ClientSession(connector=connector, trust_env=False,
                                 cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=True,
                                 middlewares=(check_destination, *middlewares))


def trusting(ca_file: str = "", ca_pem: str = "") -> ssl.SSLContext:
    """A client TLS context trusting the system's CAs, ``ca_file``'s and ``ca_pem``."""
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    if ca_pem:
        context.load_verify_locations(cadata=ca_pem)
    return context


@dataclass
class Egress:
    """The worker's outbound sessions (straight, and through the proxy when there is
    one) and TLS contexts."""

    guard: OutboundGuard
    proxy: URL | None = None
    no_proxy: NoProxy = field(default_factory=NoProxy)
    ca_file: str = ""
    limit: int = 1000
    trace_context: bool = True
    """Whether requests carry the trace context when tracing (``event_manager.tracing``)."""
    direct: aiohttp.ClientSession = field(init=False)
    proxied: aiohttp.ClientSession | None = field(init=False)
    base: ssl.SSLContext | bool = field(init=False)
    """The context of requests without a CA of their own: True (aiohttp's default) when
    no CA file is set."""
    contexts: OrderedDict[str, ssl.SSLContext] = field(init=False, default_factory=OrderedDict)
    destinations: Destinations = field(init=False, default_factory=Destinations)
    """Proxied requests' hosts as resolved here, for the guard."""

    @classmethod
    def of(cls, guard: OutboundGuard, settings: Settings, limit: int) -> Egress:
        """Call inside a running loop (it makes the sessions)."""
        return cls(guard, URL(settings.outbound_proxy) if settings.outbound_proxy else None,
                   NoProxy.parse(settings.outbound_no_proxy), settings.outbound_ca_file,
                   limit, settings.outbound_trace_context)

    def __post_init__(self) -> None:
        kept_in = (() if self.trace_context or not tracing.enabled()
                   else (tracing.without_trace_context,))
        self.direct = create_session(self.guard, limit=self.limit, middlewares=kept_in)
        self.proxied = (proxied_session(self.guard, self.proxy, self.destinations,
                                        limit=self.limit, middlewares=kept_in)
                        if self.proxy is not None else None)
        self.base = trusting(self.ca_file) if self.ca_file else True

    def route(self, url: URL) -> tuple[aiohttp.ClientSession, URL | None]:
        """The session a request to ``url`` goes by, and the proxy it goes through."""
        if self.proxied is None or self.no_proxy.matches(url.raw_host or ""):
            return self.direct, None
        return self.proxied, self.proxy

    def ssl_for(self, ca_pem: str | None) -> ssl.SSLContext | bool:
        """The TLS context of an action's requests: with its own CA, if it has one."""
        if not ca_pem:
            return self.base
        key = hashlib.sha256(ca_pem.encode()).hexdigest()
        context = self.contexts.get(key)
        if context is None:
            context = self.contexts[key] = trusting(self.ca_file, ca_pem)
            while len(self.contexts) > MAX_CONTEXTS:
                self.contexts.popitem(last=False)
        self.contexts.move_to_end(key)
        return context

    async def close(self) -> None:
        await self.direct.close()
        if self.proxied is not None:
            await self.proxied.close()
        await self.destinations.close()
