"""Every route and every role: a route answers 403 exactly to the roles whose permissions lack
the one it declares, and a route that declares none fails here (so no route ships unguarded)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant

from campaignflow.api.app import create_app
from campaignflow.api.auth import Authorize, require_writer
from campaignflow.security.rbac import ROLE_PERMISSIONS, Permission, Role
from campaignflow.store.database import Database
from tests._support.api_clients import bearer, serving
from tests._support.routes import served_routes, signature_authenticated
from tests.integration.api.conftest import TOKEN, ClientFactory, make_settings, workflow

# Routes anyone may call: health, the API description, and OAuth's own endpoints (which
# authenticate the client in their body or Basic header, as RFC 6749 prescribes).
PUBLIC = re.compile(
    r"^(/healthz|/readyz|/api/v1/openapi\.json|/api/v1/docs.*|/docs/oauth2-redirect"
    r"|/oauth/.*|/\.well-known/.*)$"
)
GUARDED = re.compile(r"^(/api/v1/|/v1/|/metrics$)")
# Routes a provider's signature authenticates (api/auth.py's provider_signature): webhooks only.
# The consent page's callback is authenticated the same way, by its one-time state.
SIGNED = re.compile(r"^/api/v1/(webhooks/|connections/authorize/callback$)")
# GraphQL: one route, a permission per field (the REST route's), checked in its resolvers;
# tests/integration/graphql/test_graphql_access.py shows the refusals.
PER_FIELD = re.compile(r"^/graphql$")
# Server-sent event streams never end by themselves (and the in-process transport waits for the
# end): a call still streaming after a moment was let in; a refusal answers at once.
STREAMS = frozenset({"/api/v1/executions/stream"})
STREAMING = 200


def _permissions(dependant: Dependant) -> Iterator[Permission]:
    for dependency in dependant.dependencies:
        if isinstance(dependency.call, Authorize):
            yield dependency.call.permission
        elif dependency.call is require_writer:
            yield Permission.EVENTS_WRITE
        yield from _permissions(dependency)


def route_permissions(app: FastAPI) -> list[tuple[str, str, Permission]]:
    table = []
    unguarded = []
    for route in served_routes(app):
        if PUBLIC.match(route.path) or PER_FIELD.match(route.path):
            continue
        if signature_authenticated(route):
            assert SIGNED.match(route.path), f"{route.path}: signature-authenticated elsewhere"
            continue
        found = set(_permissions(route.dependant)) if route.dependant else set()
        if len(found) != 1 or not GUARDED.match(route.path):
            unguarded.append(f"{sorted(route.methods)} {route.path}: {sorted(found)}")
            continue
        (permission,) = found
        table.extend((method, route.path, permission) for method in route.methods)
    assert not unguarded, "routes without exactly one permission:\n" + "\n".join(unguarded)
    return table


class Roles:
    """An owner (the bootstrap key) and one principal with a key per role."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.keys: dict[Role, str] = {Role.OWNER: TOKEN}

    async def create(self) -> None:
        for role in Role:
            if role is Role.OWNER:
                continue
            self.keys[role] = await make_key(self.http, role)


async def make_key(
    http: httpx.AsyncClient, role: Role, scopes: list[str] | None = None, **extra: Any
) -> str:
    principal = await http.post(
        "/api/v1/principals", json={"name": f"{role.value} person", "role": role.value}
    )
    assert principal.status_code == 201, principal.text
    body: dict[str, Any] = {"name": f"{role.value} key", "principalId": principal.json()["id"]}
    if scopes is not None:
        body["scopes"] = scopes
    created = await http.post("/api/v1/api-keys", json={**body, **extra})
    assert created.status_code == 201, created.text
    key: str = created.json()["key"]
    return key


@pytest.fixture
async def roles(database: Database) -> AsyncIterator[tuple[FastAPI, Roles]]:
    app = create_app(make_settings(), database=database)
    async with serving(app, bearer(TOKEN)) as http:
        team = Roles(http)
        await team.create()
        yield app, team


async def _streamed(call: Coroutine[Any, Any, httpx.Response]) -> int:
    try:
        return (await asyncio.wait_for(call, timeout=1.0)).status_code
    except TimeoutError:
        return STREAMING


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "no-such-id", path)


async def test_every_route_answers_403_exactly_to_roles_without_its_permission(
    roles: tuple[FastAPI, Roles],
) -> None:
    app, team = roles
    table = route_permissions(app)
    assert len(table) > 40  # the whole API, not an empty walk
    wrong = []
    for method, path, permission in table:
        for role, key in team.keys.items():
            call = team.http.request(
                method,
                _concrete(path),
                json={} if method in ("POST", "PUT", "PATCH") else None,
                headers={"Authorization": f"Bearer {key}"},
            )
            status = await _streamed(call) if path in STREAMS else (await call).status_code
            should_pass = permission in ROLE_PERMISSIONS[role]
            denied = status == 403
            if status == 401 or denied == should_pass:
                wrong.append(f"{role.value} {method} {path}: {status}")
    assert not wrong, "\n".join(wrong)


async def test_a_request_without_credentials_is_401_on_every_guarded_route(
    roles: tuple[FastAPI, Roles],
) -> None:
    app, team = roles
    for method, path, _ in route_permissions(app):
        response = await team.http.request(method, _concrete(path), headers={"Authorization": ""})
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["content-type"] == "application/problem+json"


async def test_scopes_narrow_a_key_below_its_role(roles: tuple[FastAPI, Roles]) -> None:
    _, team = roles
    ingest_only = await make_key(team.http, Role.EDITOR, scopes=["events:write"])
    headers = {"Authorization": f"Bearer {ingest_only}"}
    read = await team.http.get("/api/v1/workflows", headers=headers)
    assert read.status_code == 403
    assert "workflows:read" in read.json()["detail"]
    sent = await team.http.post(
        "/api/v1/events",
        json={"type": "track", "event": "x", "userId": "u1"},
        headers=headers,
    )
    assert sent.status_code == 202, sent.text


