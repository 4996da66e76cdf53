"""A refused request, as a client sees it: 429 problem details with Retry-After, from a limiter
called in a dependency the way the authentication dependency calls it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import Depends, FastAPI, Request

from campaignflow.api.problems import install_problem_handlers
from campaignflow.errors import RateLimited
from campaignflow.security.rate_limit import InMemoryRateLimiter


def limited_app(limiter: InMemoryRateLimiter) -> FastAPI:
    async def limit(request: Request) -> None:
        caller = request.headers.get("x-caller", "anonymous")
        decision = await limiter.acquire(caller)
        if not decision.allowed:
            raise RateLimited(decision.retry_after_seconds)

    app = FastAPI(dependencies=[Depends(limit)])
    install_problem_handlers(app)

    @app.get("/thing")
    async def thing() -> dict[str, str]:
        return {"ok": "yes"}

    return app


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    app = limited_app(InMemoryRateLimiter(rate=0.1, burst=2))  # a token every 10 s
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def test_past_the_burst_the_caller_gets_429_with_retry_after(
    http: httpx.AsyncClient,
) -> None:
    statuses = [(await http.get("/thing", headers={"x-caller": "a"})).status_code for _ in "12"]
    refused = await http.get("/thing", headers={"x-caller": "a"})

    assert statuses == [200, 200]
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "10"
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"] == "urn:campaignflow:problem:rate-limited"
    assert (await http.get("/thing", headers={"x-caller": "b"})).status_code == 200
