"""``/api/v1/privacy/retention``: how long the workspace keeps each data class, and the purges."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from campaignflow.api.auth import CurrentPrincipal, authorize
from campaignflow.api.body import read_json
from campaignflow.api.deps import AppSettings
from campaignflow.api.pagination import decode_cursor, page_of, page_size
from campaignflow.api.parameters import Cursor, Limit
from campaignflow.api.retention_schemas import DataClassName, RetentionRunOut, RetentionRunPage
from campaignflow.api.schemas import problem_responses, request_body
from campaignflow.domain.retention import RetentionPolicy
from campaignflow.security.rbac import Permission
from campaignflow.services.retention import RetentionService

router = APIRouter(
    prefix="/privacy/retention", tags=["privacy"], responses=problem_responses(400, 401, 403)
)


async def get_retention_service(request: Request) -> RetentionService:
    service: RetentionService = request.app.state.retention
    return service


Retention = Annotated[RetentionService, Depends(get_retention_service)]


@router.get(
    "",
    response_model=RetentionPolicy,
    response_model_by_alias=True,
    dependencies=[authorize(Permission.PRIVACY_READ)],
)
async def get_retention(principal: CurrentPrincipal, service: Retention) -> RetentionPolicy:
    """Days kept per data class: `events`, `webhookPayloads`, `executionLogs`,
    `processingLog`, `auditLog` (the defaults until the workspace sets its own)."""
    return await service.policy(principal.workspace_id)


@router.put(
    "",
    response_model=RetentionPolicy,
    response_model_by_alias=True,
    dependencies=[authorize(Permission.PRIVACY_WRITE)],
    openapi_extra=request_body(RetentionPolicy, "application/json"),
    responses=problem_responses(413, 415, 422),
)
async def replace_retention(
    request: Request, principal: CurrentPrincipal, service: Retention, settings: AppSettings
) -> RetentionPolicy:
    """Replace the workspace's retention (a class left out takes its default). The audit log
    must be kept longest: `422` with a pointer at any class kept longer. The purger applies it
    on its next pass."""
    document = await read_json(request, limit=settings.api.max_body_bytes)
    return await service.replace(principal.workspace_id, document, principal.subject)


@router.get(
    "/runs",
    response_model=RetentionRunPage,
    dependencies=[authorize(Permission.PRIVACY_READ)],
)
async def list_retention_runs(
    principal: CurrentPrincipal,
    service: Retention,
    settings: AppSettings,
    *,
    data_class: Annotated[
        DataClassName | None, Query(alias="dataClass", description="Only this data class.")
    ] = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> RetentionRunPage:
    """What the retention purger removed, newest first: one entry per pass over a data class
    that found rows due."""
    size = page_size(limit, settings)
    rows = await service.runs(
        principal.workspace_id,
        data_class=data_class,
        before=decode_cursor(cursor, str),
        limit=size + 1,
    )
    page, next_cursor = page_of(rows, size, lambda row: str(row["id"]))
    return RetentionRunPage(
        items=[RetentionRunOut.from_row(row) for row in page], next_cursor=next_cursor
    )
