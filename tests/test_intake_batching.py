"""Concurrent triggerEvent calls of a tenant run as one batch (resolvers/intake.py).

An API process of its own, whose broker is a Redis of its own: the tests hold that Redis
(``CLIENT PAUSE … WRITE``) so that a batch waits for the queue while more calls arrive,
or make it refuse writes, and read the messages it holds. The batches are counted by the
API's ``event_manager_trigger_batch_size`` histogram.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from threading import Barrier
from typing import Any

import httpx
import pytest
import redis
from websockets.sync.client import connect

from event_manager.config import Settings, environment
from tests.conftest import CLI, Client, Reply, TenantHandle, free_port, service_missing
from tests.support import wait_until
from tests.test_delivery import attach, enable, make_action
from tests.test_metrics import sample

HOLD_SECONDS = 3.0
"""How long the broker is held: ample for the test to send more calls meanwhile, well
under the broker client's 10 s read timeout (dispatch/broker.py)."""

TRIGGER = """mutation($i: TriggerInput!) { triggerEvent(input: $i) {
    triggerId accepted activities { id status } } }"""
TRIGGER_LIST = """mutation($i: [TriggerInput!]!) { triggerEvents(inputs: $i) { triggerId } }"""


@dataclass
class IntakeApi:
    url: str
    broker: redis.Redis
    queue: str
    env: dict[str, str]
    """The environment of its processes (a worker on its broker, ``intake_worker``)."""
    log: Path

    def batches(self) -> tuple[float, float]:
        """The batch-size histogram: how many batches ran, and how many triggers in all."""
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        return (sample(text, "event_manager_trigger_batch_size_count"),
                sample(text, "event_manager_trigger_batch_size_sum"))

    def batches_since(self, before: tuple[float, float]) -> tuple[float, float]:
        count, total = self.batches()
        return count - before[0], total - before[1]

    def hold_the_queue(self) -> None:
        """Writes to the broker wait ``HOLD_SECONDS``: a batch then waits in its enqueue."""
        self.broker.execute_command("CLIENT", "PAUSE", int(HOLD_SECONDS * 1000), "WRITE")

    def queued_ids(self) -> set[str]:
        """The activity ids of every delivery message in the broker (no worker reads it)."""
        return {activity_id for body in self.broker.hvals(f"dramatiq:{self.queue}.msgs")
                for activity_id in json.loads(body)["args"][1]}

    def trigger(self, tenant: TenantHandle, **input: Any) -> Reply:
        with httpx.Client(timeout=30) as http:
            return Client(self.url, tenant.admin.key, http=http)(
                TRIGGER, i={"event": "HANGUP", **input})


