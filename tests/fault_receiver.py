"""A misbehaving webhook receiver on 127.0.0.1 for the fault suite and the soak script.

The first path segment chooses how it behaves; the rest of the path and the ``call``
query value name one delivery (one action of one trigger), so every request is counted
against the delivery it belongs to:

    /ok/<tenant>/<action>?call=<call id>        200 at once
    /slow/...      200 after ``slow_seconds`` (requests stay in flight for a while)
    /hang/...      never answers in time: sleeps ``hang_seconds``, beyond any action timeout
    /reset/...     first request: the connection is reset unanswered; later ones: 200
    /flaky/...     first request: 503; later ones: 200
    /limited/...   first request: 429 with ``Retry-After: 1``; later ones: 200
    /down/...      always 500
    /gone/...      always 404

A request counts as *delivered* when the receiver took it in to answer 2xx, even if the
sender went away before reading the answer: a third party would have acted on it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Self

from aiohttp import web

MODES = ("ok", "slow", "hang", "reset", "flaky", "limited", "down", "gone")


@dataclass
class Receipt:
    key: tuple[str, str]
    """(path, call id): one delivery."""
    mode: str
    number: int
    """1 for the delivery's first request, 2 for its second, ..."""
    started: float
    """time.monotonic() when the request arrived."""
    status: int | None
    """What the receiver answers; None when it hangs or resets the connection."""
    ended: float | None = None

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status <= 299


class ThreadedReceiver:
    """An aiohttp server on 127.0.0.1 (a free port) with an event loop in a thread of its
    own, for tests that send from other threads. Subclasses add their routes."""

    name = "receiver"

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                       name=self.name)
        self.runner: web.AppRunner | None = None
        self.port = 0

    def routes(self, router: web.UrlDispatcher) -> None:
        raise NotImplementedError

    def start(self) -> Self:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    async def _start(self) -> None:
        app = web.Application()
        self.routes(app.router)
        # Hanging handlers must not hold up the end of the run.
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    async def _stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
        hanging = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in hanging:
            task.cancel()
        await asyncio.gather(*hanging, return_exceptions=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class FaultReceiver(ThreadedReceiver):
    name = "fault-receiver"

    def __init__(self, slow_seconds: float = 1.5, hang_seconds: float = 20.0) -> None:
        super().__init__()
        self.slow_seconds = slow_seconds
        self.hang_seconds = hang_seconds
        self.receipts: list[Receipt] = []
        self.counts: Counter[tuple[str, str]] = Counter()

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_route("*", "/{tail:.*}", self._handle)

    def _reply(self, mode: str, number: int) -> int | None:
        if mode in ("ok", "slow"):
            return 200
        if mode in ("hang", "reset") and (mode == "hang" or number == 1):
            return None
        if mode in ("reset", "flaky", "limited"):
            return {"flaky": 503, "limited": 429}.get(mode, 200) if number == 1 else 200
        return {"down": 500, "gone": 404}[mode]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        mode = request.path.strip("/").partition("/")[0]
        if mode not in MODES:
            return web.Response(status=400, text=f"unknown mode {mode!r}")
        key = (request.path, request.query.get("call", ""))
        with self.lock:
            self.counts[key] += 1
            receipt = Receipt(key, mode, self.counts[key], time.monotonic(),
                              self._reply(mode, self.counts[key]))
            self.receipts.append(receipt)
        try:
            if mode == "hang":
                await asyncio.sleep(self.hang_seconds)
            elif mode == "slow":
                await asyncio.sleep(self.slow_seconds)
            if receipt.status is None:  # a reset, or the end of a hang: never an answer
                if request.transport is not None:  # None: the sender gave up already
                    request.transport.abort()
                return web.Response(status=500)  # not sent: the connection is gone
            headers = {"Retry-After": "1"} if receipt.status == 429 else {}
            return web.Response(status=receipt.status, text="ok", headers=headers)
        finally:
            receipt.ended = time.monotonic()

    # what arrived -----------------------------------------------------------

    def snapshot(self) -> list[Receipt]:
        with self.lock:
            return list(self.receipts)

    def in_flight(self) -> int:
        """Requests taken in and not answered yet."""
        with self.lock:
            return sum(1 for r in self.receipts if r.ended is None)

    def total(self) -> int:
        with self.lock:
            return len(self.receipts)
