"""Where spans go: ``CAMPAIGNFLOW_TRACING__*``. Off by default.

Kept apart from :mod:`campaignflow.observability.tracing` so reading settings does not import the
OpenTelemetry SDK (``campaignflow validate`` must start fast).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SecretStr

TraceExporter = Literal["none", "otlp", "console"]


class TracingSettings(BaseModel):
    """OpenTelemetry tracing of the API, the bus, the engine and the connectors."""

    exporter: TraceExporter = Field(
        "none",
        description="`none` (the default: no spans are made), `otlp` (OTLP over HTTP/protobuf "
        "to `endpoint`: an OpenTelemetry Collector, Jaeger, Tempo, Honeycomb …) or `console` "
        "(one JSON span per line on stdout, for a look during development).",
    )
    endpoint: str = Field(
        "http://127.0.0.1:4318/v1/traces",
        description="The OTLP/HTTP traces endpoint (`otlp` only).",
    )
    headers: SecretStr | None = Field(
        None,
        description="Headers sent with every export, `key=value` pairs separated by commas "
        "(an API key of the tracing backend): a secret, never logged.",
    )
    service_name: str = Field(
        "campaignflow", min_length=1, max_length=200, description="`service.name` of the spans."
    )
    sample_ratio: float = Field(
        1.0,
        ge=0.0,
        le=1.0,
        description="Share of new traces recorded; a trace started upstream (a `traceparent` "
        "header with the sampled flag) follows its parent's decision.",
    )
