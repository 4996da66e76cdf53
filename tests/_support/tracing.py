"""The OpenTelemetry SDK with its in-memory exporter, installed for one test: the spans are the
SDK's own, only their export is kept in memory instead of sent to a collector."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from campaignflow.observability import tracing
from campaignflow.observability.trace_export import configure_tracing
from campaignflow.observability.trace_settings import TracingSettings


@pytest.fixture
def exported_spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = configure_tracing(TracingSettings(), role="test", exporter=exporter)
    assert provider is not None
    try:
        yield exporter
    finally:
        tracing.install(None)
        provider.shutdown()
