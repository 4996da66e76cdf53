"""The OAuth 2.0 server end to end, on SQLite and PostgreSQL: a real OAuth client library
(authlib) doing the client-credentials grant, introspection and revocation against the running
app; the JWKS checked independently with PyJWT; the admin API for clients."""

from __future__ import annotations

import base64
import time
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from authlib.deprecate import AuthlibDeprecationWarning
from fastapi import FastAPI

from campaignflow.api.app import create_app
from campaignflow.config import Settings
from campaignflow.errors import Unauthenticated
from campaignflow.security.key_file import load_key_ring
from campaignflow.security.signing_keys import RotationPolicy, SigningKeys
from campaignflow.services.oauth import STATUS_CACHE_SECONDS, ClientCredentials, OAuthService
from campaignflow.store.database import Database
from campaignflow.store.oauth import OAuthStore
from tests._support.api_clients import bearer, serving
from tests.integration.api.conftest import make_settings, token_for

with warnings.catch_warnings():
    # authlib warns that it falls back to httpx because httpx2 is not installed; it works.
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError

BASE = "http://testserver"
TOKEN_URL = f"{BASE}/oauth/token"
INTROSPECT_URL = f"{BASE}/oauth/introspect"
REVOKE_URL = f"{BASE}/oauth/revoke"
SEALER = load_key_ring(make_settings().encryption)  # the ring the app runs with


@dataclass
class Server:
    app: FastAPI
    http: httpx.AsyncClient  # authenticated as the workspace's bootstrap owner
    oauth: OAuthService
    settings: Settings

    def transport(self) -> httpx.ASGITransport:
        return httpx.ASGITransport(app=self.app)

    async def create_client(self, **body: Any) -> dict[str, Any]:
        response = await self.http.post(
            "/api/v1/oauth-clients", json={"name": "etl", "role": "editor", **body}
        )
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    def oauth_client(self, client: dict[str, Any], method: str, **kwargs: Any) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(
            client["clientId"],
            client["clientSecret"],
            token_endpoint_auth_method=method,
            revocation_endpoint_auth_method=method,
            transport=self.transport(),
            **kwargs,
        )


@asynccontextmanager
async def running(database: Database, settings: Settings) -> AsyncIterator[Server]:
    """The real app, with its OAuth service."""
    app = create_app(settings, database=database)
    async with serving(app, bearer(token_for(settings.workspace_id))) as http:
        yield Server(app, http, app.state.oauth, settings)


@pytest.fixture
async def server(database: Database) -> AsyncIterator[Server]:
    async with running(database, make_settings()) as started:
        yield started


def _basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


async def test_client_secret_basic_grant_introspect_revoke_then_inactive(server: Server) -> None:
    client = await server.create_client(scopes=["workflows:read", "triggers:read"])
    async with server.oauth_client(client, "client_secret_basic") as oauth:
        token = await oauth.fetch_token(TOKEN_URL, grant_type="client_credentials")

        assert token["token_type"] == "Bearer"
        assert token["expires_in"] == 900
        assert token["scope"] == "triggers:read workflows:read"
        access = token["access_token"]
        listed = await server.http.get(
            "/api/v1/workflows", headers={"Authorization": f"Bearer {access}"}
        )
        assert listed.status_code == 200, listed.text

        active = (await oauth.introspect_token(INTROSPECT_URL, token=access)).json()
        assert active["active"] is True
        assert active["client_id"] == client["clientId"]
        assert active["sub"] == client["principalId"]
        assert (active["iss"], active["aud"]) == ("campaignflow", "campaignflow-api")
        assert active["exp"] - active["iat"] == 900

        revoked = await oauth.revoke_token(REVOKE_URL, token=access)
        assert revoked.status_code == 200

        after = await oauth.introspect_token(INTROSPECT_URL, token=access)
        assert after.json() == {"active": False}
    with pytest.raises(Unauthenticated, match="revoked"):
        await server.oauth.verify_access_token(access)
    refused = await server.http.get(
        "/api/v1/workflows", headers={"Authorization": f"Bearer {access}"}
    )
    assert refused.status_code == 401


