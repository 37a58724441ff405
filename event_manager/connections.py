"""Limits on HTTP connections that must hold before the app sees a request.

uvicorn's httptools protocol reads a header section of any size and waits for it (and for
a body) for ever: a 256 MiB header was read whole, slow senders held connections for as
long as they liked. What uvicorn offers is used as it is (``limit_concurrency`` for the
total, ``timeout_keep_alive`` between requests); the rest needs the parser's bytes as
they arrive, which an ASGI middleware never sees, hence this small subclass of
``HttpToolsProtocol`` that ``event-manager serve`` passes as ``http=``:

- A header section (request line and headers) over ``max_header_bytes`` is answered 431
  as soon as that many bytes arrived without its end (httptools would keep the rest in
  memory), or when it ends over the limit.
- It must arrive within ``header_timeout`` of the connection or of the request's first
  byte, else 408 and the connection is closed: a connection that says nothing, or one
  that sends a header line a second, is dropped after 10 s by default.
- A body must arrive within ``body_timeout`` plus one second per ``body_min_rate`` bytes
  received (Apache's mod_reqtimeout rule): with the defaults, 10 s for the first bytes
  and then at least 16 KiB/s; a body read slowly by the app itself does not count.
- At most ``max_connections_per_client`` open HTTP connections per client address; the
  next one is answered 503 and closed. A WebSocket leaves the count once upgraded.

Every refusal is the contract's JSON error with ``Connection: close``. The body's size is
the app's to check (``event_manager/app.py``): it knows the declared length and answers
413 without reading.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from event_manager.config import Settings

log = logging.getLogger("event_manager.api")

LINGER = 2.0
"""Seconds a refused connection still drops what arrives before it is closed."""


@dataclass(frozen=True)
class HttpLimits:
    """What one connection may take: ``HttpLimits.of(settings)``."""

    max_header_bytes: int = 32 * 1024
    header_timeout: float = 10.0
    body_timeout: float = 10.0
    body_min_rate: int = 16 * 1024
    max_connections_per_client: int = 256
    """0: no limit (behind a proxy every client has the proxy's address)."""

    @classmethod
    def of(cls, settings: Settings) -> HttpLimits:
        return cls(settings.http_max_header_bytes, settings.http_header_timeout,
                   settings.http_body_timeout, settings.http_body_min_rate,
                   settings.http_max_connections_per_client)


class HeadersTooLarge(Exception):
    """Raised in a parser callback to stop reading a header section over the limit."""


def refusal(status: HTTPStatus, message: str) -> bytes:
    """A whole HTTP response: the contract's error shape, and the connection closes."""
    body = json.dumps({"errors": [{"message": message,
                                   "extensions": {"code": "BAD_USER_INPUT"}}]}).encode()
    return (f"HTTP/1.1 {status.value} {status.phrase}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode() + body


class LimitedHttpProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` under ``limits``; make one class per server with
    ``limited_http_protocol`` (the per-client counts are the class's)."""

    limits = HttpLimits()
    clients: Counter[str] = Counter()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.counted: str | None = None  # the client address this connection counts for
        self.reading_headers = True
        self.header_bytes = 0  # bytes received since the request's first byte
        self.header_size = 0  # request line and headers as parsed
        self.too_many_header_bytes = False
        self.lingering = False
        self.header_timer: asyncio.TimerHandle | None = None
        self.body_timer: asyncio.TimerHandle | None = None
        self.body_deadline = 0.0

    # --- Connections per client ----------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        address = self.client[0] if self.client else ""
        limit = self.limits.max_connections_per_client
        if limit and self.clients[address] >= limit:
            self.refuse(HTTPStatus.SERVICE_UNAVAILABLE,
                        f"more than {limit} connections from one address")
            return
        self.clients[address] += 1
        self.counted = address
        self.arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self.stop()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self) -> None:
        self.stop()
        super().handle_websocket_upgrade()

    def stop(self) -> None:
        """No timer left and no count held: the connection is gone, or is a WebSocket's."""
        for timer in (self.header_timer, self.body_timer):
            if timer is not None:
                timer.cancel()
        self.header_timer = self.body_timer = None
        if self.counted is not None:
            self.clients[self.counted] -= 1
            if self.clients[self.counted] <= 0:
                del self.clients[self.counted]
            self.counted = None

    def refuse(self, status: HTTPStatus, message: str) -> None:
        """Answer, then close gently: the client is likely still sending, and closing a
        socket with unread data resets it, which can destroy the answer on its way.
        Our side is shut after the answer and what still arrives is dropped for up to
        ``LINGER`` seconds (nginx's lingering close)."""
        log.info("HTTP %s to %s: %s", status.value, self.client, message)
        self.stop()
        if not (self.lingering or self.transport.is_closing()):
            self.transport.write(refusal(status, message))
            self.linger()

    def linger(self) -> None:
        """Shut our side after what was written; drop what arrives, then close."""
        self.lingering = True
        self.flow.resume_reading()
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(LINGER, self.transport.close)
        else:
            self.transport.close()

    def on_response_complete(self) -> None:
        """Answered before the body ended (413, or refused for another reason): the rest
        of the body is not read, the connection ends (uvicorn would read it all)."""
        if self.cycle is not None and self.cycle.more_body and not self.lingering:
            self.stop()
            self.linger()
        super().on_response_complete()

    # --- The header section ----------------------------------------------------------

    def arm_header_timer(self) -> None:
        if self.header_timer is None:
            self.header_timer = self.loop.call_later(self.limits.header_timeout,
                                                     self.header_timed_out)

    def header_timed_out(self) -> None:
        self.header_timer = None
        if not self.reading_headers:
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self.arm_header_timer()  # a pipelined request waits for the one before it
            return
        self.refuse(HTTPStatus.REQUEST_TIMEOUT,
                    f"the request's headers did not arrive within {self.limits.header_timeout:g} s")

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            return
        super().data_received(data)
        if self.reading_headers and not self.transport.is_closing():
            self.header_bytes += len(data)
            if self.header_bytes > self.limits.max_header_bytes:
                self.refuse(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, self.too_large())

    def too_large(self) -> str:
        return f"the request's headers are larger than {self.limits.max_header_bytes} bytes"

    def send_400_response(self, msg: str) -> None:
        """httptools turns an exception raised in a callback into a parse error, which
        uvicorn answers 400: the refusal chosen in the callback is sent instead."""
        if not self.too_many_header_bytes:
            super().send_400_response(msg)
        else:
            self.refuse(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, self.too_large())

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.reading_headers, self.header_bytes, self.header_size = True, 0, 0
        self.arm_header_timer()

    def on_url(self, url: bytes) -> None:
        self.count_header(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.count_header(len(name) + len(value) + 4)  # ": " and CRLF
        super().on_header(name, value)

    def count_header(self, size: int) -> None:
        self.header_size += size
        if self.header_size > self.limits.max_header_bytes:
            self.too_many_header_bytes = True
            raise HeadersTooLarge

    def on_headers_complete(self) -> None:
        self.reading_headers = False
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None
        if not (self.parser.should_upgrade() and self._should_upgrade()):
            self.body_deadline = self.loop.time() + self.limits.body_timeout
            self.body_timer = self.loop.call_at(self.body_deadline, self.body_timed_out)
        super().on_headers_complete()

    # --- The body ------------------------------------------------------------------------

    def on_body(self, body: bytes) -> None:
        self.body_deadline += len(body) / self.limits.body_min_rate
        super().on_body(body)

    def on_message_complete(self) -> None:
        if self.body_timer is not None:
            self.body_timer.cancel()
            self.body_timer = None
        super().on_message_complete()

    def body_timed_out(self) -> None:
        """At the deadline: put it off while the app is the one not reading (uvicorn
        pauses reading above 64 KiB unread) or while the client kept the rate; else
        the request ends for the app as a disconnection."""
        self.body_timer = None
        now = self.loop.time()
        if self.flow.read_paused:
            self.body_deadline = max(self.body_deadline, now + self.limits.body_timeout)
        if now < self.body_deadline:
            self.body_timer = self.loop.call_at(self.body_deadline, self.body_timed_out)
            return
        cycle = self.cycle
        message = (f"the request's body came slower than {self.limits.body_min_rate} bytes/s "
                   f"after the first {self.limits.body_timeout:g} s")
        if cycle is not None and cycle.response_started:
            log.info("HTTP connection of %s closed: %s", self.client, message)
            self.transport.close()
        else:
            self.refuse(HTTPStatus.REQUEST_TIMEOUT, message)
        if cycle is not None:
            cycle.disconnected = True  # what the app sends from now on goes nowhere
            cycle.message_event.set()


def limited_http_protocol(limits: HttpLimits) -> type[LimitedHttpProtocol]:
    """A protocol class for one server: its own limits and its own per-client counts."""
    return type("LimitedHttpProtocol", (LimitedHttpProtocol,),
                {"limits": limits, "clients": Counter()})
