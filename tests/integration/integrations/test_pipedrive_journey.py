"""The lead-scoring example into Pipedrive, end to end against Pipedrive's own specs.

Pipedrive is Stoplight Prism serving Pipedrive's v1 and v2 OpenAPI files behind a path router
(``tests/contract/path_router.py``), so every request keeps its production path (``/api/v2/…``,
``/v1/…``) and Prism answers 2xx only to a request that fits the spec (``--errors``). The
workflow is ``examples/workflows/lead-scoring-pipedrive.json`` as shipped: a demo request
scores the contact, finds its Pipedrive person, writes the score to it and logs a follow-up
activity. Everything else is real: the app and its APIs, the secret store, the executor with its
guards, the worker, the in-process bus and router, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from campaignflow.api.app import create_app
from campaignflow.engine.clock import SystemClock
from campaignflow.engine.runtime import Engine
from campaignflow.engine.worker import Worker
from campaignflow.integrations.runtime import open_integrations
from campaignflow.store.crm_sync import Progress, SyncLink, SyncStore
from campaignflow.store.database import Database
from tests._support.api_clients import bearer, serving
from tests._support.ciphers import contact_cipher
from tests._support.prism_pool import PrismPool
from tests.contract.path_router import (
    PIPEDRIVE_PREFIXES,
    PIPEDRIVE_SPECS,
    routes_for,
    running_router,
)
from tests.integration.api.conftest import TOKEN, make_settings

pytestmark = [pytest.mark.xdist_group("prism"), pytest.mark.timeout(240)]

EXAMPLE = Path(__file__).parents[3] / "examples" / "workflows" / "lead-scoring-pipedrive.json"


@pytest.fixture(scope="module")
def pipedrive_routes(prism_pool: PrismPool) -> Mapping[str, str]:
    return routes_for(PIPEDRIVE_PREFIXES, prism_pool.urls(PIPEDRIVE_SPECS))


@pytest.fixture
async def pipedrive_url(pipedrive_routes: Mapping[str, str]) -> AsyncIterator[str]:
    async with running_router(pipedrive_routes) as url:
        yield url


@dataclass
class Platform:
    http: httpx.AsyncClient
    worker: Worker

    async def drain(self) -> None:
        for _ in range(100):
            if await self.worker.run_once() == 0:
                return
        raise AssertionError("the worker never went idle")

    async def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.http.request(method, path, **kwargs)
        assert response.status_code in (200, 201, 202), (path, response.text)
        return response.json()


@pytest.fixture
async def platform(database: Database) -> AsyncIterator[Platform]:
    settings = make_settings()
    engine = Engine.on(database, clock=SystemClock(), contact_cipher=contact_cipher())
    integrations = open_integrations(database, settings, engine.contacts.cipher)
    app = create_app(settings, database=database, engine=engine, integrations=integrations)
    try:
        async with serving(app, bearer(TOKEN)) as http:
            yield Platform(http, engine.worker(integrations.executors()))
    finally:
        await integrations.aclose()
        await engine.wakeup.aclose()


async def test_a_scored_lead_updates_its_pipedrive_person_and_gets_a_follow_up_activity(
    platform: Platform, pipedrive_url: str
) -> None:
    await platform.ok(
        "POST",
        "/api/v1/connections",
        json={
            "name": "pipedrive",
            "provider": "pipedrive",
            "credentials": {"api_key": "pd-contract-test-token"},
            "settings": {"baseUrl": pipedrive_url},
        },
    )
    workflow = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    await platform.ok("POST", "/api/v1/workflows", json=workflow)
    await platform.ok("POST", "/api/v1/workflows/lead-scoring-pipedrive/activate")
    await platform.ok(
        "POST",
        "/api/v1/contacts",
        json={
            "userId": "ann",
            "email": "ann@example.com",
            "traits": {"first_name": "Ann", "last_name": "Lee", "job_title": "VP Marketing"},
        },
    )
    event = {
        "type": "track",
        "userId": "ann",
        "event": "form_submitted",
        "properties": {"formId": "demo-request", "employees": 450},
    }
    await platform.ok("POST", "/api/v1/events", json=event)
    await platform.drain()

    page = await platform.ok(
        "GET", "/api/v1/executions", params={"workflow": "lead-scoring-pipedrive"}
    )
    assert len(page["items"]) == 1, page
    execution = await platform.ok("GET", f"/api/v1/executions/{page['items'][0]['id']}")
    assert execution["status"] == "completed", execution
    steps = {step["nodeId"]: step for step in execution["steps"]}
    assert steps["score"]["output"]["score"] == 80  # VP (40) at 450 people (40)
    # Prism's answer to the search is the spec's example: a person was found, so the score
    # goes to that person (2xx: the PATCH fits Pipedrive's v2 spec) ...
    found = steps["find"]["output"]
    assert found["status"] == 200
    assert isinstance(found["id"], int)
    assert steps["update-person"]["status"] == "completed"
    assert steps["update-person"]["output"]["status"] == 200
    assert "created" not in steps
    # ... and a lead scoring 60 or more gets a follow-up call (2xx: it fits the spec)
    assert steps["follow-up"]["status"] == "completed"
    assert steps["follow-up"]["output"]["status"] in (200, 201)
    assert [step["nodeId"] for step in execution["steps"]][-1] == "done"


async def test_a_path_pipedrive_does_not_serve_fails_the_step_without_retry(
    platform: Platform, pipedrive_url: str
) -> None:
    """A base URL with a wrong prefix: every call lands on a path Pipedrive does not serve
    (404), which a retry cannot fix, so the step fails at once into the dead-letter queue."""
    await platform.ok(
        "POST",
        "/api/v1/connections",
        json={
            "name": "pipedrive",
            "provider": "pipedrive",
            "credentials": {"api_key": "pd-contract-test-token"},
            "settings": {"baseUrl": pipedrive_url + "/v1"},
        },
    )
    workflow = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    await platform.ok("POST", "/api/v1/workflows", json=workflow)
    await platform.ok("POST", "/api/v1/workflows/lead-scoring-pipedrive/activate")
    await platform.ok("POST", "/api/v1/contacts", json={"userId": "bo", "email": "bo@example.com"})
    event = {
        "type": "track",
        "userId": "bo",
        "event": "form_submitted",
        "properties": {"formId": "demo-request"},
    }
    await platform.ok("POST", "/api/v1/events", json=event)
    await platform.drain()

    page = await platform.ok(
        "GET", "/api/v1/executions", params={"workflow": "lead-scoring-pipedrive"}
    )
    execution = await platform.ok("GET", f"/api/v1/executions/{page['items'][0]['id']}")
    assert execution["status"] == "failed"
    find = next(step for step in execution["steps"] if step["nodeId"] == "find")
    assert find["attempt"] == 1
    assert "HTTP 404" in find["error"]["message"]


# ------------------------------------------------------------------------------- webhooks

STAGE_WORKFLOW = {
    "workflowId": "deal-won-stage",
    "name": "Deal reached negotiation",
    "triggers": [
        {
            "type": "behavior",
            "event": "crm.deal.stage_changed",
            "condition": "event.properties.stageId == '3'",
        }
    ],
    "errorHandling": {"retryPolicy": "exponential", "maxRetries": 1},
    "nodes": [{"id": "done", "type": "end"}],
}


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def stage_change(person_id: int, event_id: str) -> bytes:
    return json.dumps(
        {
            "meta": {
                "action": "change",
                "entity": "deal",
                "entity_id": "42",
                "id": event_id,
                "timestamp": "2026-11-29T10:00:00.000Z",
                "version": "2.0",
            },
            "data": {"id": 42, "stage_id": 3, "pipeline_id": 1, "person_id": person_id},
            "previous": {"stage_id": 2},
        }
    ).encode()


async def test_a_deal_stage_change_webhook_starts_the_workflow_of_the_linked_contact(
    platform: Platform, database: Database
) -> None:
    connection = await platform.ok(
        "POST",
        "/api/v1/connections",
        json={
            "name": "pipedrive",
            "provider": "pipedrive",
            "credentials": {
                "api_key": "pd-token",
                "webhook_user": "campaignflow",
                "webhook_password": "hook-secret-1",
            },
        },
    )
    ann = await platform.ok(
        "POST", "/api/v1/contacts", json={"userId": "ann", "email": "ann@example.com"}
    )
    # What a sync run leaves when it links Ann to Pipedrive person 7 (its own tests cover
    # how the link is made; here it is set up directly).
    store = SyncStore(database)
    run = await store.queue(
        "default", connection["id"], trigger="on-demand", requested_by=None, cursor={},
        now=datetime.now(UTC),
    )  # fmt: skip
    claimed = await store.claim("test", datetime.now(UTC), timedelta(seconds=60))
    assert claimed is not None
    assert claimed.id == run.id
    progress = Progress({}, {}, links=[SyncLink(ann["id"], "7", {})])
    await store.save_progress(claimed, "test", progress, datetime.now(UTC))
    await platform.ok("POST", "/api/v1/workflows", json=STAGE_WORKFLOW)
    await platform.ok("POST", "/api/v1/workflows/deal-won-stage/activate")
    url = f"/api/v1/webhooks/pipedrive/{connection['id']}"
    auth = {"Authorization": basic("campaignflow", "hook-secret-1")}
    headers = {**auth, "Content-Type": "application/json"}

    refused = await platform.http.post(
        url,
        content=stage_change(7, "e-0"),
        headers={**headers, "Authorization": basic("campaignflow", "guess")},
    )
    assert refused.status_code == 401
    unknown = await platform.http.post(url, content=stage_change(99, "e-1"), headers=headers)
    assert unknown.status_code == 200, unknown.text
    assert (unknown.json()["accepted"], unknown.json()["ignored"]) == (0, 1)
    accepted = await platform.http.post(url, content=stage_change(7, "e-2"), headers=headers)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["accepted"] == 1
    again = await platform.http.post(url, content=stage_change(7, "e-2"), headers=headers)
    assert again.status_code == 200  # Pipedrive retries: the same event id is one event
    await platform.drain()

    page = await platform.ok("GET", "/api/v1/executions", params={"workflow": "deal-won-stage"})
    assert [item["subject"] for item in page["items"]] == [ann["id"]]
