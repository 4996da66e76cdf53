"""The worker's own metrics server: the same registry, behind the scrape token."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr

from campaignflow.config import MetricsSettings
from campaignflow.observability.metrics import events_ingested
from campaignflow.observability.metrics_server import start_metrics_server, stop_metrics_server
from tests._support.servers import free_port

TOKEN = "scrape-token-0123456789abcdef"


@pytest.fixture
async def served() -> AsyncIterator[str]:
    port = free_port()
    settings = MetricsSettings(token=SecretStr(TOKEN), worker_port=port, worker_host="127.0.0.1")
    runner = await start_metrics_server(settings)
    try:
        yield f"http://127.0.0.1:{port}/metrics"
    finally:
        await stop_metrics_server(runner)


async def test_the_worker_serves_the_registry_to_the_token_only(served: str) -> None:
    events_ingested(["ws-worker-server"], "sync")
    async with httpx.AsyncClient() as client:
        anonymous = await client.get(served)
        wrong = await client.get(served, headers={"Authorization": "Bearer nope"})
        scraped = await client.get(served, headers={"Authorization": f"Bearer {TOKEN}"})

    assert (anonymous.status_code, wrong.status_code) == (401, 401)
    assert anonymous.headers["content-type"].startswith("application/problem+json")
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert 'campaignflow_events_ingested_total{source="sync",workspace="ws-worker-server"}' in (
        scraped.text
    )


async def test_without_a_token_there_is_no_server() -> None:
    port = free_port()
    assert await start_metrics_server(MetricsSettings(worker_port=port)) is None
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))  # nothing took the port


async def test_a_taken_port_costs_the_metrics_not_the_worker(
    served: str, caplog: pytest.LogCaptureFixture
) -> None:
    port = int(served.rsplit(":", 1)[1].split("/", maxsplit=1)[0])
    second = MetricsSettings(token=SecretStr(TOKEN), worker_port=port, worker_host="127.0.0.1")
    assert await start_metrics_server(second) is None
    assert any("metrics port is unavailable" in r.getMessage() for r in caplog.records)
    async with httpx.AsyncClient() as client:  # the first server is unharmed
        scraped = await client.get(served, headers={"Authorization": f"Bearer {TOKEN}"})
    assert scraped.status_code == 200


async def test_port_zero_switches_it_off() -> None:
    settings = MetricsSettings(token=SecretStr(TOKEN), worker_port=0)
    assert await start_metrics_server(settings) is None
