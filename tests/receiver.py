"""A real webhook receiver on 127.0.0.1 for tests, in a thread of its own.

It records every request as it arrived (raw path and query, raw headers, body bytes) and
answers from a script per path: ``receiver.script("/x", Reply(503), Reply(503))`` answers
503 twice, then the default 200. ``receiver.echo("/e/")`` makes every path under ``/e/``
answer with what its request carried, as a careless endpoint's error page does.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from dataclasses import dataclass, field

from aiohttp import web


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: str = "ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    raw_path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes
    at: float

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        assert len(values) <= 1, f"{name} sent {len(values)} times"
        return values[0] if values else None


class Receiver:
    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        """A server context: the receiver answers https (``url``) with its certificate."""
        self.requests: list[Received] = []
        self.scripts: dict[str, list[Reply]] = {}
        self.echoes: set[str] = set()
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: web.AppRunner | None = None
        self.port = 0

    def start(self) -> Receiver:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    async def _start(self) -> None:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=self.tls)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def stop(self) -> None:
        if self.runner is not None:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def script(self, path: str, *replies: Reply) -> None:
        with self.lock:
            self.scripts[path] = list(replies)

    def echo(self, prefix: str) -> None:
        with self.lock:
            self.echoes.add(prefix)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        received = Received(
            method=request.method, path=request.path, raw_path=request.raw_path,
            query=request.raw_path.partition("?")[2],
            headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers],
            body=body, at=time.monotonic(),
        )
        with self.lock:
            self.requests.append(received)
            script = self.scripts.get(request.path)
            reply = script.pop(0) if script else Reply()
            if any(request.path.startswith(prefix) for prefix in self.echoes):
                reply = Reply(body="\n".join([
                    f"{request.method} {request.raw_path}", body.decode("utf-8", "replace"),
                    *(f"{k}: {v}" for k, v in received.headers)]))
        if reply.delay:
            await asyncio.sleep(reply.delay)
        return web.Response(status=reply.status, text=reply.body, headers=reply.headers)

    def received(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def wait_for(self, path: str, count: int = 1, timeout: float = 30.0) -> list[Received]:
        """The first ``count`` requests to ``path``, waiting for them up to ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.received(path)
            if len(found) >= count:
                return found
            time.sleep(0.02)
        raise AssertionError(f"{path}: {len(self.received(path))} of {count} requests arrived")
