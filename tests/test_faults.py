"""Nothing accepted is ever lost: real processes broken on purpose.

One installation for the module (its own FerretDB and Redis on free ports, an API
process, worker processes) and a misbehaving receiver. Each test injects faults while
triggers arrive, then reconciles: every trigger the API accepted ends SUCCEEDED or
FAILED with a message, no accepted delivery is lost, and no receiver gets a delivery
twice, except where a worker was killed mid-send (the price of at-least-once).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator

import httpx
import pymongo
import pytest

from tests.cluster import Cluster, running
from tests.fault_receiver import FaultReceiver
from tests.reconcile import WORKER_KILLED, Fault, Report, Sent, reconcile, settle
from tests.support import wait_until

pytestmark = pytest.mark.faults

SETTLE_SECONDS = 120.0
"""How long deliveries may take to settle after the last fault: generous, for a slow
and busy machine; a healthy run settles in seconds."""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running(tmp_path_factory.mktemp("faults"), workers=1) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def receiver() -> Iterator[FaultReceiver]:
    receiver = FaultReceiver(slow_seconds=2.0, hang_seconds=10.0).start()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="module")
def tenants_db(cluster: Cluster) -> Iterator[pymongo.database.Database]:
    client: pymongo.MongoClient = pymongo.MongoClient(cluster.settings.mongodb_url,
                                                      serverSelectionTimeoutMS=10_000)
    yield client[cluster.settings.tenant_database]
    client.close()


def call_ids(n: int) -> list[str]:
    return [secrets.token_hex(8) for _ in range(n)]


class Traffic:
    """Triggers sent from a thread, in small batches, until stopped."""

    def __init__(self, cluster: Cluster, tenant: str, batch: int = 5,
                 pause: float = 0.1) -> None:
        self.cluster, self.tenant, self.batch, self.pause = cluster, tenant, batch, pause
        self.sent: list[Sent] = []
        self.errors: list[BaseException] = []
        self.running = threading.Event()
        self.http = httpx.Client()
        self.thread = threading.Thread(target=self._run, daemon=True, name="traffic")

    def __enter__(self) -> Traffic:
        self.running.set()
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.running.clear()
        self.thread.join(120)
        self.http.close()

    def _run(self) -> None:
        while self.running.is_set():
            try:
                self.sent += self.cluster.trigger(self.tenant, call_ids(self.batch), timeout=60,
                                                  http=self.http)
            except BaseException as exc:  # a hang or a broken answer: the test fails on it
                self.errors.append(exc)
                return
            time.sleep(self.pause)

    def wait_for_accepted(self, count: int, timeout: float = 60) -> None:
        wait_until(lambda: self.errors or sum(s.accepted for s in self.sent) >= count, timeout,
                 f"{count} triggers accepted")
        assert not self.errors, self.errors


def settled(cluster: Cluster, tenants_db: pymongo.database.Database, receiver: FaultReceiver,
            sent: list[Sent], paths: dict[str, dict[str, str]],
            faults: list[Fault]) -> Report:
    """The reconciliation once everything is final, checked again after a quiet spell so
    that a late second send (a recovery sweep's) would be seen."""
    def check() -> Report:
        return reconcile(tenants_db, sent, paths, receiver.snapshot(), faults)

    settle(check, SETTLE_SECONDS)
    time.sleep(cluster.settings.recovery_seconds * 2)
    return check()


def show(name: str, report: Report, started: float) -> None:
    print(f"\n--- {name} ({time.monotonic() - started:.0f} s)\n{report.summary()}")


def test_worker_killed_mid_send_loses_nothing(cluster: Cluster, receiver: FaultReceiver,
                                              tenants_db: pymongo.database.Database) -> None:
    """Deliveries in flight to a slow receiver when the worker is SIGKILLed are sent again
    by a new worker once recovery finds them stuck; duplicates only for those."""
    started = time.monotonic()
    tenant = f"kill{secrets.token_hex(3)}"
    paths = {tenant: cluster.make_tenant(tenant, [("slow", 5), ("ok", 5)], receiver.url)}
    faults: list[Fault] = []
    with Traffic(cluster, tenant) as traffic:
        traffic.wait_for_accepted(20)
        wait_until(lambda: receiver.in_flight() >= 5, 60, "requests in flight")
        in_flight = receiver.in_flight()
        faults.append(Fault(WORKER_KILLED, time.monotonic()))
        cluster.kill_worker(cluster.workers[0])
        faults[-1].end()
        traffic.wait_for_accepted(len(traffic.sent) + 20)  # queued while no worker runs
    cluster.start_worker()

    report = settled(cluster, tenants_db, receiver, traffic.sent, paths, faults)
    show("worker killed", report, started)
    assert in_flight > 0
    assert not report.problems(duplicates_allowed=True)
    assert report.succeeded == report.deliveries and not report.refused


def test_sigterm_lets_in_flight_deliveries_finish(cluster: Cluster, receiver: FaultReceiver,
                                                  tenants_db: pymongo.database.Database) -> None:
    """A worker told to stop (SIGTERM) while requests are in flight finishes them and
    exits by itself: nothing lost, nothing sent twice."""
    started = time.monotonic()
    tenant = f"term{secrets.token_hex(3)}"
    paths = {tenant: cluster.make_tenant(tenant, [("slow", 5), ("ok", 5)], receiver.url)}
    with Traffic(cluster, tenant) as traffic:
        traffic.wait_for_accepted(20)
        wait_until(lambda: receiver.in_flight() >= 3, 60, "requests in flight")
        in_flight = receiver.in_flight()
        stopping = cluster.workers[0]
        cluster.stop_worker(stopping)
        traffic.wait_for_accepted(len(traffic.sent) + 10)  # queued while no worker runs
    cluster.start_worker()

    report = settled(cluster, tenants_db, receiver, traffic.sent, paths, [])
    show("worker stopped with SIGTERM", report, started)
    assert in_flight > 0
    assert stopping.popen.returncode == 0, stopping.output()[-2000:]  # not killed after grace
    # Loses none, and never sends one attempt twice (problems() checks that requests never
    # outnumber attempts). A delivery may still get a second attempt when recovery takes
    # back a row the restarted worker had not yet announced: 1-6 of 350-440 per run, 45
    # before unclaimed deliveries were handed back on SIGTERM (see issue 7's note).
    assert [p for p in report.problems() if "duplicate" not in p] == []
    assert report.succeeded == report.deliveries and not report.refused


def readiness(cluster: Cluster) -> tuple[int, set[str]]:
    """/readyz: its status and the parts it names as failing."""
    reply = httpx.get(f"{cluster.api_url}/readyz", timeout=30)
    return reply.status_code, set(reply.json().get("failing", {}))


def refusals_are_clean(sent: list[Sent]) -> None:
    """A refused trigger says UNAVAILABLE in one plain sentence, never a traceback."""
    for trigger in sent:
        if not trigger.accepted:
            assert trigger.refusal is not None
            assert trigger.refusal.startswith("UNAVAILABLE: "), trigger.refusal
            assert "Traceback" not in trigger.refusal and "\n" not in trigger.refusal


def test_redis_restart_refuses_or_delivers_every_trigger(
        cluster: Cluster, receiver: FaultReceiver,
        tenants_db: pymongo.database.Database) -> None:
    """Triggers that arrive while Redis is down are refused (UNAVAILABLE, nothing kept);
    the worker reconnects by itself and every accepted trigger is delivered once."""
    started = time.monotonic()
    tenant = f"redis{secrets.token_hex(3)}"
    paths = {tenant: cluster.make_tenant(tenant, [("ok", 5), ("flaky", 5)], receiver.url)}
    faults: list[Fault] = []
    with Traffic(cluster, tenant) as traffic:
        traffic.wait_for_accepted(20)
        faults.append(Fault("redis restarted", time.monotonic()))
        cluster.stop_redis()
        ready_down = readiness(cluster)
        time.sleep(1.5)  # triggers keep arriving meanwhile
        cluster.start_redis()
        faults[-1].end()
        traffic.wait_for_accepted(sum(s.accepted for s in traffic.sent) + 20)
    assert ready_down == (503, {"redis"}), ready_down
    wait_until(lambda: readiness(cluster) == (200, set()), 60, "/readyz says ready again")

    report = settled(cluster, tenants_db, receiver, traffic.sent, paths, faults)
    show("redis restarted", report, started)
    refusals_are_clean(traffic.sent)
    assert not report.problems()
    assert report.succeeded == report.deliveries
    assert all(w.alive() for w in cluster.workers)


def test_mongodb_restart_answers_unavailable_then_recovers(
        cluster: Cluster, receiver: FaultReceiver,
        tenants_db: pymongo.database.Database) -> None:
    """While the database is down the API answers UNAVAILABLE at once, plainly, without
    hanging; once it is back the same API process serves again and in-flight deliveries
    are recorded."""
    started = time.monotonic()
    tenant = f"mongo{secrets.token_hex(3)}"
    paths = {tenant: cluster.make_tenant(tenant, [("ok", 5), ("slow", 5)], receiver.url)}
    faults: list[Fault] = []
    with Traffic(cluster, tenant) as traffic:
        traffic.wait_for_accepted(20)
        wait_until(lambda: receiver.in_flight() > 0, 60, "requests in flight")
        faults.append(Fault("mongodb restarted", time.monotonic()))
        cluster.stop_mongodb()
        down = cluster.gql("{ activity(first: 1) { items { id } } }", tenant, timeout=60)
        ready_down = readiness(cluster)
        cluster.start_mongodb()
        faults[-1].end()
        traffic.wait_for_accepted(sum(s.accepted for s in traffic.sent) + 20)
    again = cluster.gql("{ activity(first: 1) { items { id } } }", tenant)

    report = settled(cluster, tenants_db, receiver, traffic.sent, paths, faults)
    show("mongodb restarted", report, started)
    assert ready_down == (503, {"mongodb"}), ready_down
    wait_until(lambda: readiness(cluster) == (200, set()), 60, "/readyz says ready again")
    [error] = down["errors"]
    assert error["extensions"] == {"code": "UNAVAILABLE"}
    assert error["message"] == "the database is unavailable; try again shortly"
    assert not again.get("errors") and again["data"]["activity"]["items"]
    refusals_are_clean(traffic.sent)
    assert not report.problems()
    assert report.succeeded == report.deliveries


BAD_RECEIVERS = [("hang", 1.0), ("reset", 5), ("flaky", 5), ("limited", 5), ("down", 5),
                 ("gone", 5), ("ok", 5)]
EXPECTED = {
    "hang": ("FAILED", 4, "timed out after 1 s; gave up after 4 attempts"),
    "reset": ("SUCCEEDED", 2, None),
    "flaky": ("SUCCEEDED", 2, None),
    "limited": ("SUCCEEDED", 2, None),
    "down": ("FAILED", 4, "500 Internal Server Error; gave up after 4 attempts"),
    "gone": ("FAILED", 1, "404 Not Found; not retried"),
    "ok": ("SUCCEEDED", 1, None),
}


def test_bad_receivers_end_in_a_final_state_with_a_reason(
        cluster: Cluster, receiver: FaultReceiver,
        tenants_db: pymongo.database.Database) -> None:
    """Receivers that hang beyond the timeout, reset the connection, answer 5xx or 429
    with Retry-After: every delivery ends as its receiver deserves, each attempt sent
    once."""
    started = time.monotonic()
    tenant = f"bad{secrets.token_hex(3)}"
    paths = {tenant: cluster.make_tenant(tenant, BAD_RECEIVERS, receiver.url)}
    sent = [s for _ in range(4) for s in cluster.trigger(tenant, call_ids(5))]

    report = settled(cluster, tenants_db, receiver, sent, paths, [])
    show("bad receivers", report, started)
    assert not report.problems()
    assert report.deliveries == len(sent) * len(BAD_RECEIVERS) == len(report.outcomes)
    for (path, _), row in report.outcomes.items():
        status, attempts, message = EXPECTED[path.split("/")[1]]
        assert (row["status"], row["attempts"]) == (status, attempts), (path, row)
        if message is not None:
            assert row["message"] == message, (path, row)
