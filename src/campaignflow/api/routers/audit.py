"""``/api/v1/audit-log``: the workspace's access log, newest first, and its integrity check."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from campaignflow.api.audit_schemas import (
    AuditEntry,
    AuditEntryPage,
    AuditOutcome,
    AuditVerification,
)
from campaignflow.api.auth import CurrentPrincipal, authorize
from campaignflow.api.deps import AppSettings
from campaignflow.api.pagination import decode_cursor, page_of, page_size
from campaignflow.api.parameters import INSTANT, Cursor, Limit, parse_instant
from campaignflow.api.schemas import problem_responses
from campaignflow.security.rbac import Permission
from campaignflow.services.audit import AuditService
from campaignflow.store.audit import AuditFilter

router = APIRouter(
    prefix="/audit-log",
    tags=["audit log"],
    responses=problem_responses(400, 401, 403),
    dependencies=[authorize(Permission.AUDIT_READ)],
)


async def get_audit_service(request: Request) -> AuditService:
    service: AuditService = request.app.state.audit
    return service


Audit = Annotated[AuditService, Depends(get_audit_service)]
ActorId = Annotated[
    str | None, Query(alias="actorId", max_length=200, description="Only this principal's calls.")
]
Action = Annotated[
    str | None, Query(max_length=100, description="Only this action, e.g. `workflows.update`.")
]
ResourceType = Annotated[
    str | None,
    Query(alias="resourceType", max_length=64, description="Only this kind of resource."),
]
ResourceId = Annotated[
    str | None, Query(alias="resourceId", max_length=200, description="Only this resource.")
]
Since = Annotated[
    str | None,
    Query(
        max_length=64,
        description="Only entries at or after this RFC 3339 instant (with offset).",
        json_schema_extra=INSTANT,
    ),
]
Until = Annotated[
    str | None,
    Query(
        max_length=64,
        description="Only entries before this RFC 3339 instant (with offset).",
        json_schema_extra=INSTANT,
    ),
]


@router.get("", response_model=AuditEntryPage)
async def list_audit_log(
    *,
    principal: CurrentPrincipal,
    service: Audit,
    settings: AppSettings,
    actor_id: ActorId = None,
    action: Action = None,
    resource_type: ResourceType = None,
    resource_id: ResourceId = None,
    outcome: Annotated[AuditOutcome | None, Query(description="Only this outcome.")] = None,
    since: Since = None,
    until: Until = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> AuditEntryPage:
    """Who did what, when, from where, with what outcome: newest first."""
    size = page_size(limit, settings)
    wanted = AuditFilter(
        actor_id=actor_id,
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        outcome=outcome.value if outcome else None,
        since=parse_instant(since, "since"),
        until=parse_instant(until, "until"),
    )
    entries = await service.list(
        principal.workspace_id, wanted, before=decode_cursor(cursor, int), limit=size + 1
    )
    page, next_cursor = page_of(entries, size, lambda entry: entry.seq)
    return AuditEntryPage(items=[AuditEntry.from_entry(e) for e in page], next_cursor=next_cursor)


@router.get("/verify", response_model=AuditVerification)
async def verify_audit_log(principal: CurrentPrincipal, service: Audit) -> AuditVerification:
    """Check the workspace's hash chain from its first entry: an edited, removed, inserted or
    reordered entry is reported by its seq. (Losing the newest entries is not detectable from
    the chain alone.)"""
    return AuditVerification.from_report(await service.verify(principal.workspace_id))
