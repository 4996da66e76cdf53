"""``/api/v1/contacts``: thin translations from HTTP onto :class:`ContactService`."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from campaignflow.api.auth import CurrentPrincipal, authorize
from campaignflow.api.body import read_json, validate_body
from campaignflow.api.contact_schemas import (
    FIELDS,
    Contact,
    ContactCreate,
    ContactPage,
    ContactPatch,
)
from campaignflow.api.deps import AppSettings
from campaignflow.api.erasure_schemas import Erasure
from campaignflow.api.pagination import decode_cursor, page_of, page_size
from campaignflow.api.parameters import Cursor, Limit
from campaignflow.api.routers.erasures import Erasures, accepted
from campaignflow.api.schemas import problem_responses, request_body
from campaignflow.security.rbac import Permission
from campaignflow.services.contacts import ContactService
from campaignflow.services.erasures import ErasureRequest
from campaignflow.store.contacts import ContactStore

router = APIRouter(
    prefix="/contacts", tags=["contacts"], responses=problem_responses(400, 401, 404)
)

ContactId = Annotated[str, Path(max_length=64, description="The contact's id.")]


async def get_contact_service(request: Request) -> ContactService:
    """The service on the engine's contact store (which seals their sensitive fields)."""
    contacts: ContactStore = request.app.state.contacts
    return ContactService(contacts)


Contacts = Annotated[ContactService, Depends(get_contact_service)]


@router.post(
    "",
    status_code=HTTPStatus.CREATED,
    response_model=Contact,
    openapi_extra=request_body(ContactCreate, "application/json"),
    responses=problem_responses(409, 413, 415, 422),
    dependencies=[authorize(Permission.CONTACTS_WRITE)],
)
async def create_contact(
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    service: Contacts,
    settings: AppSettings,
) -> Contact:
    """Create a contact known by at least one identity (`userId`, `anonymousId`, `email`);
    `409` if another contact has one of them."""
    document = await read_json(request, limit=settings.api.max_body_bytes)
    body = validate_body(ContactCreate, document, FIELDS)
    record = await service.create(body.to_new(principal.workspace_id))
    response.headers["Location"] = str(
        request.app.url_path_for("get_contact", contact_id=record.id)
    )
    return Contact.from_record(record)


@router.get("", response_model=ContactPage, dependencies=[authorize(Permission.CONTACTS_READ)])
async def list_contacts(
    *,
    principal: CurrentPrincipal,
    service: Contacts,
    settings: AppSettings,
    email: Annotated[
        str | None, Query(max_length=320, description="Only the contact with this email.")
    ] = None,
    user_id: Annotated[
        str | None,
        Query(alias="userId", max_length=200, description="Only the contact with this userId."),
    ] = None,
    anonymous_id: Annotated[
        str | None,
        Query(
            alias="anonymousId",
            max_length=200,
            description="Only the contact that used this anonymousId.",
        ),
    ] = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> ContactPage:
    """List contacts, newest first."""
    size = page_size(limit, settings)
    records = await service.list_contacts(
        principal.workspace_id,
        email=email,
        user_id=user_id,
        anonymous_id=anonymous_id,
        before=decode_cursor(cursor, str),
        limit=size + 1,
    )
    page, next_cursor = page_of(records, size, lambda record: record.id)
    return ContactPage(items=[Contact.from_record(r) for r in page], next_cursor=next_cursor)


@router.get(
    "/{contact_id}", response_model=Contact, dependencies=[authorize(Permission.CONTACTS_READ)]
)
async def get_contact(
    contact_id: ContactId, principal: CurrentPrincipal, service: Contacts
) -> Contact:
    """The contact: its identities' columns, time zone, traits and when it was last seen."""
    return Contact.from_record(await service.get(principal.workspace_id, contact_id))


@router.patch(
    "/{contact_id}",
    response_model=Contact,
    openapi_extra=request_body(ContactPatch, "application/merge-patch+json", "application/json"),
    responses=problem_responses(409, 413, 415, 422),
    dependencies=[authorize(Permission.CONTACTS_WRITE)],
)
async def update_contact(
    contact_id: ContactId,
    request: Request,
    principal: CurrentPrincipal,
    service: Contacts,
    settings: AppSettings,
) -> Contact:
    """Change a contact with a JSON merge patch (RFC 7396): members left out stay, `null`
    clears one, `traits` merges into the traits. `409` if the new userId or email belongs to
    another contact."""
    document = await read_json(request, limit=settings.api.max_body_bytes)
    change = validate_body(ContactPatch, document, FIELDS).to_change()
    return Contact.from_record(await service.update(principal.workspace_id, contact_id, change))


@router.delete(
    "/{contact_id}",
    status_code=HTTPStatus.ACCEPTED,
    response_model=Erasure,
    responses=problem_responses(404),
    dependencies=[authorize(Permission.CONTACTS_ERASE)],
)
async def delete_contact(
    *,
    contact_id: ContactId,
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    service: Contacts,
    erasures: Erasures,
    propagate: Annotated[
        bool, Query(description="Also ask connected CRMs and email providers to delete it.")
    ] = False,
    suppress: Annotated[
        bool, Query(description="Keep digests of its identities so its data cannot come back.")
    ] = True,
) -> Erasure:
    """Erase the contact (GDPR Art. 17): everything held about the person, as
    `POST /erasures` does. Answers `202` with the erasure job; follow it at `Location`."""
    await service.get(principal.workspace_id, contact_id)  # 404 for a contact that is not
    asked = ErasureRequest(contact_id=contact_id, propagate=propagate, suppress=suppress)
    job = await erasures.request(principal.workspace_id, asked, principal.subject)
    return accepted(request, response, job)
