"""The bench's webhook receiver: aiohttp in a process of its own, so that answering
requests takes no CPU time from the loop that measures.

    .venv/bin/python -m bench.receiver --port 8123

Every request is answered ``200 ok`` (``?status=503``: that status instead), after
``?delay_ms=`` milliseconds (none by default).
The receiver counts what arrives and, when the JSON body carries ``"sent"`` (the sender's
``time.monotonic_ns()``, a clock that every process on one Linux machine shares), how
long the request took to arrive. A body's ``"seq"`` with the path names a delivery, so a
delivery that arrives twice is counted once in ``unique``. ``peak_in_flight`` counts
requests inside the handler at once (with a delay, the sender's concurrency; without,
about 1), ``connections`` the client connections they came on.

``GET /_bench/stats`` reports (``?latencies=1`` adds every ``[seq, µs]``);
``POST /_bench/reset`` starts afresh. ``Receiver`` starts and asks it from the bench.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
KEEPALIVE = 2.0
"""Seconds a bench client keeps an idle connection: less than uvicorn's 5 s, so that
the client never sends on a connection the server is closing (ServerDisconnectedError)."""


@dataclass
class Tally:
    count: int = 0
    first_ns: int = 0
    last_ns: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    seen: set[tuple[str, str]] = field(default_factory=set)
    peers: set[Any] = field(default_factory=set)
    """Client (address, port) pairs: how many connections the requests came on."""
    latencies_us: list[tuple[int, int]] = field(default_factory=list)
    """(seq, µs) of each request that carried ``sent``, in order of arrival."""

    def arrived(self, path: str, body: bytes, at: int, peer: Any) -> None:
        self.count += 1
        self.peers.add(peer)
        self.first_ns = self.first_ns or at
        self.last_ns = at
        if not body.startswith(b"{"):
            return
        try:
            doc = json.loads(body)
        except ValueError:
            return
        seq = str(doc.get("seq", ""))
        if seq:
            self.seen.add((path, seq))
        sent = str(doc.get("sent", ""))
        if sent.isdigit():
            number = int(seq) if seq.lstrip("-").isdigit() else -1
            self.latencies_us.append((number, (at - int(sent)) // 1000))

    def report(self, latencies: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "count": self.count, "unique": len(self.seen), "first_ns": self.first_ns,
            "last_ns": self.last_ns, "in_flight": self.in_flight,
            "peak_in_flight": self.peak_in_flight, "latency_count": len(self.latencies_us),
            "connections": len(self.peers),
        }
        if latencies:
            out["latencies_us"] = self.latencies_us
        return out


def make_app() -> web.Application:
    tally = Tally()

    async def hook(request: web.Request) -> web.Response:
        tally.in_flight += 1
        tally.peak_in_flight = max(tally.peak_in_flight, tally.in_flight)
        try:
            body = await request.read()
            peer = request.transport.get_extra_info("peername") if request.transport else None
            tally.arrived(request.path, body, time.monotonic_ns(), peer)
            delay = request.query.get("delay_ms")
            if delay:
                await asyncio.sleep(int(delay) / 1000)
            return web.Response(text="ok", status=int(request.query.get("status", 200)))
        finally:
            tally.in_flight -= 1

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(tally.report("latencies" in request.query))

    async def reset(request: web.Request) -> web.Response:
        nonlocal tally
        tally = Tally()
        return web.json_response({"reset": True})

    app = web.Application(client_max_size=64 * 1024 * 1024)  # scenario 8's big bodies
    app.router.add_get("/_bench/stats", stats)
    app.router.add_post("/_bench/reset", reset)
    app.router.add_route("*", "/{tail:.*}", hook)
    return app


async def serve(port: int) -> None:
    runner = web.AppRunner(make_app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    try:
        import uvloop

        asyncio.Runner(loop_factory=uvloop.new_event_loop).run(serve(port))
    except ImportError:
        asyncio.run(serve(port))


class Receiver:
    """The receiver process, seen from the bench."""

    def __init__(self, port: int, log: Path) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        with log.open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bench.receiver", "--port", str(port)], cwd=ROOT,
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=60),
            connector=aiohttp.TCPConnector(limit=4, keepalive_timeout=KEEPALIVE))

    def url(self, path: str, delay_ms: int = 0, status: int = 200) -> str:
        query = "&".join(([f"delay_ms={delay_ms}"] if delay_ms else [])
                         + ([f"status={status}"] if status != 200 else []))
        return f"{self.base}/{path.lstrip('/')}" + (f"?{query}" if query else "")

    async def ready(self, timeout: float = 20.0) -> Receiver:
        deadline = time.monotonic() + timeout
        while True:
            try:
                await self.stats()
                return self
            except aiohttp.ClientError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the bench receiver did not start") from None
                await asyncio.sleep(0.1)

    async def stats(self, latencies: bool = False) -> dict[str, Any]:
        query = "?latencies=1" if latencies else ""
        async with self.session.get(f"{self.base}/_bench/stats{query}") as reply:
            return await reply.json()

    async def reset(self) -> None:
        async with self.session.post(f"{self.base}/_bench/reset") as reply:
            await reply.read()

    async def wait_for(self, count: int, timeout: float) -> dict[str, Any]:
        """Poll until ``count`` requests arrived or ``timeout`` seconds pass without one
        more arriving; the last stats either way."""
        progress_at, last = time.monotonic(), -1
        while True:
            stats = await self.stats()
            if stats["count"] >= count:
                return stats
            if stats["count"] != last:
                progress_at, last = time.monotonic(), stats["count"]
            elif time.monotonic() - progress_at > timeout:
                return stats
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        await self.session.close()
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


if __name__ == "__main__":
    main()
