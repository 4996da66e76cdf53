"""The audit middleware and ``/api/v1/audit-log``, on SQLite and PostgreSQL.

Most tests run a small app with routes named like the real ones, so each outcome (success,
403, 401, 500, a personal read, a failing audit database) can be produced on purpose. Its
``require_principal`` override stands in for the real authentication: it builds the principal
from a test header and sets ``request.state.principal`` as the real dependency does. The last
test runs the real ``create_app`` with its real authentication.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import structlog
from fastapi import APIRouter, FastAPI, Request

from campaignflow.api.app import create_app
from campaignflow.api.audit_middleware import install_audit
from campaignflow.api.auth import CurrentPrincipal, authorize, require_principal
from campaignflow.api.problems import install_problem_handlers
from campaignflow.api.routers import audit
from campaignflow.errors import Unauthenticated
from campaignflow.security.principal import Credential, CredentialKind, Principal
from campaignflow.security.rbac import ALL_SCOPES, Permission, Role
from campaignflow.services.audit import AuditWriter
from campaignflow.store.audit import AuditStore
from campaignflow.store.database import Database
from tests.integration.api.conftest import TOKEN, make_settings, workflow

WORKSPACE = "acme"


async def stand_in_principal(request: Request) -> Principal:
    """Stands in for the real ``require_principal``: ``X-Test-Role`` picks the caller's role,
    no header means an unknown credential."""
    role = request.headers.get("x-test-role")
    if role is None:
        raise Unauthenticated("unknown credential")
    principal = Principal(
        workspace_id=WORKSPACE,
        subject=f"{role}-user",
        role=Role(role),
        credential=Credential(CredentialKind.API_KEY, f"key-{role}", ALL_SCOPES),
    )
    request.state.principal = principal
    return principal


def _routes() -> APIRouter:
    router = APIRouter()

    @router.put("/workflows/{workflow_id}", dependencies=[authorize(Permission.WORKFLOWS_WRITE)])
    async def update_workflow(workflow_id: str, principal: CurrentPrincipal) -> dict[str, str]:
        return {"workflowId": workflow_id}

    @router.get("/workflows", dependencies=[authorize(Permission.WORKFLOWS_READ)])
    async def list_workflows(principal: CurrentPrincipal) -> list[str]:
        return ["welcome"]

    @router.get("/contacts/{contact_id}", dependencies=[authorize(Permission.CONTACTS_READ)])
    async def get_contact(contact_id: str, principal: CurrentPrincipal) -> dict[str, str]:
        return {"id": contact_id, "email": "ada@example.com"}

    @router.post("/executions/{execution_id}/cancel")
    async def cancel_execution(execution_id: str, principal: CurrentPrincipal) -> None:
        raise RuntimeError("the handler broke")

    return router


def small_app(database: Database) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.database = database
        yield

    app = FastAPI(lifespan=lifespan)
    app.state.settings = make_settings()
    install_problem_handlers(app)
    api = APIRouter(prefix="/api/v1")
    api.include_router(_routes())
    api.include_router(audit.router)
    app.include_router(api)
    app.dependency_overrides[require_principal] = stand_in_principal
    install_audit(app)
    return app


@asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


@pytest.fixture
async def app(database: Database) -> FastAPI:
    return small_app(database)


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(app) as client:
        yield client


def as_role(role: str = "owner", **headers: str) -> dict[str, str]:
    return {"x-test-role": role, **headers}


async def entries(database: Database) -> list[dict[str, Any]]:
    """What the database holds, oldest first (read directly, not through the API)."""
    stored = await AuditStore(database).read_range(WORKSPACE, after=0, limit=1000)
    return [{"seq": e.seq, **e.columns()} for e in stored]


async def test_a_mutation_is_recorded_before_its_answer_arrives(
    http: httpx.AsyncClient, database: Database
) -> None:
    response = await http.put(
        "/api/v1/workflows/welcome?dryRun=1",
        headers=as_role("editor", **{"X-Request-ID": "req-42", "User-Agent": "ua/1"}),
    )

    assert response.status_code == 200
    [entry] = await entries(database)
    assert entry | {"id": "", "occurred_at": None, "hash": "", "prev_hash": ""} == {
        "seq": 1,
        "workspace_id": WORKSPACE,
        "id": "",
        "occurred_at": None,
        "actor_id": "editor-user",
        "credential": "api_key:key-editor",
        "action": "workflows.update",
        "resource_type": "workflows",
        "resource_id": "welcome",
        "method": "PUT",
        "path": "/api/v1/workflows/welcome",
        "status": 200,
        "outcome": "success",
        "ip": "127.0.0.1",
        "user_agent": "ua/1",
        "request_id": "req-42",
        "details": None,
        "prev_hash": "",
        "hash": "",
    }


async def test_a_forbidden_mutation_is_recorded_as_denied(
    http: httpx.AsyncClient, database: Database
) -> None:
    response = await http.put("/api/v1/workflows/welcome", headers=as_role("viewer"))

    assert response.status_code == 403
    [entry] = await entries(database)
    assert (entry["action"], entry["status"], entry["outcome"], entry["actor_id"]) == (
        "workflows.update",
        403,
        "denied",
        "viewer-user",
    )
    assert entry["request_id"]  # generated when the client sent none


async def test_a_personal_read_is_recorded_and_a_definition_read_is_not(
    http: httpx.AsyncClient, database: Database
) -> None:
    assert (await http.get("/api/v1/workflows", headers=as_role())).status_code == 200
    assert (await http.get("/api/v1/contacts/c-7", headers=as_role())).status_code == 200

    assert [(e["action"], e["resource_id"]) for e in await entries(database)] == [
        ("contacts.get", "c-7")
    ]


async def test_an_unknown_credential_is_logged_not_chained(
    http: httpx.AsyncClient, database: Database
) -> None:
    with structlog.testing.capture_logs() as logs:
        response = await http.put(
            "/api/v1/workflows/welcome", headers={"Authorization": "Bearer cf_secret_value"}
        )

    assert response.status_code == 401
    assert await entries(database) == []
    [warning] = [log for log in logs if log["event"] == "audit.unattributed"]
    assert (warning["method"], warning["path"], warning["status"]) == (
        "PUT",
        "/api/v1/workflows/welcome",
        401,
    )
    assert "cf_secret_value" not in repr(logs)


async def test_a_crashing_handler_is_recorded_as_a_failure(
    http: httpx.AsyncClient, database: Database
) -> None:
    response = await http.post("/api/v1/executions/e1/cancel", headers=as_role())

    assert response.status_code == 500
    [entry] = await entries(database)
    assert (entry["action"], entry["status"], entry["outcome"]) == (
        "executions.cancel",
        500,
        "failure",
    )


async def test_when_the_audit_log_fails_a_personal_read_is_withheld_and_a_mutation_is_not(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    unreachable = Database.from_url("postgresql://nobody@127.0.0.1:9/nowhere")
    broken = AuditWriter(AuditStore(unreachable))
    await broken.start()
    app.state.audit_writer = broken
    try:
        with structlog.testing.capture_logs() as logs:
            read = await http.get("/api/v1/contacts/c-7", headers=as_role())
            write = await http.put("/api/v1/workflows/welcome", headers=as_role())
    finally:
        await broken.aclose()
        await unreachable.dispose()

    assert read.status_code == 503
    assert read.headers["content-type"] == "application/problem+json"
    assert "ada@example.com" not in read.text
    assert write.status_code == 200
    failures = [log for log in logs if log["event"] == "audit.record_failed"]
    assert [log["action"] for log in failures] == ["contacts.get", "workflows.update"]
    assert failures[1]["actor_id"] == "owner-user"  # the log holds the entry in full


async def test_the_audit_log_lists_newest_first_with_filters_and_pages(
    http: httpx.AsyncClient,
) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    for n in range(3):
        await http.put(f"/api/v1/workflows/w{n}", headers=as_role("editor"))
    await http.put("/api/v1/workflows/w9", headers=as_role("viewer"))
    await http.get("/api/v1/contacts/c1", headers=as_role("admin"))

    first = await http.get("/api/v1/audit-log", params={"limit": 2}, headers=as_role("admin"))
    assert first.status_code == 200
    page = first.json()
    assert [item["resourceId"] for item in page["items"]] == ["c1", "w9"]
    assert page["items"][0]["actorId"] == "admin-user"
    assert page["items"][0]["seq"] == 5
    rest = await http.get(
        "/api/v1/audit-log",
        params={"limit": 10, "cursor": page["nextCursor"]},
        headers=as_role("admin"),
    )
    assert [item["resourceId"] for item in rest.json()["items"]] == ["w2", "w1", "w0"]
    assert rest.json().get("nextCursor") is None

    denied = await http.get(
        "/api/v1/audit-log", params={"outcome": "denied"}, headers=as_role("admin")
    )
    assert [item["resourceId"] for item in denied.json()["items"]] == ["w9"]
    by_editor = await http.get(
        "/api/v1/audit-log",
        params={
            "actorId": "editor-user",
            "action": "workflows.update",
            "since": before.isoformat(),
        },
        headers=as_role("admin"),
    )
    assert len(by_editor.json()["items"]) == 3
    on_c1 = await http.get(
        "/api/v1/audit-log",
        params={"resourceType": "contacts", "resourceId": "c1"},
        headers=as_role("admin"),
    )
    assert [item["action"] for item in on_c1.json()["items"]] == ["contacts.get"]
    future = await http.get(
        "/api/v1/audit-log",
        params={"since": (datetime.now(UTC) + timedelta(hours=1)).isoformat()},
        headers=as_role("admin"),
    )
    assert future.json()["items"] == []


async def test_reading_the_audit_log_is_itself_audited_and_needs_audit_read(
    http: httpx.AsyncClient, database: Database
) -> None:
    assert (await http.get("/api/v1/audit-log", headers=as_role("admin"))).status_code == 200
    refused = await http.get("/api/v1/audit-log", headers=as_role("editor"))

    assert refused.status_code == 403
    assert [(e["action"], e["outcome"]) for e in await entries(database)] == [
        ("audit_log.list", "success"),
        ("audit_log.list", "denied"),
    ]


@pytest.mark.parametrize(
    "params",
    [{"cursor": "forged"}, {"since": "2026-01-01T00:00:00"}, {"outcome": "maybe"}],
)
async def test_bad_query_parameters_are_400s(
    http: httpx.AsyncClient, params: dict[str, str]
) -> None:
    response = await http.get("/api/v1/audit-log", params=params, headers=as_role("admin"))
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"


async def test_verify_reports_the_first_broken_seq(
    http: httpx.AsyncClient, database: Database
) -> None:
    for n in range(3):
        await http.put(f"/api/v1/workflows/w{n}", headers=as_role())

    sound = await http.get("/api/v1/audit-log/verify", headers=as_role("admin"))

    assert sound.json() == {"valid": True, "checked": 3, "firstBrokenSeq": None}


async def test_the_real_app_records_an_authenticated_mutation(database: Database) -> None:
    app = create_app(make_settings(), database=database)
    async with serve(app) as client:
        client.headers["Authorization"] = f"Bearer {TOKEN}"
        created = await client.post("/api/v1/workflows", json=workflow("welcome"))
        listed = await client.get("/api/v1/audit-log")

    assert created.status_code == 201
    [item] = listed.json()["items"]
    assert (item["action"], item["status"], item["outcome"]) == ("workflows.create", 201, "success")
    assert item["credential"].startswith("api_key:")
    assert item["details"] == {"location": created.headers["location"]}