async def test_a_workflow_grant_raises_the_role_on_that_workflow_only(
    roles: tuple[FastAPI, Roles],
) -> None:
    _, team = roles
    for workflow_id in ("granted", "other"):
        created = await team.http.post("/api/v1/workflows", json=workflow(workflow_id))
        assert created.status_code == 201, created.text
    viewer_id = (await team.http.get("/api/v1/principals")).json()["items"]
    viewer = next(p for p in viewer_id if p["role"] == "viewer")
    granted = await team.http.put(
        f"/api/v1/workflows/granted/grants/{viewer['id']}", json={"role": "editor"}
    )
    assert granted.status_code == 200, granted.text
    headers = {"Authorization": f"Bearer {team.keys[Role.VIEWER]}"}
    for workflow_id, expected in (("granted", 200), ("other", 403)):
        response = await team.http.put(
            f"/api/v1/workflows/{workflow_id}",
            json=workflow(workflow_id, name="Renamed"),
            headers=headers,
        )
        assert response.status_code == expected, (workflow_id, response.text)
    contacts = await team.http.get("/api/v1/contacts", headers=headers)
    assert contacts.status_code == 403  # a grant raises nothing outside its workflow


async def test_nobody_hands_out_more_than_they_hold(roles: tuple[FastAPI, Roles]) -> None:
    _, team = roles
    admin = {"Authorization": f"Bearer {team.keys[Role.ADMIN]}"}
    owner_principal = await team.http.post(
        "/api/v1/principals", json={"name": "usurper", "role": "owner"}, headers=admin
    )
    assert owner_principal.status_code == 403
    wide_key = await team.http.post(
        "/api/v1/api-keys",
        json={"name": "wide", "scopes": ["workspace:write"]},
        headers=admin,
    )
    assert wide_key.status_code == 403
    me = await team.http.get("/api/v1/principals", headers=admin)
    admin_id = next(p["id"] for p in me.json()["items"] if p["role"] == "admin")
    demote_self = await team.http.patch(
        f"/api/v1/principals/{admin_id}", json={"disabled": True}, headers=admin
    )
    assert demote_self.status_code == 403


async def test_revoked_keys_and_disabled_principals_stop_at_once(
    roles: tuple[FastAPI, Roles],
) -> None:
    _, team = roles
    key = await make_key(team.http, Role.VIEWER)
    headers = {"Authorization": f"Bearer {key}"}
    assert (await team.http.get("/api/v1/workflows", headers=headers)).status_code == 200
    keys = (await team.http.get("/api/v1/api-keys")).json()["items"]
    listed = next(k for k in keys if key.startswith(k["prefix"]))
    assert "key" not in listed
    assert "keyHash" not in listed
    assert listed["lastUsedAt"] is None or listed["lastUsedAt"]
    revoked = await team.http.delete(f"/api/v1/api-keys/{listed['id']}")
    assert revoked.status_code == 200
    assert revoked.json()["revokedAt"]
    after = await team.http.get("/api/v1/workflows", headers=headers)
    assert after.status_code == 401
    assert "revoked" in after.json()["detail"]

    other = await make_key(team.http, Role.VIEWER)
    owner_of_other = next(
        k["principalId"]
        for k in (await team.http.get("/api/v1/api-keys")).json()["items"]
        if other.startswith(k["prefix"])
    )
    disabled = await team.http.patch(
        f"/api/v1/principals/{owner_of_other}", json={"disabled": True}
    )
    assert disabled.status_code == 200, disabled.text
    refused = await team.http.get("/api/v1/workflows", headers={"Authorization": f"Bearer {other}"})
    assert refused.status_code == 401


async def test_bad_access_requests_point_at_the_field(roles: tuple[FastAPI, Roles]) -> None:
    _, team = roles
    response = await team.http.post(
        "/api/v1/api-keys",
        json={"name": "k", "allowedCidrs": ["10.0.0.1/8"], "scopes": ["nope"]},
    )
    assert response.status_code == 422
    pointers = {error["pointer"] for error in response.json()["errors"]}
    assert "/scopes/0" in pointers
    cidr = await team.http.post(
        "/api/v1/api-keys", json={"name": "k", "allowedCidrs": ["10.0.0.1/8"]}
    )
    assert cidr.status_code == 422
    assert cidr.json()["errors"][0]["pointer"] == "/allowedCidrs"
    assert "host bits" in cidr.json()["errors"][0]["detail"]


async def test_each_credential_and_each_guessing_address_has_its_own_rate_limit(
    app_client: ClientFactory,
) -> None:
    limits = {
        "enabled": True,
        "burst": 4,
        "requests_per_second": 0.01,
        "anonymous_burst": 2,
        "anonymous_requests_per_second": 0.01,
    }
    async with app_client(make_settings(rate_limit=limits)) as http:
        other = await make_key(http, Role.VIEWER)  # the owner's first two requests
        statuses = [(await http.get("/api/v1/workflows")).status_code for _ in range(2)]
        limited = await http.get("/api/v1/workflows")
        fresh = await http.get("/api/v1/workflows", headers={"Authorization": f"Bearer {other}"})
        guesses = [
            (await http.get("/api/v1/workflows", headers={"Authorization": "Bearer nope"}))
            for _ in range(3)
        ]
    assert statuses == [200, 200]
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.json()["type"].endswith("rate-limited")
    assert fresh.status_code == 200  # another credential, another bucket
    assert [g.status_code for g in guesses] == [401, 401, 429]
