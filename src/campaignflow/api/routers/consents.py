"""``/api/v1/contacts/{id}/consent``: what a person agreed to, per purpose, and the history
with its proof (GDPR Art. 7(1): the controller must be able to show consent was given); thin
translations onto :class:`ConsentService`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from campaignflow.api.auth import CurrentPrincipal, authorize, request_address
from campaignflow.api.body import read_json, validate_body
from campaignflow.api.consent_schemas import (
    FIELDS,
    ConsentHistoryItem,
    ConsentHistoryPage,
    ConsentPatch,
    ContactConsent,
)
from campaignflow.api.deps import AppSettings
from campaignflow.api.pagination import decode_cursor, page_of, page_size
from campaignflow.api.parameters import INSTANT, Cursor, Limit, parse_instant
from campaignflow.api.schemas import problem_responses, request_body
from campaignflow.security.rbac import Permission
from campaignflow.services.consents import ConsentService
from campaignflow.store.consents import ConsentStore

router = APIRouter(prefix="/contacts", tags=["consent"], responses=problem_responses(400, 401, 404))

ContactId = Annotated[str, Path(max_length=64, description="The contact's id.")]
_USER_AGENT_LIMIT = 512


async def get_consent_service(request: Request) -> ConsentService:
    return ConsentService(ConsentStore(request.app.state.database))


Consents = Annotated[ConsentService, Depends(get_consent_service)]


@router.get(
    "/{contact_id}/consent",
    response_model=ContactConsent,
    dependencies=[authorize(Permission.CONTACTS_READ)],
)
async def get_consent(
    contact_id: ContactId, principal: CurrentPrincipal, service: Consents
) -> ContactConsent:
    """The contact's consent now, per purpose: granted or withdrawn, when and from where.
    Workflows see it as `contact.consent.<purpose>` (a boolean)."""
    document = await service.current(principal.workspace_id, contact_id)
    return ContactConsent.of(contact_id, document)


@router.patch(
    "/{contact_id}/consent",
    response_model=ContactConsent,
    openapi_extra=request_body(ConsentPatch, "application/json"),
    responses=problem_responses(413, 415, 422),
    dependencies=[authorize(Permission.CONTACTS_WRITE)],
)
async def update_consent(
    contact_id: ContactId,
    request: Request,
    principal: CurrentPrincipal,
    service: Consents,
    settings: AppSettings,
) -> ContactConsent:
    """Record that the person granted (`true`) or withdrew (`false`) consent for purposes;
    the others stay. Every purpose named goes to the history with its proof — a repeat of
    the current decision too, as a re-confirmation — and the proof defaults to this request's
    client address and User-Agent; the API credential is always recorded. A statement older
    than a purpose's current one (`occurredAt`) goes to the history only. Answers the
    consent after the change."""
    document = await read_json(request, limit=settings.api.max_body_bytes)
    body = validate_body(ConsentPatch, document, FIELDS)
    address = request_address(request)
    user_agent = request.headers.get("user-agent")
    statement = body.to_statement(
        ip=str(address) if address is not None else None,
        user_agent=user_agent[:_USER_AGENT_LIMIT] if user_agent else None,
        client=principal.credential.label,
    )
    state = await service.record(principal.workspace_id, contact_id, statement)
    return ContactConsent.of(contact_id, state)


@router.get(
    "/{contact_id}/consent/history",
    response_model=ConsentHistoryPage,
    dependencies=[authorize(Permission.CONTACTS_READ)],
)
async def list_consent_history(
    *,
    contact_id: ContactId,
    principal: CurrentPrincipal,
    service: Consents,
    settings: AppSettings,
    purpose: Annotated[
        str | None, Query(max_length=64, description="Only statements about this purpose.")
    ] = None,
    before: Annotated[
        str | None,
        Query(
            max_length=64,
            description="Only statements made before this RFC 3339 instant (with offset).",
            json_schema_extra=INSTANT,
        ),
    ] = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> ConsentHistoryPage:
    """Every recorded statement of the contact, newest recorded first, with its source and
    proof (IP, user agent, form, API client, messageId)."""
    size = page_size(limit, settings)
    records = await service.history(
        principal.workspace_id,
        contact_id,
        purpose=purpose,
        occurred_before=parse_instant(before, "before"),
        before=decode_cursor(cursor, str),
        limit=size + 1,
    )
    page, next_cursor = page_of(records, size, lambda record: record.id)
    return ConsentHistoryPage(
        items=[ConsentHistoryItem.from_record(r) for r in page], next_cursor=next_cursor
    )
