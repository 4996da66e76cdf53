"""``/api/v1/oauth-clients``: OAuth clients of the caller's workspace, thin translations onto
:class:`OAuthService`. The secret is in the creation response only; nothing returns it or its
hash afterwards."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from campaignflow.api.auth import CurrentPrincipal, authorize
from campaignflow.api.body import read_json, validate_body
from campaignflow.api.deps import AppSettings
from campaignflow.api.oauth_schemas import (
    FIELDS,
    OAuthClientCreate,
    OAuthClientCreated,
    OAuthClientOut,
    OAuthClientPage,
)
from campaignflow.api.pagination import decode_cursor, page_of, page_size
from campaignflow.api.parameters import Cursor, Limit
from campaignflow.api.routers.oauth import OAuth
from campaignflow.api.schemas import problem_responses, request_body
from campaignflow.security.rbac import Permission
from campaignflow.services.oauth import ClientRequest

router = APIRouter(
    prefix="/oauth-clients", tags=["oauth"], responses=problem_responses(400, 401, 403, 404)
)

ClientId = Annotated[str, Path(max_length=64, description="The client's `clientId`.")]
READ = [authorize(Permission.ACCESS_READ)]
WRITE = [authorize(Permission.ACCESS_WRITE)]


@router.post(
    "",
    status_code=HTTPStatus.CREATED,
    response_model=OAuthClientCreated,
    dependencies=WRITE,
    openapi_extra=request_body(OAuthClientCreate, "application/json"),
    responses=problem_responses(413, 415, 422),
)
async def create_oauth_client(
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    service: OAuth,
    settings: AppSettings,
) -> OAuthClientCreated:
    """Register an OAuth client (client-credentials grant) with its own service principal.
    The `clientSecret` is in this response only: store it now."""
    document = await read_json(request, limit=settings.api.max_body_bytes)
    body = validate_body(OAuthClientCreate, document, FIELDS)
    created = await service.create_client(
        principal,
        ClientRequest(
            name=body.name,
            role=body.role,
            scopes=None if body.scopes is None else [scope.value for scope in body.scopes],
            allowed_cidrs=body.allowed_cidrs,
        ),
    )
    response.headers["Location"] = f"{request.url.path}/{created.client.client_id}"
    return OAuthClientCreated.with_secret(created.client, created.secret)


@router.get("", response_model=OAuthClientPage, dependencies=READ)
async def list_oauth_clients(
    principal: CurrentPrincipal,
    service: OAuth,
    settings: AppSettings,
    limit: Limit = None,
    cursor: Cursor = None,
) -> OAuthClientPage:
    """The workspace's OAuth clients (revoked ones included), by client id."""
    size = page_size(limit, settings)
    records = await service.list_clients(
        principal.workspace_id, after=decode_cursor(cursor, str), limit=size + 1
    )
    page, next_cursor = page_of(records, size, lambda record: record.client_id)
    items = [OAuthClientOut.from_record(record) for record in page]
    return OAuthClientPage(items=items, next_cursor=next_cursor)


@router.get("/{client_id}", response_model=OAuthClientOut, dependencies=READ)
async def get_oauth_client(
    client_id: ClientId, principal: CurrentPrincipal, service: OAuth
) -> OAuthClientOut:
    """One OAuth client (never its secret)."""
    return OAuthClientOut.from_record(await service.get_client(principal.workspace_id, client_id))


@router.delete(
    "/{client_id}",
    status_code=HTTPStatus.NO_CONTENT,
    response_class=Response,
    dependencies=WRITE,
)
async def revoke_oauth_client(
    client_id: ClientId, principal: CurrentPrincipal, service: OAuth
) -> Response:
    """Revoke the client (idempotent): it gets no new tokens, and the tokens it holds stop
    working within seconds."""
    await service.revoke_client(principal.workspace_id, client_id)
    return Response(status_code=HTTPStatus.NO_CONTENT)
