"""``/api/v1/erasures``: the right to erasure (GDPR Art. 17); thin translations onto
:class:`ErasureService`. An email or userId goes in the body, never in the URL (paths and
queries are what proxies and access logs keep); answers show it only as a keyed digest."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response

from campaignflow.api.auth import CurrentPrincipal, authorize
from campaignflow.api.body import read_json, validate_body
from campaignflow.api.deps import AppSettings
from campaignflow.api.erasure_schemas import FIELDS, Erasure, ErasureCreate, ErasurePage
from campaignflow.api.pagination import decode_cursor, page_of, page_size
from campaignflow.api.parameters import Cursor, Limit
from campaignflow.api.schemas import problem_responses, request_body
from campaignflow.security.rbac import Permission
from campaignflow.services.erasures import ErasureRequest, ErasureService
from campaignflow.store.erasure import ErasureJob, ErasureStore

router = APIRouter(prefix="/erasures", tags=["erasures"], responses=problem_responses(400, 401))

# How long a process believes a workspace has erased nobody: an erasure stops ingestion of
# the person's events in other processes within this time.

ErasureId = Annotated[str, Path(max_length=64, description="The erasure's id.")]


async def get_erasure_service(request: Request) -> ErasureService:
    """The service on the app's database and the engine's contact cipher (which seals the
    identities a job keeps until it is done)."""
    cipher = request.app.state.contacts.cipher
    return ErasureService(ErasureStore(request.app.state.database, cipher))


Erasures = Annotated[ErasureService, Depends(get_erasure_service)]


def accepted(request: Request, response: Response, job: ErasureJob) -> Erasure:
    """The ``202`` answer: the job, and where to follow it."""
    response.headers["Location"] = str(request.app.url_path_for("get_erasure", erasure_id=job.id))
    return Erasure.from_job(job)


@router.post(
    "",
    status_code=HTTPStatus.ACCEPTED,
    response_model=Erasure,
    openapi_extra=request_body(ErasureCreate, "application/json"),
    responses=problem_responses(413, 415, 422),
    dependencies=[authorize(Permission.CONTACTS_ERASE)],
)
async def create_erasure(
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    service: Erasures,
    settings: AppSettings,
) -> Erasure:
    """Erase a person: their contact, events, executions, step logs, dead letters, deliveries,
    consent and processing records, CRM sync state and queued stream entries. Runs as a job:
    follow it at `Location`. A subject that names no contact still runs (its stream entries,
    its events by userId, its suppression digests)."""
    document = await read_json(request, limit=settings.api.max_body_bytes)
    body = validate_body(ErasureCreate, document, FIELDS)
    asked = ErasureRequest(body.contact_id, body.email, body.user_id, body.propagate, body.suppress)
    job = await service.request(principal.workspace_id, asked, principal.subject)
    return accepted(request, response, job)


@router.get("", response_model=ErasurePage, dependencies=[authorize(Permission.CONTACTS_ERASE)])
async def list_erasures(
    *,
    principal: CurrentPrincipal,
    service: Erasures,
    settings: AppSettings,
    limit: Limit = None,
    cursor: Cursor = None,
) -> ErasurePage:
    """Erasures, newest first."""
    size = page_size(limit, settings)
    jobs = await service.list_erasures(
        principal.workspace_id, before=decode_cursor(cursor, str), limit=size + 1
    )
    page, next_cursor = page_of(jobs, size, lambda job: job.id)
    return ErasurePage(items=[Erasure.from_job(job) for job in page], next_cursor=next_cursor)


@router.get(
    "/{erasure_id}",
    response_model=Erasure,
    responses=problem_responses(404),
    dependencies=[authorize(Permission.CONTACTS_ERASE)],
)
async def get_erasure(
    erasure_id: ErasureId, principal: CurrentPrincipal, service: Erasures
) -> Erasure:
    """How the erasure went: its status, rows removed per table, propagation per connection."""
    return Erasure.from_job(await service.get(principal.workspace_id, erasure_id))
