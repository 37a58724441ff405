"""The system under test: the local services, an API process and a worker process of
the bench's own (database prefix ``bench_<random>``), and a GraphQL client.

The services (FerretDB, Redis) are shared with whoever else uses this machine:
``event-manager services start`` reuses them when they already listen, and the bench
leaves them running. What the bench made (its two databases, its queue in Redis) is
removed by ``close()``.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pymongo
import redis
from cryptography.fernet import Fernet

from bench import probes
from event_manager.config import Settings, environment

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "event_manager"]
EVENT = "HANGUP"
ACTION_BODY = '{"seq": "{{seq}}", "sent": "{{sent}}", "caller": "{{caller_id}}"}'
"""What every bench action sends: ``seq`` and ``sent`` come from the trigger's params
(extra params are tags too), so the receiver can spot duplicates and time arrivals."""


class GraphQLError(RuntimeError):
    """Raised when the API answers a bench call with errors."""


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, grace: float = 60.0) -> None:
        """SIGTERM, then SIGKILL to the process group (Dramatiq forks its workers)."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(10)


@dataclass
class Tenant:
    code: str
    key: str
    """A PBX key of the tenant: what triggers come with."""
    admin_key: str
    action_ids: list[str]


@dataclass
class Stack:
    logs: Path
    worker_threads: int | None = None
    """``--threads`` of the worker; None keeps the command's default."""
    settings: Settings = field(init=False)
    api: Process | None = None
    worker: Process | None = None
    api_url: str = ""
    key: str = ""
    http: aiohttp.ClientSession | None = None
    started: int = 0

    def __post_init__(self) -> None:
        self.settings = Settings(database=f"bench_{secrets.token_hex(3)}",
                                 outbound_allow="127.0.0.0/8",
                                 secret_key=Fernet.generate_key().decode())
        self.logs.mkdir(parents=True, exist_ok=True)

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, **environment(self.settings), "PYTHONPATH": str(ROOT)}

    # processes ------------------------------------------------------------------

    def start_services(self) -> None:
        done = subprocess.run([*CLI, "services", "start"], cwd=ROOT, capture_output=True,
                              text=True, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"event-manager services start failed: {done.stderr.strip()}")

    def _spawn(self, name: str, *args: str) -> Process:
        self.started += 1
        log = self.logs / f"{name}-{self.started}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen([*CLI, *args], env=self.env, cwd=ROOT, stdout=out,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        return Process(name, popen, log)

    async def start_api(self, port: int) -> None:
        self.api = self._spawn("api", "serve", "--port", str(port))
        self.api_url = f"http://127.0.0.1:{port}"
        await self._wait(self.api, f"{self.api_url}/healthz")
        if not self.key:
            made = await asyncio.to_thread(
                subprocess.run, [*CLI, "create-key", "--role", "SYSTEM_ADMIN", "--label", "bench"],
                env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=120)
            if made.returncode != 0:
                raise RuntimeError(f"create-key failed: {made.stderr.strip()}")
            self.key = made.stdout.strip().splitlines()[-1]

    async def start_worker(self) -> None:
        """One worker process (``event-manager worker``: 1 process, its default threads)."""
        threads = [] if self.worker_threads is None else ["--threads", str(self.worker_threads)]
        self.worker = self._spawn("worker", "worker", *threads)
        await self._wait(self.worker, None, "delivery clients open")

    async def _wait(self, process: Process, url: str | None, line: str = "",
                    timeout: float = 90.0) -> None:
        assert self.http is not None
        deadline = time.monotonic() + timeout
        while True:
            if process.popen.poll() is not None:
                raise RuntimeError(f"the {process.name} exited at start:\n{process.output()}")
            if url is not None:
                try:
                    async with self.http.get(url) as reply:
                        if reply.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
            elif line in process.output():
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the {process.name} did not start in {timeout:.0f} s")
            await asyncio.sleep(0.1)

    def worker_pid(self) -> int:
        """The forked worker process (where deliveries run), else the main one."""
        assert self.worker is not None
        return max(probes.children(self.worker.pid), default=self.worker.pid)

    def pids(self) -> dict[str, int]:
        """The processes whose CPU time a result reports, by name."""
        found = {"bench": os.getpid()}
        if self.api is not None:
            found["api"] = self.api.pid
        if self.worker is not None:
            found["worker"] = self.worker_pid()
        for name, url in (("ferretdb", self.settings.mongodb_url),
                          ("redis", self.settings.redis_url)):
            pid = probes.listening_pid(int(url.rsplit(":", 1)[1].split("/")[0]))
            if pid is not None:
                found[name] = pid
        return found

    # GraphQL ------------------------------------------------------------------------

    async def gql(self, query: str, key: str | None = None, tenant: str | None = None,
                  timeout: float | None = None, **variables: Any) -> dict[str, Any]:
        """The data of a GraphQL call (``timeout`` seconds, else the session's 120)."""
        assert self.http is not None
        headers = {"Authorization": f"Bearer {key or self.key}"}
        if tenant:
            headers["X-Tenant"] = tenant
        limit = aiohttp.ClientTimeout(total=timeout) if timeout else None
        async with self.http.post(f"{self.api_url}/graphql", headers=headers, timeout=limit,
                                  json={"query": query, "variables": variables}) as reply:
            body = await reply.json(content_type=None)
        if body.get("errors"):
            raise GraphQLError(str(body["errors"])[:500])
        return body["data"]

    async def make_tenant(self, code: str, urls: list[str],
                          signing_secret: str | None = None) -> Tenant:
        """An enabled tenant whose HANGUP event sends one action per URL, each signing its
        requests with ``signing_secret`` when one is given."""
        await self.gql('mutation($c: String!) { createTenant(code: $c, name: $c) { code } '
                       'setEventManagerEnabled(code: $c, enabled: true) { code } }', c=code)
        ids = []
        for i, url in enumerate(urls):
            made = await self.gql(
                "mutation($i: ActionInput!) { createAction(input: $i) { id } }", tenant=code,
                i={"name": f"bench {i}", "url": url, "bodyType": "RAW",
                   "rawContentType": "application/json", "rawBody": ACTION_BODY,
                   **({"signingSecret": signing_secret} if signing_secret else {})})
            ids.append(made["createAction"]["id"])
        await self.gql("mutation($ids: [ID!]) { updateEvent(type: HANGUP, input: {active: true, "
                       "actionIds: $ids}) { type } updateSettings(input: {actionsEnabled: true}) "
                       "{ timezone } }", tenant=code, ids=ids)
        keys = await self.gql(
            'mutation($t: String) { pbx: createApiKey(role: PBX, label: "bench", tenant: $t) '
            '{ key } admin: createApiKey(role: TENANT_ADMIN, label: "bench", tenant: $t) '
            '{ key } }', t=code)
        return Tenant(code, keys["pbx"]["key"], keys["admin"]["key"], ids)

    # storage --------------------------------------------------------------------

    def mongo(self) -> pymongo.MongoClient:
        return pymongo.MongoClient(self.settings.mongodb_url, tz_aware=True)

    def activity(self, client: pymongo.MongoClient, code: str) -> Any:
        return client[self.settings.tenant_database][f"t_{code}_activity"]

    def purge_queue(self) -> int:
        """Drop the bench's messages from Redis (its queue keys carry the prefix)."""
        client = redis.Redis.from_url(self.settings.broker_url)
        try:
            keys = list(client.scan_iter(f"*{self.settings.database}*", count=1000))
            if keys:
                client.delete(*keys)
            return len(keys)
        finally:
            client.close()

    async def close(self) -> None:
        for process in (self.worker, self.api):
            if process is not None:
                await asyncio.to_thread(process.stop)
        if self.http is not None:
            await self.http.close()
        with self.mongo() as client:
            for name in (self.settings.system_database, self.settings.tenant_database):
                client.drop_database(name)
        self.purge_queue()