async def test_client_secret_post_grant_with_a_narrower_scope(server: Server) -> None:
    client = await server.create_client()
    async with server.oauth_client(client, "client_secret_post", scope="workflows:read") as oauth:
        token = await oauth.fetch_token(TOKEN_URL, grant_type="client_credentials")
        introspected = (
            await oauth.introspect_token(INTROSPECT_URL, token=token["access_token"])
        ).json()

    assert token["scope"] == "workflows:read"
    assert introspected["scope"] == "workflows:read"
    claims = await server.oauth.verify_access_token(token["access_token"])
    assert claims.client_id == client["clientId"]
    assert claims.workspace_id == "default"


async def test_the_token_response_is_not_cacheable_and_marks_the_client_used(
    server: Server,
) -> None:
    client = await server.create_client()
    response = await server.http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": _basic(client["clientId"], client["clientSecret"])},
    )

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    shown = await server.http.get(f"/api/v1/oauth-clients/{client['clientId']}")
    assert shown.json()["lastUsedAt"] is not None


async def test_a_wrong_secret_is_invalid_client(server: Server) -> None:
    client = await server.create_client()
    wrong = {**client, "clientSecret": client["clientSecret"][:-2] + "xx"}
    for method in ("client_secret_basic", "client_secret_post"):
        async with server.oauth_client(wrong, method) as oauth:
            with pytest.raises(OAuthError) as caught:
                await oauth.fetch_token(TOKEN_URL, grant_type="client_credentials")
        assert caught.value.error == "invalid_client"

    raw = await server.http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": _basic(client["clientId"], "cfs_wrong")},
    )
    assert raw.status_code == 401
    assert raw.headers["www-authenticate"].startswith("Basic")
    assert raw.headers["content-type"] == "application/json"


async def test_a_revoked_client_gets_no_token_and_its_tokens_stop_working(
    server: Server,
) -> None:
    client = await server.create_client()
    async with server.oauth_client(client, "client_secret_basic") as oauth:
        token = await oauth.fetch_token(TOKEN_URL, grant_type="client_credentials")

        deleted = await server.http.delete(f"/api/v1/oauth-clients/{client['clientId']}")
        assert deleted.status_code == 204

        with pytest.raises(OAuthError) as caught:
            await oauth.fetch_token(TOKEN_URL, grant_type="client_credentials")
    assert caught.value.error == "invalid_client"
    with pytest.raises(Unauthenticated, match="client was revoked"):
        await server.oauth.verify_access_token(token["access_token"])
    shown = (await server.http.get(f"/api/v1/oauth-clients/{client['clientId']}")).json()
    assert shown["revokedAt"] is not None


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"grant_type": "password"}, "unsupported_grant_type"),
        ({"grant_type": "authorization_code", "code": "x"}, "unsupported_grant_type"),
        ({}, "invalid_request"),
        ({"grant_type": "client_credentials", "scope": "access:write"}, "invalid_scope"),
        ({"grant_type": "client_credentials", "scope": "no:such"}, "invalid_scope"),
    ],
    ids=["password", "code", "no-grant-type", "scope-wider", "scope-unknown"],
)
async def test_refused_token_requests_use_the_oauth_error_format(
    server: Server, form: dict[str, str], error: str
) -> None:
    client = await server.create_client(role="viewer")
    response = await server.http.post(
        "/oauth/token",
        data=form,
        headers={"Authorization": _basic(client["clientId"], client["clientSecret"])},
    )

    assert response.status_code == 400
    assert response.json()["error"] == error
    assert response.json()["error_description"]


async def test_authlib_reports_a_scope_wider_than_the_client_holds(server: Server) -> None:
    client = await server.create_client(scopes=["workflows:read"])
    async with server.oauth_client(
        client, "client_secret_post", scope="workflows:read workflows:write"
    ) as oauth:
        with pytest.raises(OAuthError) as caught:
            await oauth.fetch_token(TOKEN_URL, grant_type="client_credentials")

    assert caught.value.error == "invalid_scope"


