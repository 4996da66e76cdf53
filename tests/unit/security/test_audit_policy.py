"""Which requests the audit log records and how it names them."""

from __future__ import annotations

import pytest
from fastapi.routing import iter_route_contexts
from pydantic import SecretStr

from campaignflow.api.app import create_app
from campaignflow.api.routers import audit
from campaignflow.config import Settings
from campaignflow.security.audit_policy import (
    NOT_PERSONAL_READS,
    PERSONAL_DATA_READS,
    is_audited,
    outcome,
    target,
)


def _get_routes_under_api() -> dict[str, str]:
    settings = Settings(
        mode="production",
        api_token=SecretStr("unit-test-token-0123456789"),
        database_url="sqlite:///never-opened.db",
    )
    app = create_app(settings)
    app.include_router(audit.router, prefix="/api/v1")  # in case create_app does not yet
    return {
        context.name or "": context.path or ""
        for context in iter_route_contexts(app.routes)
        if "GET" in (context.methods or ()) and (context.path or "").startswith("/api/v1")
    }


def test_every_get_route_under_the_api_is_classified_as_personal_or_not() -> None:
    routes = _get_routes_under_api()
    unclassified = {
        name: path
        for name, path in routes.items()
        if name not in PERSONAL_DATA_READS | NOT_PERSONAL_READS
    }
    assert unclassified == {}, (
        "classify these GET routes in security/audit_policy.py (does the answer hold "
        f"personal data?): {unclassified}"
    )


def test_no_route_is_classified_both_ways() -> None:
    assert not PERSONAL_DATA_READS & NOT_PERSONAL_READS


@pytest.mark.parametrize(
    ("method", "path", "route", "status", "audited"),
    [
        ("PUT", "/api/v1/workflows/w", "update_workflow", 200, True),
        ("DELETE", "/api/v1/workflows/w", "archive_workflow", 404, True),
        ("POST", "/api/v1/workflows", "create_workflow", 403, True),
        ("POST", "/oauth/token", "issue_token", 200, True),
        ("POST", "/oauth/token", "issue_token", 401, True),
        ("GET", "/api/v1/contacts/c1", "get_contact", 200, True),
        ("GET", "/api/v1/contacts/c1", "get_contact", 404, True),
        ("GET", "/api/v1/executions", "list_executions", 200, True),
        ("GET", "/api/v1/workflows", "list_workflows", 200, False),
        ("GET", "/api/v1/workflows/w", "get_workflow", 403, False),
        ("GET", "/healthz", "healthz", 200, False),
        ("POST", "/elsewhere", None, 200, False),
        # ingestion: only denied attempts
        ("POST", "/api/v1/events", "ingest_event", 202, False),
        ("POST", "/api/v1/events/batch", "ingest_batch", 422, False),
        ("POST", "/api/v1/events/batch", "ingest_batch", 401, True),
        ("POST", "/v1/track", "segment_track", 200, False),
        ("POST", "/v1/batch", "segment_batch", 403, True),
        # provider webhooks are ingestion too
        ("POST", "/api/v1/webhooks/sendgrid/c1", "receive_webhook", 200, False),
        ("POST", "/api/v1/webhooks/sendgrid/c1", "receive_webhook", 422, False),
        ("POST", "/api/v1/webhooks/sendgrid/c1", "receive_webhook", 401, True),
        ("GET", "/api/v1/suppressions/check", "check_suppression", 200, True),
    ],
)
def test_what_is_audited(
    method: str, path: str, route: str | None, status: int, audited: bool
) -> None:
    assert is_audited(method, path, route, status) is audited


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        *[(200, "success"), (201, "success"), (304, "success")],
        *[(401, "denied"), (403, "denied")],
        *[(400, "failure"), (404, "failure"), (409, "failure"), (500, "failure")],
    ],
)
def test_outcomes(status: int, expected: str) -> None:
    assert outcome(status) == expected


@pytest.mark.parametrize(
    ("method", "path", "route", "params", "action", "resource", "resource_id", "details"),
    [
        ("PUT", "/api/v1/workflows/w1", "update_workflow", {"workflow_id": "w1"},
         "workflows.update", "workflows", "w1", None),
        ("POST", "/api/v1/workflows", "create_workflow", {},
         "workflows.create", "workflows", None, None),
        ("POST", "/api/v1/workflows/w1/execute", "execute_workflow", {"workflow_id": "w1"},
         "workflows.execute", "workflows", "w1", None),
        ("GET", "/api/v1/dead-letters/d1", "get_dead_letter", {"dead_letter_id": "d1"},
         "dead_letters.get", "dead_letters", "d1", None),
        ("GET", "/api/v1/contacts", "list_contacts", {},
         "contacts.list", "contacts", None, None),
        ("GET", "/api/v1/audit-log", "list_audit_log", {},
         "audit_log.list", "audit_log", None, None),
        ("PUT", "/api/v1/workflows/w1/grants/p1", "put_grant",
         {"workflow_id": "w1", "principal_id": "p1"},
         "workflows.put_grant", "workflows", "w1", {"principal_id": "p1"}),
        ("POST", "/oauth/revoke", "revoke_token", {}, "oauth.revoke_token", "oauth", None, None),
        ("POST", "/v1/batch", "segment_batch", {}, "events.segment_batch", "events", None, None),
        ("DELETE", "/api/v1/nowhere/x", None, {}, "nowhere.delete", "nowhere", None, None),
    ],
)  # fmt: skip
def test_actions_are_resource_dot_verb(  # noqa: PLR0917 - one parameter per column
    method: str,
    path: str,
    route: str | None,
    params: dict[str, str],
    action: str,
    resource: str,
    resource_id: str | None,
    details: dict[str, str] | None,
) -> None:
    named = target(method, path, route, params)
    assert (named.action, named.resource_type, named.resource_id, named.details) == (
        action,
        resource,
        resource_id,
        details,
    )
