"""RabbitMQ as the broker (``EVENT_MANAGER_BROKER_URL=amqp://…``), with a real node.

The module runs a RabbitMQ node of its own from Debian's rabbitmq-server, which is
installed with apt-get when missing (a failed install skips the module, or fails it under
CI=true). The node listens on 127.0.0.1 only, on free ports (AMQP, Erlang distribution
and an epmd of its own), keeps its data, logs and config in a temporary folder, runs no
plugins, and has one user with a password. An API process and a worker process use it,
with databases of their own; live activity still travels over the local Redis.

Recovery waits 10 minutes here, so every delivery these tests see, retries included, went
through RabbitMQ's queues. At the end the node and its epmd are stopped, and a check
makes sure that nothing they started is left running.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pika
import pika.exceptions
import pytest
from cryptography.fernet import Fernet

from event_manager.config import Settings, environment
from tests.collector import CONSUMER, Collector, Span
from tests.conftest import (
    CLI,
    ROOT,
    RUN_ID,
    Client,
    TenantHandle,
    free_port,
    make_tenant,
    run_cli,
    wait_until,
)
from tests.receiver import Receiver, Reply
from tests.test_delivery import hook, settled, trigger
from tests.test_tracing import API, WORKER, trace_ids

pytestmark = pytest.mark.rabbitmq

SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
"""The node itself; ``/usr/sbin/rabbitmq-server`` would switch to the rabbitmq user."""

USER = "event-manager"


class Unavailable(Exception):
    """Raised when rabbitmq-server is missing and apt-get cannot install it."""


def installed_rabbitmq() -> tuple[Path, str]:
    """The rabbitmq-server script and epmd, installing Debian's package when missing."""
    if not SERVER.exists():
        apt = shutil.which("apt-get")
        if apt is None:
            raise Unavailable("rabbitmq-server is not installed, and there is no apt-get")
        install = [apt, "install", "-y", "rabbitmq-server"]
        result = quietly(install)
        if result.returncode != 0:  # perhaps a stale package list
            quietly([apt, "update"])
            result = quietly(install)
        if result.returncode != 0 or not SERVER.exists():
            lines = result.stderr.strip().splitlines() or ["no output"]
            raise Unavailable(f"'apt-get install -y rabbitmq-server' failed: {lines[-1]}")
    epmd = shutil.which("epmd") or next(
        (str(path) for path in Path("/usr/lib/erlang").glob("erts-*/bin/epmd")), None)
    if epmd is None:
        raise Unavailable("rabbitmq-server is installed but Erlang's epmd is missing")
    return SERVER, epmd


