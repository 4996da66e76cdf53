"""A real uvicorn server on a free port over the real app (SQLite and PostgreSQL), an engine
whose worker the test drives, and ``gql`` clients over HTTP and websockets."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from gql import Client, GraphQLRequest
from gql.transport.aiohttp import AIOHTTPTransport
from gql.transport.websockets import WebsocketsTransport

from campaignflow.api.app import create_app
from campaignflow.engine.runtime import Engine, builtin_executors
from campaignflow.engine.worker import Worker
from campaignflow.store.database import Database
from tests._support.api_clients import uvicorn_serving
from tests._support.ciphers import contact_cipher
from tests.integration.api.conftest import TOKEN, make_settings


@dataclass
class Served:
    """The server's base URL and the worker of its engine (``drain`` runs it until idle)."""

    url: str
    worker: Worker

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/graphql"

    def client(self, token: str | None = TOKEN) -> Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        transport = AIOHTTPTransport(url=f"{self.url}/graphql", headers=headers, ssl=False)
        return Client(transport=transport)

    async def run(
        self, document: str, token: str | None = TOKEN, **variables: Any
    ) -> dict[str, Any]:
        """Execute ``document``; raises gql's ``TransportQueryError`` (with ``.errors``)."""
        async with self.client(token) as session:
            result: dict[str, Any] = await session.execute(request(document, **variables))
            return result

    async def drain(self) -> None:
        for _ in range(100):
            if await self.worker.run_once() == 0:
                return
        raise AssertionError("the worker never went idle")


def request(document: str, **variables: Any) -> GraphQLRequest:
    return GraphQLRequest(document, variable_values=variables or None)


ServeFactory = Callable[..., AbstractAsyncContextManager[Served]]


@pytest.fixture
def serve(database: Database) -> ServeFactory:
    """Open servers over ``database`` (one per workspace, like the REST tests' clients)."""

    @asynccontextmanager
    async def open_server(workspace_id: str = "default") -> AsyncIterator[Served]:
        engine = Engine.on(database, contact_cipher=contact_cipher())
        app = create_app(make_settings(workspace_id), database=database, engine=engine)
        executors, http = builtin_executors()
        try:
            async with uvicorn_serving(app) as url:
                yield Served(url, engine.worker(executors))
        finally:
            await http.aclose()
            await engine.wakeup.aclose()
            await engine.feed.close()

    return open_server


@pytest.fixture
async def served(serve: ServeFactory) -> AsyncIterator[Served]:
    async with serve() as server:
        yield server


def ws_transport(
    served: Served, token: str = TOKEN, *, legacy: bool = False
) -> WebsocketsTransport:
    """A websocket transport authenticated in ``connection_init`` (graphql-transport-ws, or the
    legacy graphql-ws with ``legacy``)."""
    protocol = (
        WebsocketsTransport.APOLLO_SUBPROTOCOL
        if legacy
        else WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL
    )
    return WebsocketsTransport(
        url=served.ws_url,
        init_payload={"Authorization": f"Bearer {token}"},
        subprotocols=[protocol],
    )