async def test_authenticating_two_ways_at_once_or_repeating_a_parameter_is_invalid_request(
    server: Server,
) -> None:
    client = await server.create_client()
    basic = {"Authorization": _basic(client["clientId"], client["clientSecret"])}
    both = await server.http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_secret": client["clientSecret"]},
        headers=basic,
    )
    repeated = await server.http.post(
        "/oauth/token",
        content="grant_type=client_credentials&grant_type=client_credentials",
        headers={**basic, "Content-Type": "application/x-www-form-urlencoded"},
    )

    assert (both.status_code, both.json()["error"]) == (400, "invalid_request")
    assert (repeated.status_code, repeated.json()["error"]) == (400, "invalid_request")


@pytest.mark.parametrize("algorithm", ["EdDSA", "RS256"])
async def test_the_published_jwks_verifies_what_the_server_signs(
    database: Database, algorithm: str
) -> None:
    """An independent check: fetch the JWKS over HTTP and verify with PyJWT, as any resource
    server would (PyJWKClient's logic: select by kid, key from the JWK, its own algorithm)."""
    settings = make_settings(oauth={"algorithm": algorithm})
    async with running(database, settings) as server:
        client = await server.create_client()
        async with server.oauth_client(client, "client_secret_basic") as oauth:
            token = (await oauth.fetch_token(TOKEN_URL, grant_type="client_credentials"))[
                "access_token"
            ]
        published = await server.http.get("/.well-known/jwks.json")

    max_age = int(published.headers["cache-control"].split("max-age=")[1])
    assert 0 < max_age < settings.oauth.key_publish_seconds
    key_set = jwt.PyJWKSet.from_dict(published.json())
    kid = jwt.get_unverified_header(token)["kid"]
    signing_key = next(key for key in key_set.keys if key.key_id == kid)
    assert signing_key.algorithm_name == algorithm
    assert published.json()["keys"][0]["use"] == "sig"
    claims = jwt.decode(
        token,
        signing_key,
        algorithms=[algorithm],
        audience="campaignflow-api",
        issuer="campaignflow",
    )
    assert claims["client_id"] == client["clientId"]
    assert claims["ws"] == "default"
    assert claims["exp"] > time.time()


async def test_another_workspaces_client_can_neither_introspect_nor_revoke_our_tokens(
    database: Database,
) -> None:
    async with running(database, make_settings()) as ours:
        mine = await ours.create_client()
        async with ours.oauth_client(mine, "client_secret_post") as oauth:
            token = (await oauth.fetch_token(TOKEN_URL, grant_type="client_credentials"))[
                "access_token"
            ]
        async with running(database, make_settings("other")) as theirs:
            stranger = await theirs.create_client()
            async with theirs.oauth_client(stranger, "client_secret_post") as oauth:
                seen = await oauth.introspect_token(INTROSPECT_URL, token=token)
                revoked = await oauth.revoke_token(REVOKE_URL, token=token)
            foreign = await theirs.http.get(f"/api/v1/oauth-clients/{mine['clientId']}")

        assert seen.json() == {"active": False}
        assert revoked.status_code == 200
        assert foreign.status_code == 404
        assert (await ours.oauth.verify_access_token(token)).client_id == mine["clientId"]


async def test_introspection_needs_client_credentials(server: Server) -> None:
    response = await server.http.post("/oauth/introspect", data={"token": "x.y.z"})

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


async def test_the_secret_is_shown_once_and_never_again(server: Server) -> None:
    created = await server.create_client(allowedCidrs=["203.0.113.0/24", "2001:db8::/32"])

    assert created["clientSecret"].startswith("cfs_")
    assert created["clientId"].startswith("cfc_")
    assert created["allowedCidrs"] == ["203.0.113.0/24", "2001:db8::/32"]
    one = (await server.http.get(f"/api/v1/oauth-clients/{created['clientId']}")).json()
    listed = (await server.http.get("/api/v1/oauth-clients")).json()
    for shown in (one, *listed["items"]):
        assert "clientSecret" not in shown
        assert created["clientSecret"] not in str(shown)
    assert [item["clientId"] for item in listed["items"]] == [created["clientId"]]


