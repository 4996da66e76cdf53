"""Principals, API keys, workflow grants and the workspace allowlist: thin translations from HTTP
onto :class:`AccessService`."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response

from campaignflow.api.access_schemas import (
    FIELDS,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    ApiKeyPage,
    GrantList,
    GrantOut,
    GrantPut,
    PrincipalCreate,
    PrincipalOut,
    PrincipalPage,
    PrincipalPatch,
    WorkspaceAccess,
)
from campaignflow.api.auth import CurrentPrincipal, authorize, request_address
from campaignflow.api.body import read_json, validate_body
from campaignflow.api.deps import AppSettings
from campaignflow.api.pagination import decode_cursor, page_of, page_size
from campaignflow.api.parameters import Cursor, Limit, WorkflowId
from campaignflow.api.schemas import problem_responses, request_body
from campaignflow.security.rbac import Permission
from campaignflow.services.access import AccessService, KeyRequest

router = APIRouter(tags=["access"], responses=problem_responses(400, 401, 403, 404))

PrincipalId = Annotated[str, Path(max_length=64, description="The principal's id.")]
KeyId = Annotated[str, Path(max_length=64, description="The API key's id (not the key).")]
READ = [authorize(Permission.ACCESS_READ)]
WRITE = [authorize(Permission.ACCESS_WRITE)]
WRITE_BODY = problem_responses(413, 415, 422)


async def get_access_service(request: Request) -> AccessService:
    service: AccessService = request.app.state.access
    return service


Access = Annotated[AccessService, Depends(get_access_service)]


async def _document(request: Request, settings: AppSettings) -> object:
    return await read_json(request, limit=settings.api.max_body_bytes)


Document = Annotated[object, Depends(_document)]


@router.post(
    "/principals",
    status_code=HTTPStatus.CREATED,
    response_model=PrincipalOut,
    dependencies=WRITE,
    openapi_extra=request_body(PrincipalCreate, "application/json"),
    responses=WRITE_BODY,
)
async def create_principal(
    document: Document, principal: CurrentPrincipal, service: Access
) -> PrincipalOut:
    """Add a user or service to the workspace with a role (at most your own)."""
    body = validate_body(PrincipalCreate, document, FIELDS)
    record = await service.create_principal(
        principal, kind=body.kind, name=body.name, role=body.role
    )
    return PrincipalOut.from_record(record)


@router.get("/principals", response_model=PrincipalPage, dependencies=READ)
async def list_principals(
    principal: CurrentPrincipal,
    service: Access,
    settings: AppSettings,
    limit: Limit = None,
    cursor: Cursor = None,
) -> PrincipalPage:
    """The workspace's principals, by id."""
    size = page_size(limit, settings)
    records = await service.store.list_principals(
        principal.workspace_id, after=decode_cursor(cursor, str), limit=size + 1
    )
    page, next_cursor = page_of(records, size, lambda record: record.id)
    return PrincipalPage(items=[PrincipalOut.from_record(r) for r in page], next_cursor=next_cursor)


@router.get("/principals/{principal_id}", response_model=PrincipalOut, dependencies=READ)
async def get_principal(
    principal_id: PrincipalId, principal: CurrentPrincipal, service: Access
) -> PrincipalOut:
    """One principal."""
    record = await service.store.get_principal(principal.workspace_id, principal_id)
    return PrincipalOut.from_record(record)


@router.patch(
    "/principals/{principal_id}",
    response_model=PrincipalOut,
    dependencies=WRITE,
    openapi_extra=request_body(PrincipalPatch, "application/json"),
    responses=WRITE_BODY,
)
async def update_principal(
    principal_id: PrincipalId, document: Document, principal: CurrentPrincipal, service: Access
) -> PrincipalOut:
    """Rename, change the role of, disable or re-enable a principal (not yourself)."""
    body = validate_body(PrincipalPatch, document, FIELDS)
    record = await service.update_principal(
        principal, principal_id, name=body.name, role=body.role, disabled=body.disabled
    )
    return PrincipalOut.from_record(record)


@router.post(
    "/api-keys",
    status_code=HTTPStatus.CREATED,
    response_model=ApiKeyCreated,
    dependencies=WRITE,
    openapi_extra=request_body(ApiKeyCreate, "application/json"),
    responses=WRITE_BODY,
)
async def create_api_key(
    document: Document, principal: CurrentPrincipal, service: Access
) -> ApiKeyCreated:
    """Create an API key; the key itself is in this response only. Scopes are at most what the
    key's principal and you hold."""
    body = validate_body(ApiKeyCreate, document, FIELDS)
    request = KeyRequest(
        name=body.name,
        principal_id=body.principal_id,
        scopes=[scope.value for scope in body.scopes] if body.scopes is not None else None,
        allowed_cidrs=body.allowed_cidrs,
        expires_at=body.expires_at,
    )
    created = await service.create_key(principal, request)
    return ApiKeyCreated(**ApiKeyOut.from_record(created.record).model_dump(), key=created.value)


