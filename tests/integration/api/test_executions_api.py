"""Executions and dead letters as a client sees them, with a real worker, on SQLite and PostgreSQL.

The app and a worker share one :class:`Engine` whose clock the test moves; ``Api.drain()`` runs
the worker until nothing is due, so timers and retries happen without sleeping.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from campaignflow.api.app import create_app
from campaignflow.engine.clock import ManualClock
from campaignflow.engine.runtime import Engine, builtin_executors
from campaignflow.engine.worker import Worker
from campaignflow.store.database import Database
from tests._support.ciphers import contact_cipher
from tests.integration.api.conftest import TOKEN, make_settings, token_for, workflow

PROBLEM = "application/problem+json"
START = datetime(2026, 3, 27, 8, 0, tzinfo=UTC)
UNROUTABLE = "http://127.0.0.1:9/x"  # the discard port: the connection is refused


@dataclass
class Api:
    client: httpx.AsyncClient
    worker: Worker
    clock: ManualClock

    async def deploy(
        self, workflow_id: str, nodes: list[dict[str, Any]] | None = None, **changes: Any
    ) -> None:
        document = workflow(workflow_id, nodes=nodes or [GREET, END], **changes)
        created = await self.client.post("/api/v1/workflows", json=document)
        assert created.status_code == 201, created.text
        activated = await self.client.post(f"/api/v1/workflows/{workflow_id}/activate")
        assert activated.status_code == 200, activated.text

    async def execute(
        self, workflow_id: str, subject: str = "contact-1", *, key: str | None = None, **body: Any
    ) -> httpx.Response:
        headers = {"Idempotency-Key": key} if key else {}
        return await self.client.post(
            f"/api/v1/workflows/{workflow_id}/execute",
            json={"subject": subject, **body},
            headers=headers,
        )

    async def start(self, workflow_id: str, subject: str = "contact-1", **body: Any) -> str:
        response = await self.execute(workflow_id, subject, **body)
        assert response.status_code == 201, response.text
        execution_id: str = response.json()["id"]
        return execution_id

    async def drain(self) -> None:
        for _ in range(100):
            if await self.worker.run_once() == 0:
                return
        raise AssertionError("the worker never went idle")

    async def execution(self, execution_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/api/v1/executions/{execution_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def dead_letters(self, **params: str) -> list[dict[str, Any]]:
        response = await self.client.get("/api/v1/dead-letters", params=params)
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items


@pytest.fixture
async def api(database: Database) -> AsyncIterator[Api]:
    clock = ManualClock(START)
    engine = Engine.on(database, clock=clock, contact_cipher=contact_cipher())
    app = create_app(make_settings(), database=database, engine=engine)
    executors, http = builtin_executors()
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport,
                base_url="http://testserver",
                headers={"Authorization": f"Bearer {TOKEN}"},
            ) as client:
                yield Api(client, engine.worker(executors), clock)
    finally:
        await http.aclose()
        await engine.wakeup.aclose()


def delay(node_id: str, duration: str, next_node: str) -> dict[str, Any]:
    return {"id": node_id, "type": "delay", "config": {"duration": duration}, "next": next_node}


def call(node_id: str, url: str = UNROUTABLE) -> dict[str, Any]:
    params = {"method": "POST", "url": url}
    return {
        "id": node_id,
        "type": "action",
        "config": {"action": "http", "params": params},
        "next": "done",
    }


END = {"id": "done", "type": "end"}
GREET = {
    "id": "greet",
    "type": "action",
    "config": {"action": "log", "params": {"message": "Hello {{ contact.id }}"}},
    "next": "done",
}
NO_RETRIES = {"retryPolicy": "none", "maxRetries": 0}


async def deploy_failing(api: Api, workflow_id: str = "notify") -> None:
    await api.deploy(workflow_id, [call("call"), END], errorHandling=NO_RETRIES)


async def failed_execution(api: Api, workflow_id: str = "notify") -> str:
    execution_id = await api.start(workflow_id)
    await api.drain()
    assert (await api.execution(execution_id))["status"] == "failed"
    return execution_id


# ---------------------------------------------------------------------- starting


async def test_execute_creates_an_execution_and_points_at_it(api: Api) -> None:
    await api.deploy("welcome")

    response = await api.execute(
        "welcome", "contact-7", input={"plan": "pro"}, contact={"email": "a@example.com"}
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"] == f"/api/v1/executions/{body['id']}"
    assert body["workflowId"] == "welcome"
    assert body["workflowVersion"] == 1
    assert body["subject"] == "contact-7"
    assert body["status"] == "pending"
    assert body["trigger"] == "api"
    assert body["input"] == {"plan": "pro"}
    assert body["finishedAt"] is None
    assert datetime.fromisoformat(body["createdAt"]) == START
    assert (await api.execution(body["id"]))["subject"] == "contact-7"


async def test_the_same_idempotency_key_returns_the_first_execution(api: Api) -> None:
    await api.deploy("welcome")
    await api.deploy("other")

    first = await api.execute("welcome", key="order-42")
    repeat = await api.execute("welcome", key="order-42")
    other_key = await api.execute("welcome", key="order-43")
    other_workflow = await api.execute("other", key="order-42")
    no_key = [await api.execute("welcome") for _ in range(2)]

    assert first.status_code == 201
    assert repeat.status_code == 200
    assert repeat.json() == first.json()
    assert repeat.headers["location"] == first.headers["location"]
    assert other_key.status_code == 201
    assert other_workflow.status_code == 201, "keys are scoped to the workflow"
    ids = {r.json()["id"] for r in (first, other_key, other_workflow, *no_key)}
    assert len(ids) == 5
    listed = (await api.client.get("/api/v1/executions", params={"workflow": "welcome"})).json()
    assert len(listed["items"]) == 4


async def test_an_idempotency_key_reused_for_another_request_is_refused(api: Api) -> None:
    await api.deploy("welcome")
    first = await api.execute("welcome", key="order-42", input={"plan": "pro"})

    other_subject = await api.execute("welcome", "contact-2", key="order-42", input={"plan": "pro"})
    other_input = await api.execute("welcome", key="order-42", input={"plan": "free"})

    assert first.status_code == 201
    for response in (other_subject, other_input):
        assert response.status_code == 422
        problem = response.json()
        assert problem["type"] == "urn:campaignflow:problem:idempotency-key-reused"
        assert first.json()["id"] in problem["detail"]
    listed = (await api.client.get("/api/v1/executions")).json()
    assert len(listed["items"]) == 1


async def test_an_overlong_idempotency_key_names_the_header(api: Api) -> None:
    await api.deploy("welcome")

    response = await api.execute("welcome", key="k" * 201)

    assert response.status_code == 400
    assert response.json()["errors"][0]["parameter"].lower() == "idempotency-key"
    assert response.json()["errors"][0]["in"] == "header"


async def test_only_an_active_workflow_can_be_executed(api: Api) -> None:
    created = await api.client.post("/api/v1/workflows", json=workflow("drafty"))
    assert created.status_code == 201

    draft = await api.execute("drafty")
    unknown = await api.execute("no-such-workflow")

    assert draft.status_code == 409
    assert draft.headers["content-type"] == PROBLEM
    assert draft.json()["type"] == "urn:campaignflow:problem:conflict"
    assert "draft" in draft.json()["detail"]
    assert unknown.status_code == 404
    assert unknown.json()["type"] == "urn:campaignflow:problem:not-found"
    assert (await api.client.get("/api/v1/executions")).json()["items"] == []


@pytest.mark.parametrize(
    ("body", "pointer", "code"),
    [
        ({"input": {}}, "/subject", "required"),
        ({"subject": 42}, "/subject", "type"),
        ({"subject": ""}, "/subject", "too_short"),
        ({"subject": "c", "input": [1, 2]}, "/input", "type"),
        ({"subject": "c", "contact": "a@example.com"}, "/contact", "type"),
        ({"subject": "c", "subjectId": "c"}, "/subjectId", "unknown_field"),
        (["c"], "", "type"),
    ],
)
async def test_a_bad_body_is_422_pointing_at_the_field(
    api: Api, body: object, pointer: str, code: str
) -> None:
    await api.deploy("welcome")

    response = await api.client.post("/api/v1/workflows/welcome/execute", json=body)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["type"] == "urn:campaignflow:problem:invalid-body"
    assert [(e["pointer"], e["code"]) for e in problem["errors"]] == [(pointer, code)]
    assert (await api.client.get("/api/v1/executions")).json()["items"] == []


@pytest.mark.parametrize(
    ("content", "content_type", "status", "slug"),
    [
        (b'{"subject": "c",', "application/json", 400, "malformed-json"),
        (b"", "application/json", 400, "malformed-json"),
        (b"subject=c", "application/x-www-form-urlencoded", 415, "unsupported-media-type"),
    ],
)
async def test_a_body_that_is_not_json_is_refused(
    api: Api, content: bytes, content_type: str, status: int, slug: str
) -> None:
    await api.deploy("welcome")

    response = await api.client.post(
        "/api/v1/workflows/welcome/execute", content=content, headers={"content-type": content_type}
    )

    assert response.status_code == status
    assert response.json()["type"] == f"urn:campaignflow:problem:{slug}"


# ---------------------------------------------------------------------- reading


async def test_a_finished_execution_shows_its_steps_in_order(api: Api) -> None:
    await api.deploy(
        "welcome",
        [
            {
                "id": "remember",
                "type": "action",
                "config": {"action": "set", "params": {"variables": {"plan": "input.plan"}}},
                "next": "pause",
            },
            delay("pause", "PT1H", "mail"),
            {
                "id": "mail",
                "type": "action",
                "config": {"action": "log", "params": {"message": "to {{ contact.email }}"}},
                "next": "done",
            },
            END,
        ],
    )
    execution_id = await api.start(
        "welcome", input={"plan": "pro"}, contact={"email": "a@example.com"}
    )

    await api.drain()
    assert (await api.execution(execution_id))["status"] == "waiting"
    api.clock.advance(timedelta(hours=1))
    await api.drain()
    detail = await api.execution(execution_id)

    assert detail["status"] == "completed", detail["error"]
    assert datetime.fromisoformat(detail["finishedAt"]) == START + timedelta(hours=1)
    assert detail["error"] is None
    steps = detail["steps"]
    assert [step["nodeId"] for step in steps] == ["remember", "pause", "mail", "done"]
    assert [step["seq"] for step in steps] == sorted(step["seq"] for step in steps)
    assert {step["status"] for step in steps} == {"completed"}
    assert {step["branch"] for step in steps} == {""}
    assert steps[0]["nodeType"] == "action"
    assert steps[1]["nodeType"] == "delay"
    assert steps[0]["output"] == {"plan": "pro"}
    assert steps[2]["output"]["message"] == "to a@example.com", "the contact reached the run"
    assert datetime.fromisoformat(steps[2]["startedAt"]) == START + timedelta(hours=1)
    assert steps[0]["attempt"] == 1


async def test_an_unknown_execution_is_404(api: Api) -> None:
    for method, path in [
        ("GET", "/api/v1/executions/01J0000000000000000000000Z"),
        ("POST", "/api/v1/executions/01J0000000000000000000000Z/cancel"),
        ("POST", "/api/v1/executions/01J0000000000000000000000Z/retry"),
        ("GET", "/api/v1/dead-letters/01J0000000000000000000000Z"),
        ("POST", "/api/v1/dead-letters/01J0000000000000000000000Z/replay"),
        ("POST", "/api/v1/dead-letters/01J0000000000000000000000Z/discard"),
    ]:
        response = await api.client.request(method, path)
        assert response.status_code == 404, (method, path)
        assert response.headers["content-type"] == PROBLEM


async def test_list_filters_by_workflow_status_subject_and_time(api: Api) -> None:
    await api.deploy("welcome")
    await api.deploy("slow", [delay("pause", "P1D", "done"), END])
    first = await api.start("welcome", "alice")
    api.clock.advance(timedelta(hours=1))
    second = await api.start("slow", "alice")
    api.clock.advance(timedelta(hours=1))
    third = await api.start("welcome", "bob")
    await api.drain()

    async def ids(**params: str) -> list[str]:
        response = await api.client.get("/api/v1/executions", params=params)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert set(await ids(workflow="welcome")) == {first, third}
    assert await ids(status="waiting") == [second]
    assert set(await ids(status="completed")) == {first, third}
    assert set(await ids(subject="alice")) == {first, second}
    assert await ids(subject="alice", workflow="welcome") == [first]
    assert set(await ids(createdFrom="2026-03-27T08:30:00Z")) == {second, third}
    assert await ids(createdFrom="2026-03-27T10:30:00+02:00", createdTo="2026-03-27T10:00:00Z") == [
        second
    ], "offsets are honoured and createdTo is exclusive"
    assert await ids(createdTo="2026-03-27T08:00:00Z") == []
    assert set(await ids(createdTo="2026-03-27T08:00:00.001Z")) == {first}


async def test_cursor_paging_visits_every_execution_once_newest_first(api: Api) -> None:
    await api.deploy("welcome")
    started = {await api.start("welcome", f"contact-{n}") for n in range(7)}

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        response = await api.client.get("/api/v1/executions", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        seen.extend(item["id"] for item in page["items"])
        pages += 1
        cursor = page.get("nextCursor")
        if cursor is None:
            break

    assert pages == 3
    assert len(seen) == len(set(seen)) == 7
    assert set(seen) == started
    assert seen == sorted(seen, reverse=True)


@pytest.mark.parametrize(
    ("parameter", "value"),
    [
        ("createdFrom", "2026-03-27T08:00:00"),  # naive
        ("createdFrom", "2026-03-27"),
        ("createdFrom", "yesterday"),
        ("createdTo", "20260327T080000Z"),  # ISO 8601 basic format, not RFC 3339
        ("createdTo", "2026-13-01T00:00:00Z"),
        ("createdFrom", "0001-01-01T00:00:00+01:00"),  # before year 1 in UTC
    ],
)
async def test_a_bad_instant_is_400_naming_the_parameter(
    api: Api, parameter: str, value: str
) -> None:
    response = await api.client.get("/api/v1/executions", params={parameter: value})

    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["errors"][0]["parameter"] == parameter
    assert response.json()["errors"][0]["in"] == "query"


async def test_bad_list_parameters_are_400(api: Api) -> None:
    status = await api.client.get("/api/v1/executions", params={"status": "done"})
    cursor = await api.client.get("/api/v1/executions", params={"cursor": "not-ours"})
    letters = await api.client.get("/api/v1/dead-letters", params={"status": "closed"})

    assert status.status_code == 400
    assert status.json()["errors"][0]["parameter"] == "status"
    assert cursor.status_code == 400
    assert cursor.json()["errors"][0]["parameter"] == "cursor"
    assert letters.status_code == 400
    assert letters.json()["errors"][0]["parameter"] == "status"


# ---------------------------------------------------------------------- cancel and retry


async def test_cancel_stops_a_waiting_execution_for_good(api: Api) -> None:
    await api.deploy("slow", [delay("pause", "P1D", "done"), END])
    execution_id = await api.start("slow")
    await api.drain()
    assert (await api.execution(execution_id))["status"] == "waiting"

    cancelled = await api.client.post(f"/api/v1/executions/{execution_id}/cancel")
    again = await api.client.post(f"/api/v1/executions/{execution_id}/cancel")
    api.clock.advance(timedelta(days=2))
    await api.drain()

    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["finishedAt"] is not None
    assert again.status_code == 409
    assert again.json()["type"] == "urn:campaignflow:problem:conflict"
    detail = await api.execution(execution_id)
    assert detail["status"] == "cancelled"
    assert "done" not in [step["nodeId"] for step in detail["steps"]], "the timer was dropped"


async def test_retry_reruns_a_failed_execution_and_refuses_others(api: Api) -> None:
    await deploy_failing(api)
    await api.deploy("welcome")
    execution_id = await failed_execution(api)
    completed = await api.start("welcome")
    await api.drain()

    retried = await api.client.post(f"/api/v1/executions/{execution_id}/retry")
    while_running = await api.client.post(f"/api/v1/executions/{execution_id}/retry")
    not_failed = await api.client.post(f"/api/v1/executions/{completed}/retry")

    assert retried.status_code == 200, retried.text
    assert retried.json()["status"] == "running"
    assert retried.json()["error"] is None
    assert retried.json()["finishedAt"] is None
    assert while_running.status_code == 409
    assert not_failed.status_code == 409
    assert [letter["status"] for letter in await api.dead_letters()] == ["replayed"]

    await api.drain()
    detail = await api.execution(execution_id)
    assert detail["status"] == "failed"
    assert [step["nodeId"] for step in detail["steps"]] == ["call", "call"]
    statuses = sorted(letter["status"] for letter in await api.dead_letters())
    assert statuses == ["open", "replayed"]


# ---------------------------------------------------------------------- dead letters


async def test_a_failed_execution_leaves_a_dead_letter_with_its_errors(api: Api) -> None:
    await api.deploy(
        "notify",
        [call("call"), END],
        errorHandling={
            "retryPolicy": "linear",
            "maxRetries": 1,
            "initialInterval": "PT1M",
            "maxInterval": "PT1M",
            "jitter": 0,
        },
    )
    execution_id = await api.start("notify", input={"order": 7})
    await api.drain()
    assert (await api.execution(execution_id))["status"] == "waiting", "for the retry"
    api.clock.advance(timedelta(minutes=2))
    await api.drain()

    detail = await api.execution(execution_id)
    assert detail["status"] == "failed"
    assert detail["error"]["node"] == "call"
    assert [step["status"] for step in detail["steps"]] == ["retrying", "failed"]
    (letter,) = await api.dead_letters()
    assert letter["executionId"] == execution_id
    assert letter["workflowId"] == "notify"
    assert letter["workflowVersion"] == 1
    assert letter["nodeId"] == "call"
    assert letter["branch"] == ""
    assert letter["status"] == "open"
    assert letter["attempts"] == 2
    assert [error["attempt"] for error in letter["errors"]] == [1, 2]
    assert all(error["retryable"] for error in letter["errors"])
    assert letter["input"] == {"order": 7}
    assert letter["resolvedAt"] is None
    fetched = await api.client.get(f"/api/v1/dead-letters/{letter['id']}")
    assert fetched.json() == letter


async def test_discard_resolves_an_open_dead_letter_once(api: Api) -> None:
    await deploy_failing(api)
    execution_id = await failed_execution(api)
    (letter,) = await api.dead_letters()

    discarded = await api.client.post(f"/api/v1/dead-letters/{letter['id']}/discard")
    again = await api.client.post(f"/api/v1/dead-letters/{letter['id']}/discard")
    replay = await api.client.post(f"/api/v1/dead-letters/{letter['id']}/replay")

    assert discarded.status_code == 200, discarded.text
    assert discarded.json()["status"] == "discarded"
    assert discarded.json()["resolvedAt"] is not None
    assert again.status_code == 409
    assert replay.status_code == 409
    assert (await api.execution(execution_id))["status"] == "failed"
    assert await api.dead_letters(status="open") == []
    assert [d["id"] for d in await api.dead_letters(status="discarded")] == [letter["id"]]


async def test_replay_runs_the_failed_node_again(api: Api) -> None:
    await deploy_failing(api)
    first = await failed_execution(api)
    second = await failed_execution(api)
    letters = {d["executionId"]: d for d in await api.dead_letters()}

    replayed = await api.client.post(f"/api/v1/dead-letters/{letters[second]['id']}/replay")
    again = await api.client.post(f"/api/v1/dead-letters/{letters[second]['id']}/replay")

    assert replayed.status_code == 200, replayed.text
    assert replayed.json()["status"] == "replayed"
    assert replayed.json()["resolvedAt"] is not None
    assert again.status_code == 409
    assert (await api.execution(second))["status"] == "running"
    assert (await api.execution(first))["status"] == "failed", "only the replayed one moves"
    open_letters = await api.dead_letters(status="open")
    assert [d["executionId"] for d in open_letters] == [first]

    await api.drain()
    assert [s["nodeId"] for s in (await api.execution(second))["steps"]] == ["call", "call"]
    assert len(await api.dead_letters(status="open")) == 2


async def test_dead_letters_filter_by_workflow_and_page(api: Api) -> None:
    await deploy_failing(api, "notify")
    await deploy_failing(api, "ping")
    for _ in range(3):
        await failed_execution(api, "notify")
    await failed_execution(api, "ping")

    assert {d["workflowId"] for d in await api.dead_letters(workflow="ping")} == {"ping"}
    first = (await api.client.get("/api/v1/dead-letters", params={"limit": "2"})).json()
    rest = (
        await api.client.get(
            "/api/v1/dead-letters", params={"limit": "2", "cursor": first["nextCursor"]}
        )
    ).json()
    ids = [d["id"] for d in first["items"] + rest["items"]]
    assert len(ids) == len(set(ids)) == 4
    assert ids == sorted(ids, reverse=True)
    assert "nextCursor" not in rest or rest["nextCursor"] is None


# ---------------------------------------------------------------------- authentication


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/workflows/welcome/execute"),
        ("GET", "/api/v1/executions"),
        ("GET", "/api/v1/executions/x"),
        ("POST", "/api/v1/executions/x/cancel"),
        ("POST", "/api/v1/executions/x/retry"),
        ("GET", "/api/v1/dead-letters"),
        ("GET", "/api/v1/dead-letters/x"),
        ("POST", "/api/v1/dead-letters/x/replay"),
        ("POST", "/api/v1/dead-letters/x/discard"),
    ],
)
async def test_every_endpoint_needs_the_token(api: Api, method: str, path: str) -> None:
    await api.deploy("welcome")

    response = await api.client.request(
        method, path, json={"subject": "c"}, headers={"Authorization": ""}
    )

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert (await api.client.get("/api/v1/executions")).json()["items"] == []


async def test_simulate_a_draft_shows_the_path_and_sends_nothing(api: Api) -> None:
    document = workflow("dry", nodes=[delay("nap", "PT2H", "ping"), call("ping"), END])
    created = await api.client.post("/api/v1/workflows", json=document)
    assert created.status_code == 201, created.text  # a draft: simulate needs no activation

    response = await api.client.post(
        "/api/v1/workflows/dry/simulate",
        json={"start": "2026-05-01T10:00:00Z", "input": {"order": 1}},
    )

    assert response.status_code == 200, response.text
    result = response.json()
    assert result["status"] == "completed"
    assert [step["nodeId"] for step in result["path"]] == ["nap", "ping", "done"]
    assert result["finishedAt"] == "2026-05-01T12:00:00Z"  # virtual time, not the wall clock
    (message,) = result["messages"]
    assert message["action"] == "http"
    listed = (await api.client.get("/api/v1/executions")).json()
    assert listed["items"] == []  # nothing stored; the unroutable URL was never called


async def test_simulate_reports_every_scenario_problem_with_its_pointer(api: Api) -> None:
    await api.deploy("welcome")

    response = await api.client.post(
        "/api/v1/workflows/welcome/simulate",
        json={"events": [{"after": "soon", "event": "x"}], "contact": [], "colour": 1},
    )

    assert response.status_code == 422
    assert response.headers["content-type"].startswith(PROBLEM)
    problem = response.json()
    assert problem["type"] == "urn:campaignflow:problem:invalid-scenario"
    pointers = {error["pointer"] for error in problem["errors"]}
    assert {"/events/0/after", "/contact", "/colour"} <= pointers


async def test_simulate_an_unknown_workflow_is_404(api: Api) -> None:
    response = await api.client.post("/api/v1/workflows/nope/simulate", json={})
    assert response.status_code == 404


async def test_publishing_with_in_flight_exit_cancels_older_executions(api: Api) -> None:
    nodes = [delay("nap", "P1D", "done"), END]
    await api.deploy("flow", nodes=nodes)
    old = await api.start("flow")
    await api.drain()
    changed = workflow("flow", nodes=nodes, description="second version")

    unchanged = await api.client.put(
        "/api/v1/workflows/flow?inFlight=exit", json=workflow("flow", nodes=nodes)
    )
    assert unchanged.status_code == 200
    assert (await api.execution(old))["status"] == "waiting"  # no new version, nothing exits

    published = await api.client.put("/api/v1/workflows/flow?inFlight=exit", json=changed)

    assert published.status_code == 200, published.text
    assert published.json()["version"] == 2
    execution = await api.execution(old)
    assert execution["status"] == "cancelled"
    assert "inFlight=exit" in execution["error"]["reason"]


async def test_an_unknown_in_flight_policy_is_400_naming_the_parameter(api: Api) -> None:
    await api.deploy("flow")
    response = await api.client.put(
        "/api/v1/workflows/flow?inFlight=migrate", json=workflow("flow")
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["parameter"] == "inFlight"


@pytest.mark.parametrize(
    ("url", "parameter"),
    [
        ("/api/v1/executions?subject=a%00b", "subject"),
        ("/api/v1/executions/a%00b", "execution_id"),
        ("/api/v1/workflows/a%00b", "workflow_id"),
        ("/api/v1/workflows?name=a%00", "name"),
        ("/api/v1/dead-letters/a%00", "dead_letter_id"),
    ],
)
async def test_nul_in_a_parameter_is_400_naming_it_on_every_database(
    api: Api, url: str, parameter: str
) -> None:
    response = await api.client.get(url)

    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert error["parameter"] == parameter
    assert error["code"] == "invalid_character"


async def test_nul_in_the_body_is_422_with_its_pointer(api: Api) -> None:
    await api.deploy("welcome")

    response = await api.execute("welcome", "a\x00b", input={"note": "x\x00"})

    assert response.status_code == 422
    pointers = [error["pointer"] for error in response.json()["errors"]]
    assert pointers == ["/input/note", "/subject"]


async def test_another_workspace_sees_none_of_it(api: Api, database: Database) -> None:
    """Same database, same ids: a client of another workspace gets 404s and empty lists."""
    await api.deploy("flaky", nodes=[call("ping"), END], errorHandling={"retryPolicy": "none"})
    execution_id = await api.start("flaky")
    await api.drain()
    (letter,) = await api.dead_letters()
    engine = Engine.on(database, clock=api.clock, contact_cipher=contact_cipher())
    other_app = create_app(make_settings("globex"), database=database, engine=engine)
    async with (
        other_app.router.lifespan_context(other_app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=other_app),
            base_url="http://testserver",
            headers={"Authorization": f"Bearer {token_for('globex')}"},
        ) as other,
    ):
        for method, url in [
            ("GET", f"/api/v1/executions/{execution_id}"),
            ("POST", f"/api/v1/executions/{execution_id}/cancel"),
            ("POST", f"/api/v1/executions/{execution_id}/retry"),
            ("GET", f"/api/v1/dead-letters/{letter['id']}"),
            ("POST", f"/api/v1/dead-letters/{letter['id']}/replay"),
            ("POST", f"/api/v1/dead-letters/{letter['id']}/discard"),
        ]:
            response = await other.request(method, url)
            assert response.status_code == 404, (method, url, response.text)
        for url in ("/api/v1/executions", "/api/v1/dead-letters"):
            assert (await other.get(url)).json()["items"] == []
        execute = await other.post("/api/v1/workflows/flaky/execute", json={"subject": "c-1"})
        assert execute.status_code == 404
        simulate = await other.post("/api/v1/workflows/flaky/simulate", json={})
        assert simulate.status_code == 404
    await engine.wakeup.aclose()
    assert (await api.execution(execution_id))["status"] == "failed"  # untouched
    assert [d["status"] for d in await api.dead_letters()] == ["open"]
