"""``GET /metrics`` after real work: an app and a worker on one engine, http steps against the
fault server (one 500 then 200; one that dead-letters), scraped with credentials.

The registry is the process's own, shared with other tests of this process: every assertion is
on a difference between two scrapes, or on series of workflows only this test creates.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from campaignflow.api.app import create_app
from campaignflow.engine.clock import ManualClock
from campaignflow.engine.runtime import Engine, builtin_executors
from campaignflow.engine.worker import Worker
from campaignflow.observability.metrics_sampler import MetricsSampler
from campaignflow.store.database import Database
from tests._support.api_clients import bearer, serving
from tests._support.ciphers import contact_cipher
from tests._support.faults import FaultServer, Respond, fault_server
from tests._support.promtool import run_promtool
from tests.integration.api.conftest import TOKEN, make_settings, token_for, workflow

SCRAPE_TOKEN = "scrape-token-0123456789abcdef"
START = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@dataclass
class Site:
    http: httpx.AsyncClient
    worker: Worker
    clock: ManualClock
    server: FaultServer
    engine: Engine
    suffix: str

    async def deploy(self, name: str, path: str, retries: int) -> str:
        workflow_id = f"{name}-{self.suffix}"
        node = {
            "id": "call",
            "type": "action",
            "config": {"action": "http", "params": {"url": self.server.url + path}},
            "next": "done",
        }
        policy: dict[str, Any] = {"retryPolicy": "none"}
        if retries:
            policy = {
                "retryPolicy": "linear",
                "maxRetries": retries,
                "initialInterval": "PT1M",
                "jitter": 0,
            }
        document = workflow(workflow_id, nodes=[node, {"id": "done", "type": "end"}])
        document["errorHandling"] = policy
        created = await self.http.post("/api/v1/workflows", json=document)
        assert created.status_code == 201, created.text
        activated = await self.http.post(f"/api/v1/workflows/{workflow_id}/activate")
        assert activated.status_code == 200, activated.text
        return workflow_id

    async def execute(self, workflow_id: str) -> None:
        started = await self.http.post(
            f"/api/v1/workflows/{workflow_id}/execute", json={"subject": "contact-1"}
        )
        assert started.status_code == 201, started.text

    async def drain(self) -> None:
        for _ in range(50):
            if await self.worker.run_once() == 0:
                return
        raise AssertionError("the worker never went idle")

    async def scrape(self, token: str = SCRAPE_TOKEN) -> Samples:
        response = await self.http.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        return parse(response.text)


@pytest.fixture
async def site(database: Database) -> AsyncIterator[Site]:
    clock = ManualClock(START)
    engine = Engine.on(database, clock=clock, contact_cipher=contact_cipher())
    settings = make_settings(metrics={"token": SCRAPE_TOKEN})
    app = create_app(settings, database=database, engine=engine)
    executors, http = builtin_executors()
    try:
        async with fault_server() as server, serving(app, bearer(TOKEN)) as client:
            suffix = uuid.uuid4().hex[:8]
            yield Site(client, engine.worker(executors), clock, server, engine, suffix)
    finally:
        await http.aclose()
        await engine.wakeup.aclose()


async def test_a_retried_step_and_a_dead_letter_move_the_metrics(site: Site) -> None:
    site.server.script("/flaky", Respond(500), then=Respond(200, {"ok": True}))
    site.server.script("/broken", then=Respond(500, {"error": "down"}))
    flaky = await site.deploy("flaky", "/flaky", retries=2)
    broken = await site.deploy("broken", "/broken", retries=0)
    before = await site.scrape()

    await site.execute(flaky)
    await site.execute(broken)
    await site.drain()
    site.clock.advance(timedelta(minutes=2))  # the flaky step's retry falls due
    await site.drain()
    after = await site.scrape()

    def moved(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    for workflow_id in (flaky, broken):
        ours = {"workspace": "default", "workflow": workflow_id}
        assert sample(after, "campaignflow_executions_started_total", **ours) == 1
    done = {"workspace": "default", "workflow": flaky}
    lost = {"workspace": "default", "workflow": broken}
    assert sample(after, "campaignflow_executions_finished_total", **done, status="completed") == 1
    assert sample(after, "campaignflow_executions_finished_total", **lost, status="failed") == 1
    assert sample(after, "campaignflow_executions_finished_total", **done, status="failed") == 0
    assert sample(after, "campaignflow_step_retries_total", **done, node_type="action") == 1
    assert sample(after, "campaignflow_step_retries_total", **lost, node_type="action") == 0
    assert sample(after, "campaignflow_dead_letters_total", **lost) == 1
    assert sample(after, "campaignflow_dead_letters_total", **done) == 0
    # Three exchanges with the provider: 500 and 200 for the flaky step, 500 for the broken.
    requests = "campaignflow_integration_requests_total"
    assert moved(requests, provider="http", operation="request", status="500") == 2
    assert moved(requests, provider="http", operation="request", status="200") == 1
    assert moved("campaignflow_integration_request_duration_seconds_count", provider="http") == 3
    steps = "campaignflow_step_duration_seconds_count"
    assert moved(steps, node_type="action", status="retrying") == 1
    assert moved(steps, node_type="action", status="failed") == 1
    assert moved(steps, node_type="action", status="completed") == 1
    assert moved(steps, node_type="end", status="completed") == 1
    execute = {"method": "POST", "route": "/api/v1/workflows/{workflow_id}/execute"}
    assert moved("campaignflow_http_requests_total", **execute, status="201") == 2
    assert moved("campaignflow_timer_lateness_seconds_count") == 3  # 2 starts and the retry


async def test_the_sampler_reports_the_backlog_and_open_dead_letters(site: Site) -> None:
    site.server.script("/broken", then=Respond(500))
    waiting = await site.deploy("waiting", "/ok", retries=0)
    broken = await site.deploy("broken", "/broken", retries=0)
    await site.execute(broken)
    await site.drain()
    await site.execute(waiting)  # its start task stays due: no worker runs now
    site.clock.advance(timedelta(seconds=30))

    await MetricsSampler(site.engine.database, site.clock, 15).sample_once()
    scraped = await site.scrape()

    node = {"workspace": "default", "workflow": waiting, "node": "call"}
    assert sample(scraped, "campaignflow_queue_depth", **node) == 1
    assert sample(scraped, "campaignflow_queue_lag_seconds", **node) == 30
    lost = {"workspace": "default", "workflow": broken}
    assert sample(scraped, "campaignflow_dead_letters_open", **lost) == 1

    await site.drain()
    await MetricsSampler(site.engine.database, site.clock, 15).sample_once()
    drained = await site.scrape()

    assert ("campaignflow_queue_depth", frozenset(node.items())) not in drained


async def test_promtool_accepts_the_scraped_metrics(site: Site) -> None:
    flaky = await site.deploy("flaky", "/flaky", retries=2)
    await site.execute(flaky)
    await site.drain()
    response = await site.http.get("/metrics", headers={"Authorization": f"Bearer {SCRAPE_TOKEN}"})

    output = run_promtool("check", "metrics", stdin=response.content)

    assert output == ""  # no lint complaint (naming, units, help) either


async def test_an_operator_admin_may_read_the_metrics_with_their_own_key(site: Site) -> None:
    scraped = await site.scrape(TOKEN)  # the operator workspace's owner

    assert sample(scraped, "process_start_time_seconds") > 0


async def test_metrics_need_credentials_of_the_operator(site: Site, database: Database) -> None:
    anonymous = await site.http.get("/metrics", headers={"Authorization": ""})
    wrong = await site.http.get("/metrics", headers={"Authorization": "Bearer not-the-token"})
    viewer_key = await _key(site.http, "viewer")
    viewer = await site.http.get("/metrics", headers={"Authorization": f"Bearer {viewer_key}"})
    # Another workspace's owner (its bootstrap key, registered by an app of that workspace on
    # the same database and key ring) holds metrics:read there, yet metrics cross tenants.
    other_engine = Engine.on(database, contact_cipher=contact_cipher())
    other = create_app(make_settings("other-ws"), database=database, engine=other_engine)
    async with serving(other, bearer(token_for("other-ws"))) as elsewhere:
        assert (await elsewhere.get("/api/v1/workflows")).status_code == 200
    owner_elsewhere = {"Authorization": f"Bearer {token_for('other-ws')}"}
    foreign = await site.http.get("/metrics", headers=owner_elsewhere)

    assert (anonymous.status_code, wrong.status_code) == (401, 401)
    assert (viewer.status_code, foreign.status_code) == (403, 403)
    for refused in (anonymous, wrong, viewer, foreign):
        assert refused.headers["content-type"] == "application/problem+json"
    assert "campaignflow_" not in foreign.text


async def _key(http: httpx.AsyncClient, role: str) -> str:
    principal = await http.post("/api/v1/principals", json={"name": role, "role": role})
    assert principal.status_code == 201, principal.text
    created = await http.post(
        "/api/v1/api-keys", json={"name": role, "principalId": principal.json()["id"]}
    )
    assert created.status_code == 201, created.text
    key: str = created.json()["key"]
    return key
