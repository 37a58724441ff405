"""A whole installation in real processes, for breaking on purpose: its own FerretDB and
Redis (free ports, a temporary state folder, through ``event_manager.services``), an API
process and worker processes that can be killed, and a small GraphQL client.

Used by ``tests/test_faults.py`` and ``bench/soak.py``; nothing here touches the servers
that other test runs share.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from event_manager import services
from event_manager.config import Settings, environment
from event_manager.errors import ServiceError
from tests.reconcile import Sent
from tests.support import free_port, wait_until

CLI = [sys.executable, "-m", "event_manager"]
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL to the whole process group: Dramatiq's workers are forked children."""
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.popen.wait(10)

    def stop(self, grace: float = 40.0) -> None:
        if not self.alive():
            return
        self.popen.terminate()
        try:
            self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            self.kill()


@dataclass
class Cluster:
    root: Path
    """A temporary folder: server data, logs."""
    retry_schedule: str = "0.2,0.5,1"
    recovery_seconds: float = 2.0
    pause_after_failures: int = 0
    """Never pause an action by default (``dispatch.breaker``): the fault tests count
    every attempt of their dead receivers within a time budget; tests/test_breaker.py
    tests the pause."""
    echo: Callable[[str], None] = lambda line: None
    settings: Settings = field(init=False)
    api_url: str = ""
    key: str = ""
    workers: list[Process] = field(default_factory=list)
    started_workers: int = 0
    api: Process | None = None
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=60))

    def __post_init__(self) -> None:
        redis_url = f"redis://127.0.0.1:{free_port()}/0"
        self.settings = Settings(
            mongodb_url=f"mongodb://127.0.0.1:{free_port()}", redis_url=redis_url,
            broker_url=redis_url, state_dir=self.root / "state",
            database=f"faults_{secrets.token_hex(3)}", retry_schedule=self.retry_schedule,
            recovery_seconds=self.recovery_seconds, outbound_allow="127.0.0.0/8",
            pause_after_failures=self.pause_after_failures,
        )
        (self.root / "logs").mkdir(parents=True, exist_ok=True)

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, **environment(self.settings), "PYTHONPATH": str(ROOT)}

    # servers ------------------------------------------------------------------

    def _service(self, name: str) -> services.Service:
        return next(s for s in services._services(self.settings) if s.name == name)

    def start_services(self) -> None:
        services.start(self.settings, echo=self.echo)

    def stop_redis(self) -> None:
        self._service("redis").stop(self.echo)

    def start_redis(self) -> None:
        self._service("redis").start(self.echo)

    def stop_mongodb(self) -> None:
        self._service("ferretdb").stop(self.echo)

    def start_mongodb(self) -> None:
        self._service("ferretdb").start(self.echo)

    # processes ----------------------------------------------------------------

    def _spawn(self, name: str, *args: str) -> Process:
        log = self.root / "logs" / f"{name}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen([*CLI, *args], env=self.env, stdout=out,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     cwd=self.root, start_new_session=True)
        return Process(name, popen, log)

    def start_api(self) -> None:
        port = free_port()
        self.api = self._spawn("api", "serve", "--port", str(port))
        self.api_url = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            assert self.api is not None and self.api.alive(), self.api and self.api.output()
            try:
                return httpx.get(f"{self.api_url}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, 60, "the API answers /healthz", interval=0.2)
        if not self.key:
            made = subprocess.run([*CLI, "create-key", "--role", "SYSTEM_ADMIN", "--label",
                                   "faults"], env=self.env, capture_output=True, text=True,
                                  timeout=120, cwd=self.root)
            assert made.returncode == 0, made.stderr
            self.key = made.stdout.strip().splitlines()[-1]

    def start_worker(self, threads: int = 2) -> Process:
        self.started_workers += 1
        worker = self._spawn(f"worker{self.started_workers}", "worker", "--threads",
                             str(threads))
        self.workers.append(worker)

        def ready() -> bool:
            assert worker.alive(), worker.output()
            return "delivery clients open" in worker.output()

        wait_until(ready, 90, f"{worker.name} starts", interval=0.2)
        return worker

    def kill_worker(self, worker: Process) -> None:
        worker.kill()
        self.workers.remove(worker)

    def stop_worker(self, worker: Process) -> None:
        """One SIGTERM, as a process manager sends it, and wait for the exit."""
        worker.stop()
        self.workers.remove(worker)

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        if self.api is not None:
            self.api.stop()
        self.http.close()
        services.stop(self.settings, echo=self.echo)

    # GraphQL ------------------------------------------------------------------

    def gql(self, query: str, tenant: str | None = None, timeout: float = 60,
            http: httpx.Client | None = None, **variables: Any) -> dict[str, Any]:
        """The response body; errors are the caller's to look at. Threads pass an
        ``http`` client of their own."""
        headers = {"Authorization": f"Bearer {self.key}"}
        if tenant is not None:
            headers["X-Tenant"] = tenant
        response = (http or self.http).post(
            f"{self.api_url}/graphql", headers=headers, timeout=timeout,
            json={"query": query, "variables": variables})
        assert response.status_code == 200, response.text
        return response.json()

    def must(self, query: str, tenant: str | None = None, **variables: Any) -> dict[str, Any]:
        body = self.gql(query, tenant, **variables)
        assert not body.get("errors"), body["errors"]
        return body["data"]

    def make_tenant(self, code: str, actions: list[tuple[str, float]],
                    receiver_url: str) -> dict[str, str]:
        """A tenant whose Hangup sends every action; ``actions`` are (mode, timeout) pairs,
        each becoming ``<receiver>/<mode>/<tenant>/<n>?call={{call_id}}``.
        Returns action id → path."""
        self.must("mutation($c: String!) { createTenant(code: $c, name: $c) { code } }", c=code)
        self.must("mutation($c: String!) { setEventManagerEnabled(code: $c, enabled: true) "
                  "{ code } }", c=code)
        paths: dict[str, str] = {}
        for n, (mode, timeout) in enumerate(actions):
            path = f"/{mode}/{code}/{n}"
            made = self.must("mutation($i: ActionInput!) { createAction(input: $i) { id } }",
                             code, i={"name": f"{mode} {n}", "timeoutSeconds": timeout,
                                      "url": f"{receiver_url}{path}?call={{{{call_id}}}}"})
            paths[made["createAction"]["id"]] = path
        self.must("mutation($ids: [ID!]) { updateEvent(type: HANGUP, input: {active: true, "
                  "actionIds: $ids}) { type } }", code, ids=list(paths))
        self.must("mutation { updateSettings(input: {actionsEnabled: true}) "
                  "{ actionsEnabled } }", code)
        return paths

    def trigger(self, tenant: str, call_ids: list[str], timeout: float = 60,
                http: httpx.Client | None = None) -> list[Sent]:
        """Hangups with these call ids, in one ``triggerEvents`` batch; what the API said.

        A refusal (an error answer) refuses the whole batch. Not answering within
        ``timeout`` raises httpx.TimeoutException: a hang is never an answer."""
        inputs = [{"event": "HANGUP", "params": {"call_id": c}} for c in call_ids]
        body = self.gql("mutation($i: [TriggerInput!]!) { triggerEvents(inputs: $i) { "
                        "triggerId accepted reason activities { id status } } }", tenant,
                        timeout=timeout, http=http, i=inputs)
        if body.get("errors"):
            error = body["errors"][0]
            refusal = f"{error.get('extensions', {}).get('code')}: {error['message']}"
            return [Sent(tenant, c, accepted=False, refusal=refusal) for c in call_ids]
        sent = []
        for call_id, result in zip(call_ids, body["data"]["triggerEvents"], strict=True):
            assert result["accepted"], result["reason"]
            sent.append(Sent(tenant, call_id, accepted=True, trigger_id=result["triggerId"],
                             activity_ids=[a["id"] for a in result["activities"]]))
        return sent


@contextmanager
def running(root: Path, workers: int = 1) -> Iterator[Cluster]:
    """A ``Cluster`` in ``root`` with its servers, an API and ``workers`` worker
    processes, stopped on leaving. Without ferretdb or redis-server the test is skipped
    (failed under CI)."""
    import pytest

    try:
        services.ensure_ferretdb(echo=lambda line: None)
        services.ensure_redis(echo=lambda line: None)
    except ServiceError as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"this test needs ferretdb and redis-server: {exc}")
        pytest.skip(f"ferretdb or redis-server unavailable: {exc}")
    cluster = Cluster(root)
    try:
        cluster.start_services()
        cluster.start_api()
        for _ in range(workers):
            cluster.start_worker()
        yield cluster
    finally:
        cluster.stop()
