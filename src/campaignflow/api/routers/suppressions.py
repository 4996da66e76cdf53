"""``/api/v1/suppressions``: the addresses no message may go to; thin translations onto
:class:`SuppressionService`. Addresses travel in the query (``?email=``) or the body, never in
the path: paths are what proxies and access logs keep."""

from __future__ import annotations

from datetime import datetime
from http import HTTPStatus
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from campaignflow.api.auth import CurrentPrincipal, authorize
from campaignflow.api.body import read_json, validate_body
from campaignflow.api.deps import AppSettings
from campaignflow.api.pagination import decode_cursor, page_of, page_size
from campaignflow.api.parameters import Cursor, Limit
from campaignflow.api.problems import ProblemError
from campaignflow.api.schemas import problem_responses, request_body
from campaignflow.api.suppression_schemas import (
    FIELDS,
    Suppression,
    SuppressionCheck,
    SuppressionCreate,
    SuppressionPage,
    SuppressionReason,
)
from campaignflow.security.rbac import Permission
from campaignflow.services.suppressions import SuppressionService
from campaignflow.store.suppressions import SuppressionRecord, SuppressionStore

router = APIRouter(
    prefix="/suppressions", tags=["suppressions"], responses=problem_responses(400, 401)
)

Email = Annotated[str, Query(min_length=1, max_length=320, description="The address, in any case.")]


async def get_suppression_service(request: Request) -> SuppressionService:
    store: SuppressionStore = request.app.state.suppressions
    return SuppressionService(store)


Suppressions = Annotated[SuppressionService, Depends(get_suppression_service)]


@router.get(
    "", response_model=SuppressionPage, dependencies=[authorize(Permission.SUPPRESSIONS_READ)]
)
async def list_suppressions(
    *,
    principal: CurrentPrincipal,
    service: Suppressions,
    settings: AppSettings,
    reason: Annotated[
        SuppressionReason | None, Query(description="Only entries with this reason.")
    ] = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> SuppressionPage:
    """The list, newest first. Entries hold the address's keyed digest, not the address: ask
    `GET /suppressions/check?email=` about one address."""
    size = page_size(limit, settings)
    records = await service.list_suppressions(
        principal.workspace_id,
        reason=reason.value if reason else None,
        before=_position(decode_cursor(cursor, str)),
        limit=size + 1,
    )
    page, next_cursor = page_of(records, size, _cursor_key)
    return SuppressionPage(
        items=[Suppression.from_record(r) for r in page], next_cursor=next_cursor
    )


@router.get(
    "/check",
    response_model=SuppressionCheck,
    dependencies=[authorize(Permission.SUPPRESSIONS_READ)],
)
async def check_suppression(
    email: Email, principal: CurrentPrincipal, service: Suppressions
) -> SuppressionCheck:
    """Whether mail may go to the address, and if not, why."""
    record = await service.check(principal.workspace_id, email)
    entry = Suppression.from_record(record) if record else None
    return SuppressionCheck(email=email, suppressed=record is not None, suppression=entry)


@router.post(
    "",
    status_code=HTTPStatus.CREATED,
    response_model=Suppression,
    openapi_extra=request_body(SuppressionCreate, "application/json"),
    responses={
        200: {"model": Suppression, "description": "The address was suppressed already."},
        **problem_responses(409, 413, 415, 422),
    },
    dependencies=[authorize(Permission.SUPPRESSIONS_WRITE)],
)
async def add_suppression(
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    service: Suppressions,
    settings: AppSettings,
) -> Suppression:
    """Suppress an address by hand (reason `manual`); 200 with the existing entry, and its
    reason, when it is suppressed already."""
    document = await read_json(request, limit=settings.api.max_body_bytes)
    body = validate_body(SuppressionCreate, document, FIELDS)
    record, added = await service.add(principal.workspace_id, body.email)
    if not added:
        response.status_code = HTTPStatus.OK
    return Suppression.from_record(record)


@router.delete(
    "",
    response_model=Suppression,
    responses=problem_responses(404),
    dependencies=[authorize(Permission.SUPPRESSIONS_WRITE)],
)
async def remove_suppression(
    email: Email, principal: CurrentPrincipal, service: Suppressions
) -> Suppression:
    """Lift the suppression of an address (mail may go to it again); the entry removed. 404
    when it is not suppressed."""
    return Suppression.from_record(await service.remove(principal.workspace_id, email))


def _cursor_key(record: SuppressionRecord) -> str:
    return f"{record.created_at.isoformat()}|{record.email_digest}"


def _position(key: str | None) -> tuple[datetime, str] | None:
    if key is None:
        return None
    at, _, digest = key.partition("|")
    try:
        moment = datetime.fromisoformat(at)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None or not digest:
        raise ProblemError(
            HTTPStatus.BAD_REQUEST,
            "invalid-request",
            "The cursor is not one this API issued.",
            problems=[{"parameter": "cursor", "in": "query", "detail": "invalid cursor"}],
        )
    return moment, digest
