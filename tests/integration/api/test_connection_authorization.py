"""Authorizing a connection on the provider's consent page, through the API, on both databases.

The provider's authorization server is a local aiohttp token endpoint: Salesforce's login host
is not reachable here, so the Salesforce connector is used as declared except that its token
and consent URLs point at that server (a test double of the provider's OAuth server, said
plainly). The app, its connection and secret stores, and the callback are the real ones.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from aiohttp import web

from campaignflow.api.app import create_app
from campaignflow.engine.runtime import Engine
from campaignflow.errors import NotFound
from campaignflow.integrations.connector import OAuthAuthorization
from campaignflow.integrations.oauth_authorize import CALLBACK_PATH
from campaignflow.integrations.providers import builtin_connectors
from campaignflow.integrations.providers.salesforce import SALESFORCE
from campaignflow.integrations.runtime import Integrations, open_integrations
from campaignflow.store.connections import credential_id
from campaignflow.store.database import Database
from tests._support.api_clients import bearer, serving
from tests._support.ciphers import contact_cipher
from tests.integration.api.conftest import TOKEN, make_settings

REDIRECT = f"https://cf.example.com{CALLBACK_PATH}"


@dataclass
class TokenEndpoint:
    """Answers a code exchange with a refresh token, and records what it was sent."""

    url: str = ""
    requests: list[dict[str, str]] = field(default_factory=list)
    answer: tuple[int, dict[str, Any]] = (200, {"access_token": "at-1", "refresh_token": "rt-1"})

    async def token(self, request: web.Request) -> web.Response:
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        self.requests.append(form)
        status, body = self.answer
        return web.json_response(body, status=status)


@dataclass
class Setup:
    http: httpx.AsyncClient
    integrations: Integrations
    provider: TokenEndpoint

    async def connection(self, **credentials: str) -> dict[str, Any]:
        created = await self.http.post(
            "/api/v1/connections",
            json={
                "name": "crm",
                "provider": "salesforce",
                "credentials": credentials or {"client_id": "app-1", "client_secret": "s3cret"},
                "settings": {"instanceUrl": "https://acme.my.salesforce.com"},
            },
        )
        assert created.status_code == 201, created.text
        body: dict[str, Any] = created.json()
        return body

    async def start(self, connection_id: str) -> dict[str, str]:
        answer = await self.http.post(
            f"/api/v1/connections/{connection_id}/authorize", json={"redirectUri": REDIRECT}
        )
        assert answer.status_code == 200, answer.text
        url = answer.json()["authorizationUrl"]
        assert url.startswith(self.provider.url + "/authorize?")
        return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}

    async def credentials(self, connection_id: str) -> dict[str, str]:
        return await self.integrations.secrets.get("default", credential_id(connection_id))


@pytest.fixture
async def setup(database: Database) -> AsyncIterator[Setup]:
    provider = TokenEndpoint()
    app = web.Application()
    app.router.add_post("/token", provider.token)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    provider.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    salesforce = dataclasses.replace(
        SALESFORCE,
        token_url_for=lambda _settings: provider.url + "/token",
        authorization=OAuthAuthorization(
            authorize_url=provider.url + "/authorize", scopes=("api", "refresh_token")
        ),
    )
    connectors = {**builtin_connectors(), "salesforce": salesforce}
    settings = make_settings()
    engine = Engine.on(database, contact_cipher=contact_cipher())
    integrations = open_integrations(
        database, settings, engine.contacts.cipher, connectors=connectors
    )
    api = create_app(settings, database=database, engine=engine, integrations=integrations)
    try:
        async with serving(api, bearer(TOKEN)) as http:
            yield Setup(http, integrations, provider)
    finally:
        await integrations.aclose()
        await engine.wakeup.aclose()
        await runner.cleanup()


async def test_a_granted_code_becomes_the_connections_refresh_token(setup: Setup) -> None:
    connection = await setup.connection()
    query = await setup.start(connection["id"])
    assert (query["response_type"], query["client_id"], query["redirect_uri"]) == (
        "code",
        "app-1",
        REDIRECT,
    )
    assert query["code_challenge_method"] == "S256"
    assert query["scope"] == "api refresh_token"

    callback = await setup.http.get(
        CALLBACK_PATH, params={"state": query["state"], "code": "granted-code"}
    )
    assert callback.status_code == 200, callback.text
    assert callback.headers["content-type"].startswith("text/html")
    assert "crm" in callback.text
    assert "rt-1" not in callback.text

    [exchange] = setup.provider.requests
    assert exchange["grant_type"] == "authorization_code"
    assert exchange["code"] == "granted-code"
    assert exchange["redirect_uri"] == REDIRECT
    assert (exchange["client_id"], exchange["client_secret"]) == ("app-1", "s3cret")
    # the verifier sent is the one whose S256 hash the consent page was given
    digest = hashlib.sha256(exchange["code_verifier"].encode()).digest()
    assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == query["code_challenge"]
    stored = await setup.credentials(connection["id"])
    assert stored == {"client_id": "app-1", "client_secret": "s3cret", "refresh_token": "rt-1"}
    shown = await setup.http.get(f"/api/v1/connections/{connection['id']}")
    assert "rt-1" not in shown.text

    again = await setup.http.get(CALLBACK_PATH, params={"state": query["state"], "code": "x"})
    assert again.status_code == 400  # a grant is used once
    assert again.json()["type"].endswith("invalid-grant")
    assert len(setup.provider.requests) == 1


async def test_a_forged_state_is_refused_and_leaves_the_real_grant_usable(setup: Setup) -> None:
    connection = await setup.connection()
    query = await setup.start(connection["id"])
    forged = query["state"][:-4] + ("AAAA" if not query["state"].endswith("AAAA") else "BBBB")
    for state in (forged, "garbage", f"unknown.{query['state'].split('.')[1]}"):
        refused = await setup.http.get(CALLBACK_PATH, params={"state": state, "code": "c"})
        assert refused.status_code == 400, state
    assert setup.provider.requests == []
    granted = await setup.http.get(CALLBACK_PATH, params={"state": query["state"], "code": "c"})
    assert granted.status_code == 200


async def test_a_declined_grant_is_reported_and_used_up(setup: Setup) -> None:
    connection = await setup.connection()
    query = await setup.start(connection["id"])
    declined = await setup.http.get(
        CALLBACK_PATH,
        params={
            "state": query["state"],
            "error": "access_denied",
            "error_description": "end-user denied authorization",
        },
    )
    assert declined.status_code == 400
    assert declined.json()["type"].endswith("authorization-refused")
    assert "access_denied" in declined.json()["detail"]
    late = await setup.http.get(CALLBACK_PATH, params={"state": query["state"], "code": "c"})
    assert late.status_code == 400
    assert "refresh_token" not in await setup.credentials(connection["id"])


async def test_a_token_endpoint_that_gives_no_refresh_token_is_a_bad_gateway(
    setup: Setup,
) -> None:
    connection = await setup.connection()
    for answer, reason in [
        ((400, {"error": "invalid_grant"}), "invalid_grant"),
        ((200, {"access_token": "only"}), "no refresh token"),
    ]:
        setup.provider.answer = answer
        query = await setup.start(connection["id"])
        failed = await setup.http.get(CALLBACK_PATH, params={"state": query["state"], "code": "c"})
        assert failed.status_code == 502
        assert reason in failed.json()["detail"]
    assert "refresh_token" not in await setup.credentials(connection["id"])


async def test_what_cannot_be_authorized_is_refused_precisely(setup: Setup) -> None:
    mail = await setup.http.post(
        "/api/v1/connections",
        json={"name": "mail", "provider": "sendgrid", "credentials": {"token": "SG.x"}},
    )
    not_oauth = await setup.http.post(
        f"/api/v1/connections/{mail.json()['id']}/authorize", json={"redirectUri": REDIRECT}
    )
    assert not_oauth.status_code == 409
    assert "salesforce" in not_oauth.json()["detail"]
    connection = await setup.connection()
    wrong = await setup.http.post(
        f"/api/v1/connections/{connection['id']}/authorize",
        json={"redirectUri": "https://evil.example/steal"},
    )
    assert wrong.status_code == 422
    assert [e["pointer"] for e in wrong.json()["errors"]] == ["/redirectUri"]


async def test_deleting_the_connection_removes_a_grant_in_progress(setup: Setup) -> None:
    connection = await setup.connection()
    query = await setup.start(connection["id"])
    deleted = await setup.http.delete(f"/api/v1/connections/{connection['id']}")
    assert deleted.status_code == 204
    late = await setup.http.get(CALLBACK_PATH, params={"state": query["state"], "code": "c"})
    assert late.status_code == 400
    with pytest.raises(NotFound):
        await setup.integrations.secrets.get(
            "default", f"{credential_id(connection['id'])}:authorize"
        )
