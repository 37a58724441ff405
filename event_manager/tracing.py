"""OpenTelemetry traces: off unless an OTLP endpoint is configured.

With ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) set and
``OTEL_SDK_DISABLED`` not ``true``, each process installs a tracer provider that exports
over OTLP/HTTP (protobuf) in batches, and the maintained instrumentations: Starlette
(ASGI) in the API, Strawberry's extension on the schema, PyMongo and Redis in both, the
aiohttp client in the worker. Every other ``OTEL_*`` variable is read by the SDK itself
(service name, resource attributes, sampler, batch delays, headers, timeouts).

Without an endpoint this module imports nothing of OpenTelemetry: ``enabled()`` is one
look at the environment, made once, and ``traceparent()`` answers None without an import
(~70 ns). (redis-py 8 imports OpenTelemetry's metrics SDK, when installed, on its own.)

One trigger is one trace: the ``triggerEvent`` resolver's span is stored on each row it
writes (``traceparent``, ``Activity.traceId``), the delivery message carries the context
it was sent in, and the worker's span of each attempt is a child of the row's (or else
the message's) context, the aiohttp client span a child of that.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache, partial
from typing import Any

TRACEPARENT = "traceparent"
MESSAGE_OPTION = "trace_context"
"""The delivery message option that carries the sender's context (W3C headers)."""
QUIET_URLS = "healthz,readyz,metrics"
"""Paths of the API left out of traces unless ``OTEL_PYTHON_STARLETTE_EXCLUDED_URLS`` (or
``OTEL_PYTHON_EXCLUDED_URLS``) says otherwise: probes and scrapes every few seconds."""

_installed = False


@cache
def enabled() -> bool:
    """Whether this process traces: an OTLP endpoint is set and the SDK is not disabled
    (the specification's ``OTEL_SDK_DISABLED``)."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return any(os.environ.get(name, "").strip() for name in (
        "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def setup(service: str) -> bool:
    """Install the tracer provider and the instrumentations, once per process, when
    ``enabled()``; ``service`` names the process unless ``OTEL_SERVICE_NAME`` does.

    Call it in the process that makes the spans, after any fork: the batch processor's
    export thread does not survive one (the worker calls it in each Dramatiq process,
    at boot). Clients made before it are still traced by Redis and aiohttp (patched
    classes) but not by PyMongo, whose listeners a client takes when it is made."""
    global _installed
    if not enabled():
        return False
    if _installed:
        return True
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
    from opentelemetry.instrumentation.pymongo import PymongoInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import _get_from_env_or_default

    # _get_from_env_or_default: the SDK's own reading of OTEL_TRACES_SAMPLER(_ARG),
    # private but what its default provider calls; the sampler below wraps its choice.
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service}
    provider = TracerProvider(resource=Resource.create(attributes),
                              sampler=_quiet_background(_get_from_env_or_default()))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    PymongoInstrumentor().instrument()
    RedisInstrumentor().instrument()
    AioHttpClientInstrumentor().instrument(url_filter=_origin)
    _installed = True
    return True


def shut_down() -> None:
    """Export the spans still waiting, and stop: a Dramatiq process ends without running
    the exit handlers that would (multiprocessing's children leave by ``os._exit``)."""
    if not _installed:
        return
    from opentelemetry import trace

    shutdown = getattr(trace.get_tracer_provider(), "shutdown", None)
    if shutdown is not None:
        shutdown()


def _origin(url: Any) -> str:
    """What a delivery's client span says of its URL: the scheme, host and port. The
    path and query may hold the action's secrets (a Slack webhook's path is its key);
    the activity row shows them, masked."""
    return str(url.origin())


def _quiet_background(configured: Any) -> Any:
    """The configured sampler (``OTEL_TRACES_SAMPLER``), except that a client span
    without a parent is dropped: the worker's liveness beats, recovery sweeps and
    broker polls, and the API's pub/sub, would each make a trace of one Redis or
    MongoDB span every few seconds, drowning the triggers' traces."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult

    class QuietBackground(Sampler):
        def should_sample(self, parent_context: Any, trace_id: int, name: str,
                          kind: Any = None, attributes: Any = None, links: Any = None,
                          trace_state: Any = None) -> SamplingResult:
            parent = trace.get_current_span(parent_context).get_span_context()
            if kind == trace.SpanKind.CLIENT and not parent.is_valid:
                return SamplingResult(Decision.DROP)
            return configured.should_sample(parent_context, trace_id, name, kind,
                                            attributes, links, trace_state)

        def get_description(self) -> str:
            return f"QuietBackground{{{configured.get_description()}}}"

    return QuietBackground()


def instrument_app(app: Any) -> None:
    """The API's server spans (Starlette's instrumentation) and GraphQL's (Strawberry's
    extension, on the process's schema), when tracing is on. Resolver arguments are not
    recorded: they hold call data and an action's secrets."""
    if not setup("event-manager-api"):
        return
    os.environ.setdefault("OTEL_PYTHON_STARLETTE_EXCLUDED_URLS", QUIET_URLS)
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from opentelemetry.instrumentation.starlette import StarletteInstrumentor
    from strawberry.extensions.tracing import OpenTelemetryExtension

    from schema import schema

    extension = _without_query_text(OpenTelemetryExtension)
    if not any(getattr(e, "func", None) is extension for e in schema.extensions):
        # First, so that the operation's span holds what the other extensions do.
        schema.extensions = (partial(extension, arg_filter=_no_arguments),
                             *schema.extensions)
    StarletteInstrumentor.instrument_app(app)
    # The ASGI middleware would add a span for each message of the request and the
    # answer (3 per GraphQL request): timings the server span already holds.
    for middleware in app.user_middleware:
        if middleware.cls is OpenTelemetryMiddleware:
            middleware.kwargs["exclude_spans"] = ["receive", "send"]


