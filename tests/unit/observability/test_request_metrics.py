"""The HTTP request metrics of the access-log middleware: a request's duration by route
template; an event stream's by the time it took to start answering, not how long its client
watched (an open SSE connection is not a slow request)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from campaignflow.observability.access_log import AccessLogMiddleware
from campaignflow.observability.metrics import REGISTRY

HOLD = 0.3


async def slow(request: Request) -> JSONResponse:
    await asyncio.sleep(HOLD)
    return JSONResponse({})


async def stream(request: Request) -> StreamingResponse:
    async def events() -> AsyncIterator[bytes]:
        yield b": hello\n\n"
        await asyncio.sleep(HOLD)
        yield b"data: {}\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


def duration(route: str) -> tuple[float, float]:
    """(count, sum) of the route's duration histogram."""
    labels = {"method": "GET", "route": route}
    name = "campaignflow_http_request_duration_seconds"
    count = REGISTRY.get_sample_value(f"{name}_count", labels) or 0.0
    total = REGISTRY.get_sample_value(f"{name}_sum", labels) or 0.0
    return count, total


async def test_a_stream_counts_its_time_to_answer_and_a_request_its_whole_duration() -> None:
    app = Starlette(routes=[Route("/m/slow", slow), Route("/m/stream/{name}", stream)])
    wrapped = AccessLogMiddleware(app, log=False)
    before_slow, before_stream = duration("/m/slow"), duration("/m/stream/{name}")
    transport = httpx.ASGITransport(app=wrapped)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/m/slow")).status_code == 200
        body = (await client.get("/m/stream/ada")).text
    assert "data: {}" in body  # the stream ran its whole course

    slow_count, slow_sum = duration("/m/slow")
    stream_count, stream_sum = duration("/m/stream/{name}")
    assert slow_count - before_slow[0] == 1
    assert slow_sum - before_slow[1] >= HOLD
    assert stream_count - before_stream[0] == 1
    assert stream_sum - before_stream[1] < HOLD / 2
