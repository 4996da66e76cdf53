"""Building the tracer provider from settings: the OpenTelemetry SDK and the chosen exporter.

Only the process roles call this (at start, :func:`configure_tracing`; at exit,
:func:`shutdown_tracing`); everything instrumented goes through :mod:`observability.tracing`.
"""

from __future__ import annotations

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from campaignflow import __version__
from campaignflow.observability.trace_settings import TracingSettings
from campaignflow.observability.tracing import install, installed_provider


def configure_tracing(
    settings: TracingSettings, *, role: str, exporter: SpanExporter | None = None
) -> TracerProvider | None:
    """Install the exporter the settings name (``exporter`` replaces it: a test's in-memory
    one); returns the provider (shut it down at exit to flush), or ``None`` when off."""
    if exporter is None:
        if settings.exporter == "none":
            return None
        exporter = _exporter_for(settings)
        processor: SpanProcessor = BatchSpanProcessor(exporter)
    else:
        processor = SimpleSpanProcessor(exporter)
    resource = Resource.create(
        {
            "service.name": settings.service_name,
            "service.version": __version__,
            "campaignflow.role": role,
        }
    )
    provider = TracerProvider(
        resource=resource, sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio))
    )
    provider.add_span_processor(processor)
    install(provider)
    return provider


def _exporter_for(settings: TracingSettings) -> SpanExporter:
    if settings.exporter == "console":
        return ConsoleSpanExporter()
    headers = _parse_headers(settings.headers.get_secret_value() if settings.headers else "")
    return OTLPSpanExporter(endpoint=settings.endpoint, headers=headers)


def _parse_headers(raw: str) -> dict[str, str]:
    """``key=value,key2=value2`` (OTEL_EXPORTER_OTLP_HEADERS' format)."""
    headers: dict[str, str] = {}
    for pair in raw.split(","):
        key, sep, value = pair.partition("=")
        if sep and key.strip():
            headers[key.strip()] = value.strip()
    return headers


def shutdown_tracing() -> None:
    """Flush the spans still buffered and stop the exporter (at process exit)."""
    provider = installed_provider()
    install(None)
    if isinstance(provider, TracerProvider):
        provider.shutdown()
