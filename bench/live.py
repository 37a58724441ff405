"""Live fan-out under load (issue 14, item 5), run by hand:

    .venv/bin/python -m bench.live [--connections 10] [--subscriptions 100] [--rows 100]
                                   [--batch 100] [--stalled 0] [--no-worker] [--paced]

Starts its own API and worker (database prefix ``bench_<random>``) against the running
local services, and an in-process receiver that answers 200. One VIEWER key opens
``--connections`` WebSockets with ``--subscriptions`` activity subscriptions each, all
read as fast as this process can; ``--stalled`` more connections subscribe
``--stalled-subscriptions`` times each and never read. Then a PBX key sends ``--rows``
triggers (one action each) through ``triggerEvents`` in batches of ``--batch`` (with
``--paced``, each batch once the readers have the last one's rows), while a TENANT_ADMIN
key asks ``{ me { role } }`` every 50 ms.

Prints: the trigger calls' time; the other client's quiet latency (median of 20 before)
and its worst latency meanwhile; the API's RSS before the subscriptions, with them, at its
peak, and at the end; the messages the subscribers received; how the stalled connections
ended (close code and reason). The API runs with the limits raised where the scenario
needs more than their defaults (``EVENT_MANAGER_LIVE_*``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench import probes
from bench.stack import Stack

QUERY = "subscription { activity { id triggerId status event source message createdAt } }"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def receiver() -> tuple[web.AppRunner, str]:
    async def ok(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}/hook"


async def open_connection(url: str, key: str, subscriptions: int,
                          max_queue: int | None = 64) -> ClientConnection:
    ws = await connect(url, subprotocols=["graphql-transport-ws"], max_queue=max_queue,
                       open_timeout=30, max_size=None, ping_interval=None)
    await ws.send(json.dumps({"type": "connection_init",
                              "payload": {"Authorization": f"Bearer {key}"}}))
    ack = json.loads(await ws.recv())
    assert ack["type"] == "connection_ack", ack
    for n in range(subscriptions):
        await ws.send(json.dumps({"id": str(n), "type": "subscribe",
                                  "payload": {"query": QUERY}}))
    return ws


async def read_all(ws: ClientConnection, counts: dict[str, Any]) -> None:
    try:
        async for message in ws:
            counts["messages"] += 1
            if '"type":"error"' in message or '"errors"' in message:
                counts["errors"] += 1
                counts["last_error"] = message[:300]
    except ConnectionClosed as closed:
        counts["closed"].append((closed.rcvd.code, closed.rcvd.reason) if closed.rcvd else None)


async def drain(ws: ClientConnection, counts: dict[str, Any]) -> None:
    async for _ in ws:
        counts["messages"] += 1


async def run(args: argparse.Namespace) -> dict[str, Any]:
    logs = Path(tempfile.mkdtemp(prefix="bench-live-"))
    stalled = args.stalled * args.stalled_subscriptions
    limits = {} if args.default_limits else {
        "live_connections_per_key": args.connections + args.stalled + 5,
        "live_connections_per_tenant": args.connections + args.stalled + 5,
        "live_subscriptions_per_key": args.connections * args.subscriptions + stalled + 5,
        "live_subscriptions_per_tenant": args.connections * args.subscriptions + stalled + 5,
        "live_subscriptions_per_connection": max(args.subscriptions,
                                                 args.stalled_subscriptions, 1),
    }
    stack = Stack(logs=logs, overrides=limits)
    stack.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600))
    runner, hook = await receiver()
    result: dict[str, Any] = {"logs": str(logs)}
    try:
        await stack.start_api(free_port())
        if args.worker:
            await stack.start_worker()
        tenant = await stack.make_tenant("live", [hook])
        made = await stack.gql('mutation { createApiKey(role: VIEWER, label: "live", '
                               'tenant: "live") { key } }')
        viewer = made["createApiKey"]["key"]
        api_pid = stack.api.pid if stack.api else 0
        rss = lambda: probes.memory_kb(api_pid).get("VmRSS", 0) // 1024  # noqa: E731
        result["rss_mb_start"] = rss()

        async def me() -> float:
            started = time.perf_counter()
            await stack.gql("{ me { role } }", key=tenant.admin_key, timeout=600)
            return time.perf_counter() - started

        quiet = [await me() for _ in range(20)]
        result["quiet_latency_ms"] = round(statistics.median(quiet) * 1000, 1)

        url = stack.api_url.replace("http://", "ws://") + "/graphql"
        counts: dict[str, Any] = {"messages": 0, "errors": 0, "closed": []}
        conns = [await open_connection(url, viewer, args.subscriptions)
                 for _ in range(args.connections)]
        readers = [asyncio.create_task(read_all(ws, counts)) for ws in conns]
        stalled_counts: dict[str, Any] = {"messages": 0, "errors": 0, "closed": []}
        stalled = [await open_connection(url, viewer, args.stalled_subscriptions, max_queue=1)
                   for _ in range(args.stalled)]
        await asyncio.sleep(2)  # no "subscribed" acknowledgement: let them settle
        result["subscription_errors"] = counts["errors"]
        result["rss_mb_subscribed"] = rss()

        peak = [result["rss_mb_subscribed"]]
        samples: list[int] = []
        worst = [0.0]
        done = asyncio.Event()

        async def sample() -> None:
            while not done.is_set():
                samples.append(rss())
                peak[0] = max(peak[0], samples[-1])
                await asyncio.sleep(0.2)

        async def prober() -> None:
            while not done.is_set():
                worst[0] = max(worst[0], await me())
                await asyncio.sleep(0.05)

        watchers = [asyncio.create_task(sample()), asyncio.create_task(prober())]
        try:
            await triggers(stack, tenant, args, result, counts)
        finally:
            done.set()
            await asyncio.gather(*watchers, return_exceptions=True)
        result["other_client_worst_ms"] = round(worst[0] * 1000, 1)
        result["rss_mb_peak"] = peak[0]
        half = len(samples) // 2  # flat: the second half's peak is the first half's
        result["rss_mb_peak_halves"] = (max(samples[:half], default=0),
                                        max(samples[half:], default=0))
        result["rss_mb_end"] = rss()
        result["closed_readers"] = counts["closed"][:3]
        for ws in stalled:  # read at last: what was on the wire, then the close frame
            with contextlib.suppress(TimeoutError, ConnectionClosed):
                await asyncio.wait_for(drain(ws, stalled_counts), 30)
            code = ws.close_code
            stalled_counts["closed"].append((code, ws.close_reason) if code else "open")
        result["stalled_messages_before_close"] = stalled_counts["messages"]
        result["stalled"] = stalled_counts["closed"][:3]
        for ws in [*conns, *stalled]:
            ws.transport.abort()
        for task in readers:
            task.cancel()
    finally:
        await runner.cleanup()
        await stack.close()
    return result


async def triggers(stack: Stack, tenant: Any, args: argparse.Namespace,
                   result: dict[str, Any], counts: dict[str, Any]) -> None:
    """The triggers, then a wait until the subscribers got every row's messages."""
    started = time.perf_counter()
    calls = []
    for first in range(0, args.rows, args.batch):
        size = min(args.batch, args.rows - first)
        inputs = [{"event": "HANGUP", "params": {"call_id": f"c{first + i}",
                                                 "seq": first + i, "sent": 0}}
                  for i in range(size)]
        t0 = time.perf_counter()
        await stack.gql("mutation($i: [TriggerInput!]!) { triggerEvents(inputs: $i) "
                        "{ accepted } }", key=tenant.key, timeout=600, i=inputs)
        calls.append(time.perf_counter() - t0)
        # --paced: the next batch waits until the readers have this one's QUEUED rows
        while args.paced and counts["messages"] < (first + size) * args.connections \
                * args.subscriptions and time.monotonic() - t0 < args.drain_timeout:
            await asyncio.sleep(0.05)
    result["trigger_s_total"] = round(time.perf_counter() - started, 2)
    result["trigger_s_max_call"] = round(max(calls), 2)
    per_row = 3 if args.worker else 1  # QUEUED, SENDING, SUCCEEDED
    expected = args.rows * per_row * args.connections * args.subscriptions
    deadline = time.monotonic() + args.drain_timeout
    while counts["messages"] < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    result["drained_s"] = round(time.perf_counter() - started, 1)
    result["messages"] = f"{counts['messages']:,} of {expected:,}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--subscriptions", type=int, default=100)
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--stalled", type=int, default=0)
    parser.add_argument("--stalled-subscriptions", type=int, default=1)
    parser.add_argument("--drain-timeout", type=float, default=300)
    parser.add_argument("--no-worker", dest="worker", action="store_false")
    parser.add_argument("--default-limits", action="store_true",
                        help="keep the API's default live limits (else raised to fit)")
    parser.add_argument("--paced", action="store_true",
                        help="send each batch once the readers have the last one's rows")
    result = asyncio.run(run(parser.parse_args()))
    for name, value in result.items():
        print(f"{name}: {value}")


if __name__ == "__main__":
    main()
