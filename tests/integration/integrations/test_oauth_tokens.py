"""OAuth 2.0 connections: client credentials and refresh tokens through the real executor.

The provider is a local aiohttp server with a token endpoint (RFC 6749 §4.4 and §6, rotating
refresh tokens as many providers do) and one API route that accepts only the token it issued
last. It stands in for a provider's authorisation server, which no test here can reach; the
connector is declared in this file because no built-in connector uses OAuth yet (CRM and ads
connectors will). Connections, secrets and the executor are the real ones, on SQLite and
PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import pytest
from aiohttp import web

from campaignflow.engine.actions import ActionCall, ActionFailed
from campaignflow.integrations.connector import (
    AuthScheme,
    Connector,
    ConnectorModel,
    OAuth2ClientCredentials,
    OAuth2RefreshToken,
    Operation,
    OutboundRequest,
    RateLimits,
    operations,
)
from campaignflow.integrations.runtime import Integrations, open_integrations
from campaignflow.store.connections import NewConnection, credential_id
from campaignflow.store.database import Database
from campaignflow.store.workflows import WorkflowStore
from tests._support.ciphers import contact_cipher
from tests.integration.api.conftest import make_settings

WORKSPACE = "acme"


class NoParams(ConnectorModel):
    pass


class ClientCredentials(ConnectorModel):
    client_id: str
    client_secret: str


@dataclass
class AuthServer:
    """Issues ``at-1``, ``at-2``, …; the API accepts only the newest (older ones are revoked)."""

    url: str = ""
    token_requests: list[dict[str, str]] = field(default_factory=list)
    issued: int = 0
    refresh_token: str = "rt-1"
    fail_with: int | None = None

    async def token(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        self.token_requests.append({key: str(value) for key, value in form.items()})
        await asyncio.sleep(0.05)  # slow enough for concurrent callers to pile up
        if self.fail_with is not None:
            return web.json_response({"error": "temporarily_unavailable"}, status=self.fail_with)
        if (form.get("client_id"), form.get("client_secret")) != ("cid", "csecret"):
            return web.json_response({"error": "invalid_client"}, status=401)
        answer: dict[str, Any] = {"token_type": "Bearer", "expires_in": 3600}
        if form.get("grant_type") == "refresh_token":
            if form.get("refresh_token") != self.refresh_token:
                return web.json_response({"error": "invalid_grant"}, status=400)
            self.refresh_token = f"rt-{int(self.refresh_token[3:]) + 1}"
            answer["refresh_token"] = self.refresh_token
        elif form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        self.issued += 1
        answer["access_token"] = f"at-{self.issued}"
        return web.json_response(answer)

    async def api(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer at-{self.issued}":
            return web.json_response({"error": "invalid_token"}, status=401)
        return web.json_response({"ok": True})


@pytest.fixture
async def server() -> AsyncIterator[AuthServer]:
    state = AuthServer()
    app = web.Application()
    app.router.add_post("/token", state.token)
    app.router.add_get("/api/thing", state.api)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    state.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield state
    finally:
        await runner.cleanup()


def connector(auth: AuthScheme, base_url: str) -> Connector:
    read = Operation(
        "read",
        "Read the thing.",
        NoParams,
        lambda _params, _ctx: OutboundRequest(method="GET", path="/api/thing"),
        output=lambda response: response.body,
    )
    return Connector(
        provider="acme",
        title="Acme",
        category="crm",
        description="An OAuth 2.0 API.",
        base_url=base_url,
        auth=auth,
        operations=operations(read),
        rate_limits=RateLimits(60_000, 1_000),
        credentials=ClientCredentials,
    )


async def integrations_for(
    database: Database, auth: AuthScheme, server: AuthServer, credentials: dict[str, str]
) -> Integrations:
    await WorkflowStore(database).ensure_workspace(WORKSPACE, "Acme")
    links = open_integrations(
        database,
        make_settings(),
        contact_cipher(),
        connectors=MappingProxyType({"acme": connector(auth, server.url)}),
    )
    await links.secrets.put(WORKSPACE, credential_id("c1"), credentials)
    await links.connections.create(NewConnection(WORKSPACE, "c1", "crm", "acme", None, {}, None))
    return links


def call(attempt: int = 1) -> ActionCall:
    return ActionCall(
        action="acme.read",
        params={},
        idempotency_key=f"key-{attempt}",
        workspace_id=WORKSPACE,
        execution_id="ex1",
        node_id="read",
        attempt=attempt,
        connection="crm",
    )


async def test_client_credentials_are_exchanged_once_for_many_concurrent_calls(
    database: Database, server: AuthServer
) -> None:
    auth = OAuth2ClientCredentials(f"{server.url}/token", scopes=("crm.read", "crm.write"))
    links = await integrations_for(
        database, auth, server, {"client_id": "cid", "client_secret": "csecret"}
    )
    try:
        answers = await asyncio.gather(*(links.executor.execute(call()) for _ in range(20)))
        assert answers == [{"ok": True}] * 20
        assert len(server.token_requests) == 1  # single flight, then cached
        assert server.token_requests[0] == {
            "grant_type": "client_credentials",
            "client_id": "cid",
            "client_secret": "csecret",
            "scope": "crm.read crm.write",
        }

        # The provider revokes the token: the 401 fails that step (retryably) and drops the
        # token, so the retry fetches a new one and succeeds.
        server.issued += 1  # "at-1" is no longer the newest
        with pytest.raises(ActionFailed) as refused:
            await links.executor.execute(call())
        assert refused.value.details["status"] == 401
        assert await links.executor.execute(call(2)) == {"ok": True}
        assert len(server.token_requests) == 2
    finally:
        await links.aclose()


async def test_a_rotated_refresh_token_is_stored_back_before_it_is_needed_again(
    database: Database, server: AuthServer
) -> None:
    credentials = {"client_id": "cid", "client_secret": "csecret", "refresh_token": "rt-1"}
    links = await integrations_for(
        database, OAuth2RefreshToken(f"{server.url}/token"), server, credentials
    )
    try:
        assert await links.executor.execute(call()) == {"ok": True}
        assert server.token_requests[0]["refresh_token"] == "rt-1"
        stored = await links.secrets.get(WORKSPACE, credential_id("c1"))
        assert stored["refresh_token"] == "rt-2"  # the old one is already spent at the provider
        assert stored["client_secret"] == "csecret"  # the rest of the credentials kept
    finally:
        await links.aclose()


async def test_token_endpoint_failures_are_classified_like_any_provider_answer(
    database: Database, server: AuthServer
) -> None:
    auth = OAuth2ClientCredentials(f"{server.url}/token")
    links = await integrations_for(database, auth, server, {"client_id": "cid"})
    try:
        with pytest.raises(ActionFailed) as missing:
            await links.executor.execute(call())
        assert not missing.value.retryable
        assert "client_secret" in missing.value.message
        assert server.token_requests == []  # nothing was sent without it
    finally:
        await links.aclose()

    links = await integrations_for_second(database, auth, server)
    try:
        server.fail_with = 503
        with pytest.raises(ActionFailed) as unavailable:
            await links.executor.execute(call())
        assert unavailable.value.retryable
        server.fail_with = None
        assert await links.executor.execute(call(2)) == {"ok": True}
    finally:
        await links.aclose()


async def integrations_for_second(
    database: Database, auth: AuthScheme, server: AuthServer
) -> Integrations:
    """A second connection (``crm2``), its credentials complete."""
    links = open_integrations(
        database,
        make_settings(),
        contact_cipher(),
        connectors=MappingProxyType({"acme": connector(auth, server.url)}),
    )
    await links.secrets.put(
        WORKSPACE, credential_id("c2"), {"client_id": "cid", "client_secret": "csecret"}
    )
    await links.connections.delete(WORKSPACE, "c1")
    await links.connections.create(NewConnection(WORKSPACE, "c2", "crm", "acme", None, {}, None))
    return links