def quietly(command: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        return subprocess.run(command, env=env, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Unavailable(f"{' '.join(command[:2])} failed: {exc}") from None


def left_running(session: int) -> list[str]:
    """The processes of a session (``start_new_session``) still running, zombies aside."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name, fields = text[text.index("(") + 1:text.rindex(")")], text[text.rindex(")") + 2:]
        state, _, _, sid = fields.split()[:4]
        if int(sid) == session and state != "Z":
            found.append(f"{stat.parent.name} {name}")
    return found


def stop_process(process: subprocess.Popen[bytes], grace: float = 60.0) -> list[str]:
    """SIGTERM, then SIGKILL to its whole session after ``grace`` seconds; what was left.
    The session's other processes (a worker's forked children) get the rest of the grace
    to exit after their parent did: they may still be closing their clients then."""
    deadline = time.monotonic() + grace
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    left = left_running(process.pid)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = left_running(process.pid)
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)
    return left


def spawn(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(command, env=env, cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)


@dataclass
class RabbitNode:
    """A RabbitMQ node of this module's own. ``stop`` and ``start`` keep its data."""

    server: Path
    epmd: str
    root: Path
    name: str = field(default_factory=lambda: f"em{secrets.token_hex(4)}@localhost")
    password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    port: int = field(default_factory=free_port)
    dist_port: int = field(default_factory=free_port)
    epmd_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    epmd_process: subprocess.Popen[bytes] | None = None
    left: list[str] = field(default_factory=list)
    """Processes found running after they were stopped (and then killed)."""

    def __post_init__(self) -> None:
        (self.root / "rabbitmq.conf").write_text(
            f"default_user = {USER}\ndefault_pass = {self.password}\n")
        (self.root / "enabled_plugins").write_text("[].\n")  # no management plugin
        (self.root / "rabbitmq-env.conf").write_text("")  # not /etc/rabbitmq's

    @property
    def url(self) -> str:
        return f"amqp://{USER}:{self.password}@127.0.0.1:{self.port}/"

    @property
    def log(self) -> Path:
        return self.root / "node.log"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "HOME": str(self.root),  # the Erlang cookie goes here, not in the user's home
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_MNESIA_BASE": str(self.root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.root / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.root / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.root / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.root / "enabled_plugins"),
            "RABBITMQ_CONF_ENV_FILE": str(self.root / "rabbitmq-env.conf"),
            "RABBITMQ_PID_FILE": str(self.root / "rabbitmq.pid"),
        }

    def start(self) -> None:
        """Start the node (and first its epmd) and wait until it takes AMQP logins."""
        if self.epmd_process is None:
            self.epmd_process = spawn([self.epmd, "-port", str(self.epmd_port), "-address",
                                       "127.0.0.1"], self.env(), self.root / "epmd.log")
        self.process = spawn([str(self.server)], self.env(), self.log)
        wait_until(self.accepts, timeout=120, interval=0.2)

    def accepts(self) -> bool:
        assert self.process is not None and self.process.poll() is None, (
            f"RabbitMQ exited:\n{self.log.read_text(errors='replace')[-3000:]}")
        parameters = pika.URLParameters(self.url)
        parameters.connection_attempts, parameters.socket_timeout = 1, 2
        try:
            pika.BlockingConnection(parameters).close()
        except (pika.exceptions.AMQPError, OSError):
            return False  # not listening yet, or the user is not made yet
        return True

    def stop(self) -> None:
        """Stop the node with SIGTERM: the script passes it to the Erlang VM and waits
        while RabbitMQ shuts down cleanly."""
        process, self.process = self.process, None
        if process is not None:
            self.left += stop_process(process)

    @contextmanager
    def stopped(self) -> Iterator[None]:
        """The node down for the block; up again after it, whatever the block did."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    def close(self) -> None:
        self.stop()
        if self.epmd_process is not None:
            self.left += stop_process(self.epmd_process, grace=10)


@pytest.fixture(scope="module")
def rabbitmq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitNode]:
    try:
        server, epmd = installed_rabbitmq()
    except Unavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"the RabbitMQ tests need Debian's rabbitmq-server: {exc}")
        pytest.skip(f"RabbitMQ tests skipped: {exc}")
    node = RabbitNode(server, epmd, tmp_path_factory.mktemp("rabbitmq"))
    try:
        node.start()
        yield node
    finally:
        node.close()
    assert not node.left, f"left running after RabbitMQ stopped: {node.left}"


@dataclass
class Stack:
    settings: Settings
    env: dict[str, str]
    api_url: str
    system: Client
    worker: subprocess.Popen[bytes]
    worker_log: Path
    api_log: Path


@pytest.fixture(scope="module")
def stack(rabbitmq: RabbitNode, mongo: Any, redis_client: Any, collector: Collector,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """An API process and a worker process with RabbitMQ as their broker, exporting
    traces to ``collector``."""
    root = tmp_path_factory.mktemp("rabbitmq-stack")
    settings = Settings(database=f"emrmq_{RUN_ID}", broker_url=rabbitmq.url,
                        state_dir=root / "state", retry_schedule="0.5,0.5",
                        outbound_allow="127.0.0.0/8", recovery_seconds=600,
                        secret_key=Fernet.generate_key().decode(), worker_metrics_port=0)
    env = {**os.environ, **environment(settings)}
    port = free_port()
    traced = {**env, "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
              "OTEL_BSP_SCHEDULE_DELAY": "100"}
    api = spawn([*CLI, "serve", "--port", str(port)], traced, root / "api.log")
    worker = spawn([*CLI, "worker", "--threads", "2"], traced, root / "worker.log")
    try:
        api_url = f"http://127.0.0.1:{port}"
        wait_until(lambda: answers(api, f"{api_url}/healthz", root / "api.log"), timeout=60)
        wait_until(lambda: ready(worker, root / "worker.log"), timeout=90)
        key = run_cli(env, "create-key", "--role", "SYSTEM_ADMIN", "--label", "rabbitmq")
        yield Stack(settings, env, api_url, Client(api_url, key.stdout.strip().splitlines()[-1]),
                    worker, root / "worker.log", root / "api.log")
    finally:
        left = stop_process(worker) + stop_process(api)
        for name in (settings.system_database, settings.tenant_database):
            mongo.drop_database(name)
    assert not left, f"left running after the API and worker stopped: {left}"


def answers(process: subprocess.Popen[bytes], url: str, log: Path) -> bool:
    assert process.poll() is None, f"the API exited:\n{log.read_text()}"
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def ready(worker: subprocess.Popen[bytes], log: Path) -> bool:
    output = log.read_text(errors="replace")
    assert worker.poll() is None, f"the worker exited:\n{output}"
    return "delivery clients open" in output and "ready for action" in output


@pytest.fixture
def tenant(stack: Stack, mongo: Any) -> TenantHandle:
    """A fresh, enabled tenant of the RabbitMQ stack."""
    return make_tenant(stack.system, mongo, stack.settings)


def readyz(stack: Stack) -> httpx.Response:
    return httpx.get(f"{stack.api_url}/readyz", timeout=30)


def test_answered_call_reaches_the_receiver_through_rabbitmq(tenant: TenantHandle,
                                                             receiver: Receiver) -> None:
    tenant.admin('mutation { createParameter(input: {tag: "team", value: "support"}) '
                 '{ tag } }').data
    hook(tenant, receiver, "crm", event="ANSWERED_CALL", bodyType="RAW",
         rawContentType="application/json",
         rawBody='{"caller": "{{caller_id}}", "took": {{duration}}, "team": "{{team}}"}')

    accepted = trigger(tenant, "ANSWERED_CALL", caller_id="+38761111222", duration=42)

    assert [a["status"] for a in accepted["activities"]] == ["QUEUED"]
    [row] = settled(tenant, accepted["triggerId"])
    assert (row["status"], row["attempts"], row["httpStatus"]) == ("SUCCEEDED", 1, 200)
    [request] = receiver.received(f"/{tenant.code}/crm")
    assert request.method == "POST" and request.header("content-type") == "application/json"
    assert json.loads(request.body) == {"caller": "+38761111222", "took": 42, "team": "support"}


def test_503_then_200_succeeds_on_the_second_attempt(tenant: TenantHandle,
                                                     receiver: Receiver) -> None:
    """The retry is a delayed message: RabbitMQ's delay queue, then the worker's queue."""
    path = f"/{tenant.code}/flaky"
    receiver.script(path, Reply(503))
    hook(tenant, receiver, "flaky", bodyType="RAW", rawContentType="application/json",
         rawBody='{"call": "{{call_id}}"}')

    [row] = settled(tenant, trigger(tenant, "HANGUP", call_id="c-1")["triggerId"])

    assert (row["status"], row["attempts"], row["httpStatus"]) == ("SUCCEEDED", 2, 200)
    assert [json.loads(r.body) for r in receiver.received(path)] == [{"call": "c-1"}] * 2


def test_a_delivery_through_rabbitmq_is_in_its_triggers_trace(
        tenant: TenantHandle, receiver: Receiver, collector: Collector) -> None:
    """The trace context crosses RabbitMQ as it crosses Redis: each attempt, the retry
    through the delay queue included, is a child of the API's triggerEvent span."""
    path = f"/{tenant.code}/traced"
    receiver.script(path, Reply(503))
    hook(tenant, receiver, "traced")
    trigger_id = trigger(tenant, "HANGUP")["triggerId"]
    [row] = settled(tenant, trigger_id)
    assert (row["status"], row["attempts"]) == ("SUCCEEDED", 2)
    [trace_id] = trace_ids(tenant, trigger_id)

    def complete() -> list[Span]:
        spans = collector.of_trace(trace_id)
        attempts = [s for s in spans if s.service == WORKER and s.kind == CONSUMER]
        resolving = [s for s in spans if s.name == "GraphQL Resolving: triggerEvent"]
        return spans if len(attempts) == 2 and resolving else []

    spans = wait_until(complete, 30, "the trigger's and both attempts' spans exported")
    [resolver] = [s for s in spans if s.service == API
                  and s.name == "GraphQL Resolving: triggerEvent"]
    attempts = [s for s in spans if s.service == WORKER and s.kind == CONSUMER]
    assert {s.parent_id for s in attempts} == {resolver.span_id}
    assert sorted(s.attributes["event_manager.status"] for s in attempts) == [
        "RETRYING", "SUCCEEDED"]
    assert [(r.header("traceparent") or "").split("-")[1] for r in receiver.received(path)
            ] == [trace_id, trace_id]


