"""A value the database refuses fails its own call alone, even inside a batch of
concurrent calls (resolvers/batch.py, tenants/acceptance.py); an idempotency key is
kept only with the rows it promises, so every retry is honest.

Validation now refuses every value that used to fail at the database (whole numbers
beyond 64 bits, names with '.'), so the tests make the database refuse one call's row
the way real MongoDB would too: a unique index on the call id, and a call repeating a
call id already stored. Over HTTP to an API process whose broker is a Redis of its own
(``intake_api``: its queue can be held, so that 39 calls wait and run as one batch) and
a worker on that broker delivering to the real receiver.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import CLI, Client, Reply, TenantHandle
from tests.receiver import Receiver
from tests.support import stop, wait_until
from tests.test_delivery import hook
from tests.test_intake_batching import (  # noqa: F401  (the fixture, for this module)
    HOLD_SECONDS,
    TRIGGER_LIST,
    IntakeApi,
    hangup_has_one_action,
    intake_api,
    row_count,
    rows_of,
)

CALLS = 40
POISONED = 17
REFUSED = "trigger refused by the database"


@pytest.fixture(scope="module")
def intake_worker(intake_api: IntakeApi,  # noqa: F811
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A worker on the intake API's broker; yields its log file."""
    log = tmp_path_factory.mktemp("isolation") / "worker.log"
    with log.open("w") as out:
        process = subprocess.Popen([*CLI, "worker", "--threads", "2"], env=intake_api.env,
                                   stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: process.poll() is None and "ready for action" in log.read_text(),
                   60, "the intake worker starts")
        yield log
    finally:
        stop(process)


def poisonable(tenant: TenantHandle, receiver: Receiver) -> str:
    """HANGUP sends each call's id to the receiver; a unique index on the call id makes
    the database refuse a call repeating one (after a first call with id "dup"). The
    receiver's path."""
    hook(tenant, receiver, "iso", url=f"{receiver.url}/{tenant.code}/iso?c={{{{call_id}}}}")
    tenant.collection("activity").create_index("params.call_id", unique=True)
    return f"/{tenant.code}/iso"


def call_id(i: int) -> str:
    return "dup" if i == POISONED else f"c{i}"


def send(api: IntakeApi, tenant: TenantHandle, i: int) -> Reply:
    with httpx.Client(timeout=30) as http:
        return Client(api.url, tenant.admin.key, http=http)(
            """mutation($i: TriggerInput!) { triggerEvent(input: $i) {
                triggerId accepted activities { id } } }""",
            i={"event": "HANGUP", "idempotencyKey": f"k{i}", "params": {"call_id": call_id(i)}})


def test_one_refused_call_of_40_fails_alone_and_every_retry_is_honest(
        intake_api: IntakeApi, intake_worker: Path, tenant: TenantHandle,  # noqa: F811
        receiver: Receiver) -> None:
    """Before: 2 to 8 of the 40 calls were accepted, 13 to 24 retries answered "accepted"
    with no activities, rows and open entries of failed calls stayed, one traceback per
    failed call was logged."""
    path = poisonable(tenant, receiver)
    with httpx.Client(timeout=30) as http:
        Client(intake_api.url, tenant.admin.key, http=http)(
            'mutation { triggerEvent(input: {event: HANGUP, params: {call_id: "dup"}}) '
            '{ accepted } }').data
    receiver.wait_for(path, 1)
    logged = len(intake_api.log.read_text())
    before = intake_api.batches()
    intake_api.hold_the_queue()
    with ThreadPoolExecutor(CALLS) as pool:
        lead = pool.submit(send, intake_api, tenant, 0)
        wait_until(lambda: row_count(tenant) == 2, HOLD_SECONDS / 2,
                   "the first call written, waiting for the queue")
        # the poisoned call first: it arrives while the first batch waits for the queue
        rest = {i: pool.submit(send, intake_api, tenant, i) for i in
                [POISONED, *(i for i in range(1, CALLS) if i != POISONED)]}
        replies = [lead.result(), *[rest[i].result() for i in range(1, CALLS)]]

    poisoned = replies[POISONED]
    assert (poisoned.code, poisoned.field) == ("CONFLICT", "input.params")
    assert "unique index" in poisoned.error["message"]
    accepted = {i: r.data["triggerEvent"] for i, r in enumerate(replies) if i != POISONED}
    assert all(r["accepted"] and len(r["activities"]) == 1 for r in accepted.values())
    batches, total = intake_api.batches_since(before)
    assert total == CALLS and batches < CALLS / 2
    sent = receiver.wait_for(path, CALLS, timeout=60)  # 39, and the first "dup"
    time.sleep(1)  # nothing more arrives
    assert sorted(r.query for r in receiver.received(path)) == sorted(
        f"c={call_id(i)}" for i in range(CALLS))
    assert len(sent) == CALLS
    assert row_count(tenant) == CALLS
    keys = {k["_id"] for k in tenant.collection("idempotency").find()}
    assert keys == {f"k{i}" for i in accepted}

    with ThreadPoolExecutor(8) as pool:
        retries = list(pool.map(lambda i: send(intake_api, tenant, i), range(CALLS)))
    for i, first in accepted.items():  # replays of what was accepted, rows and all
        again = retries[i].data["triggerEvent"]
        assert again == first and rows_of(tenant, again["triggerId"])
    assert retries[POISONED].code == "CONFLICT"  # processed again, refused again
    assert row_count(tenant) == CALLS

    tenant.collection("activity").drop_index("params.call_id_1")
    retried = send(intake_api, tenant, POISONED).data["triggerEvent"]
    assert retried["accepted"] and len(retried["activities"]) == 1
    receiver.wait_for(path, CALLS + 1)
    log = intake_api.log.read_text()[logged:]
    assert "Traceback" not in log and log.count(REFUSED) == 2, log
    # the first time, it shared its batch (on a quiet machine with the 38 others)
    shared = re.search(REFUSED + r".*one of a batch of (\d+)", log)
    assert shared and int(shared.group(1)) > 1, log