@router.get("/api-keys", response_model=ApiKeyPage, dependencies=READ)
async def list_api_keys(
    principal: CurrentPrincipal,
    service: Access,
    settings: AppSettings,
    limit: Limit = None,
    cursor: Cursor = None,
) -> ApiKeyPage:
    """The workspace's API keys (never the keys themselves), by id."""
    size = page_size(limit, settings)
    records = await service.store.list_keys(
        principal.workspace_id, after=decode_cursor(cursor, str), limit=size + 1
    )
    page, next_cursor = page_of(records, size, lambda record: record.id)
    return ApiKeyPage(items=[ApiKeyOut.from_record(r) for r in page], next_cursor=next_cursor)


@router.get("/api-keys/{key_id}", response_model=ApiKeyOut, dependencies=READ)
async def get_api_key(key_id: KeyId, principal: CurrentPrincipal, service: Access) -> ApiKeyOut:
    """One API key's description and when it was last used."""
    return ApiKeyOut.from_record(await service.store.get_key(principal.workspace_id, key_id))


@router.delete("/api-keys/{key_id}", response_model=ApiKeyOut, dependencies=WRITE)
async def revoke_api_key(key_id: KeyId, principal: CurrentPrincipal, service: Access) -> ApiKeyOut:
    """Revoke the key: requests with it fail from now on (in every process within seconds)."""
    return ApiKeyOut.from_record(await service.revoke_key(principal, key_id))


@router.get("/workflows/{workflow_id}/grants", response_model=GrantList, dependencies=READ)
async def list_grants(
    workflow_id: WorkflowId, principal: CurrentPrincipal, service: Access
) -> GrantList:
    """Who holds a role on this workflow above their workspace role."""
    records = await service.store.list_grants(principal.workspace_id, workflow_id)
    return GrantList(items=[GrantOut.from_record(r) for r in records])


@router.put(
    "/workflows/{workflow_id}/grants/{principal_id}",
    response_model=GrantOut,
    dependencies=WRITE,
    openapi_extra=request_body(GrantPut, "application/json"),
    responses=WRITE_BODY,
)
async def put_grant(
    workflow_id: WorkflowId,
    principal_id: PrincipalId,
    document: Document,
    principal: CurrentPrincipal,
    service: Access,
) -> GrantOut:
    """Give a principal a role on this one workflow (its definition, versions and execute)."""
    body = validate_body(GrantPut, document, FIELDS)
    record = await service.put_grant(principal, workflow_id, principal_id, body.role)
    return GrantOut.from_record(record)


@router.delete(
    "/workflows/{workflow_id}/grants/{principal_id}",
    status_code=HTTPStatus.NO_CONTENT,
    response_class=Response,
    dependencies=WRITE,
)
async def delete_grant(
    workflow_id: WorkflowId, principal_id: PrincipalId, principal: CurrentPrincipal, service: Access
) -> Response:
    """Remove a principal's grant on this workflow."""
    await service.delete_grant(principal, workflow_id, principal_id)
    return Response(status_code=HTTPStatus.NO_CONTENT)


@router.get("/workspace/access", response_model=WorkspaceAccess, dependencies=READ)
async def get_workspace_access(principal: CurrentPrincipal, service: Access) -> WorkspaceAccess:
    """The workspace's IP allowlist."""
    cidrs = await service.store.workspace_cidrs(principal.workspace_id)
    return WorkspaceAccess(allowed_cidrs=cidrs)


@router.put(
    "/workspace/access",
    response_model=WorkspaceAccess,
    dependencies=[authorize(Permission.WORKSPACE_WRITE)],
    openapi_extra=request_body(WorkspaceAccess, "application/json"),
    responses=WRITE_BODY,
)
async def put_workspace_access(
    request: Request, document: Document, principal: CurrentPrincipal, service: Access
) -> WorkspaceAccess:
    """Replace the workspace's IP allowlist (`null`: any address). Refused if it would not
    include your own address."""
    body = validate_body(WorkspaceAccess, document, FIELDS)
    cidrs = await service.set_workspace_cidrs(
        principal, body.allowed_cidrs, request_address(request)
    )
    return WorkspaceAccess(allowed_cidrs=cidrs)
