"""Load shapes and the raw ceiling.

``closed_loop`` keeps a fixed number of calls in flight (throughput at a concurrency);
``open_loop`` starts calls on a fixed schedule whatever the answers do (latency at a
rate, without the coordinated omission of waiting for one answer before the next
call). ``raw_ceiling`` is a bare aiohttp client sending the requests a delivery sends,
to the same receiver at the same concurrency: what this machine allows at best, and the
denominator of the delivery ratios.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from bench.receiver import KEEPALIVE

Call = Callable[[int], Awaitable[Any]]


async def closed_loop(call: Call, total: int, concurrency: int) -> tuple[float, list[float]]:
    """Run ``call(0) … call(total - 1)``, ``concurrency`` at a time: (seconds, each
    call's latency in ms)."""
    numbers = iter(range(total))
    latencies: list[float] = []

    async def lane() -> None:
        for i in numbers:
            started = time.perf_counter()
            await call(i)
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(min(concurrency, total))))
    return time.perf_counter() - started, latencies


@dataclass
class Paced:
    """What ``open_loop`` did."""

    rate: float
    """Calls started per second."""
    latencies: list[float]
    """Each call's latency in ms, successful calls only, in order of starting."""
    errors: int
    aborted: bool
    """True when more than ``max_outstanding`` calls were unanswered and it stopped."""


async def open_loop(call: Call, rate: float, duration: float,
                    max_outstanding: int | None = None) -> Paced:
    """Start ``call(i)`` every ``1/rate`` s for ``duration`` s, each as its own task.
    Stops early once ``max_outstanding`` calls wait for an answer: the rate is not kept,
    and piling up more only makes the drain longer."""
    total = max(1, round(rate * duration))
    latencies: dict[int, float] = {}
    errors = 0
    tasks: list[asyncio.Task[None]] = []
    outstanding = 0

    async def one(i: int) -> None:
        nonlocal errors, outstanding
        outstanding += 1
        started = time.perf_counter()
        try:
            await call(i)
            latencies[i] = (time.perf_counter() - started) * 1000
        except Exception:  # counted; a failed call has no latency
            errors += 1
        finally:
            outstanding -= 1

    aborted = False
    began = time.perf_counter()
    for i in range(total):
        delay = began + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if max_outstanding is not None and outstanding > max_outstanding:
            aborted = True
            break
        tasks.append(asyncio.create_task(one(i)))
    sending = time.perf_counter() - began
    await asyncio.gather(*tasks)
    started = len(tasks) / max(sending, 1e-6) if len(tasks) > 1 else rate
    return Paced(started, [latencies[i] for i in sorted(latencies)], errors, aborted)


def percentile(values: list[float], p: float) -> float | None:
    """The ``p``-th percentile (nearest rank), None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def summary_ms(values: list[float]) -> dict[str, float | None]:
    def rounded(v: float | None) -> float | None:
        return None if v is None else round(v, 2)

    return {"p50": rounded(percentile(values, 50)), "p95": rounded(percentile(values, 95)),
            "p99": rounded(percentile(values, 99)), "max": rounded(max(values, default=None)),
            "n": len(values)}


def delivery_body(seq: int) -> bytes:
    """What the bench's actions send (see ``bench.stack.ACTION_BODY``), rendered."""
    return json.dumps({"seq": str(seq), "sent": str(time.monotonic_ns()),
                       "caller": "+38761111222"}).encode()


async def raw_ceiling(url: str, total: int, concurrency: int) -> dict[str, Any]:
    """A bare aiohttp client POSTing delivery bodies to ``url``: requests/s."""
    connector = aiohttp.TCPConnector(limit=concurrency, keepalive_timeout=KEEPALIVE)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def post(i: int) -> None:
            async with session.post(url, data=delivery_body(i),
                                    headers={"Content-Type": "application/json"}) as reply:
                await reply.read()

        await closed_loop(post, min(total, concurrency), concurrency)  # open connections
        elapsed, latencies = await closed_loop(post, total, concurrency)
    return {"requests_per_s": round(total / elapsed, 1), "requests": total,
            "concurrency": concurrency, "latency_ms": summary_ms(latencies)}


async def raw_latency(url: str, rate: float, duration: float) -> dict[str, Any]:
    """A bare aiohttp client POSTing at ``rate``/s: the request's own latency, the floor
    under a delivery's end-to-end latency."""
    connector = aiohttp.TCPConnector(keepalive_timeout=KEEPALIVE)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def post(i: int) -> None:
            async with session.post(url, data=delivery_body(i),
                                    headers={"Content-Type": "application/json"}) as reply:
                await reply.read()

        paced = await open_loop(post, rate, duration)
    return {"rate": round(paced.rate, 1), "latency_ms": summary_ms(paced.latencies),
            "errors": paced.errors}
