"""The system under test: the local services, an API process and a worker process of
the bench's own (database prefix ``bench_<random>``), and a GraphQL client.

The API and the worker run as ``event-manager up`` runs them: ``event-manager serve``
and ``event-manager worker`` with the default settings and log level, except what
``up`` sets itself (``EVENT_MANAGER_OUTBOUND_ALLOW=127.0.0.0/8``) and what keeps the
bench apart from others on the machine (its database prefix, and a secret key of its
own instead of one generated into the state folder). The bench's own ``EVENT_MANAGER_*``
variables are not passed on, but for where the services are (``SERVICE_ADDRESSES``).

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
from event_manager.config import Settings, env_name

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "event_manager"]
EVENT = "HANGUP"
ACTION_BODY = '{"seq": "{{seq}}", "sent": "{{sent}}", "caller": "{{caller_id}}"}'
"""What every bench action sends: ``seq`` and ``sent`` come from the trigger's params
(extra params are tags too), so the receiver can spot duplicates and time arrivals."""


SERVICE_ADDRESSES = ("mongodb_url", "broker_url", "redis_url")
"""Settings read from the bench's environment when set there: where the services
listen, which says nothing of how the service behaves."""
PREFIX = env_name("")


class UpSettings(Settings):
    """Settings made of the values given and the defaults alone: unlike ``Settings()``,
    the environment of whoever runs the bench is not read."""

    @classmethod
    def settings_customise_sources(cls, settings_cls: Any, init_settings: Any,
                                   **others: Any) -> tuple[Any, ...]:
        return (init_settings,)


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
    worker_processes: int = 1
    """``--processes`` of the worker (``up`` starts one)."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """Settings by field name that differ from the defaults beyond what ``up`` sets
    (``{"live_send_queue": 10}``): none in ``python -m bench``'s scenarios."""
    settings: Settings = field(init=False)
    api: Process | None = None
    worker: Process | None = None
    api_url: str = ""
    key: str = ""
    http: aiohttp.ClientSession | None = None
    started: int = 0

    def __post_init__(self) -> None:
        addresses = {name: os.environ[env_name(name)] for name in SERVICE_ADDRESSES
                     if os.environ.get(env_name(name))}
        self.settings = UpSettings(**{**addresses, "database": f"bench_{secrets.token_hex(3)}",
                                      "outbound_allow": "127.0.0.0/8",
                                      "secret_key": Fernet.generate_key().decode(),
                                      **self.overrides})
        self.logs.mkdir(parents=True, exist_ok=True)

    @property
    def changed_settings(self) -> dict[str, str]:
        """The variables that differ from the defaults, as the processes get them (the
        secret key's value hidden): ``{"EVENT_MANAGER_DATABASE": "bench_1a2b3c", …}``."""
        return {env_name(name): "<generated>" if name == "secret_key" else str(value)
                for name, value in self.settings.model_dump(exclude_defaults=True).items()}

    @property
    def env(self) -> dict[str, str]:
        """The bench's environment without its ``EVENT_MANAGER_*`` variables, with the
        changed settings only: whatever is not set is the service's default."""
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
        changed = {env_name(name): str(value) for name, value
                   in self.settings.model_dump(exclude_defaults=True).items()}
        return {**inherited, **changed, "PYTHONPATH": str(ROOT)}

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
        """``event-manager worker``: ``worker_processes`` processes (``--processes``, only
        when not 1) of the command's default threads unless ``worker_threads``; ready
        once each process has opened its delivery clients."""
        args = [] if self.worker_threads is None else ["--threads", str(self.worker_threads)]
        if self.worker_processes != 1:
            args += ["--processes", str(self.worker_processes)]
        self.worker = self._spawn("worker", "worker", *args)
        await self._wait(self.worker, None, "delivery clients open", times=self.worker_processes)

    async def restart_worker(self, processes: int) -> None:
        """Stop the worker (its deliveries in flight end first) and start it again with
        ``processes`` processes; nothing is done when it already runs that many."""
        if self.worker is not None and self.worker.popen.poll() is None \
                and processes == self.worker_processes:
            return
        if self.worker is not None:
            await asyncio.to_thread(self.worker.stop)
        self.worker_processes = processes
        await self.start_worker()

    async def _wait(self, process: Process, url: str | None, line: str = "",
                    timeout: float = 90.0, times: int = 1) -> None:
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
            elif process.output().count(line) >= times:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the {process.name} did not start in {timeout:.0f} s")
            await asyncio.sleep(0.1)

    def worker_pid(self) -> int:
        """A forked worker process that sends first attempts (the last forked of
        several; the retry processes, ``dispatch.roles``, run at a higher nice value),
        else the main one: what a profile or a memory reading looks at."""
        assert self.worker is not None
        main = probes.nice(self.worker.pid)
        return max((pid for pid in probes.children(self.worker.pid)
                    if probes.nice(pid) == main), default=self.worker.pid)

    def pids(self) -> dict[str, int]:
        """The processes whose CPU time a result reports, by name; ``probes.CpuMeter``
        reads each with its descendants (all of Dramatiq's processes under ``worker``),
        but ``bench``, this process alone."""
        found = {"bench": os.getpid()}
        if self.api is not None:
            found["api"] = self.api.pid
        if self.worker is not None:
            found["worker"] = self.worker.pid
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
        return client[self.settings.tenant_database_of(code)][f"t_{code}_activity"]

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
            for name in (self.settings.system_database, *self.settings.tenant_database_names):
                client.drop_database(name)
        self.purge_queue()
