"""Fixtures: real services, a real API process over HTTP, a fresh tenant per test.

The MongoDB-compatible server and Redis must be up (the README's test command starts
them). Locally a missing service skips the tests that need it; under CI=true it fails.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pymongo
import pytest
import redis
from cryptography.fernet import Fernet

from dispatch.broker import ResilientRedisBroker, create_broker
from event_manager.config import Settings, environment
from tenants.vault import Vault, keys_from
from tests.support import (  # noqa: F401  (re-exported)
    CLI,
    api_process,
    free_port,
    last_logged_error,
    redis_server,
    stop,
    wait_until,
)

pytest_plugins = ("tests.browser",)
"""The ``browser`` fixture (headless Chromium), for the tests that drive pages."""

RUN_ID = secrets.token_hex(3)
TEST_DATABASE = f"emtest_{RUN_ID}"


def service_missing(what: str) -> None:
    message = f"{what} is not reachable; start it with 'event-manager services start'"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        database=TEST_DATABASE,
        state_dir=tmp_path_factory.mktemp("state"),
        retry_schedule="0.2,0.4",
        outbound_allow="127.0.0.0/8",
        recovery_seconds=2,
        secret_key=Fernet.generate_key().decode(),
        worker_metrics_port=free_port(),
    )


@pytest.fixture(scope="session")
def worker_metrics_url(worker: Path, settings: Settings) -> str:
    """The metrics page of the session's worker process."""
    return f"http://127.0.0.1:{settings.worker_metrics_port}/metrics"


@pytest.fixture(scope="session")
def env(settings: Settings) -> dict[str, str]:
    """Environment for the service's processes: the test database and state folder."""
    return {**os.environ, **environment(settings)}


@pytest.fixture(scope="session")
def mongo(settings: Settings) -> Iterator[pymongo.MongoClient]:
    client: pymongo.MongoClient = pymongo.MongoClient(
        settings.mongodb_url, serverSelectionTimeoutMS=3000, tz_aware=True
    )
    try:
        client.admin.command("ping")
    except pymongo.errors.PyMongoError:
        service_missing(f"MongoDB at {settings.mongodb_url}")
    yield client
    for name in (settings.system_database, settings.tenant_database):
        client.drop_database(name)
    client.close()


@pytest.fixture(scope="session")
def redis_client(settings: Settings) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError:
        service_missing(f"Redis at {settings.redis_url}")
    yield client
    client.close()


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis of the module's own (``tests.support.redis_server``): its URL. For tests
    that count its commands, make it refuse writes or forget its scripts."""
    try:
        with redis_server(tmp_path_factory.mktemp("redis")) as url:
            yield url
    except LookupError as missing:
        service_missing(str(missing))


@pytest.fixture
def broker(settings: Settings, own_redis: str) -> Iterator[ResilientRedisBroker]:
    """Our Dramatiq broker on the module's own Redis."""
    broker = create_broker(settings.model_copy(update={"broker_url": own_redis}))
    assert isinstance(broker, ResilientRedisBroker)
    yield broker
    broker.close()


@pytest.fixture
def queue(broker: ResilientRedisBroker) -> Iterator[str]:
    """A queue of the test's own on ``broker``."""
    name = f"q{secrets.token_hex(4)}"
    broker.declare_queue(name)
    yield name
    broker.flush(name)


def pytest_collection_finish(session: pytest.Session) -> None:
    """When the chart's tests are to run, helm's build (a fresh machine's first run) starts
    now, in the background (``tests.helm.build_early``)."""
    if any(item.path.name == "test_helm.py" for item in session.items):
        from tests.helm import build_early

        build_early()


def run_cli(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"event-manager {' '.join(args)} failed: {result.stderr}")
    return result


@dataclass(frozen=True)
class Server:
    url: str
    log: Path


