"""A quick hand-run measure of deliveries per second for one worker process.

    .venv/bin/python bench/quick_delivery.py [--triggers 2000] [--fanout 1] [--delay 0]

Starts its own API and worker (database prefix ``bench_<random>``) against the running
local services, a receiver on 127.0.0.1, then sends triggers in batches of 100 and times
first trigger → last request received. Also times a bare aiohttp client sending the same
number of requests to the same receiver at concurrency 64: the raw ceiling.
The real benchmark (all scenarios, JSON output) is the performance issue's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import httpx
import pymongo
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Counter:
    def __init__(self, delay: float) -> None:
        self.count = 0
        self.last = 0.0
        self.delay = delay

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        if self.delay:
            await asyncio.sleep(self.delay)
        self.count += 1
        self.last = time.perf_counter()
        return web.Response(text="ok")


async def start_receiver(counter: Counter) -> tuple[web.AppRunner, int]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", counter.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, port


async def raw_ceiling(url: str, total: int, concurrency: int = 64) -> float:
    async with aiohttp.ClientSession() as session:
        queue = iter(range(total))

        async def worker() -> None:
            for _ in queue:
                async with session.post(url, data=b'{"caller": "1"}') as response:
                    await response.read()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return total / (time.perf_counter() - started)


def gql(url: str, key: str, query: str, tenant: str | None = None, **variables: object) -> dict:
    headers = {"Authorization": f"Bearer {key}"}
    if tenant:
        headers["X-Tenant"] = tenant
    reply = httpx.post(url, json={"query": query, "variables": variables}, headers=headers,
                       timeout=60).json()
    assert not reply.get("errors"), reply["errors"]
    return reply["data"]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--triggers", type=int, default=2000)
    parser.add_argument("--fanout", type=int, default=1)
    parser.add_argument("--delay", type=float, default=0.0, help="receiver delay, seconds")
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()

    counter = Counter(args.delay)
    runner, port = await start_receiver(counter)
    database = f"bench_{secrets.token_hex(3)}"
    env = {**os.environ, "EVENT_MANAGER_DATABASE": database,
           "EVENT_MANAGER_OUTBOUND_ALLOW": "127.0.0.0/8", "EVENT_MANAGER_LOG_LEVEL": "WARNING"}
    api_port = free_port()
    cli = [sys.executable, "-m", "event_manager"]
    logs = Path(tempfile.mkdtemp(prefix="bench-"))
    print(f"logs in {logs}")
    api = subprocess.Popen([*cli, "serve", "--port", str(api_port)], env=env,
                           stdout=(logs / "api.log").open("w"), stderr=subprocess.STDOUT)
    worker = subprocess.Popen([*cli, "worker", "--threads", str(args.threads)], env=env,
                              stdout=(logs / "worker.log").open("w"), stderr=subprocess.STDOUT)
    try:
        key = subprocess.run([*cli, "create-key", "--role", "SYSTEM_ADMIN", "--label", "bench"],
                             env=env, capture_output=True, text=True, check=True
                             ).stdout.strip().splitlines()[-1]
        url = f"http://127.0.0.1:{api_port}/graphql"
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{api_port}/healthz")
                break
            except httpx.HTTPError:
                await asyncio.sleep(0.1)
        gql(url, key, 'mutation { createTenant(code: "bench", name: "bench") { code } '
                      'setEventManagerEnabled(code: "bench", enabled: true) { code } }')
        ids = [gql(url, key, "mutation($n: String!, $u: String!) { createAction(input: "
                             '{name: $n, url: $u, bodyType: RAW, rawBody: "{\\"caller\\": '
                             '\\"{{caller_id}}\\"}", rawContentType: "application/json"}) '
                             "{ id } }", "bench", n=f"a{i}", u=f"http://127.0.0.1:{port}/h")
               ["createAction"]["id"] for i in range(args.fanout)]
        gql(url, key, "mutation($ids: [ID!]) { updateEvent(type: HANGUP, input: {active: true, "
                      "actionIds: $ids}) { type } updateSettings(input: {actionsEnabled: true}) "
                      "{ timezone } }", "bench", ids=ids)
        await asyncio.sleep(2)  # let the worker boot
        expected = args.triggers * args.fanout
        started = time.perf_counter()
        sent = 0
        while sent < args.triggers:
            batch = min(100, args.triggers - sent)
            await asyncio.to_thread(
                gql, url, key, "mutation($i: [TriggerInput!]!) { triggerEvents(inputs: $i) "
                "{ accepted } }", "bench", i=[{"event": "HANGUP", "params": {"caller_id": "1"}}]
                * batch)
            sent += batch
        intake = time.perf_counter() - started
        deadline = time.perf_counter() + 600
        while counter.count < expected and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        delivered, elapsed = counter.count, counter.last - started
        ceiling = await raw_ceiling(f"http://127.0.0.1:{port}/h", min(expected, 5000))
        print(f"triggers={args.triggers} fanout={args.fanout} receiver_delay={args.delay}s "
              f"threads={args.threads}")
        print(f"  intake: {args.triggers / intake:,.0f} triggers/s through triggerEvents")
        print(f"  delivered {delivered} of {expected} in {elapsed:.2f} s: "
              f"{delivered / elapsed:,.0f} deliveries/s")
        print(f"  raw aiohttp ceiling (concurrency 64): {ceiling:,.0f} requests/s")
    finally:
        worker.terminate()
        api.terminate()
        worker.wait(30)
        api.wait(30)
        await runner.cleanup()
        client = pymongo.MongoClient(env.get("EVENT_MANAGER_MONGODB_URL",
                                             "mongodb://127.0.0.1:27017"))
        for suffix in ("_system", "_tenants"):
            client.drop_database(database + suffix)


if __name__ == "__main__":
    asyncio.run(main())
