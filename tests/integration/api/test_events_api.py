"""Ingestion through the real app: the native and Segment-compatible endpoints, the in-process
bus and the router running in the app, on a real database (each dialect)."""

from __future__ import annotations

import asyncio
import base64
import secrets
from typing import Any

import httpx
import orjson
import pytest
from redis.asyncio import Redis

from campaignflow.api.app import create_app
from campaignflow.bus.redis_streams import RedisStreamBus
from campaignflow.engine.runtime import Engine
from campaignflow.store.database import Database
from tests._support.ciphers import contact_cipher
from tests.integration.api.conftest import TOKEN, ClientFactory, make_settings, workflow

CART_FLOW = workflow(
    "cart",
    triggers=[
        {
            "type": "behavior",
            "event": "cart_updated",
            "condition": "event.properties.items > 0",
        }
    ],
    entry={"reentry": "always", "allowConcurrent": True},
)
WRITE_KEY = {"Authorization": "Basic " + base64.b64encode(f"{TOKEN}:".encode()).decode()}


async def _activate(client: httpx.AsyncClient, definition: dict[str, Any]) -> None:
    created = await client.post("/api/v1/workflows", json=definition)
    assert created.status_code == 201, created.text
    workflow_id = definition["workflowId"]
    response = await client.post(f"/api/v1/workflows/{workflow_id}/activate")
    assert response.status_code == 200, response.text


async def _executions(client: httpx.AsyncClient, count: int) -> list[dict[str, Any]]:
    """The workflow's executions, once there are ``count`` (the router runs concurrently)."""
    items: list[dict[str, Any]] = []
    for _ in range(200):
        items = (await client.get("/api/v1/executions?workflow=cart")).json()["items"]
        if len(items) >= count:
            return items
        await asyncio.sleep(0.02)
    raise AssertionError(f"{len(items)} executions, expected {count}")


@pytest.fixture
async def cart_client(app_client: ClientFactory) -> Any:
    async with app_client() as client:
        await _activate(client, CART_FLOW)
        yield client


async def test_an_event_is_acknowledged_then_starts_the_matching_workflow(
    cart_client: httpx.AsyncClient,
) -> None:
    body = {
        "event": "cart_updated",
        "userId": "alice",
        "properties": {"items": 2},
        "messageId": "m-1",
    }
    response = await cart_client.post("/api/v1/events", json=body)
    assert response.status_code == 202, response.text
    assert response.json() == {
        "accepted": 1,
        "messageIds": ["m-1"],
        "duplicates": 0,
        "rejected": [],
    }
    (execution,) = await _executions(cart_client, 1)
    assert execution["input"] == {"items": 2}
    assert execution["trigger"] == "behavior:cart_updated"


async def test_a_batch_keeps_its_good_events_and_points_at_the_bad_ones(
    cart_client: httpx.AsyncClient,
) -> None:
    events = [
        {"event": "cart_updated", "userId": "a", "properties": {"items": 1}},
        {"event": "cart_updated", "properties": {"items": 1}},  # no identity
        {"event": "cart_updated", "userId": "c", "properties": "not an object"},
        {"event": "cart_updated", "userId": "d", "properties": {"items": 1}},
    ]
    response = await cart_client.post("/api/v1/events/batch", json={"events": events})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["accepted"] == 2
    assert [item["index"] for item in body["rejected"]] == [1, 2]
    pointers = {e["pointer"] for item in body["rejected"] for e in item["errors"]}
    assert "/events/2/properties" in pointers
    assert any(pointer.startswith("/events/1") for pointer in pointers)
    assert len(await _executions(cart_client, 2)) == 2


async def test_a_batch_with_no_good_event_is_a_422_with_every_pointer(
    cart_client: httpx.AsyncClient,
) -> None:
    response = await cart_client.post(
        "/api/v1/events/batch", json={"events": [{"event": ""}, {"type": "bogus"}]}
    )
    assert response.status_code == 422
    problem = response.json()
    assert problem["type"].endswith("invalid-events")
    assert {e["pointer"].split("/")[2] for e in problem["errors"]} == {"0", "1"}