@pytest.fixture(scope="module")
def intake_api(settings: Settings, mongo: Any, redis_client: Any,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[IntakeApi]:
    """An API process on the tests' database, with a Redis of its own as broker."""
    server = shutil.which("redis-server")
    if server is None:
        service_missing("redis-server")
    root = tmp_path_factory.mktemp("intake")
    redis_port, api_port = free_port(), free_port()
    url = f"redis://127.0.0.1:{redis_port}/0"
    own = settings.model_copy(update={"broker_url": url, "redis_url": url})
    env = {**os.environ, **environment(own)}
    with (root / "redis.log").open("w") as out:
        broker_process = subprocess.Popen(
            [str(server), "--bind", "127.0.0.1", "--port", str(redis_port), "--dir", str(root),
             "--save", "", "--appendonly", "no"], stdout=out, stderr=subprocess.STDOUT)
    with (root / "api.log").open("w") as out:
        api_process = subprocess.Popen([*CLI, "serve", "--port", str(api_port)], env=env,
                                       stdout=out, stderr=subprocess.STDOUT)
    broker = redis.Redis.from_url(url, socket_connect_timeout=2)
    api = IntakeApi(f"http://127.0.0.1:{api_port}", broker, own.queue_name, env,
                    root / "api.log")
    try:
        wait_until(lambda: answers(api.url, api_process, root / "api.log"), 30,
                   "the intake API answers /healthz")
        yield api
    finally:
        api_process.terminate()
        api_process.wait(timeout=10)
        broker.close()
        broker_process.terminate()
        broker_process.wait(timeout=10)


def answers(url: str, process: subprocess.Popen[bytes], log: Path) -> bool:
    assert process.poll() is None, f"the API exited:\n{log.read_text()}"
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def hangup_has_one_action(tenant: TenantHandle) -> str:
    """Actions enabled, HANGUP active with one action (no worker reads the intake API's
    queue, but the session's worker, when running, queues again what nobody holds after
    2 s: statuses may move on); the action's id."""
    action = make_action(tenant, name="CRM", url="http://127.0.0.1:9/x")
    attach(tenant, "HANGUP", action)
    enable(tenant)
    return action


def rows_of(tenant: TenantHandle, trigger_id: str) -> list[dict[str, Any]]:
    return list(tenant.collection("activity").find({"trigger_id": trigger_id}).sort("_id", 1))


def row_count(tenant: TenantHandle) -> int:
    return tenant.collection("activity").count_documents({})


def test_concurrent_calls_of_a_tenant_run_in_fewer_batches(intake_api: IntakeApi,
                                                           tenant: TenantHandle) -> None:
    action = hangup_has_one_action(tenant)
    calls = 40
    together = Barrier(calls)

    def call(i: int) -> Reply:
        together.wait()
        return intake_api.trigger(tenant, params={"call_id": f"c{i}"})

    before = intake_api.batches()
    with ThreadPoolExecutor(calls) as pool:
        results = [reply.data["triggerEvent"] for reply in pool.map(call, range(calls))]

    count, total = intake_api.batches_since(before)
    assert total == calls and count < calls, (count, total)
    assert len({r["triggerId"] for r in results}) == calls
    for i, result in enumerate(results):
        rows = rows_of(tenant, result["triggerId"])
        # Statuses as answered: the session's worker may take rows up afterwards (its
        # recovery sees every tenant and queues rows nobody holds after 2 s).
        assert [(r["params"], r["action_id"]) for r in rows] == [({"call_id": f"c{i}"}, action)]
        assert result["activities"] == [{"id": str(rows[0]["_id"]), "status": "QUEUED"}]
    assert row_count(tenant) == calls
    assert {str(r["_id"]) for r in tenant.collection("activity").find()} <= intake_api.queued_ids()


def test_a_call_alone_runs_at_once_as_a_batch_of_one(intake_api: IntakeApi,
                                                     tenant: TenantHandle) -> None:
    """No waiting window: a call alone takes as long as a triggerEvents call of one
    trigger, which runs its batch directly (medians of calls taking turns)."""
    hangup_has_one_action(tenant)
    alone: list[float] = []
    listed: list[float] = []
    with httpx.Client(timeout=30) as http:
        client = Client(intake_api.url, tenant.admin.key, http=http)
        for _ in range(15):
            before = intake_api.batches()
            started = time.monotonic()
            client(TRIGGER, i={"event": "HANGUP"}).data
            alone.append(time.monotonic() - started)
            assert intake_api.batches_since(before) == (1, 1)
            started = time.monotonic()
            client(TRIGGER_LIST, i=[{"event": "HANGUP"}]).data
            listed.append(time.monotonic() - started)

    assert statistics.median(alone) < statistics.median(listed) * 1.5, (alone, listed)
    assert row_count(tenant) == 30


def test_a_refused_batch_answers_unavailable_to_each_caller_and_keeps_nothing(
        intake_api: IntakeApi, tenant: TenantHandle) -> None:
    hangup_has_one_action(tenant)
    before = intake_api.batches()
    intake_api.hold_the_queue()
    try:
        with ThreadPoolExecutor(10) as pool:
            first = pool.submit(intake_api.trigger, tenant, idempotencyKey="k0")
            wait_until(lambda: row_count(tenant) == 1, HOLD_SECONDS / 2,
                       "the first batch written, waiting for the queue")
            later = [pool.submit(intake_api.trigger, tenant, idempotencyKey=f"k{i}")
                     for i in range(1, 10)]
            # Once held writes go on, the broker refuses them: it is out of memory.
            intake_api.broker.config_set("maxmemory", 1)
            replies = [f.result() for f in [first, *later]]
    finally:
        intake_api.broker.config_set("maxmemory", 0)

    assert [reply.code for reply in replies] == ["UNAVAILABLE"] * 10
    assert intake_api.batches_since(before) == (2, 10)  # the first call, then the nine
    assert row_count(tenant) == 0
    assert tenant.collection("idempotency").count_documents({}) == 0


def test_calls_with_one_idempotency_key_get_one_trigger(intake_api: IntakeApi,
                                                        tenant: TenantHandle) -> None:
    hangup_has_one_action(tenant)
    before = intake_api.batches()
    intake_api.hold_the_queue()
    with ThreadPoolExecutor(5) as pool:
        first = pool.submit(intake_api.trigger, tenant, idempotencyKey="call-1")
        wait_until(lambda: row_count(tenant) == 1, HOLD_SECONDS / 2,
                   "the first batch written, waiting for the queue")
        # The next batch: the same key twice more, and a new key twice.
        later = [pool.submit(intake_api.trigger, tenant, idempotencyKey=key)
                 for key in ("call-1", "call-1", "call-2", "call-2")]
        results = [f.result().data["triggerEvent"] for f in [first, *later]]

    assert intake_api.batches_since(before) == (2, 5)
    one, two = results[:3], results[3:]
    assert len({r["triggerId"] for r in one}) == len({r["triggerId"] for r in two}) == 1
    assert one[0]["triggerId"] != two[0]["triggerId"]
    for same in (one, two):
        [row] = rows_of(tenant, same[0]["triggerId"])
        # Ids only: the session's worker may take the row up meanwhile (its recovery
        # sees every tenant), so a replay can show it further on than QUEUED.
        assert all([a["id"] for a in r["activities"]] == [str(row["_id"])] for r in same)
    assert row_count(tenant) == 2
    assert tenant.collection("idempotency").count_documents({}) == 2


def test_a_caller_gone_while_its_batch_runs_stops_no_trigger(intake_api: IntakeApi,
                                                             tenant: TenantHandle) -> None:
    """A WebSocket operation is cancelled when its client sends ``complete``; its batch
    goes on, and the calls waiting behind it run as the next batch."""
    hangup_has_one_action(tenant)
    before = intake_api.batches()
    intake_api.hold_the_queue()
    url = intake_api.url.replace("http://", "ws://") + "/graphql"
    with connect(url, subprotocols=["graphql-transport-ws"], open_timeout=10) as ws:
        ws.send(json.dumps({"type": "connection_init",
                            "payload": {"Authorization": f"Bearer {tenant.admin.key}"}}))
        assert json.loads(ws.recv(timeout=10))["type"] == "connection_ack"
        ws.send(json.dumps({"id": "gone", "type": "subscribe", "payload": {
            "query": TRIGGER, "variables": {"i": {"event": "HANGUP",
                                                  "params": {"call_id": "gone"}}}}}))
        wait_until(lambda: row_count(tenant) == 1, HOLD_SECONDS / 2,
                   "the first batch written, waiting for the queue")
        with ThreadPoolExecutor(5) as pool:
            later: list[Future[Reply]] = [
                pool.submit(intake_api.trigger, tenant, params={"call_id": f"c{i}"})
                for i in range(5)]
            ws.send(json.dumps({"id": "gone", "type": "complete"}))
            # Messages are handled in order: once this answers, "gone" was cancelled.
            ws.send(json.dumps({"id": "probe", "type": "subscribe",
                                "payload": {"query": "{ __typename }"}}))
            answered = json.loads(ws.recv(timeout=10))
            assert (answered["id"], answered["type"]) == ("probe", "next"), answered
            results = [f.result().data["triggerEvent"] for f in later]

    assert intake_api.batches_since(before) == (2, 6)
    [gone] = tenant.collection("activity").find({"params.call_id": "gone"})
    assert str(gone["_id"]) in intake_api.queued_ids()  # written and queued all the same
    assert all(r["accepted"] and len(rows_of(tenant, r["triggerId"])) == 1 for r in results)
    assert row_count(tenant) == 6
    assert {str(r["_id"]) for r in tenant.collection("activity").find()} <= intake_api.queued_ids()


def test_tenants_batch_apart_and_never_wait_for_each_other(
        intake_api: IntakeApi, tenant: TenantHandle, other_tenant: TenantHandle) -> None:
    for each in (tenant, other_tenant):
        hangup_has_one_action(each)
    before = intake_api.batches()
    intake_api.hold_the_queue()
    with ThreadPoolExecutor(12) as pool:
        first = pool.submit(intake_api.trigger, tenant)
        wait_until(lambda: row_count(tenant) == 1, HOLD_SECONDS / 2,
                   "the tenant's first batch written, waiting for the queue")
        other_first = pool.submit(intake_api.trigger, other_tenant)
        wait_until(lambda: row_count(other_tenant) == 1, HOLD_SECONDS / 2,
                   "the other tenant's first batch written while the tenant's waits")
        assert not first.done()
        later = [[pool.submit(intake_api.trigger, each) for _ in range(5)]
                 for each in (tenant, other_tenant)]
        mine = [f.result().data["triggerEvent"] for f in [first, *later[0]]]
        theirs = [f.result().data["triggerEvent"] for f in [other_first, *later[1]]]

    assert intake_api.batches_since(before) == (4, 12)
    for each, results in ((tenant, mine), (other_tenant, theirs)):
        stored = {row["trigger_id"] for row in each.collection("activity").find()}
        assert stored == {r["triggerId"] for r in results}
        assert len(stored) == 6
