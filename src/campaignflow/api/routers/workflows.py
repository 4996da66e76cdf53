"""``/api/v1/workflows``: thin translations from HTTP onto :class:`WorkflowService`."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response

from campaignflow.api.auth import CurrentPrincipal, authorize
from campaignflow.api.body import read_json
from campaignflow.api.deps import AppSettings, Executions, Monitoring, Workflows
from campaignflow.api.etags import if_none_match_hits, stale, versions_in_if_match
from campaignflow.api.monitoring_schemas import WorkflowMonitoringSummary
from campaignflow.api.pagination import decode_cursor, page_of, page_size
from campaignflow.api.parameters import Cursor, Limit, WorkflowId
from campaignflow.api.schemas import (
    VersionPage,
    Workflow,
    WorkflowPage,
    WorkflowSummary,
    WorkflowVersion,
    etag_for,
    problem_responses,
)
from campaignflow.security.rbac import Permission
from campaignflow.services.executions import InFlightPolicy
from campaignflow.services.monitoring import parse_window
from campaignflow.services.workflows import WorkflowService, WorkflowStatus
from campaignflow.store.workflows import WorkflowRecord

_DEFINITION_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/WorkflowDefinition"}}
        },
    }
}

router = APIRouter(
    prefix="/workflows", tags=["workflows"], responses=problem_responses(400, 401, 404)
)


def _with_etag(response: Response, record: WorkflowRecord) -> Workflow:
    response.headers["ETag"] = etag_for(record.version)
    return Workflow.from_record(record)


@router.post(
    "",
    status_code=HTTPStatus.CREATED,
    response_model=Workflow,
    openapi_extra=_DEFINITION_BODY,
    responses=problem_responses(409, 413, 415, 422),
    dependencies=[authorize(Permission.WORKFLOWS_WRITE)],
)
async def create_workflow(
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    service: Workflows,
    settings: AppSettings,
) -> Workflow:
    """Create a workflow from a definition; it starts as `draft` at version 1."""
    document = await read_json(request, limit=settings.api.max_body_bytes)
    record = await service.create(principal.workspace_id, document)
    response.headers["Location"] = f"{request.url.path}/{record.id}"
    return _with_etag(response, record)


@router.get("", response_model=WorkflowPage, dependencies=[authorize(Permission.WORKFLOWS_READ)])
async def list_workflows(
    *,
    principal: CurrentPrincipal,
    service: Workflows,
    settings: AppSettings,
    status: Annotated[
        WorkflowStatus | None, Query(description="Only workflows in this status.")
    ] = None,
    name: Annotated[
        str | None, Query(max_length=200, description="Case-insensitive substring of the name.")
    ] = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> WorkflowPage:
    """List workflows ordered by id; archived ones only with `status=archived`."""
    size = page_size(limit, settings)
    records = await service.list_workflows(
        principal.workspace_id,
        status=status,
        name_contains=name,
        after=decode_cursor(cursor, str),
        limit=size + 1,
    )
    page, next_cursor = page_of(records, size, lambda record: record.id)
    return WorkflowPage(
        items=[WorkflowSummary.from_summary(r) for r in page], next_cursor=next_cursor
    )


@router.get(
    "/{workflow_id}",
    response_model=Workflow,
    responses={304: {"description": "Not Modified"}},
    dependencies=[authorize(Permission.WORKFLOWS_READ)],
)
async def get_workflow(
    workflow_id: WorkflowId,
    response: Response,
    principal: CurrentPrincipal,
    service: Workflows,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Workflow | Response:
    """The workflow with its latest definition; `ETag` identifies the version."""
    record = await service.get(principal.workspace_id, workflow_id)
    if if_none_match_hits(if_none_match, etag_for(record.version)):
        return Response(
            status_code=HTTPStatus.NOT_MODIFIED, headers={"ETag": etag_for(record.version)}
        )
    return _with_etag(response, record)


async def _expected_version(
    service: WorkflowService, workspace_id: str, workflow_id: str, if_match: str | None
) -> int | None:
    accepted = versions_in_if_match(if_match)
    if accepted is None:
        return None
    if len(accepted) <= 1:
        # No acceptable tag becomes version 0, which never exists: the store's compare-and-set
        # then answers 412 — after the body was validated, so a bad body is still a 422.
        return next(iter(accepted), 0)
    current = await service.get(workspace_id, workflow_id)
    if current.version not in accepted:
        raise stale()
    return current.version


@router.put(
    "/{workflow_id}",
    response_model=Workflow,
    openapi_extra=_DEFINITION_BODY,
    responses=problem_responses(409, 412, 413, 415, 422),
    dependencies=[authorize(Permission.WORKFLOWS_WRITE)],
)
async def update_workflow(
    *,
    workflow_id: WorkflowId,
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    service: Workflows,
    settings: AppSettings,
    executions: Executions,
    if_match: Annotated[str | None, Header(description="ETag last read; 412 if stale.")] = None,
    in_flight: Annotated[
        InFlightPolicy,
        Query(
            alias="inFlight",
            description="What running executions of older versions do when this creates a new "
            "version: `finish` on the version they started on (default) or `exit` now "
            "(they become cancelled).",
        ),
    ] = InFlightPolicy.FINISH,
) -> Workflow:
    """Publish a new version; an unchanged definition creates none and returns the current."""
    document = await read_json(request, limit=settings.api.max_body_bytes)
    expected = await _expected_version(service, principal.workspace_id, workflow_id, if_match)
    record, changed = await service.update(
        principal.workspace_id, workflow_id, document, expected_version=expected
    )
    if changed and in_flight is InFlightPolicy.EXIT:
        await executions.exit_older_versions(principal.workspace_id, workflow_id, record.version)
    return _with_etag(response, record)


@router.delete(
    "/{workflow_id}",
    status_code=HTTPStatus.NO_CONTENT,
    response_class=Response,
    responses=problem_responses(409),
    dependencies=[authorize(Permission.WORKFLOWS_WRITE)],
)
async def archive_workflow(
    workflow_id: WorkflowId, principal: CurrentPrincipal, service: Workflows
) -> Response:
    """Archive: no new executions start; running executions finish on their pinned version."""
    await service.archive(principal.workspace_id, workflow_id)
    return Response(status_code=HTTPStatus.NO_CONTENT)


@router.get(
    "/{workflow_id}/versions",
    response_model=VersionPage,
    dependencies=[authorize(Permission.WORKFLOWS_READ)],
)
async def list_versions(
    *,
    workflow_id: WorkflowId,
    principal: CurrentPrincipal,
    service: Workflows,
    settings: AppSettings,
    limit: Limit = None,
    cursor: Cursor = None,
) -> VersionPage:
    """Every published version, oldest first."""
    size = page_size(limit, settings)
    after = decode_cursor(cursor, int)
    records = await service.versions(
        principal.workspace_id, workflow_id, after=after, limit=size + 1
    )
    page, next_cursor = page_of(records, size, lambda record: record.version)
    return VersionPage(
        items=[WorkflowVersion.from_record(r) for r in page], next_cursor=next_cursor
    )


@router.get(
    "/{workflow_id}/summary",
    response_model=WorkflowMonitoringSummary,
    responses=problem_responses(422),
    dependencies=[authorize(Permission.WORKFLOWS_READ)],
)
async def get_workflow_summary(
    *,
    workflow_id: WorkflowId,
    principal: CurrentPrincipal,
    monitoring: Monitoring,
    window: Annotated[
        str | None,
        Query(
            max_length=32,
            description="How far back to count executions started, as an ISO 8601 duration "
            "from `PT1M` to `P30D` (default `PT1H`).",
        ),
    ] = None,
) -> WorkflowMonitoringSummary:
    """Live monitoring of one workflow: throughput, outcomes, success rate and duration
    percentiles of the executions started in the window, and where executions wait now."""
    summary = await monitoring.summary(principal.workspace_id, workflow_id, parse_window(window))
    return WorkflowMonitoringSummary.from_summary(summary)


@router.post(
    "/{workflow_id}/activate",
    response_model=Workflow,
    responses=problem_responses(409),
    dependencies=[authorize(Permission.WORKFLOWS_WRITE)],
)
async def activate_workflow(
    workflow_id: WorkflowId, response: Response, principal: CurrentPrincipal, service: Workflows
) -> Workflow:
    """Start accepting triggers on the latest version (idempotent)."""
    return _with_etag(response, await service.activate(principal.workspace_id, workflow_id))


@router.post(
    "/{workflow_id}/pause",
    response_model=Workflow,
    responses=problem_responses(409),
    dependencies=[authorize(Permission.WORKFLOWS_WRITE)],
)
async def pause_workflow(
    workflow_id: WorkflowId, response: Response, principal: CurrentPrincipal, service: Workflows
) -> Workflow:
    """Stop starting new executions; those in flight go on (idempotent)."""
    return _with_etag(response, await service.pause(principal.workspace_id, workflow_id))
