"""``/api/v1/connections/{id}/sync``: a CRM connection's sync configuration and its runs."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response

from campaignflow.api.auth import CurrentPrincipal, authorize
from campaignflow.api.body import read_json
from campaignflow.api.connection_schemas import Connection
from campaignflow.api.deps import AppSettings
from campaignflow.api.pagination import decode_cursor, page_of, page_size
from campaignflow.api.parameters import Cursor, Limit
from campaignflow.api.schemas import problem_responses, request_body
from campaignflow.api.sync_schemas import SyncRecordError, SyncRunDetails, SyncRunOut, SyncRunPage
from campaignflow.domain.sync_config import SyncConfig
from campaignflow.security.rbac import Permission
from campaignflow.services.sync import SyncService

router = APIRouter(
    prefix="/connections", tags=["crm sync"], responses=problem_responses(400, 401, 403, 404)
)

ConnectionId = Annotated[str, Path(max_length=64, description="The connection's `id`.")]
RunId = Annotated[str, Path(max_length=64, description="The sync run's `id`.")]


async def get_sync_service(request: Request) -> SyncService:
    service: SyncService = request.app.state.sync
    return service


Sync = Annotated[SyncService, Depends(get_sync_service)]


@router.put(
    "/{connection_id}/sync",
    response_model=Connection,
    dependencies=[authorize(Permission.CONNECTIONS_WRITE)],
    openapi_extra=request_body(SyncConfig, "application/json"),
    responses=problem_responses(409, 413, 415, 422),
)
async def configure_sync(
    connection_id: ConnectionId,
    request: Request,
    principal: CurrentPrincipal,
    service: Sync,
    settings: AppSettings,
) -> Connection:
    """Set a CRM connection's sync: `syncStrategy` (`real-time`, `scheduled` with a cron
    `schedule`, `on-demand`), `conflictResolution` (`last-write-wins` per field, or
    `source-priority` with `sourcePriority`) and `dataMapping` (`contactFields`,
    `activityTypes`). `422` with a pointer per problem; `409` for a connector that does not
    sync."""
    document = await read_json(request, limit=settings.api.max_body_bytes)
    record = await service.configure(principal.workspace_id, connection_id, document)
    return Connection.from_record(record)


@router.delete(
    "/{connection_id}/sync",
    status_code=HTTPStatus.NO_CONTENT,
    response_class=Response,
    dependencies=[authorize(Permission.CONNECTIONS_WRITE)],
)
async def switch_off_sync(
    connection_id: ConnectionId, principal: CurrentPrincipal, service: Sync
) -> Response:
    """Stop syncing the connection (its links and run history stay)."""
    await service.switch_off(principal.workspace_id, connection_id)
    return Response(status_code=HTTPStatus.NO_CONTENT)


@router.post(
    "/{connection_id}/sync",
    status_code=HTTPStatus.ACCEPTED,
    response_model=SyncRunOut,
    dependencies=[authorize(Permission.CONNECTIONS_SYNC)],
    responses=problem_responses(409),
)
async def start_sync_run(
    connection_id: ConnectionId,
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    service: Sync,
) -> SyncRunOut:
    """Queue a sync run now (the on-demand strategy, and any other): `202` with the run, which
    a worker takes within a second or so. `409` if a run of the connection is queued or
    running, or the connection has no sync."""
    run = await service.start(principal.workspace_id, connection_id, principal.subject)
    response.headers["Location"] = f"{request.url.path}-runs/{run.id}"
    return SyncRunOut.from_run(run)


@router.get(
    "/{connection_id}/sync-runs",
    response_model=SyncRunPage,
    dependencies=[authorize(Permission.CONNECTIONS_READ)],
)
async def list_sync_runs(
    connection_id: ConnectionId,
    principal: CurrentPrincipal,
    service: Sync,
    settings: AppSettings,
    *,
    limit: Limit = None,
    cursor: Cursor = None,
) -> SyncRunPage:
    """The connection's sync runs, newest first."""
    size = page_size(limit, settings)
    runs = await service.runs(
        principal.workspace_id,
        connection_id,
        before=decode_cursor(cursor, str),
        limit=size + 1,
    )
    page, next_cursor = page_of(runs, size, lambda run: run.id)
    return SyncRunPage(items=[SyncRunOut.from_run(run) for run in page], next_cursor=next_cursor)


@router.get(
    "/{connection_id}/sync-runs/{run_id}",
    response_model=SyncRunDetails,
    dependencies=[authorize(Permission.CONNECTIONS_READ)],
)
async def get_sync_run(
    connection_id: ConnectionId, run_id: RunId, principal: CurrentPrincipal, service: Sync
) -> SyncRunDetails:
    """One run with the records it could not sync (the first 500) and why."""
    details = await service.run(principal.workspace_id, connection_id, run_id)
    summary = SyncRunOut.from_run(details.run)
    return SyncRunDetails(
        **summary.model_dump(),
        errors=[SyncRecordError.from_error(error) for error in details.errors],
    )
