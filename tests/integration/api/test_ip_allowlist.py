"""IP allowlists of keys, OAuth clients and the workspace, and who the client is behind proxies:
``X-Forwarded-For`` counts only when the direct peer is a trusted proxy."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI

from campaignflow.api.app import create_app
from campaignflow.store.database import Database
from tests.integration.api.conftest import TOKEN, make_settings

OFFICE = "203.0.113.0/24"
Peer = Callable[[str], AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
async def app(database: Database) -> AsyncIterator[FastAPI]:
    app = create_app(make_settings(network={"trusted_proxies": ["10.0.0.0/8"]}), database=database)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
def peer(app: FastAPI) -> Peer:
    """A client whose TCP peer address is ``address``."""

    @asynccontextmanager
    async def open_client(address: str) -> AsyncIterator[httpx.AsyncClient]:
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as http:
            yield http

    return open_client


async def _key(peer: Peer, cidrs: list[str]) -> str:
    async with peer("127.0.0.1") as http:
        created = await http.post(
            "/api/v1/api-keys",
            json={"name": "office", "allowedCidrs": cidrs},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
    assert created.status_code == 201, created.text
    key: str = created.json()["key"]
    return key


async def _status(peer: Peer, address: str, key: str, forwarded: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {key}"}
    if forwarded is not None:
        headers["X-Forwarded-For"] = forwarded
    async with peer(address) as http:
        return (await http.get("/api/v1/workflows", headers=headers)).status_code


async def test_a_key_works_only_from_its_networks(peer: Peer) -> None:
    key = await _key(peer, [OFFICE, "2001:db8::/32"])
    assert await _status(peer, "203.0.113.5", key) == 200
    assert await _status(peer, "2001:db8::7", key) == 200
    assert await _status(peer, "::ffff:203.0.113.5", key) == 200  # IPv4-mapped is IPv4
    assert await _status(peer, "198.51.100.7", key) == 403


async def test_a_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(peer: Peer) -> None:
    key = await _key(peer, [OFFICE])
    assert await _status(peer, "198.51.100.7", key, forwarded="203.0.113.5") == 403


async def test_forwarded_for_counts_from_a_trusted_proxy_rightmost_untrusted_first(
    peer: Peer,
) -> None:
    key = await _key(peer, [OFFICE])
    assert await _status(peer, "10.0.0.2", key, forwarded="203.0.113.5") == 200
    assert await _status(peer, "10.0.0.2", key, forwarded="203.0.113.5, 10.1.1.1") == 200
    # The client wrote an office address in front of its own: the proxy appended the real one.
    assert await _status(peer, "10.0.0.2", key, forwarded="203.0.113.5, 198.51.100.7") == 403
    assert await _status(peer, "10.0.0.2", key) == 403  # no header: the proxy itself


async def test_the_workspace_allowlist_binds_every_key_and_cannot_lock_its_owner_out(
    peer: Peer,
) -> None:
    key = await _key(peer, ["0.0.0.0/0"])
    owner = {"Authorization": f"Bearer {TOKEN}"}
    async with peer("198.51.100.7") as http:
        lockout = await http.put(
            "/api/v1/workspace/access", json={"allowedCidrs": [OFFICE]}, headers=owner
        )
    assert lockout.status_code == 422
    assert lockout.json()["errors"][0]["pointer"] == "/allowedCidrs"
    async with peer("203.0.113.9") as http:
        set_ = await http.put(
            "/api/v1/workspace/access", json={"allowedCidrs": [OFFICE]}, headers=owner
        )
    assert set_.status_code == 200, set_.text
    assert await _status(peer, "198.51.100.7", key) == 403  # the key allows it; the workspace not
    assert await _status(peer, "203.0.113.20", key) == 200
    assert await _status(peer, "198.51.100.7", TOKEN) == 403  # the owner too


async def test_an_oauth_client_gets_tokens_only_from_its_networks(peer: Peer) -> None:
    owner = {"Authorization": f"Bearer {TOKEN}"}
    async with peer("127.0.0.1") as http:
        created = await http.post(
            "/api/v1/oauth-clients",
            json={"name": "etl", "role": "viewer", "allowedCidrs": [OFFICE]},
            headers=owner,
        )
    assert created.status_code == 201, created.text
    client = created.json()
    form = {
        "grant_type": "client_credentials",
        "client_id": client["clientId"],
        "client_secret": client["clientSecret"],
    }
    async with peer("198.51.100.7") as http:
        refused = await http.post("/oauth/token", data=form)
    async with peer("203.0.113.5") as http:
        granted = await http.post("/oauth/token", data=form)
        token = granted.json()["access_token"]
    assert refused.status_code == 400
    assert refused.json()["error"] == "unauthorized_client"
    assert granted.status_code == 200, granted.text
    assert await _status(peer, "203.0.113.5", token) == 200
    assert await _status(peer, "198.51.100.7", token) == 403
