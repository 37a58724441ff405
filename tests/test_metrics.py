"""Prometheus metrics: the API's at /metrics, each worker process's on a port of its own;
counters move with real triggers and deliveries."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.conftest import TenantHandle, wait_until
from tests.receiver import Receiver
from tests.test_delivery import hook, settled, trigger
from tests.test_subscription import subscription, until_live


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus' text format (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.match(r"^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$", line)
        if not match or match.group(1) != name:
            continue
        found = ",".join(sorted((match.group(2) or "").split(","))) if match.group(2) else ""
        if found == wanted:
            return float(match.group(3))
    return 0.0


def api_metrics(api_url: str) -> str:
    response = httpx.get(f"{api_url}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def test_api_metrics_count_triggers_subscribers_and_the_queue(
        api_url: str, tenant: TenantHandle) -> None:
    before = api_metrics(api_url)
    assert "event_manager_queue_depth" in before
    skipped = sample(before, "event_manager_triggers_total", event="HANGUP", outcome="skipped")
    watching = sample(before, "event_manager_active_subscriptions")
    tenant.admin("mutation { triggerEvent(input: {event: HANGUP}) { accepted } }").data
    with subscription(api_url, tenant.admin.key,
                      "subscription { activity { id triggerId } }") as ws:
        until_live(ws, tenant)
        during = api_metrics(api_url)
        assert sample(during, "event_manager_active_subscriptions") == watching + 1
    assert sample(during, "event_manager_triggers_total", event="HANGUP",
                  outcome="skipped") >= skipped + 1
    wait_until(lambda: sample(api_metrics(api_url), "event_manager_active_subscriptions")
               == watching)


@pytest.mark.usefixtures("worker")
def test_worker_metrics_count_deliveries(
        worker_metrics_url: str, tenant: TenantHandle, receiver: Receiver) -> None:
    before = httpx.get(worker_metrics_url, timeout=10).text
    succeeded = sample(before, "event_manager_deliveries_total", status="SUCCEEDED")
    attempts = sample(before, "event_manager_delivery_attempts_total")
    hook(tenant, receiver, "metered")
    settled(tenant, trigger(tenant, "HANGUP")["triggerId"])
    after = httpx.get(worker_metrics_url, timeout=10).text
    assert sample(after, "event_manager_deliveries_total", status="SUCCEEDED") == succeeded + 1
    assert sample(after, "event_manager_delivery_attempts_total") == attempts + 1
    assert sample(after, "event_manager_delivery_seconds_count") >= 1
