"""``GET /api/v1/workflows/{workflowId}/summary`` on SQLite and PostgreSQL: exact counts and
percentiles for constructed executions, where live executions wait (per node, by kind) for a
real run through delay and wait_for_event nodes, and the refusals."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import insert

from campaignflow.api.app import create_app
from campaignflow.engine.clock import ManualClock
from campaignflow.engine.runtime import Engine, builtin_executors
from campaignflow.engine.worker import Worker
from campaignflow.services.workflows import WorkflowService
from campaignflow.store.database import Database
from campaignflow.store.ids import new_id
from campaignflow.store.tables import executions, tasks, waits
from campaignflow.store.workflows import WorkflowStore
from tests._support.api_clients import bearer, serving
from tests._support.ciphers import contact_cipher
from tests.integration.api.conftest import TOKEN, make_settings, workflow

START = datetime(2026, 3, 27, 8, 0, tzinfo=UTC)
GREET = {
    "id": "greet",
    "type": "action",
    "config": {"action": "log", "params": {"message": "Hello"}},
    "next": "done",
}
END = {"id": "done", "type": "end"}
JOURNEY = [
    {"id": "pause", "type": "delay", "config": {"duration": "P1D"}, "next": "wait"},
    {
        "id": "wait",
        "type": "wait_for_event",
        "config": {"event": "purchase", "timeout": "P7D", "onTimeout": "done"},
        "next": "done",
    },
    END,
]


@dataclass
class Api:
    client: httpx.AsyncClient
    worker: Worker
    clock: ManualClock
    database: Database

    async def deploy(self, workflow_id: str, nodes: list[dict[str, Any]]) -> None:
        document = workflow(workflow_id, nodes=nodes)
        assert (await self.client.post("/api/v1/workflows", json=document)).status_code == 201
        activated = await self.client.post(f"/api/v1/workflows/{workflow_id}/activate")
        assert activated.status_code == 200, activated.text

    async def start(self, workflow_id: str, subject: str) -> None:
        response = await self.client.post(
            f"/api/v1/workflows/{workflow_id}/execute", json={"subject": subject}
        )
        assert response.status_code == 201, response.text

    async def drain(self) -> None:
        for _ in range(100):
            if await self.worker.run_once() == 0:
                return
        raise AssertionError("the worker never went idle")

    async def summary(self, workflow_id: str, **params: str) -> dict[str, Any]:
        response = await self.client.get(f"/api/v1/workflows/{workflow_id}/summary", params=params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
async def api(database: Database) -> AsyncIterator[Api]:
    clock = ManualClock(START)
    engine = Engine.on(database, clock=clock, contact_cipher=contact_cipher())
    app = create_app(make_settings(), database=database, engine=engine)
    executors, http = builtin_executors()
    try:
        async with serving(app, bearer(TOKEN)) as client:
            yield Api(client, engine.worker(executors), clock, database)
    finally:
        await http.aclose()
        await engine.wakeup.aclose()
        await engine.feed.close()


def row(
    workflow_id: str,
    started: datetime,
    status: str,
    seconds: float | None = None,
    workspace: str = "default",
) -> dict[str, Any]:
    """An execution started at ``started`` (its id made then), ended ``seconds`` later."""
    return {
        "workspace_id": workspace,
        "id": new_id(int(started.timestamp() * 1000)),
        "workflow_id": workflow_id,
        "workflow_version": 1,
        "subject_id": "someone",
        "status": status,
        "trigger": "api",
        "input": {},
        "contact": {},
        "state": {},
        "revision": 1,
        "created_at": started,
        "updated_at": started,
        "finished_at": started + timedelta(seconds=seconds) if seconds is not None else None,
    }


def task(execution: dict[str, Any], node: str, kind: str, attempt: int = 1) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "workspace_id": execution["workspace_id"],
        "execution_id": execution["id"],
        "node_id": node,
        "token": "",
        "kind": kind,
        "attempt": attempt,
        "run_at": now + timedelta(hours=1),
        "created_at": now,
    }


def wait(execution: dict[str, Any], node: str) -> dict[str, Any]:
    return {
        "workspace_id": execution["workspace_id"],
        "execution_id": execution["id"],
        "token": "",
        "node_id": node,
        "subject_id": "someone",
        "event_name": "purchase",
        "created_at": datetime.now(UTC),
    }


async def test_counts_rates_and_percentiles_of_the_window_are_exact(api: Api) -> None:
    await api.deploy("welcome", [GREET, END])
    await api.deploy("other", [GREET, END])
    store = WorkflowStore(api.database)
    await store.ensure_workspace("globex", "Globex")
    await WorkflowService(store).create("globex", workflow("welcome", nodes=[GREET, END]))

    now = datetime.now(UTC)
    recent = now - timedelta(minutes=10)
    old = now - timedelta(hours=2)
    running = row("welcome", recent, "running")
    pending = row("welcome", recent, "pending")
    delayed = row("welcome", recent, "waiting")
    listening = row("welcome", recent, "waiting")
    old_delayed = row("welcome", old, "waiting")
    others = row("other", recent, "waiting")
    rows = [
        *(row("welcome", recent, "completed", s) for s in (1.0, 2.0, 3.0)),
        row("welcome", recent, "failed", 4.0),
        row("welcome", recent, "cancelled", 10.0),
        running,
        pending,
        delayed,
        listening,
        row("welcome", old, "completed", 100.0),  # before the window
        old_delayed,
        row("other", recent, "failed", 50.0),  # another workflow
        others,
        row("welcome", recent, "failed", 70.0, workspace="globex"),  # another workspace
    ]
    async with api.database.transaction() as connection:
        await connection.execute(insert(executions), rows)
        await connection.execute(
            insert(tasks),
            [
                task(running, "send", "run", attempt=2),  # a retry's backoff
                task(pending, "greet", "run"),  # due work
                task(delayed, "pause", "timer"),
                task(old_delayed, "pause", "timer"),  # live, whenever it started
                task(listening, "wait", "timeout"),  # the wait's timeout: counted once
                task(others, "pause", "timer"),
            ],
        )
        await connection.execute(insert(waits), [wait(listening, "wait")])

    summary = await api.summary("welcome", window="PT1H")

    assert summary["workflowId"] == "welcome"
    assert summary["window"] == "PT1H"
    until = datetime.fromisoformat(summary["until"])
    assert datetime.fromisoformat(summary["since"]) == until - timedelta(hours=1)
    assert summary["started"] == 9
    assert summary["throughputPerMinute"] == pytest.approx(9 / 60)
    assert (summary["completed"], summary["failed"], summary["cancelled"]) == (3, 1, 1)
    assert (summary["running"], summary["waiting"]) == (2, 2)
    assert summary["successRate"] == pytest.approx(0.6)
    durations = summary["durations"]
    assert durations["measured"] == 5
    # percentile_cont over [1, 2, 3, 4, 10]: position p * 4, linearly interpolated
    assert durations["p50"] == pytest.approx(3.0)
    assert durations["p90"] == pytest.approx(7.6)
    assert durations["p95"] == pytest.approx(8.8)
    assert durations["p99"] == pytest.approx(9.76)
    assert summary["waitingAt"] == [
        {"nodeId": "greet", "total": 1, "delay": 0, "retry": 0, "ready": 1, "event": 0},
        {"nodeId": "pause", "total": 2, "delay": 2, "retry": 0, "ready": 0, "event": 0},
        {"nodeId": "send", "total": 1, "delay": 0, "retry": 1, "ready": 0, "event": 0},
        {"nodeId": "wait", "total": 1, "delay": 0, "retry": 0, "ready": 0, "event": 1},
    ]

    wider = await api.summary("welcome", window="PT3H")
    assert wider["started"] == 11
    assert wider["durations"]["measured"] == 6


async def test_an_empty_window_has_no_rates(api: Api) -> None:
    await api.deploy("welcome", [GREET, END])
    summary = await api.summary("welcome")
    assert summary["window"] == "PT1H"  # the default
    assert summary["started"] == 0
    assert summary["throughputPerMinute"] == 0
    assert summary["successRate"] is None
    assert summary["durations"] == {
        "measured": 0,
        "p50": None,
        "p90": None,
        "p95": None,
        "p99": None,
    }
    assert summary["waitingAt"] == []


async def test_where_contacts_wait_follows_a_real_run(api: Api) -> None:
    await api.deploy("journey", JOURNEY)
    await api.start("journey", "a")
    await api.start("journey", "b")
    await api.drain()
    first = await api.summary("journey")
    assert first["waitingAt"] == [
        {"nodeId": "pause", "total": 2, "delay": 2, "retry": 0, "ready": 0, "event": 0}
    ]
    assert first["waiting"] == 2

    api.clock.advance(timedelta(days=1))  # the delay is over: both now wait for a purchase
    await api.drain()
    await api.start("journey", "c")
    await api.drain()
    second = await api.summary("journey")
    assert second["waitingAt"] == [
        {"nodeId": "pause", "total": 1, "delay": 1, "retry": 0, "ready": 0, "event": 0},
        {"nodeId": "wait", "total": 2, "delay": 0, "retry": 0, "ready": 0, "event": 2},
    ]
    assert (second["started"], second["waiting"], second["completed"]) == (3, 3, 0)

    api.clock.advance(timedelta(days=8))  # every wait times out, c's delay ends first
    await api.drain()
    api.clock.advance(timedelta(days=8))
    await api.drain()
    done = await api.summary("journey")
    assert done["waitingAt"] == []
    assert (done["completed"], done["successRate"]) == (3, 1.0)
    assert done["durations"]["measured"] == 3


@pytest.mark.parametrize(
    ("window", "reason"),
    [("PT30S", "between"), ("P31D", "between"), ("P1M", "days"), ("soon", "ISO")],
)
async def test_a_bad_window_is_a_422_pointing_at_it(api: Api, window: str, reason: str) -> None:
    await api.deploy("welcome", [GREET, END])
    response = await api.client.get("/api/v1/workflows/welcome/summary", params={"window": window})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["errors"][0]["pointer"] == "/window"
    assert reason.lower() in problem["detail"].lower() or reason in problem["detail"]


async def test_an_unknown_workflow_is_a_404_and_reading_needs_workflows_read(api: Api) -> None:
    assert (await api.client.get("/api/v1/workflows/nope/summary")).status_code == 404
    await api.deploy("welcome", [GREET, END])
    created = await api.client.post(
        "/api/v1/api-keys", json={"name": "ops", "scopes": ["executions:read"]}
    )
    assert created.status_code == 201, created.text
    narrow = {"Authorization": f"Bearer {created.json()['key']}"}
    refused = await api.client.get("/api/v1/workflows/welcome/summary", headers=narrow)
    assert refused.status_code == 403