def _no_arguments(kwargs: dict[str, Any], info: Any) -> dict[str, Any]:
    return {}


class _NoQuery:
    """An execution context that shows no query text, the rest its own."""

    query = None

    def __init__(self, real: Any) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@cache
def _without_query_text(extension: type) -> type:
    """Strawberry's extension, but the operation span does not hold the query's text:
    a mutation may write an action's secrets (or a trigger's call data) into it as
    literals, and the arguments' values are left out for the same reason. Nor does it
    make a span of parsing and validation: a query the API has seen is parsed and
    validated from caches, in less time than its two spans cost to make and send."""

    class WithoutQueryText(extension):  # type: ignore[misc, valid-type]
        def on_parse(self) -> Iterator[None]:
            yield

        def on_validate(self) -> Iterator[None]:
            yield

        def on_operation(self) -> Iterator[None]:
            real = self.execution_context
            self.execution_context = _NoQuery(real)  # read by the span's start only
            steps = super().on_operation()
            try:
                next(steps)
            finally:
                self.execution_context = real
            yield
            next(steps, None)

    return WithoutQueryText


def traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span (``00-<trace id>-<span id>-<flags>``),
    or None when tracing is off or no span is recording."""
    if not _installed:
        return None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


def trace_id(traceparent: str | None) -> str | None:
    """The trace id (32 hex digits) a row's ``traceparent`` names, or None."""
    parts = (traceparent or "").split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None


def message_options() -> dict[str, Any]:
    """Options that carry the current context in a delivery message (none when off)."""
    if not _installed:
        return {}
    from opentelemetry.propagate import inject

    carrier: dict[str, str] = {}
    inject(carrier)
    return {MESSAGE_OPTION: carrier} if carrier else {}


@contextmanager
def attempt_span(row: dict[str, Any], tenant: str,
                 message_context: dict[str, str] | None) -> Iterator[None]:
    """The span of one delivery attempt, ``deliver <action name>``: a child of the span
    that wrote the row (its ``traceparent``), else of the message's context. Nothing
    when tracing is off."""
    if not _installed:
        yield
        return
    from opentelemetry import trace
    from opentelemetry.propagate import extract
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    if row.get(TRACEPARENT):  # written by this code: W3C, whatever OTEL_PROPAGATORS says
        parent = TraceContextTextMapPropagator().extract({TRACEPARENT: row[TRACEPARENT]})
    else:
        parent = extract(message_context) if message_context else None
    with _delivery_tracer().start_as_current_span(
            f"deliver {row.get('action_name') or 'action'}", kind=trace.SpanKind.CONSUMER,
            context=parent,
            attributes={"event_manager.tenant": tenant,
                        "event_manager.activity_id": str(row["_id"]),
                        "event_manager.action_id": str(row.get("action_id")),
                        "event_manager.trigger_id": str(row.get("trigger_id")),
                        "event_manager.attempt": int(row.get("attempts", 0))}):
        yield


@cache
def _delivery_tracer() -> Any:
    """The tracer of the attempts' spans, asked for once (not once per attempt)."""
    from opentelemetry import trace

    return trace.get_tracer("event_manager.delivery")


def note(**attributes: Any) -> None:
    """Attributes of the current span (``event_manager.<name>``), when tracing: what an
    attempt ended as, for a trace to say without its row."""
    if not _installed:
        return
    from opentelemetry import trace

    span = trace.get_current_span()
    for name, value in attributes.items():
        if value is not None:
            span.set_attribute(f"event_manager.{name}", value)


PROPAGATED = ("traceparent", "tracestate")


async def without_trace_context(request: Any, handler: Any) -> Any:
    """An aiohttp client middleware for ``EVENT_MANAGER_OUTBOUND_TRACE_CONTEXT=false``:
    the aiohttp instrumentation adds the context to every request before the session's
    middlewares run; here it is taken out again, the client span kept."""
    for name in PROPAGATED:
        request.headers.popall(name, None)
    return await handler(request)