@pytest.fixture(scope="session")
def api(env: dict[str, str], mongo: Any, redis_client: Any,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real ``event-manager serve`` process on a free port, and its log file."""
    log = tmp_path_factory.mktemp("logs") / "api.log"
    with api_process(env, log) as (url, _):
        yield Server(url, log)


@pytest.fixture(scope="session")
def api_url(api: Server) -> str:
    return api.url


@dataclass
class Reply:
    body: dict[str, Any]
    url: str | None = None
    """The API that answered, when known: an INTERNAL error is shown with its log."""

    @property
    def data(self) -> Any:
        errors = self.body.get("errors")
        if errors and self.url is not None and any(
                e.get("extensions", {}).get("code") == "INTERNAL" for e in errors):
            raise AssertionError(f"{errors}\nthe API's last logged error:\n"
                                 f"{last_logged_error(self.url) or '(none found)'}")
        assert not errors, errors
        return self.body["data"]

    @property
    def error(self) -> dict[str, Any]:
        errors = self.body.get("errors")
        assert errors, f"expected an error, got {self.body}"
        return errors[0]

    @property
    def code(self) -> str:
        return self.error["extensions"]["code"]

    @property
    def field(self) -> str | None:
        return self.error["extensions"].get("field")


@dataclass
class Client:
    """A GraphQL client holding one API key (and, for system keys, an X-Tenant)."""

    url: str
    key: str | None
    tenant: str | None = None
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))

    def __call__(self, query: str, **variables: Any) -> Reply:
        headers = {}
        if self.key is not None:
            headers["Authorization"] = f"Bearer {self.key}"
        if self.tenant is not None:
            headers["X-Tenant"] = self.tenant
        response = self.http.post(f"{self.url}/graphql", headers=headers,
                                  json={"query": query, "variables": variables})
        assert response.status_code == 200, response.text
        return Reply(response.json(), self.url)

    def acting_in(self, tenant: str) -> Client:
        return Client(self.url, self.key, tenant, self.http)


@pytest.fixture(scope="session")
def system(api_url: str, env: dict[str, str]) -> Client:
    """A SYSTEM_ADMIN client, its key made by the CLI as an operator would."""
    result = run_cli(env, "create-key", "--role", "SYSTEM_ADMIN", "--label", "tests")
    return Client(api_url, result.stdout.strip().splitlines()[-1])


@dataclass
class TenantHandle:
    code: str
    admin: Client
    system: Client
    db: Any
    vault: Vault
    """Opens the secrets stored sealed, as the service does."""

    def key(self, role: str) -> Client:
        reply = self.system("""mutation($role: Role!, $tenant: String) {
            createApiKey(role: $role, label: "test", tenant: $tenant) { key } }""",
                            role=role, tenant=self.code)
        return Client(self.admin.url, reply.data["createApiKey"]["key"])

    def collection(self, kind: str) -> Any:
        return self.db[f"t_{self.code}_{kind}"]

    def snapshot(self) -> dict[str, list[Any]]:
        """Every document of the tenant, to prove that a refused call wrote nothing."""
        kinds = ("events", "settings", "actions", "parameters", "activity", "idempotency",
                 "claims")
        return {k: list(self.collection(k).find({}).sort("_id", 1)) for k in kinds}


def make_tenant(system: Client, mongo: Any, settings: Settings, *, enabled: bool = True,
                master: bool = False) -> TenantHandle:
    code = f"t{secrets.token_hex(4)}"
    system("mutation($c: String!, $m: Boolean) { createTenant(code: $c, name: $c, master: $m) "
           "{ code } }", c=code, m=master).data
    return handle(system, mongo, settings, code, enabled=enabled)


def handle(system: Client, mongo: Any, settings: Settings, code: str, *,
           enabled: bool = True) -> TenantHandle:
    """A handle on an existing tenant, with a new TENANT_ADMIN key of its own."""
    if enabled:
        system("mutation($c: String!) { setEventManagerEnabled(code: $c, enabled: true) "
               "{ code } }", c=code).data
    key = system("""mutation($t: String) { createApiKey(role: TENANT_ADMIN, label: "admin",
                    tenant: $t) { key } }""", t=code).data["createApiKey"]["key"]
    return TenantHandle(code, Client(system.url, key), system.acting_in(code),
                        mongo[settings.tenant_database_of(code)],
                        Vault(keys_from(settings.secret_key, settings.state_path)))


@pytest.fixture(scope="session")
def master(system: Client, mongo: Any, settings: Settings) -> TenantHandle:
    """The run's Master tenant (an installation has at most one): found, or made once."""
    tenants = system("{ tenants { code master } }").data["tenants"]
    found = [t["code"] for t in tenants if t["master"]]
    if found:
        return handle(system, mongo, settings, found[0])
    return make_tenant(system, mongo, settings, master=True)


@pytest.fixture
def tenant(system: Client, mongo: Any, settings: Settings) -> TenantHandle:
    """A fresh, enabled tenant with a TENANT_ADMIN client."""
    return make_tenant(system, mongo, settings)


@pytest.fixture
def other_tenant(system: Client, mongo: Any, settings: Settings) -> TenantHandle:
    return make_tenant(system, mongo, settings)


ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("EVENT_MANAGER_SHARED_DIR") or ROOT.parent / "shared")
"""The contract, manual and fixtures: ../shared next to the project, unless set."""


@pytest.fixture(scope="session")
def receiver() -> Iterator[Any]:
    from tests.receiver import Receiver

    receiver = Receiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="module")
def collector() -> Iterator[Any]:
    """An OTLP trace collector (``tests.collector``) for the module's traced processes."""
    from tests.collector import Collector

    collector = Collector().start()
    yield collector
    collector.stop()


@pytest.fixture(scope="session")
def worker(env: dict[str, str], api_url: str,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A real ``event-manager worker`` process; yields its log file."""
    log = tmp_path_factory.mktemp("logs") / "worker.log"
    with log.open("w") as out:
        process = subprocess.Popen([*CLI, "worker", "--threads", "2"], env=env, stdout=out,
                                   stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while "ready for action" not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"the worker did not start:\n{log.read_text()}")
        time.sleep(0.1)
    yield log
    stop(process)


