"""Tenants share the worker: tenant A's 20 slow, huge or failing deliveries do not hold
up tenant B's first attempts (issue 14).

An installation of its own (API and worker processes on the shared services, under a
database prefix of its own), whose worker has 16 slots, 8 per tenant: A's 20 heavy
deliveries are more than the whole worker's slots, so without shares B would wait for
A's to end (5 s slow answers, 2 s failing ones), and without the render lane B would
wait while A's bodies render on the event loop (about 0.3 s each).

B's latency, trigger sent → request received (one clock: the receiver runs in this
process), is measured quiet and then under A's load in the same test; under load it
must stay within twice the quiet median, with a generous margin for a busy machine.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from event_manager.config import Settings
from tests.conftest import TenantHandle, make_tenant, wait_until
from tests.installation import Installation, installation
from tests.receiver import Receiver, Reply

HEAVY = 20
LIGHT = 12
PACE = 0.2
"""Seconds between B's triggers."""
MARGIN = 0.3
"""Seconds allowed over twice B's quiet median: a busy two-core machine's noise."""


@pytest.fixture(scope="module")
def shared_worker(settings: Settings, mongo: Any, redis_client: redis.Redis,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    """API and worker of their own: a worker of 16 slots, 8 per tenant, 4 for retries.
    It never pauses an action (``dispatch.breaker``): A's 60 failing attempts would
    otherwise wait for probes, and the shares are what is tested here."""
    with installation(settings, mongo, redis_client, tmp_path_factory.mktemp("fair"), "fair",
                      worker_in_flight=16, tenant_in_flight=8, retry_in_flight=4,
                      retry_schedule="0.5,0.5", pause_after_failures=0) as place:
        yield place


def send_on_hangup(tenant: TenantHandle, **action: Any) -> None:
    """The tenant's HANGUP sends ``action``; actions enabled."""
    made = tenant.admin("mutation($i: ActionInput!) { createAction(input: $i) { id } }",
                        i={"name": "hook", **action}).data["createAction"]["id"]
    tenant.admin("mutation($ids: [ID!]) { updateEvent(type: HANGUP, input: {active: true, "
                 "actionIds: $ids}) { type } updateSettings(input: {actionsEnabled: true}) "
                 "{ actionsEnabled } }", ids=[made]).data


def light_latencies(tenant: TenantHandle, receiver: Receiver, first: int) -> list[float]:
    """B's triggers, one every ``PACE`` s: seconds from each trigger sent to its request
    received."""
    path = f"/{tenant.code}/b"
    sent: dict[str, float] = {}
    for seq in range(first, first + LIGHT):
        sent[str(seq)] = time.monotonic()
        tenant.admin('mutation($p: JSON) { triggerEvent(input: {event: HANGUP, params: $p}) '
                     '{ accepted } }', p={"seq": seq}).data
        time.sleep(max(0.0, sent[str(seq)] + PACE - time.monotonic()))
    arrived = receiver.wait_for(path, first + LIGHT, timeout=60)
    at = {r.query.removeprefix("seq="): r.at for r in arrived}
    return [at[seq] - moment for seq, moment in sent.items()]


def heavy_load(place: Installation, mongo: Any, receiver: Receiver, kind: str) -> TenantHandle:
    """Tenant A, its action of ``kind`` ready (not yet triggered)."""
    tenant = make_tenant(place.system, mongo, place.settings)
    path = f"/{tenant.code}/a"
    action: dict[str, Any] = {"url": f"{receiver.url}{path}"}
    if kind == "slow":
        receiver.script(path, *[Reply(delay=5.0)] * HEAVY)
    elif kind == "failing":  # every attempt answered 503 after 2 s, 3 attempts each
        receiver.script(path, *[Reply(503, delay=2.0)] * (3 * HEAVY))
    else:  # huge: 36,000 placeholders in a JSON body, 1.15 MB rendered
        tenant.admin('mutation { createParameter(input: {tag: "big", value: "'
                     + "x" * 30 + '"}) { tag } }').data
        action.update(bodyType="RAW", rawContentType="application/json",
                      rawBody="{{big}}" * 36_000)
    send_on_hangup(tenant, **action)
    return tenant


def settled(tenant: TenantHandle, count: int, timeout: float) -> None:
    """Every row of the tenant SUCCEEDED or FAILED: its load is over."""
    wait_until(lambda: tenant.collection("activity").count_documents(
        {"status": {"$in": ["SUCCEEDED", "FAILED"]}}) >= count, timeout, "A's load is over")


@pytest.mark.parametrize("kind", ["slow", "huge", "failing"])
def test_a_tenants_heavy_deliveries_do_not_hold_up_another_tenants(
        kind: str, shared_worker: Installation, mongo: Any, receiver: Receiver) -> None:
    light = make_tenant(shared_worker.system, mongo, shared_worker.settings)
    send_on_hangup(light, url=f"{receiver.url}/{light.code}/b?seq={{{{seq}}}}")
    heavy = heavy_load(shared_worker, mongo, receiver, kind)
    light_latencies(light, receiver, 0)  # warm: connections, caches, the consumer
    quiet = light_latencies(light, receiver, LIGHT)

    heavy.admin('mutation($i: [TriggerInput!]!) { triggerEvents(inputs: $i) { accepted } }',
                i=[{"event": "HANGUP", "params": {"seq": i}} for i in range(HEAVY)]).data
    time.sleep(0.3)  # A's deliveries under way
    loaded = light_latencies(light, receiver, 2 * LIGHT)
    settled(heavy, HEAVY, timeout=90)

    bound = 2 * statistics.median(quiet) + MARGIN
    assert statistics.median(loaded) <= bound, (kind, quiet, loaded)
    assert max(loaded) <= 2 * max(quiet) + 2 * MARGIN, (kind, quiet, loaded)
