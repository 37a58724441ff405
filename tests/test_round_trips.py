"""What one trigger and its delivery cost in database round trips, counted by PyMongo's
command monitoring inside a real API process and a real worker (tests/command_log.py),
not timed.

The processes have a database (and so a delivery queue) of their own: no worker of the
session takes their deliveries, nor sweeps their tenants.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from event_manager.config import Settings, environment
from tests.command_log import hooked, read
from tests.conftest import CLI, Client, make_tenant, run_cli
from tests.receiver import Receiver
from tests.support import api_process, stop, wait_until
from tests.test_delivery import hook, trigger

pytestmark = pytest.mark.services


@dataclass(frozen=True)
class Counted:
    """An API and a worker whose commands are logged, and a SYSTEM_ADMIN client."""

    system: Client
    settings: Settings
    log: Path


@pytest.fixture(scope="module")
def counted(settings: Settings, mongo: Any, redis_client: Any,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Counted]:
    own = settings.model_copy(update={"database": f"{settings.database}_trips"})
    folder = tmp_path_factory.mktemp("trips")
    env, log = hooked({**os.environ, **environment(own)}, folder)
    with (folder / "worker.log").open("w") as out:
        worker = subprocess.Popen([*CLI, "worker", "--threads", "2"], env=env, stdout=out,
                                  stderr=subprocess.STDOUT)
    try:
        with api_process(env, folder / "api.log") as (url, _):
            wait_until(lambda: worker.poll() is None and "ready for action" in (
                folder / "worker.log").read_text(), 60, "the counted worker starts")
            key = run_cli(env, "create-key", "--role", "SYSTEM_ADMIN", "--label", "trips")
            yield Counted(Client(url, key.stdout.strip().splitlines()[-1]), own, log)
    finally:
        stop(worker)
        for name in (own.system_database, own.tenant_database):
            mongo.drop_database(name)


def test_a_trigger_and_its_delivery_make_three_writes(counted: Counted, mongo: Any,
                                                      receiver: Receiver) -> None:
    """After a first trigger (the API and the worker read the tenant's configuration
    once per change of it), one trigger with one action writes three times: the API its
    row, the worker the attempt's claim and then its outcome. Earlier versions wrote five
    (also an entry in a list of the rows in flight, ``open``, and its removal at the
    end). The row is written SENDING in between only when the attempt takes over a
    second (``dispatch.delivery.SENDING_AFTER_SECONDS``): not counted here. The first
    delivery of an action also writes its health (``dispatch.health``); later successes
    within a minute do not."""
    tenant = make_tenant(counted.system, mongo, counted.settings)
    hook(tenant, receiver, "counted")
    rows = tenant.collection("activity")

    def delivered(fired: dict[str, Any]) -> bool:
        row = rows.find_one({"trigger_id": fired["triggerId"]})
        return row is not None and row["status"] == "SUCCEEDED"

    first = trigger(tenant, "HANGUP")
    wait_until(lambda: delivered(first), 30, "the first delivery")
    wait_until(lambda: tenant.collection("health").find_one({}), 30, "the first success")
    start = counted.log.stat().st_size
    second = trigger(tenant, "HANGUP")
    wait_until(lambda: delivered(second), 30, "the second delivery")

    ours = [c for c in read(counted.log, start) if c.collection.startswith(f"t_{tenant.code}_")]
    writes = [str(c) for c in ours if c.write and c.statuses != ("SENDING",)]
    assert writes == [f"insert t_{tenant.code}_activity x1",
                      f"insert t_{tenant.code}_claims x1",
                      f"update t_{tenant.code}_activity x1 -> SUCCEEDED"], [str(c) for c in ours]
