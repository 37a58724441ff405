"""A real HTTP forward proxy on 127.0.0.1 for tests, in a thread of its own: ``CONNECT``
tunnels (https) and absolute-URL requests (http), one connection upstream per request,
each recorded with its ``Proxy-Authorization`` header."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass

from tests.support import free_port

HEAD_LIMIT = 64 * 1024


@dataclass(frozen=True)
class Passed:
    method: str
    target: str
    """``host:port`` of a CONNECT, the absolute URL of a plain request."""
    authorization: str | None


class ForwardProxy:
    def __init__(self) -> None:
        self.passed: list[Passed] = []
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: asyncio.Server | None = None
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ForwardProxy:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    async def _start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port,
                                                 limit=HEAD_LIMIT)

    def stop(self) -> None:
        async def close() -> None:
            if self.server is not None:
                self.server.close()
        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def targets(self) -> list[str]:
        with self.lock:
            return [p.target for p in self.passed]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ", 2)
        headers = [line for line in lines[1:] if line]
        authorization = next((h.split(":", 1)[1].strip() for h in headers
                              if h.lower().startswith("proxy-authorization:")), None)
        with self.lock:
            self.passed.append(Passed(method, target, authorization))
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
        else:
            scheme, _, rest = target.partition("://")
            authority, _, path = rest.partition("/")
            host, _, port = authority.rpartition(":")
            upstream_reader, upstream_writer = await asyncio.open_connection(
                host, int(port or 80))
            kept = [h for h in headers if not h.lower().startswith(("proxy-", "connection:"))]
            upstream_writer.write("\r\n".join(
                [f"{method} /{path} {version}", *kept, "Connection: close", "", ""]
            ).encode("latin-1"))
        await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()
