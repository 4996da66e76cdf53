"""A real uvicorn server over the real app and database (SQLite and PostgreSQL) whose engine's
worker the test drives, an httpx client on it, and a reader of its server-sent events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest

from campaignflow.api.app import create_app
from campaignflow.engine.runtime import Engine, builtin_executors
from campaignflow.engine.worker import Worker
from campaignflow.store.database import Database
from tests._support.api_clients import bearer, uvicorn_serving
from tests._support.ciphers import contact_cipher
from tests.integration.api.conftest import TOKEN, make_settings, workflow

STREAM = "/api/v1/executions/stream"


@dataclass(frozen=True)
class Message:
    event: str
    id: str | None
    data: dict[str, Any]


class EventStream:
    """The messages of one ``text/event-stream`` response, parsed by a task of its own as they
    arrive (so waiting for one with a timeout never breaks the response's iterator)."""

    def __init__(self, response: httpx.Response) -> None:
        self.comments: list[str] = []
        self._messages: asyncio.Queue[Message | None] = asyncio.Queue()
        self._task = asyncio.create_task(self._read(response))

    async def _read(self, response: httpx.Response) -> None:
        fields: dict[str, str] = {}
        try:
            async for line in response.aiter_lines():
                if line.startswith(":"):
                    self.comments.append(line[1:].strip())
                elif line:
                    name, _, value = line.partition(":")
                    fields[name] = value.removeprefix(" ")
                elif "data" in fields:
                    data = orjson.loads(fields["data"])
                    self._messages.put_nowait(
                        Message(fields.get("event", "message"), fields.get("id"), data)
                    )
                    fields = {}
        finally:
            self._messages.put_nowait(None)

    async def next(self, within: float = 5.0) -> Message:
        async with asyncio.timeout(within):
            message = await self._messages.get()
        if message is None:
            raise AssertionError("the stream ended")
        return message

    async def take(self, count: int) -> list[Message]:
        return [await self.next() for _ in range(count)]

    async def silent(self, seconds: float = 0.3) -> bool:
        """Whether no message comes for ``seconds``."""
        try:
            message = await self.next(within=seconds)
        except TimeoutError:
            return True
        raise AssertionError(f"unexpected message {message}")

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.wait([self._task])


@dataclass
class Monitored:
    url: str
    engine: Engine
    worker: Worker
    http: httpx.AsyncClient

    async def deploy(self, workflow_id: str, nodes: list[dict[str, Any]]) -> None:
        created = await self.http.post("/api/v1/workflows", json=workflow(workflow_id, nodes=nodes))
        assert created.status_code == 201, created.text
        activated = await self.http.post(f"/api/v1/workflows/{workflow_id}/activate")
        assert activated.status_code == 200, activated.text

    async def start(self, workflow_id: str, subject: str = "contact-1") -> str:
        response = await self.http.post(
            f"/api/v1/workflows/{workflow_id}/execute", json={"subject": subject}
        )
        assert response.status_code == 201, response.text
        execution_id: str = response.json()["id"]
        return execution_id

    async def drain(self) -> None:
        for _ in range(100):
            if await self.worker.run_once() == 0:
                return
        raise AssertionError("the worker never went idle")

    @asynccontextmanager
    async def stream(
        self,
        token: str = TOKEN,
        params: list[tuple[str, str]] | None = None,
        last_event_id: str | None = None,
        workspace: str = "default",
    ) -> AsyncIterator[EventStream]:
        """A stream, once the server has subscribed it to the feed; on leaving, the server
        must have unsubscribed it (a closed connection leaves no subscription)."""
        headers = bearer(token)
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        before: int = self.engine.feed.subscribers(workspace)  # type: ignore[attr-defined]
        async with self.http.stream("GET", STREAM, params=params, headers=headers) as response:
            assert response.status_code == 200, await response.aread()
            assert response.headers["content-type"].startswith("text/event-stream")
            await self.subscribers(workspace, before + 1)
            stream = EventStream(response)
            try:
                yield stream
            finally:
                await stream.close()
        await self.subscribers(workspace, before)

    async def subscribers(self, workspace: str, count: int) -> None:
        """Wait until the feed has ``count`` subscribers of ``workspace``."""
        feed: Any = self.engine.feed
        # A Redis feed's subscriber sees what is published once its reader has fixed its start.
        reading = getattr(feed, "reading", lambda _workspace: True)
        for _ in range(500):
            if feed.subscribers(workspace) == count and (count == 0 or reading(workspace)):
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"{workspace} never had {count} subscriber(s)")


@pytest.fixture
async def monitored(database: Database) -> AsyncIterator[Monitored]:
    engine = Engine.on(database, contact_cipher=contact_cipher())
    app = create_app(make_settings(), database=database, engine=engine)
    executors, http = builtin_executors()
    try:
        async with (
            uvicorn_serving(app) as url,
            httpx.AsyncClient(base_url=url, headers=bearer(TOKEN), timeout=30) as client,
        ):
            yield Monitored(url, engine, engine.worker(executors), client)
    finally:
        await http.aclose()
        await engine.wakeup.aclose()
        await engine.feed.close()
