"""Prometheus metrics, with the standard client library.

The API serves its own at ``/metrics``; each worker process serves its own on
``EVENT_MANAGER_WORKER_METRICS_PORT`` (the n-th process of one ``worker`` command on
that port + n), so counters are never shared between processes and Prometheus sums them.

    event_manager_triggers_total{event, outcome}      API: accepted | skipped | refused
    event_manager_trigger_batch_size                  API: triggers written per batch
    event_manager_deliveries_total{status}            worker: SUCCEEDED | RETRYING | FAILED
    event_manager_delivery_attempts_total             worker: HTTP attempts made
    event_manager_delivery_seconds                    worker: one attempt, send → answer
    event_manager_delivery_lag_seconds                worker: trigger accepted → delivered
    event_manager_queue_depth{queue}                  API: messages waiting (and delayed)
    event_manager_active_subscriptions                API: live activity subscribers
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

log = logging.getLogger("event_manager.metrics")

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500)

TRIGGERS = Counter("event_manager_triggers", "Triggers by event and outcome",
                   ["event", "outcome"])
TRIGGER_BATCH_SIZE = Histogram("event_manager_trigger_batch_size",
                               "Triggers written per batch: concurrent triggerEvent calls of "
                               "a tenant, one triggerEvents or one testEvent",
                               buckets=BATCH_BUCKETS)
DELIVERIES = Counter("event_manager_deliveries", "Delivery attempts ended, by the status "
                     "they left the row in", ["status"])
ATTEMPTS = Counter("event_manager_delivery_attempts", "HTTP attempts made")
DELIVERY_SECONDS = Histogram("event_manager_delivery_seconds",
                             "One attempt, from sending to the answer", buckets=LATENCY_BUCKETS)
LAG_SECONDS = Histogram("event_manager_delivery_lag_seconds",
                        "From the trigger's acceptance to the delivery's end",
                        buckets=LATENCY_BUCKETS)
SUBSCRIPTIONS = Gauge("event_manager_active_subscriptions", "Live activity subscribers")


class QueueDepth(Collector):
    """Messages waiting in the Redis broker's queue and its delay queue, read at scrape
    time (a RabbitMQ broker reports its own queues; this collector is not registered)."""

    def __init__(self, redis_url: str, queue: str) -> None:
        import redis

        self.redis = redis.Redis.from_url(redis_url, socket_timeout=1, socket_connect_timeout=1)
        self.queue = queue

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily("event_manager_queue_depth",
                                   "Delivery messages waiting in the broker", labels=["queue"])
        for name in (self.queue, f"{self.queue}.DQ", f"{self.queue}-later",
                     f"{self.queue}-later.DQ"):
            try:
                family.add_metric([name], self.redis.llen(f"dramatiq:{name}"))
            except Exception as exc:  # a scrape must not fail because Redis is down
                log.debug("queue depth of %s unavailable: %s", name, exc)
        yield family


def watch_queue(redis_url: str, broker_url: str, queue: str) -> None:
    if broker_url.startswith("redis"):
        REGISTRY.register(QueueDepth(broker_url, queue))


def serve_worker_metrics(port: int, host: str = "127.0.0.1", processes: int = 8,
                         first: int = 0) -> int | None:
    """Serve this process's metrics on ``port + first`` (``first``: its place among the
    worker command's processes, so that each keeps its port), else on the first free port
    of ``port`` … ``port + processes - 1``; the port, or None when all are taken (or
    ``port`` is 0)."""
    if not port:
        return None
    for candidate in dict.fromkeys([port + first, *range(port, port + processes)]):
        try:
            start_http_server(candidate, addr=host)
            return candidate
        except OSError:
            continue
    log.warning("no free metrics port in %d-%d; this worker process has none",
                port, port + processes - 1)
    return None
