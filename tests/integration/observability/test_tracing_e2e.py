"""One trace from an API request to a provider: the real app (its in-process bus and router), a
worker on the same engine, an ``http`` step against the fault server, and the OpenTelemetry SDK
with its in-memory exporter (the SDK's spans, kept in memory instead of sent to a collector).

The chain the test follows: the caller's ``traceparent`` → the request's server span → (a link
across the bus) → the router's batch span → the execution, advanced by the worker as a child of
that batch span, a retry later too → the action span → the client span, whose id reaches the
provider in ``traceparent``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from campaignflow.api.app import create_app
from campaignflow.engine.clock import ManualClock
from campaignflow.engine.runtime import Engine, builtin_executors
from campaignflow.store.database import Database
from tests._support.api_clients import bearer, serving
from tests._support.ciphers import contact_cipher
from tests._support.faults import FaultServer, Respond, fault_server
from tests.integration.api.conftest import TOKEN, make_settings, workflow

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER = f"00-{CALLER_TRACE}-00f067aa0ba902b7-01"
START = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
async def server() -> AsyncIterator[FaultServer]:
    async with fault_server() as faults:
        yield faults


def one(found: list[ReadableSpan], what: str) -> ReadableSpan:
    assert len(found) == 1, f"{what}: {[span.name for span in found]}"
    return found[0]


def hex_id(value: int, width: int) -> str:
    return format(value, f"0{width}x")


async def test_a_request_s_trace_reaches_the_provider_across_bus_engine_and_retry(
    database: Database, exported_spans: InMemorySpanExporter, server: FaultServer
) -> None:
    server.script("/hook", Respond(503), then=Respond(200, {"ok": True}))
    clock = ManualClock(START)
    engine = Engine.on(database, clock=clock, contact_cipher=contact_cipher())
    app = create_app(make_settings(), database=database, engine=engine)
    executors, http = builtin_executors()
    name = f"traced-{uuid.uuid4().hex[:8]}"
    document = workflow(
        name,
        triggers=[{"type": "behavior", "event": "signed_up"}],
        nodes=[
            {
                "id": "call",
                "type": "action",
                "config": {"action": "http", "params": {"url": server.url + "/hook"}},
                "next": "done",
            },
            {"id": "done", "type": "end"},
        ],
        errorHandling={
            "retryPolicy": "linear",
            "maxRetries": 1,
            "initialInterval": "PT1M",
            "jitter": 0,
        },
    )
    try:
        async with serving(app, bearer(TOKEN)) as client:
            assert (await client.post("/api/v1/workflows", json=document)).status_code == 201
            activated = await client.post(f"/api/v1/workflows/{name}/activate")
            assert activated.status_code == 200
            accepted = await client.post(
                "/api/v1/events",
                json={"event": "signed_up", "userId": "ada", "messageId": f"m-{name}"},
                headers={"traceparent": CALLER},
            )
            assert accepted.status_code == 202, accepted.text
            await _wait_for_execution(client, name)
            worker = engine.worker(executors)
            await worker.run_once()  # first attempt: 503, a retry is scheduled
            clock.advance(timedelta(minutes=2))
            await worker.run_once()  # the retry: 200
    finally:
        await http.aclose()
        await engine.wakeup.aclose()

    finished = list(exported_spans.get_finished_spans())
    request = one([s for s in finished if s.name == "POST /api/v1/events"], "the ingestion request")
    assert request.kind is SpanKind.SERVER
    assert hex_id(request.context.trace_id, 32) == CALLER_TRACE  # continues the caller

    batch = one(
        [s for s in finished if s.name == "route events" and _links_to(s, request)],
        "the router's batch",
    )
    assert batch.kind is SpanKind.CONSUMER

    advances = [s for s in finished if s.name == "advance execution"]
    assert len(advances) == 2  # the first attempt and the retry, two minutes later
    for advance in advances:
        assert advance.parent is not None
        assert advance.parent.span_id == batch.context.span_id
        assert advance.attributes is not None
        assert advance.attributes["campaignflow.workflow_id"] == name

    actions = sorted(
        (s for s in finished if s.name == "action http"), key=lambda s: s.start_time or 0
    )
    clients = sorted(
        (s for s in finished if s.kind is SpanKind.CLIENT), key=lambda s: s.start_time or 0
    )
    assert [a.parent.span_id for a in actions if a.parent] == [a.context.span_id for a in advances]
    assert [c.parent.span_id for c in clients if c.parent] == [a.context.span_id for a in actions]
    assert actions[0].status.status_code is StatusCode.ERROR
    assert [c.attributes and c.attributes["http.response.status_code"] for c in clients] == [
        503,
        200,
    ]

    # The provider was told the client span of each attempt.
    sent = [request.headers["traceparent"] for request in server.received("/hook")]
    # version-trace-span; the flags (sampled, and the random-id bit) are not compared
    assert [value.rsplit("-", 1)[0] for value in sent] == [
        f"00-{hex_id(c.context.trace_id, 32)}-{hex_id(c.context.span_id, 16)}" for c in clients
    ]
    # No span carries the person or the event's data.
    for span in finished:
        for value in (span.attributes or {}).values():
            assert "ada" not in str(value)


def _links_to(span: ReadableSpan, target: ReadableSpan) -> bool:
    return any(link.context.span_id == target.context.span_id for link in span.links)


async def _wait_for_execution(client: httpx.AsyncClient, workflow_id: str) -> None:
    for _ in range(200):
        listed = await client.get(f"/api/v1/executions?workflow={workflow_id}")
        if listed.json()["items"]:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the event started no execution")