def test_readyz_names_the_broker_while_rabbitmq_is_down(stack: Stack,
                                                       rabbitmq: RabbitNode) -> None:
    up = readyz(stack)
    assert (up.status_code, up.json()) == (200, {"status": "ready"})

    with rabbitmq.stopped():
        down = wait_until(lambda: (r := readyz(stack)).status_code == 503 and r)
        assert down.json()["status"] == "unavailable"
        assert set(down.json()["failing"]) == {"broker"}

    wait_until(lambda: readyz(stack).status_code == 200)


def test_trigger_while_rabbitmq_is_down_is_unavailable_and_records_nothing(
        stack: Stack, tenant: TenantHandle, receiver: Receiver, rabbitmq: RabbitNode) -> None:
    hook(tenant, receiver, "down")

    with rabbitmq.stopped():
        reply = tenant.admin('mutation { triggerEvent(input: {event: HANGUP}) { triggerId } }')

    assert reply.code == "UNAVAILABLE"
    assert tenant.collection("activity").count_documents({}) == 0
    assert receiver.received(f"/{tenant.code}/down") == []
    log = stack.api_log.read_text()
    assert "WARNING event_manager.api: could not queue 1 deliveries: " in log
    assert "Traceback" not in log  # one line for the outage, not pika's dozen


