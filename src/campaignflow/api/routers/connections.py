"""``/api/v1/connections``: provider accounts of the caller's workspace, thin translations onto
:class:`ConnectionService`. Credentials are accepted on creation and never returned."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from campaignflow.api.auth import CurrentPrincipal, authorize
from campaignflow.api.body import read_json, validate_body
from campaignflow.api.connection_schemas import (
    FIELDS,
    Connection,
    ConnectionCreate,
    ConnectionPage,
    ConnectionTestResult,
)
from campaignflow.api.deps import AppSettings
from campaignflow.api.pagination import decode_cursor, page_of, page_size
from campaignflow.api.parameters import Cursor, Limit
from campaignflow.api.schemas import problem_responses, request_body
from campaignflow.security.rbac import Permission
from campaignflow.services.connections import ConnectionRequest, ConnectionService

router = APIRouter(
    prefix="/connections", tags=["connections"], responses=problem_responses(400, 401, 403, 404)
)

ConnectionId = Annotated[str, Path(max_length=64, description="The connection's `id`.")]
READ = [authorize(Permission.CONNECTIONS_READ)]
WRITE = [authorize(Permission.CONNECTIONS_WRITE)]


async def get_connection_service(request: Request) -> ConnectionService:
    service: ConnectionService = request.app.state.connections
    return service


Connections = Annotated[ConnectionService, Depends(get_connection_service)]


@router.post(
    "",
    status_code=HTTPStatus.CREATED,
    response_model=Connection,
    dependencies=WRITE,
    openapi_extra=request_body(ConnectionCreate, "application/json"),
    responses=problem_responses(409, 413, 415, 422),
)
async def create_connection(
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    service: Connections,
    settings: AppSettings,
) -> Connection:
    """Connect a provider account. The credentials are checked against the connector's
    `credentialsSchema` and go to the secret store; `409` if the name is taken."""
    document = await read_json(request, limit=settings.api.max_body_bytes)
    body = validate_body(ConnectionCreate, document, FIELDS)
    record = await service.create(
        principal.workspace_id,
        principal.subject,
        ConnectionRequest(
            name=body.name,
            provider=body.provider,
            description=body.description,
            credentials=body.credentials,
            settings=body.settings,
        ),
    )
    response.headers["Location"] = f"{request.url.path}/{record.id}"
    return Connection.from_record(record)


@router.get("", response_model=ConnectionPage, dependencies=READ)
async def list_connections(
    principal: CurrentPrincipal,
    service: Connections,
    settings: AppSettings,
    *,
    provider: Annotated[
        str | None, Query(max_length=64, description="Only this provider's connections.")
    ] = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> ConnectionPage:
    """The workspace's connections, by name (never their credentials)."""
    size = page_size(limit, settings)
    records = await service.list(
        principal.workspace_id,
        provider=provider,
        after=decode_cursor(cursor, str),
        limit=size + 1,
    )
    page, next_cursor = page_of(records, size, lambda record: record.name)
    items = [Connection.from_record(record) for record in page]
    return ConnectionPage(items=items, next_cursor=next_cursor)


@router.get("/{connection_id}", response_model=Connection, dependencies=READ)
async def get_connection(
    connection_id: ConnectionId, principal: CurrentPrincipal, service: Connections
) -> Connection:
    """One connection (never its credentials)."""
    record = await service.get(principal.workspace_id, connection_id)
    return Connection.from_record(record)


@router.post(
    "/{connection_id}/test",
    response_model=ConnectionTestResult,
    dependencies=WRITE,
    responses=problem_responses(409),
)
async def test_connection(
    connection_id: ConnectionId, principal: CurrentPrincipal, service: Connections
) -> ConnectionTestResult:
    """Make the connector's cheap authenticated call (no effect at the provider) and record
    the outcome on the connection. `200` either way: `ok` says whether the provider accepted
    the credentials. `409` for a connector that has no such call."""
    outcome = await service.test(principal.workspace_id, connection_id)
    return ConnectionTestResult(
        ok=outcome.ok,
        message=outcome.message,
        status=outcome.status,
        duration_ms=outcome.duration_ms,
    )


@router.delete(
    "/{connection_id}",
    status_code=HTTPStatus.NO_CONTENT,
    response_class=Response,
    dependencies=WRITE,
)
async def delete_connection(
    connection_id: ConnectionId, principal: CurrentPrincipal, service: Connections
) -> Response:
    """Delete the connection and its credentials. Steps that name it fail (not retried) and
    go to the dead-letter queue, from where they can be replayed once it exists again."""
    await service.delete(principal.workspace_id, connection_id)
    return Response(status_code=HTTPStatus.NO_CONTENT)
