"""``GET /api/v1/executions/stream`` end to end: a real server, a real worker, a client reading
server-sent events. Filters, resuming with Last-Event-ID, who sees what, and that a closed
connection leaves no subscription behind."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from campaignflow.api.app import create_app
from campaignflow.api.routers import executions as executions_router
from campaignflow.bus.step_feed_redis import RedisStepFeed
from campaignflow.engine.runtime import Engine, builtin_executors
from campaignflow.store.database import Database
from tests._support.api_clients import bearer, serving, uvicorn_serving
from tests._support.ciphers import contact_cipher
from tests.integration.api.conftest import TOKEN, make_settings, workflow
from tests.integration.monitoring.conftest import STREAM, Monitored

GREET = {
    "id": "greet",
    "type": "action",
    "config": {"action": "log", "params": {"message": "Hello {{ contact.id }}"}},
    "next": "done",
}
END = {"id": "done", "type": "end"}
FLOW = [GREET, END]


async def test_a_client_receives_the_steps_of_a_run_in_order_with_its_filter(
    monitored: Monitored,
) -> None:
    await monitored.deploy("welcome", FLOW)
    await monitored.deploy("other", FLOW)
    only_welcome = [("workflowId", "welcome")]
    async with monitored.stream(params=only_welcome) as stream:
        execution = await monitored.start("welcome")
        await monitored.start("other")
        await monitored.drain()

        messages = await stream.take(3)
        assert [(m.event, m.data["nodeId"], m.data["status"]) for m in messages] == [
            ("step", "greet", "completed"),
            ("step", "done", "completed"),
            ("execution", None, "completed"),
        ]
        assert {m.data["executionId"] for m in messages} == {execution}
        assert [m.data["seq"] for m in messages[:2]] == [1, 2]
        assert all(m.id and m.id == m.data["id"] for m in messages)
        assert messages[0].data["workflowVersion"] == 1
        assert "input" not in messages[0].data
        assert "output" not in messages[0].data
        assert await stream.silent()  # nothing of "other"


async def test_the_status_filter_and_a_repeated_workflow_filter(monitored: Monitored) -> None:
    await monitored.deploy("welcome", FLOW)
    await monitored.deploy("other", FLOW)
    params = [("workflowId", "welcome"), ("workflowId", "other"), ("status", "completed")]
    async with monitored.stream(params=params) as stream:
        await monitored.start("welcome")
        await monitored.start("other")
        await monitored.drain()
        messages = await stream.take(6)
        assert {m.data["workflowId"] for m in messages} == {"welcome", "other"}
        assert [m.event for m in messages].count("execution") == 2
    async with monitored.stream(params=[("status", "failed")]) as failures:
        await monitored.start("welcome")
        await monitored.drain()
        assert await failures.silent()  # every step completed


async def test_resuming_with_last_event_id_replays_what_was_missed(monitored: Monitored) -> None:
    await monitored.deploy("welcome", FLOW)
    async with monitored.stream() as stream:
        await monitored.start("welcome")
        await monitored.drain()
        first = await stream.take(3)
    await monitored.subscribers("default", 0)  # the dropped connection unsubscribed
    second = await monitored.start("welcome", "contact-2")  # while nobody watches
    await monitored.drain()
    async with monitored.stream(last_event_id=first[0].id) as resumed:
        replayed = await resumed.take(5)
        assert [m.id for m in replayed[:2]] == [first[1].id, first[2].id]
        assert {m.data["executionId"] for m in replayed[2:]} == {second}
        assert await resumed.silent()


async def test_no_events_of_another_workspace(monitored: Monitored) -> None:
    await monitored.deploy("welcome", FLOW)
    globex = create_app(
        make_settings("globex"), database=monitored.engine.database, engine=monitored.engine
    )
    async with serving(globex) as other, monitored.stream() as stream:
        token = make_settings("globex").api_token
        assert token is not None
        other.headers["Authorization"] = f"Bearer {token.get_secret_value()}"
        created = await other.post("/api/v1/workflows", json=workflow("welcome", nodes=FLOW))
        assert created.status_code == 201, created.text
        assert (await other.post("/api/v1/workflows/welcome/activate")).status_code == 200
        executed = await other.post("/api/v1/workflows/welcome/execute", json={"subject": "g"})
        assert executed.status_code == 201, executed.text
        await monitored.drain()  # the worker runs every workspace's executions
        assert await stream.silent()
        mine = await monitored.start("welcome")
        await monitored.drain()
        assert {m.data["executionId"] for m in await stream.take(3)} == {mine}


async def test_a_key_that_may_not_read_workflows_sees_no_steps(monitored: Monitored) -> None:
    await monitored.deploy("welcome", FLOW)
    narrow = await _key(monitored, ["executions:read"])
    async with monitored.stream(token=narrow) as stream:
        await monitored.start("welcome")
        await monitored.drain()
        assert await stream.silent()
    no_executions = await _key(monitored, ["workflows:read"])
    refused = await monitored.http.get(STREAM, headers={"Authorization": f"Bearer {no_executions}"})
    assert refused.status_code == 403


async def _key(monitored: Monitored, scopes: list[str]) -> str:
    response = await monitored.http.post("/api/v1/api-keys", json={"name": "k", "scopes": scopes})
    assert response.status_code == 201, response.text
    key: str = response.json()["key"]
    return key


async def test_bad_filters_are_422_problems_pointing_at_the_value(monitored: Monitored) -> None:
    response = await monitored.http.get(STREAM, params=[("status", "failed"), ("status", "odd")])
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["errors"][0]["pointer"] == "/status/1"
    long_id = await monitored.http.get(STREAM, params={"workflowId": "w" * 65})
    assert long_id.status_code == 422
    assert long_id.json()["errors"][0]["pointer"] == "/workflowId/0"
    assert (await monitored.http.get(STREAM, headers={"Authorization": ""})).status_code == 401
    await monitored.subscribers("default", 0)


async def test_closing_connections_ends_their_subscriptions(monitored: Monitored) -> None:
    async with monitored.stream(), monitored.stream():
        await monitored.subscribers("default", 2)
    await monitored.subscribers("default", 0)


async def test_an_idle_stream_gets_heartbeats(
    monitored: Monitored, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(executions_router, "HEARTBEAT_SECONDS", 0.1)
    async with monitored.stream() as stream:
        for _ in range(100):  # two beats take 0.2 s; a loaded machine may take longer
            if stream.comments.count("heartbeat") >= 2:
                break
            await asyncio.sleep(0.05)
        assert stream.comments.count("heartbeat") >= 2
        assert await stream.silent(0.1)  # comments only: no message was sent


async def test_api_and_worker_processes_meet_in_redis(database: Database, redis_url: str) -> None:
    """``serve`` + ``worker``: each process has its own engine and feed; Redis joins them."""
    redis = Redis.from_url(redis_url)
    prefix = f"test-sse-{secrets.token_hex(6)}"
    api_engine = Engine.on(
        database, contact_cipher=contact_cipher(), feed=RedisStepFeed(redis, prefix=prefix)
    )
    worker_engine = Engine.on(
        database, contact_cipher=contact_cipher(), feed=RedisStepFeed(redis, prefix=prefix)
    )
    app = create_app(make_settings(), database=database, engine=api_engine)
    executors, http = builtin_executors()
    try:
        async with (
            uvicorn_serving(app) as url,
            httpx.AsyncClient(base_url=url, headers=bearer(TOKEN), timeout=30) as client,
        ):
            served = Monitored(url, api_engine, worker_engine.worker(executors), client)
            await served.deploy("welcome", FLOW)
            async with served.stream(params=[("workflowId", "welcome")]) as stream:
                execution = await served.start("welcome")
                await served.drain()
                messages = await stream.take(3)
                assert [m.event for m in messages] == ["step", "step", "execution"]
                assert {m.data["executionId"] for m in messages} == {execution}
                assert all(m.id and "-" in m.id for m in messages)  # Redis stream ids
    finally:
        await http.aclose()
        for engine in (api_engine, worker_engine):
            await engine.feed.close()
            await engine.wakeup.aclose()
        keys = [key async for key in redis.scan_iter(match=f"{prefix}:*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
