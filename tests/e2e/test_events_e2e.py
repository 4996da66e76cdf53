"""Events through real processes: `campaignflow serve` takes them (Segment's own Python library
sends them), Redis Streams carries them, `campaignflow worker` routes them on PostgreSQL.

The crash test kills the routing worker with SIGKILL while events stream in: after a second
worker takes over its shards, every accepted event is stored once and started one execution.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from segment.analytics import Client
from sqlalchemy import func, select

from campaignflow.services.workflows import WorkflowService
from campaignflow.store.database import Database
from campaignflow.store.tables import events, executions
from campaignflow.store.workflows import WorkflowStore
from tests.e2e.conftest import (
    REPO,
    TOKEN,
    bus_env,
    cli_env,
    owner_key_in,
    spawn_worker,
    start_server,
)

pytestmark = [pytest.mark.slow]

WORKSPACE = "default"
TRACKED = {
    "workflowId": "tracked",
    "name": "Tracked",
    "triggers": [{"type": "behavior", "event": "item_viewed"}],
    "entry": {"reentry": "always", "allowConcurrent": True},
    "errorHandling": {},
    "nodes": [{"id": "done", "type": "end"}],
}


@pytest.fixture
def stream_env(postgres_database_url: str, redis_url: str, stream_prefix: str) -> dict[str, str]:
    return bus_env(
        postgres_database_url,
        redis_url,
        stream_prefix,
        CAMPAIGNFLOW_EVENTS__SHARD_LEASE_SECONDS="1",
        CAMPAIGNFLOW_EVENTS__SHARDS="4",
    )


def _deploy(url: str, definition: dict[str, Any]) -> None:
    async def deploy() -> None:
        database = Database.from_url(url)
        try:
            store = WorkflowStore(database)
            await store.ensure_workspace(WORKSPACE, "Default workspace")
            service = WorkflowService(store)
            await service.create(WORKSPACE, definition)
            await service.activate(WORKSPACE, definition["workflowId"])
        finally:
            await database.dispose()

    asyncio.run(deploy())


def _counts(url: str) -> tuple[int, int, int]:
    """(events stored, executions, distinct events that started one)."""

    async def count() -> tuple[int, int, int]:
        database = Database.from_url(url)
        try:
            async with database.read() as connection:
                stored = (
                    await connection.execute(select(func.count()).select_from(events))
                ).scalar_one()
                started = (
                    await connection.execute(select(func.count()).select_from(executions))
                ).scalar_one()
                distinct = (
                    await connection.execute(
                        select(func.count(func.distinct(executions.c.input["n"].as_string())))
                    )
                ).scalar_one()
            return stored, started, distinct
        finally:
            await database.dispose()

    return asyncio.run(count())


def _wait_for(url: str, expected: int, timeout: float) -> tuple[int, int, int]:
    deadline = time.monotonic() + timeout
    counts = _counts(url)
    while time.monotonic() < deadline and counts[0] < expected:
        time.sleep(0.1)
        counts = _counts(url)
    return counts


@pytest.mark.postgres_only
@pytest.mark.timeout(120)
@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
def test_segments_python_library_sends_events_that_start_workflows(
    stream_env: dict[str, str], postgres_database_url: str, tmp_path: Path, gzip: bool
) -> None:
    _deploy(postgres_database_url, TRACKED)
    worker = spawn_worker(stream_env, tmp_path / "worker.log")
    try:
        with start_server(["serve"], stream_env, tmp_path / "serve.log") as server:
            errors: list[Exception] = []
            client = Client(
                TOKEN,
                host=server.url,
                sync_mode=True,
                gzip=gzip,
                max_retries=1,
                on_error=lambda error, _items: errors.append(error),
            )
            client.identify("user-1", {"email": "Ada@Example.com", "plan": "pro"})
            for n in range(20):
                client.track("user-1", "item_viewed", {"n": n}, message_id=f"view-{n}")
            client.track("user-1", "item_viewed", {"n": 0}, message_id="view-0")  # a repeat
            client.flush()
            assert errors == []
            stored, started, distinct = _wait_for(postgres_database_url, 21, timeout=30)
            assert (stored, started, distinct) == (21, 20, 20)
            contact = httpx.get(
                f"{server.url}/api/v1/contacts",
                params={"userId": "user-1"},
                headers={"Authorization": f"Bearer {TOKEN}"},
            ).json()["items"][0]
            assert contact["email"] == "ada@example.com"
            assert contact["traits"]["plan"] == "pro"
    finally:
        worker.terminate()
        worker.wait(timeout=20)


LOAD = 3000


@pytest.mark.postgres_only
@pytest.mark.timeout(180)
def test_a_router_killed_mid_stream_loses_no_event_and_starts_none_twice(
    stream_env: dict[str, str], postgres_database_url: str, tmp_path: Path
) -> None:
    _deploy(postgres_database_url, TRACKED)
    log = tmp_path / "workers.log"
    first = spawn_worker(stream_env, log)
    with start_server(["serve"], stream_env, tmp_path / "serve.log") as server:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as http:
            for start in range(0, LOAD, 100):
                batch = [
                    {
                        "event": "item_viewed",
                        "userId": f"u{n % 37}",
                        "properties": {"n": n},
                        "messageId": f"e-{n}",
                    }
                    for n in range(start, start + 100)
                ]
                response = http.post("/api/v1/events/batch", json={"events": batch})
                assert response.status_code == 202, response.text
                if start == LOAD // 3:
                    _wait_for(postgres_database_url, 1, timeout=30)  # it is routing
                    first.send_signal(signal.SIGKILL)
                    first.wait(timeout=10)
            # The sender retries a batch whose answer it missed: the same messageIds again.
            retry = [
                {
                    "event": "item_viewed",
                    "userId": "u1",
                    "properties": {"n": n},
                    "messageId": f"e-{n}",
                }
                for n in range(100)
            ]
            assert http.post("/api/v1/events/batch", json={"events": retry}).status_code == 202
    second = spawn_worker(stream_env, log)
    try:
        stored, started, distinct = _wait_for(postgres_database_url, LOAD, timeout=90)
        assert (stored, started, distinct) == (LOAD, LOAD, LOAD), log.read_text()[-3000:]
    finally:
        second.terminate()
        second.wait(timeout=20)


@pytest.mark.timeout(120)
def test_the_abandoned_cart_journey_runs_through_campaignflow_up(tmp_path: Path) -> None:
    """The embedded mode as a new user runs it: SQLite, the in-process bus, Segment calls."""
    env = cli_env(CAMPAIGNFLOW_DATA_DIR=str(tmp_path / "data"), PYTHONUNBUFFERED="1")
    args = ["up", "--load-examples", str(REPO / "examples" / "workflows")]
    with start_server(args, env, tmp_path / "up.log") as server:
        token = owner_key_in(server.log.read_text(encoding="utf-8"))
        owner = {"Authorization": f"Bearer {token}"}
        write_key = httpx.post(
            f"{server.url}/api/v1/api-keys",
            json={"name": "site", "scopes": ["events:write"]},
            headers=owner,
        ).json()["key"]
        admin = httpx.Client(base_url=server.url, headers=owner)
        sender = httpx.Client(base_url=server.url, auth=(write_key, ""))
        with admin, sender:
            assert admin.post("/api/v1/workflows/abandoned-cart/activate").status_code == 200
            identify = {"userId": "ann", "traits": {"email": "ann@example.com"}}
            assert sender.post("/v1/identify", json=identify).status_code == 200
            cart = {
                "userId": "ann",
                "event": "cart_updated",
                "properties": {"cartId": "c-7", "itemCount": 1, "total": 30},
            }
            assert sender.post("/v1/track", json=cart).status_code == 200
            execution = _poll(admin, lambda e: e["status"] == "waiting")
            order = {"userId": "ann", "event": "order_completed", "properties": {"cartId": "c-7"}}
            assert sender.post("/v1/track", json=order).status_code == 200
            done = _poll(admin, lambda e: e["status"] == "completed")
            assert done["id"] == execution["id"]
            steps = admin.get(f"/api/v1/executions/{done['id']}").json()["steps"]
            assert [step["nodeId"] for step in steps] == ["wait-for-order", "purchased"]


def _poll(admin: httpx.Client, predicate: Any) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        items = admin.get("/api/v1/executions", params={"workflow": "abandoned-cart"}).json()
        if items["items"] and predicate(items["items"][0]):
            return dict(items["items"][0])
        time.sleep(0.1)
    raise AssertionError(f"no such execution: {items}")
