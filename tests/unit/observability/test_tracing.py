"""Tracing helpers and the request-span middleware, on the real OpenTelemetry SDK with its
in-memory exporter (the SDK's own test exporter: the spans are the SDK's, only the export is
kept in memory instead of sent)."""

from __future__ import annotations

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from campaignflow.observability import tracing
from campaignflow.observability.request_spans import RequestSpanMiddleware
from campaignflow.observability.trace_export import _parse_headers, configure_tracing
from campaignflow.observability.trace_settings import TracingSettings

CALLER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_tracing_is_off_unless_configured() -> None:
    assert configure_tracing(TracingSettings(), role="test") is None
    assert not tracing.enabled()
    with tracing.tracer().start_as_current_span("nothing"):
        assert tracing.current_traceparent() is None
    headers: dict[str, str] = {}
    tracing.inject_into(headers)
    assert headers == {}


def test_a_traceparent_carried_elsewhere_continues_the_same_trace(
    exported_spans: InMemorySpanExporter,
) -> None:
    with tracing.tracer().start_as_current_span("accept"):
        carried = tracing.current_traceparent()
    assert carried is not None
    with tracing.tracer().start_as_current_span("later", context=tracing.context_of(carried)):
        pass
    accept, later = exported_spans.get_finished_spans()
    assert later.context.trace_id == accept.context.trace_id
    assert later.parent is not None
    assert later.parent.span_id == accept.context.span_id


@pytest.mark.parametrize("value", [None, "", "garbage", "00-" + "0" * 32 + "-" + "0" * 16 + "-01"])
def test_a_missing_or_malformed_traceparent_names_no_parent(
    exported_spans: InMemorySpanExporter, value: str | None
) -> None:
    assert tracing.context_of(value) is None


def test_links_are_distinct_and_capped(exported_spans: InMemorySpanExporter) -> None:
    parents = []
    for _ in range(tracing.MAX_LINKS + 5):
        with tracing.tracer().start_as_current_span("request"):
            parents.append(tracing.current_traceparent())
    links = tracing.links_to([parents[0], parents[0], None, "junk", *parents[1:]])
    assert len(links) == tracing.MAX_LINKS
    assert len({link.context.span_id for link in links}) == tracing.MAX_LINKS


def test_exporter_headers_parse_like_otel_exporter_otlp_headers() -> None:
    assert _parse_headers("api-key=abc, x-team = growth ,broken,=nokey") == {
        "api-key": "abc",
        "x-team": "growth",
    }


def _app() -> RequestSpanMiddleware:
    async def contact(request: Request) -> JSONResponse:
        return JSONResponse({"trace": tracing.current_traceparent()})

    async def broken(request: Request) -> JSONResponse:
        return JSONResponse({}, status_code=503)

    app = Starlette(routes=[Route("/contacts/{contact_id}", contact), Route("/broken", broken)])
    return RequestSpanMiddleware(app)


async def _get(path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path, headers=headers)


async def test_a_request_span_is_named_by_route_and_continues_the_caller(
    exported_spans: InMemorySpanExporter,
) -> None:
    response = await _get("/contacts/ada@example.com", {"traceparent": CALLER})

    (span,) = exported_spans.get_finished_spans()
    assert span.name == "GET /contacts/{contact_id}"
    assert span.kind is SpanKind.SERVER
    assert format(span.context.trace_id, "032x") == CALLER.split("-")[1]
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == CALLER.split("-")[2]
    assert span.attributes is not None
    assert span.attributes["http.route"] == "/contacts/{contact_id}"
    assert span.attributes["http.response.status_code"] == 200
    # The raw path carries the address: it is in no attribute.
    assert not any("ada@example.com" in str(value) for value in span.attributes.values())
    # While the request runs, its span is current (ingestion stamps events with it).
    assert response.json()["trace"].split("-")[2] == format(span.context.span_id, "016x")


async def test_a_server_error_marks_the_span(exported_spans: InMemorySpanExporter) -> None:
    await _get("/broken")
    (span,) = exported_spans.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR


async def test_with_tracing_off_the_middleware_makes_no_span() -> None:
    response = await _get("/contacts/c1", {"traceparent": CALLER})
    assert response.status_code == 200
    assert response.json() == {"trace": None}
