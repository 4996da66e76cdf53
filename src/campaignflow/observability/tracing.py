"""OpenTelemetry spans from the API through the bus, the engine and the connectors.

Off by default: until :func:`configure_tracing` installs a provider, :func:`tracer` is
OpenTelemetry's no-op tracer, so an instrumented path costs a function call and no allocation
of spans, and nothing is carried on the bus. With tracing on:

- the API opens a server span per request (continuing a caller's ``traceparent``);
- ingestion stamps each event with the ``traceparent`` of the request that accepted it, so the
  router's batch span links back to every request in the batch (a batch has many parents: links,
  not a parent, as the messaging conventions say);
- an execution keeps the ``traceparent`` of what started it (an event's router span, or the
  ``execute`` request), and every advance of it by a worker is a child of that, however many
  hours later and in whichever process;
- a connector or ``http`` step request is a client span and sends ``traceparent`` onward.

The provider is held here rather than only as OpenTelemetry's global: the global can be set once
per process, and tests install and remove an in-memory one. This module needs only the
OpenTelemetry API (the stores import it); :mod:`observability.trace_export` builds the SDK
provider and its exporter from settings.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanKind, Status, StatusCode, Tracer, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from campaignflow import __version__

logger = logging.getLogger(__name__)

_NAME = "campaignflow"
_NO_OP: Tracer = trace.NoOpTracer()
_PROPAGATOR = TraceContextTextMapPropagator()
MAX_LINKS = 128  # a router batch links to at most this many requests (the rest are counted)


class _Installed:
    """The process's provider and tracer (one instance; swapped by :func:`install`)."""

    provider: TracerProvider | None = None
    tracer: Tracer = _NO_OP


_STATE = _Installed()


def tracer() -> Tracer:
    """The process's tracer: the no-op one unless tracing is configured."""
    return _STATE.tracer


def enabled() -> bool:
    return _STATE.provider is not None


def installed_provider() -> TracerProvider | None:
    return _STATE.provider


def install(provider: TracerProvider | None) -> None:
    """Make ``provider`` the process's (``None``: back to no-op)."""
    _STATE.provider = provider
    _STATE.tracer = provider.get_tracer(_NAME, __version__) if provider is not None else _NO_OP


@contextlib.contextmanager
def installed(provider: TracerProvider) -> Iterator[TracerProvider]:
    """Tests: ``provider`` for the duration of the block."""
    previous = _STATE.provider
    install(provider)
    try:
        yield provider
    finally:
        install(previous)


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span, to carry across the bus or into a row;
    ``None`` when tracing is off or nothing is being traced."""
    if _STATE.provider is None:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


def context_of(traceparent: str | None) -> Context | None:
    """The remote parent a ``traceparent`` names (``None`` for none or a malformed one)."""
    if not traceparent:
        return None
    context = _PROPAGATOR.extract({"traceparent": traceparent})
    span = trace.get_current_span(context)
    return context if span.get_span_context().is_valid else None


def context_from_headers(headers: Mapping[str, str]) -> Context | None:
    """A caller's trace context from request headers (``traceparent``, ``tracestate``)."""
    if "traceparent" not in headers:
        return None
    return _PROPAGATOR.extract(dict(headers))


def links_to(traceparents: Iterator[str | None] | list[str | None]) -> list[Link]:
    """Links to the distinct spans named, at most :data:`MAX_LINKS`."""
    links: list[Link] = []
    seen: set[str] = set()
    for value in traceparents:
        if not value or value in seen:
            continue
        seen.add(value)
        context = context_of(value)
        if context is not None:
            links.append(Link(trace.get_current_span(context).get_span_context()))
            if len(links) >= MAX_LINKS:
                break
    return links


def inject_into(headers: MutableMapping[str, str]) -> None:
    """Add ``traceparent`` (and ``tracestate``) for the current span to outgoing headers."""
    if _STATE.provider is not None:
        _PROPAGATOR.inject(headers)


SERVER = SpanKind.SERVER
CLIENT = SpanKind.CLIENT
CONSUMER = SpanKind.CONSUMER
INTERNAL = SpanKind.INTERNAL


def attributes(**values: Any) -> dict[str, Any]:
    """Span attributes without the ``None`` values (OpenTelemetry refuses them)."""
    return {key.replace("__", "."): value for key, value in values.items() if value is not None}


def error_status(description: str) -> Status:
    return Status(StatusCode.ERROR, description)
