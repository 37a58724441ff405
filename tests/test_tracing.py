"""Traces (``event_manager.tracing``): one trigger is one trace, from the API's request
through its database and broker calls to every delivery attempt in the worker and its
HTTP request, exported over OTLP/HTTP to a collector in the test process; and nothing of
OpenTelemetry is loaded without an endpoint."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from event_manager.config import Settings
from tests.collector import CLIENT, CONSUMER, SERVER, Collector, Span
from tests.conftest import TenantHandle, make_tenant, wait_until
from tests.installation import Installation, installation
from tests.receiver import Receiver, Reply
from tests.test_delivery import attach, enable, make_action, settled, trigger

API, WORKER = "event-manager-api", "event-manager-worker"


@pytest.fixture(scope="module")
def traced(settings: Settings, mongo: Any, redis_client: redis.Redis,
           tmp_path_factory: pytest.TempPathFactory,
           collector: Collector) -> Iterator[Installation]:
    """An API and a worker exporting to ``collector``, in batches a tenth of a second
    apart."""
    otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    with installation(settings, mongo, redis_client, tmp_path_factory.mktemp("traced"),
                      "traced", extra_env=otel) as place:
        yield place


@pytest.fixture(scope="module")
def traced_inside(settings: Settings, mongo: Any, redis_client: redis.Redis,
                  tmp_path_factory: pytest.TempPathFactory,
                  collector: Collector) -> Iterator[Installation]:
    """As ``traced``, with ``EVENT_MANAGER_OUTBOUND_TRACE_CONTEXT=false``."""
    otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    with installation(settings, mongo, redis_client, tmp_path_factory.mktemp("inside"),
                      "inside", extra_env=otel, outbound_trace_context=False) as place:
        yield place


def trace_ids(tenant: TenantHandle, trigger_id: str) -> list[str | None]:
    reply = tenant.admin("query($t: ID) { activity(filter: {triggerId: $t}) "
                         "{ items { traceId } } }", t=trigger_id)
    return [item["traceId"] for item in reply.data["activity"]["items"]]


def attribute(span: Span, *names: str) -> Any:
    """The first of ``names`` the span has (old and new semantic conventions)."""
    return next((span.attributes[n] for n in names if n in span.attributes), None)


def test_one_trigger_is_one_trace_from_the_request_to_each_attempt(
        traced: Installation, mongo: Any, receiver: Receiver, collector: Collector) -> None:
    """A delivery answered 503, then 200 on its retry: the API's server span, its
    GraphQL, MongoDB and Redis spans, and in the worker one span per attempt, a child of
    the API's triggerEvent span, holding the attempt's HTTP request; the row shows the
    trace id and the receiver got it in ``traceparent``."""
    tenant = make_tenant(traced.system, mongo, traced.settings)
    path = f"/{tenant.code}/traced"
    receiver.script(path, Reply(503))
    action = make_action(tenant, name="CRM", url=f"{receiver.url}{path}")
    attach(tenant, "HANGUP", action)
    enable(tenant)
    trigger_id = trigger(tenant, "HANGUP")["triggerId"]
    [row] = settled(tenant, trigger_id)
    assert (row["status"], row["attempts"]) == ("SUCCEEDED", 2)
    [trace_id] = trace_ids(tenant, trigger_id)
    assert trace_id is not None and re.fullmatch("[0-9a-f]{32}", trace_id)

    def complete() -> list[Span]:
        spans = collector.of_trace(trace_id)
        sends = [s for s in spans if s.service == WORKER and s.kind == CLIENT
                 and attribute(s, "http.request.method", "http.method")]
        attempts = [s for s in spans if s.service == WORKER and s.kind == CONSUMER]
        # An attempt's span ends after its request's (it records the outcome first): the
        # two may leave in different batches.
        return spans if len(sends) == 2 and len(attempts) == 2 else []

    spans = wait_until(complete, 30, "both attempts' spans and HTTP spans exported")
    by_id = {span.span_id: span for span in spans}
    api = [s for s in spans if s.service == API]
    [server] = [s for s in api if s.kind == SERVER and s.parent_id == ""]
    assert server.name.startswith("POST") and attribute(server, "http.route") == "/graphql"
    [resolver] = [s for s in api if s.name == "GraphQL Resolving: triggerEvent"]
    assert not [s for s in api if "query" in s.attributes or any(
        name.startswith("graphql.param.") for name in s.attributes)], (
        "no query text, no argument values: they hold call data and secrets")
    assert by_id[resolver.parent_id].parent_id == server.span_id, "operation, then field"
    assert not [s.name for s in api if s.name.endswith((" http receive", " http send"))
                or s.name in ("GraphQL Parsing", "GraphQL Validation")], (
        "no span per ASGI message, none for parsing or validating: they cost more than "
        "what they would show")
    assert [s for s in api if attribute(s, "db.system", "db.system.name") == "mongodb"], (
        "the API's MongoDB commands join the trace")
    assert [s for s in api if attribute(s, "db.system", "db.system.name") == "redis"], (
        "the broker message and the live publication (Redis) join the trace")

    attempts = sorted((s for s in spans if s.service == WORKER and s.kind == CONSUMER),
                      key=lambda s: s.attributes["event_manager.attempt"])
    assert [(s.name, s.attributes["event_manager.attempt"]) for s in attempts] == [
        ("deliver CRM", 1), ("deliver CRM", 2)]
    for attempt in attempts:
        assert attempt.parent_id == resolver.span_id, "a child of the trigger, in the API"
        assert attempt.attributes["event_manager.tenant"] == tenant.code
        assert attempt.attributes["event_manager.activity_id"] == row["id"]
        assert attempt.attributes["event_manager.action_id"] == action
    assert [a.attributes["event_manager.status"] for a in attempts] == ["RETRYING",
                                                                         "SUCCEEDED"]
    sends = {s.parent_id: s for s in spans if s.service == WORKER and s.kind == CLIENT
             and attribute(s, "http.request.method", "http.method")}
    assert set(sends) == {a.span_id for a in attempts}, "each request inside its attempt"
    statuses = [attribute(sends[a.span_id], "http.response.status_code", "http.status_code")
                for a in attempts]
    assert statuses == [503, 200]
    for attempt in attempts:
        send = sends[attempt.span_id]
        assert attribute(send, "http.request.method", "http.method") == "POST"
        assert attribute(send, "url.full", "http.url") == receiver.url, (
            "the origin only: a path or query may hold the action's secrets")

    sent = [(r.header("traceparent") or "").split("-")[:3] for r in receiver.received(path)]
    assert sent == [["00", trace_id, sends[a.span_id].span_id] for a in attempts]


def test_receivers_may_be_left_out_of_the_trace(
        traced_inside: Installation, mongo: Any, receiver: Receiver,
        collector: Collector) -> None:
    """With ``EVENT_MANAGER_OUTBOUND_TRACE_CONTEXT=false`` the request carries no trace
    context (an action's own headers still go), and its client span is still recorded."""
    tenant = make_tenant(traced_inside.system, mongo, traced_inside.settings)
    path = f"/{tenant.code}/inside"
    action = make_action(tenant, name="CRM", url=f"{receiver.url}{path}",
                         headers=[{"key": "X-Team", "value": "support"}])
    attach(tenant, "HANGUP", action)
    enable(tenant)
    trigger_id = trigger(tenant, "HANGUP")["triggerId"]
    settled(tenant, trigger_id)
    [trace_id] = trace_ids(tenant, trigger_id)
    [sent] = receiver.received(path)
    assert (sent.header("traceparent"), sent.header("tracestate")) == (None, None)
    assert sent.header("X-Team") == "support"
    wait_until(lambda: [s for s in collector.of_trace(trace_id or "")
                        if s.service == WORKER and s.kind == CLIENT
                        and attribute(s, "http.request.method", "http.method")],
               30, "the request's client span exported")


def test_a_stopping_worker_exports_the_spans_still_waiting(
        settings: Settings, mongo: Any, redis_client: redis.Redis, receiver: Receiver,
        tmp_path_factory: pytest.TempPathFactory, collector: Collector) -> None:
    """Spans wait up to ten minutes for their batch here: those of a delivery reach the
    collector when the worker stops (its processes leave without exit handlers)."""
    otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "OTEL_BSP_SCHEDULE_DELAY": "600000"}
    with installation(settings, mongo, redis_client, tmp_path_factory.mktemp("flushed"),
                      "flushed", extra_env=otel) as place:
        tenant = make_tenant(place.system, mongo, place.settings)
        action = make_action(tenant, name="Late", url=f"{receiver.url}/{tenant.code}/late")
        attach(tenant, "HANGUP", action)
        enable(tenant)
        trigger_id = trigger(tenant, "HANGUP")["triggerId"]
        settled(tenant, trigger_id)
        [trace_id] = trace_ids(tenant, trigger_id)
        assert not [s for s in collector.of_trace(trace_id or "") if s.service == WORKER]
        place.stop_worker()
        wait_until(lambda: [s for s in collector.of_trace(trace_id or "")
                            if s.service == WORKER and s.kind == CONSUMER],
                   10, "the attempt's span exported as the worker stopped")