async def test_clients_are_listed_a_page_at_a_time(server: Server) -> None:
    ids = sorted([(await server.create_client(name=f"c{n}"))["clientId"] for n in range(3)])

    first = (await server.http.get("/api/v1/oauth-clients", params={"limit": 2})).json()
    second = (
        await server.http.get(
            "/api/v1/oauth-clients", params={"limit": 2, "cursor": first["nextCursor"]}
        )
    ).json()

    assert [item["clientId"] for item in first["items"] + second["items"]] == ids
    assert second["nextCursor"] is None


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"scopes": ["no:such"]}, "/scopes/0"),
        ({"allowedCidrs": ["10.0.0.1/8"]}, "/allowedCidrs"),
        ({"role": "superuser"}, "/role"),
    ],
)
async def test_invalid_client_requests_point_at_the_field(
    server: Server, body: dict[str, Any], pointer: str
) -> None:
    response = await server.http.post(
        "/api/v1/oauth-clients", json={"name": "x", "role": "editor", **body}
    )

    assert response.status_code == 422, response.text
    assert [error["pointer"] for error in response.json()["errors"]] == [pointer]


async def test_a_client_gets_no_scope_beyond_its_role(server: Server) -> None:
    response = await server.http.post(
        "/api/v1/oauth-clients",
        json={"name": "x", "role": "editor", "scopes": ["access:write"]},
    )

    assert response.status_code == 403, response.text
    assert "access:write" in response.json()["detail"]


async def test_nobody_creates_a_client_above_their_own_role(server: Server) -> None:
    admin = await server.create_client(role="admin")
    async with server.oauth_client(admin, "client_secret_basic") as oauth:
        token = (await oauth.fetch_token(TOKEN_URL, grant_type="client_credentials"))[
            "access_token"
        ]
    as_admin = {"Authorization": f"Bearer {token}"}

    above = await server.http.post(
        "/api/v1/oauth-clients", json={"name": "x", "role": "owner"}, headers=as_admin
    )
    equal = await server.http.post(
        "/api/v1/oauth-clients", json={"name": "y", "role": "admin"}, headers=as_admin
    )

    assert above.status_code == 403
    assert equal.status_code == 201


async def test_a_revocation_reaches_another_process_within_the_status_cache_time(
    database: Database,
) -> None:
    """Each API process caches "not revoked" for STATUS_CACHE_SECONDS: the revocation delay."""
    async with running(database, make_settings()) as server:
        client = await server.create_client()
    ticks = [0.0]
    store, settings = OAuthStore(database), make_settings().oauth
    keys = SigningKeys(store, SEALER, RotationPolicy.from_settings(settings))
    other = OAuthService(store, keys, settings, monotonic=lambda: ticks[0])
    credentials = ClientCredentials(client["clientId"], client["clientSecret"])
    issued = await other.issue_token(
        await other.authenticate_client(credentials), "client_credentials", None
    )
    assert await other.verify_access_token(issued.access_token)

    revoker = OAuthService.build(database, make_settings().oauth, SEALER)
    await revoker.revoke_token(await revoker.authenticate_client(credentials), issued.access_token)

    assert await other.verify_access_token(issued.access_token), "cached for a few seconds"
    ticks[0] += STATUS_CACHE_SECONDS
    with pytest.raises(Unauthenticated, match="revoked"):
        await other.verify_access_token(issued.access_token)


async def test_revocations_of_expired_tokens_can_be_purged(database: Database) -> None:
    store = OAuthStore(database)
    now = datetime.now(UTC)
    await store.revoke_token("gone", "default", now - timedelta(seconds=1), now)
    await store.revoke_token("live", "default", now + timedelta(seconds=60), now)

    assert await store.purge_revoked_tokens(now) == 1
    assert not await store.is_token_revoked("gone")
    assert await store.is_token_revoked("live")
