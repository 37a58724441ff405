"""An OTLP/HTTP trace collector on 127.0.0.1 for tests, in a thread of its own: it takes
``POST /v1/traces`` (protobuf, gzip or not) as the SDK's exporter sends it and keeps each
span, flattened, with the service that sent it."""

from __future__ import annotations

import gzip
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

SERVER, CLIENT, CONSUMER = 2, 3, 5
"""``Span.SpanKind`` values of the protocol."""


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_id: str
    """The parent's span id, "" for a root span."""
    attributes: dict[str, Any]


def _value(value: AnyValue) -> Any:
    return getattr(value, value.WhichOneof("value")) if value.WhichOneof("value") else None


def flatten(request: ExportTraceServiceRequest) -> list[Span]:
    """Each span of an export, with the service that sent it."""
    found = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                found.append(Span(
                    str(resource.get("service.name")), span.name, span.kind,
                    span.trace_id.hex(), span.span_id.hex(), span.parent_span_id.hex(),
                    {a.key: _value(a.value) for a in span.attributes}))
    return found


class Collector:
    def __init__(self, keep: bool = True) -> None:
        self.spans: list[Span] = []
        self.keep = keep
        """False: count the spans and requests only (``python -m bench --trace``)."""
        self.received = {"requests": 0, "spans": 0, "bytes": 0}
        self.lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/traces":
                    self.send_response(404)
                    self.end_headers()
                    return
                collector.take(ExportTraceServiceRequest.FromString(body), len(body))
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def take(self, request: ExportTraceServiceRequest, size: int = 0) -> None:
        found = flatten(request) if self.keep else []  # counted only, for the bench
        with self.lock:
            self.received["requests"] += 1
            self.received["spans"] += sum(len(scope.spans) for resource in request.resource_spans
                                          for scope in resource.scope_spans)
            self.received["bytes"] += size
            self.spans += found

    def of_trace(self, trace_id: str) -> list[Span]:
        with self.lock:
            return [span for span in self.spans if span.trace_id == trace_id]

    def start(self) -> Collector:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
