"""The ``otlp`` exporter chosen by settings really exports: spans reach an OTLP/HTTP endpoint (a
local HTTP server standing in for a collector, decoding the request with OpenTelemetry's own
protobuf messages) with the configured headers, the resource's service name and role, and are
flushed when the process role stops."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from pydantic import SecretStr

from campaignflow.observability import tracing
from campaignflow.observability.trace_export import configure_tracing, shutdown_tracing
from campaignflow.observability.trace_settings import TracingSettings


@dataclass
class Collector:
    url: str
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


@pytest.fixture
def collector() -> Iterator[Collector]:
    received: list[tuple[dict[str, str], bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            received.append(
                ({k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length))
            )
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield Collector(f"http://{host!s}:{port}/v1/traces", received)
    finally:
        server.shutdown()
        server.server_close()


def test_otlp_exports_the_spans_with_headers_and_resource_at_shutdown(
    collector: Collector,
) -> None:
    settings = TracingSettings(
        exporter="otlp",
        endpoint=collector.url,
        headers=SecretStr("x-api-key=k-123,x-team=growth"),
        service_name="campaignflow-eu",
    )
    provider = configure_tracing(settings, role="worker")
    assert provider is not None
    try:
        with tracing.tracer().start_as_current_span("advance execution"):
            pass
    finally:
        shutdown_tracing()  # what a process role does at exit: flush, then stop
    assert not tracing.enabled()

    assert len(collector.requests) == 1
    headers, body = collector.requests[0]
    assert headers["content-type"] == "application/x-protobuf"
    assert headers["x-api-key"] == "k-123"
    assert headers["x-team"] == "growth"
    exported = ExportTraceServiceRequest()
    exported.ParseFromString(body)
    (resource_spans,) = exported.resource_spans
    resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert resource["service.name"] == "campaignflow-eu"
    assert resource["campaignflow.role"] == "worker"
    names = [span.name for scope in resource_spans.scope_spans for span in scope.spans]
    assert names == ["advance execution"]