def test_worker_delivers_after_rabbitmq_restarts(stack: Stack, tenant: TenantHandle,
                                                 receiver: Receiver,
                                                 rabbitmq: RabbitNode) -> None:
    hook(tenant, receiver, "restart", bodyType="RAW", rawContentType="application/json",
         rawBody='{"call": "{{call_id}}"}')
    [before] = settled(tenant, trigger(tenant, "HANGUP", call_id="before")["triggerId"])
    assert before["status"] == "SUCCEEDED"  # the API and the worker hold connections now
    lost = stack.worker_log.read_text().count("Consumer encountered a connection error")

    with rabbitmq.stopped():
        wait_until(lambda: stack.worker_log.read_text().count(
            "Consumer encountered a connection error") > lost)  # the worker saw it go

    after = trigger(tenant, "HANGUP", call_id="after")
    [row] = settled(tenant, after["triggerId"], timeout=60)
    assert (row["status"], row["attempts"]) == ("SUCCEEDED", 1)
    assert [json.loads(r.body)["call"] for r in receiver.received(
        f"/{tenant.code}/restart")] == ["before", "after"]
    assert stack.worker.poll() is None, "the worker exited"


def test_worker_command_refuses_to_start_on_a_wrong_password(stack: Stack,
                                                             rabbitmq: RabbitNode) -> None:
    wrong = rabbitmq.url.replace(rabbitmq.password, "not-the-password")
    env = {**stack.env, "EVENT_MANAGER_BROKER_URL": wrong}

    result = run_cli(env, "worker", check=False)

    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith(f"event-manager: the broker at amqp://{USER}:********@127.0.0.1:")
    assert "ACCESS_REFUSED" in line and "not-the-password" not in line