@pytest.mark.usefixtures("worker")
def test_without_an_endpoint_rows_have_no_trace_and_nothing_is_loaded(
        tenant: TenantHandle, receiver: Receiver, env: dict[str, str]) -> None:
    """The session's API and worker have no OTLP endpoint: a row's traceId is null, and
    the app, the worker's module, a row and a delivery message load no tracer, exporter,
    propagator or instrumentation (with an endpoint, the same steps do: the check can
    fail). redis-py 8 itself imports OpenTelemetry's metrics SDK when it is installed,
    to see whether it could record metrics; that is not ours to load or not."""
    action = make_action(tenant, name="Plain", url=f"{receiver.url}/{tenant.code}/plain")
    attach(tenant, "HANGUP", action)
    enable(tenant)
    trigger_id = trigger(tenant, "HANGUP")["triggerId"]
    settled(tenant, trigger_id)
    assert trace_ids(tenant, trigger_id) == [None]
    assert receiver.received(f"/{tenant.code}/plain")[0].header("traceparent") is None

    def loaded(**otel: str) -> list[str]:
        quiet = {k: v for k, v in env.items() if not k.startswith("OTEL_")}
        result = subprocess.run([sys.executable, "-c", LOADS], env={**quiet, **otel},
                                capture_output=True, text=True, timeout=60, check=True)
        return result.stdout.split()

    assert loaded() == []
    assert {"opentelemetry.sdk.trace", "opentelemetry.propagate",
            "opentelemetry.instrumentation.starlette"} <= set(
        loaded(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9"))
    assert loaded(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9", OTEL_SDK_DISABLED="true") == []


LOADS = """
import sys
from datetime import UTC, datetime
from event_manager.app import create_app
from dispatch.actors import delivery_message
from resolvers.batch import Trigger, new_row
from tenants.activity import row_id

create_app()
row = new_row(Trigger("HANGUP", "SYSTEM", {}, datetime.now(UTC)), "t1", None, "QUEUED", "",
              datetime.now(UTC))
delivery_message("acme", [str(row["_id"])], [row])
ours = ("opentelemetry.sdk.trace", "opentelemetry.exporter", "opentelemetry.instrumentation",
        "opentelemetry.propagate", "strawberry.extensions.tracing")
print(*sorted(m for m in sys.modules if m.startswith(ours)))
"""


def test_the_delivery_message_carries_the_context_it_was_sent_in(env: dict[str, str]) -> None:
    """As a message option, through the broker's encoding (Redis and RabbitMQ alike); a
    message without it, from a sender that does not trace, has none."""
    otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}
    for extra, expected in ((otel, "True"), ({}, "None")):
        quiet = {k: v for k, v in env.items() if not k.startswith("OTEL_")}
        result = subprocess.run([sys.executable, "-c", SENDS], env={**quiet, **extra},
                                capture_output=True, text=True, timeout=60, check=True)
        assert result.stdout.split() == [expected], result.stderr


SENDS = """
import dramatiq
from event_manager import tracing
from dispatch.actors import delivery_message

tracing.setup("test")
if tracing.enabled():
    from opentelemetry import trace
    with trace.get_tracer("test").start_as_current_span("trigger") as span:
        message = delivery_message("acme", ["a1"])
    trace_id = f"{span.get_span_context().trace_id:032x}"
else:
    message, trace_id = delivery_message("acme", ["a1"]), None
carried = dramatiq.Message.decode(message.encode()).options.get(tracing.MESSAGE_OPTION)
print(None if carried is None else carried["traceparent"].split("-")[1] == trace_id)
"""
