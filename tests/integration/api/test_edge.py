"""The edge middleware: security headers on every response of the real app, the Swagger UI's
own policy, HSTS only over TLS, and one body cap for every route (up front and streamed)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from pydantic import BaseModel

from campaignflow.api.edge import API_CSP, DOCS_CSP, HSTS, install_edge
from campaignflow.api.problems import install_problem_handlers
from campaignflow.config import Settings
from tests.integration.api.conftest import ClientFactory

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-resource-policy": "same-origin",
}


def assert_secured(response: httpx.Response, csp: str = API_CSP) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, name
    assert response.headers["content-security-policy"] == csp


# --- the real app (both databases) -----------------------------------------------------------


async def test_api_responses_are_secured_and_never_stored(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/workflows")

    assert response.status_code == 200
    assert_secured(response)
    assert response.headers["cache-control"] == "no-store"
    assert "strict-transport-security" not in response.headers  # plain HTTP


async def test_problem_documents_carry_the_headers_too(app_client: ClientFactory) -> None:
    async with app_client(auth=False) as anonymous:
        response = await anonymous.get("/api/v1/workflows")

    assert response.status_code == 401
    assert_secured(response)
    assert response.headers["cache-control"] == "no-store"


async def test_health_probes_are_secured_but_may_be_cached(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")

    assert_secured(response)
    assert "cache-control" not in response.headers


async def test_hsts_is_sent_only_over_tls(app_client: ClientFactory) -> None:
    async with app_client() as plain:
        assert "strict-transport-security" not in (await plain.get("/healthz")).headers
        plain.base_url = httpx.URL("https://testserver")
        secure = await plain.get("/healthz")

    assert secure.headers["strict-transport-security"] == HSTS


async def test_the_docs_policy_allows_exactly_what_the_docs_page_loads(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/v1/docs")

    assert_secured(response, DOCS_CSP)
    loaded = re.findall(r'(?:src|href)="(https?://[^"]+)"', response.text)
    assert loaded, "the page loads its assets from somewhere"
    for url in loaded:
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(url))
        assert origin in DOCS_CSP, f"{url} would be blocked"
    assert (await client.get("/api/v1/openapi.json")).headers["content-security-policy"] == (
        API_CSP
    )


async def test_a_declared_oversized_body_is_refused_before_any_route_runs(
    client: httpx.AsyncClient,
) -> None:
    cap = 1024 * 1024  # the larger of api.max_body_bytes and events.max_batch_bytes
    response = await client.post(
        "/api/v1/workflows/welcome/activate",  # a route that never reads its body
        content=b"x" * (cap + 1),
        headers={"content-type": "application/json"},
    )

    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "urn:campaignflow:problem:body-too-large"
    assert_secured(response)


# --- a small app: limits that routes do not enforce themselves --------------------------------


class Item(BaseModel):
    name: str


def small_app() -> FastAPI:
    """Routes that read bodies without a limit of their own, as a future route might."""
    settings = Settings(api={"max_body_bytes": 1024}, events={"max_batch_bytes": 2048})
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/raw")
    async def raw(request: Request) -> dict[str, int]:
        return {"received": len(await request.body())}

    @app.post("/bound")
    async def bound(item: Item) -> dict[str, str]:
        return {"name": item.name}

    @app.get("/api/v1/cached")
    async def cached(response: Response) -> dict[str, str]:
        response.headers["cache-control"] = "private, max-age=60"
        return {}

    install_edge(app, settings)
    return app


@pytest.fixture
async def small() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=small_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


async def chunks(total: int, size: int = 256) -> AsyncIterator[bytes]:
    for start in range(0, total, size):
        yield b"x" * min(size, total - start)


async def test_the_cap_is_the_larger_of_the_api_and_ingestion_limits(
    small: httpx.AsyncClient,
) -> None:
    within = await small.post("/raw", content=b"x" * 2048)
    beyond = await small.post("/raw", content=b"x" * 2049)

    assert within.json() == {"received": 2048}
    assert beyond.status_code == 413
    assert beyond.json()["detail"] == "The request body is larger than the limit of 2048 bytes."


async def test_a_chunked_body_is_refused_once_it_passes_the_cap(
    small: httpx.AsyncClient,
) -> None:
    within = await small.post("/raw", content=chunks(2048))
    beyond = await small.post("/raw", content=chunks(10_000))

    assert within.json() == {"received": 2048}
    assert "content-length" not in beyond.request.headers
    assert beyond.status_code == 413
    assert beyond.json()["type"] == "urn:campaignflow:problem:body-too-large"
    assert_secured(beyond)


async def test_a_body_framework_parses_is_refused_as_too_large_not_as_malformed(
    small: httpx.AsyncClient,
) -> None:
    response = await small.post(
        "/bound", content=chunks(5000), headers={"content-type": "application/json"}
    )
    fine = await small.post("/bound", json={"name": "x" * 1500})

    assert response.status_code == 413
    assert response.json()["type"] == "urn:campaignflow:problem:body-too-large"
    assert fine.json() == {"name": "x" * 1500}


async def test_a_cache_policy_set_by_the_route_is_kept(small: httpx.AsyncClient) -> None:
    response = await small.get("/api/v1/cached")

    assert response.headers["cache-control"] == "private, max-age=60"
    assert_secured(response)