def test_a_trigger_list_with_one_refused_trigger_keeps_nothing(
        intake_api: IntakeApi, tenant: TenantHandle, receiver: Receiver) -> None:  # noqa: F811
    """triggerEvents stays all or nothing: the refusal names the input."""
    poisonable(tenant, receiver)
    client = Client(intake_api.url, tenant.admin.key)
    client('mutation { triggerEvent(input: {event: HANGUP, params: {call_id: "dup"}}) '
           '{ accepted } }').data
    reply = client(TRIGGER_LIST, i=[
        {"event": "HANGUP", "idempotencyKey": "a", "params": {"call_id": "a"}},
        {"event": "HANGUP", "params": {"call_id": "b"}},
        {"event": "HANGUP", "idempotencyKey": "c", "params": {"call_id": "dup"}}])
    assert (reply.code, reply.field) == ("CONFLICT", "inputs[2].params")
    assert row_count(tenant) == 1
    assert tenant.collection("idempotency").count_documents({}) == 0


def test_a_pbx_replay_batched_behind_an_admin_call_shows_ids_and_statuses_only(
        intake_api: IntakeApi, tenant: TenantHandle) -> None:  # noqa: F811
    """Whether a replay shows whole rows is each caller's right, not that of the first
    caller of its batch (before: an admin call first in the batch showed a PBX key the
    earlier delivery's details)."""
    hangup_has_one_action(tenant)
    query = """mutation($k: String) { triggerEvent(input: {event: HANGUP, idempotencyKey: $k})
        { triggerId activities { id message } } }"""
    admin = Client(intake_api.url, tenant.admin.key)
    pbx = Client(intake_api.url, tenant.key("PBX").key)
    first = admin(query, k="k0").data["triggerEvent"]
    intake_api.hold_the_queue()
    with ThreadPoolExecutor(3) as pool:
        lead = pool.submit(lambda: Client(intake_api.url, tenant.admin.key)(query, k="lead"))
        wait_until(lambda: row_count(tenant) == 2, HOLD_SECONDS / 2,
                   "the first batch written, waiting for the queue")
        fresh = pool.submit(lambda: Client(intake_api.url, tenant.admin.key)(query, k="new"))
        time.sleep(0.3)  # the admin call first in the next batch
        replay = pool.submit(lambda: pbx(query, k="k0"))
        replies = [f.result().data["triggerEvent"] for f in (lead, fresh, replay)]

    again = replies[2]
    assert again["triggerId"] == first["triggerId"]
    assert [a["id"] for a in again["activities"]] == [a["id"] for a in first["activities"]]
    assert all("sent earlier" in a["message"] for a in again["activities"])
    assert replies[1]["activities"][0]["message"] == "queued"