async def test_a_repeated_message_id_starts_one_execution(cart_client: httpx.AsyncClient) -> None:
    body = {"event": "cart_updated", "userId": "a", "properties": {"items": 1}, "messageId": "same"}
    for _ in range(3):
        assert (await cart_client.post("/api/v1/events", json=body)).status_code == 202
    other = {**body, "messageId": "different"}
    assert (await cart_client.post("/api/v1/events", json=other)).status_code == 202
    assert len(await _executions(cart_client, 2)) == 2
    await asyncio.sleep(0.1)
    assert len(await _executions(cart_client, 2)) == 2


async def test_segment_calls_use_the_write_key_and_answer_like_segment(
    app_client: ClientFactory,
) -> None:
    async with app_client(auth=False) as anonymous, app_client() as admin:
        await _activate(admin, CART_FLOW)
        track = {"event": "cart_updated", "userId": "bob", "properties": {"items": 3}}
        refused = await anonymous.post("/v1/track", json=track)
        assert refused.status_code == 401
        wrong = {"Authorization": "Basic " + base64.b64encode(b"nope:").decode()}
        assert (await anonymous.post("/v1/track", json=track, headers=wrong)).status_code == 401
        response = await anonymous.post("/v1/track", json=track, headers=WRITE_KEY)
        assert response.status_code == 200, response.text
        assert response.json()["success"] is True
        identify = {"userId": "bob", "traits": {"email": "Bob@Example.com", "plan": "pro"}}
        assert (
            await anonymous.post("/v1/identify", json=identify, headers=WRITE_KEY)
        ).status_code == 200
        batch = {"batch": [{**track, "type": "track", "messageId": f"b-{i}"} for i in range(3)]}
        assert (await anonymous.post("/v1/batch", json=batch, headers=WRITE_KEY)).status_code == 200
        assert len(await _executions(admin, 4)) == 4
        contacts = (await admin.get("/api/v1/contacts?userId=bob")).json()["items"]
        assert contacts[0]["traits"]["plan"] == "pro"


async def test_segment_beacons_may_send_text_plain(app_client: ClientFactory) -> None:
    async with app_client(auth=False) as client:
        body = orjson.dumps({"event": "x", "anonymousId": "a1"})
        headers = {**WRITE_KEY, "Content-Type": "text/plain"}
        response = await client.post("/v1/track", content=body, headers=headers)
        assert response.status_code == 200, response.text
        xml = {**WRITE_KEY, "Content-Type": "application/xml"}
        assert (await client.post("/v1/track", content=body, headers=xml)).status_code == 415


async def test_a_body_over_500_kb_is_refused_with_413(cart_client: httpx.AsyncClient) -> None:
    big = {"events": [{"event": "x", "userId": "u", "properties": {"pad": "x" * 20_000}}] * 30}
    response = await cart_client.post("/api/v1/events/batch", json=big)
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"


async def test_an_event_over_32_kb_is_refused_by_pointer(cart_client: httpx.AsyncClient) -> None:
    events = [
        {"event": "x", "userId": "u", "properties": {"pad": "x" * 40_000}},
        {"event": "cart_updated", "userId": "u", "properties": {"items": 1}},
    ]
    response = await cart_client.post("/api/v1/events/batch", json={"events": events})
    assert response.status_code == 202
    body = response.json()
    assert body["accepted"] == 1
    assert body["rejected"][0]["index"] == 0
    assert body["rejected"][0]["errors"][0]["pointer"] == "/events/0"


async def test_a_full_backlog_answers_429_with_retry_after_and_takes_nothing(
    database: Database, redis_url: str
) -> None:
    """Redis bus with a bound of 2 entries and no router consuming: the third request is
    refused, and nothing of it reaches the bus."""
    client = Redis.from_url(redis_url)
    prefix = f"cf-test-{secrets.token_hex(4)}"
    bus = RedisStreamBus(client, shards=1, prefix=prefix, max_backlog=2, retry_after_seconds=7)
    engine = Engine.on(database, bus=bus, contact_cipher=contact_cipher())
    app = create_app(make_settings(), database=database, engine=engine)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://testserver", headers=WRITE_KEY
            ) as http:
                track = {"event": "x", "userId": "u"}
                for _ in range(2):
                    assert (await http.post("/v1/track", json=track)).status_code == 200
                refused = await http.post("/v1/track", json=track)
                assert refused.status_code == 429
                assert refused.headers["retry-after"] == "7"
                assert refused.json()["type"].endswith("backpressure")
                assert await bus.backlog() == 2
    finally:
        await bus.close()
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
