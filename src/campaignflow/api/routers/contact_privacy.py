"""``/api/v1/contacts/{id}/processing-log`` and ``/api/v1/contacts/{id}/export``: a person's
records of processing (GDPR Art. 30) and everything held about them (Art. 15, 20); thin
translations onto :class:`ContactExportService`."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import StreamingResponse

from campaignflow.api.auth import CurrentPrincipal, authorize
from campaignflow.api.deps import AppSettings
from campaignflow.api.pagination import decode_cursor, page_of, page_size
from campaignflow.api.parameters import INSTANT, Cursor, Limit, parse_instant
from campaignflow.api.privacy_log_schemas import ProcessingLogEntry, ProcessingLogPage
from campaignflow.api.schemas import problem_responses
from campaignflow.security.rbac import Permission
from campaignflow.services.contact_export import ContactExportService, ExportStores
from campaignflow.store.contact_export import ContactExportStore
from campaignflow.store.contacts import ContactStore
from campaignflow.store.processing_log import ProcessingFilter, ProcessingLogStore
from campaignflow.store.suppressions import SuppressionStore
from campaignflow.store.workflows import utc_now

router = APIRouter(prefix="/contacts", tags=["privacy"], responses=problem_responses(400, 401, 404))

ContactId = Annotated[str, Path(max_length=64, description="The contact's id.")]
Since = Annotated[
    str | None,
    Query(
        max_length=64,
        description="Only entries that occurred at or after this RFC 3339 instant (with offset).",
        json_schema_extra=INSTANT,
    ),
]
Before = Annotated[
    str | None,
    Query(
        max_length=64,
        description="Only entries that occurred before this RFC 3339 instant (with offset).",
        json_schema_extra=INSTANT,
    ),
]


async def get_export_service(request: Request) -> ContactExportService:
    """The service on the engine's contact store and key ring (sealed values are opened)."""
    contacts: ContactStore = request.app.state.contacts
    database = request.app.state.database
    stores = ExportStores(
        contacts=contacts,
        reads=ContactExportStore(database, contacts.cipher),
        suppressions=SuppressionStore(database, contacts.cipher),
        processing=ProcessingLogStore(database),
    )
    return ContactExportService(stores, utc_now)


Exports = Annotated[ContactExportService, Depends(get_export_service)]


@router.get(
    "/{contact_id}/processing-log",
    response_model=ProcessingLogPage,
    dependencies=[authorize(Permission.PRIVACY_READ)],
)
async def list_processing_log(
    *,
    contact_id: ContactId,
    principal: CurrentPrincipal,
    service: Exports,
    settings: AppSettings,
    activity: Annotated[
        str | None,
        Query(
            max_length=64,
            description="Only this activity (`action`, `crm.sync`, `export`, "
            "`erasure.propagated`).",
        ),
    ] = None,
    since: Since = None,
    before: Before = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> ProcessingLogPage:
    """Each processing of the contact's data — a connector or `http` step that sent it to a
    third party, a push to a CRM, an export, an erasure passed on to a provider — with its
    purpose, legal basis and recipient, newest first.
    `since` (inclusive) and `before` (exclusive) bound when it occurred (RFC 3339)."""
    size = page_size(limit, settings)
    where = ProcessingFilter(
        activity=activity,
        since=parse_instant(since, "since"),
        until=parse_instant(before, "before"),
        before=decode_cursor(cursor, str),
    )
    records = await service.processing_log(
        principal.workspace_id, contact_id, where, limit=size + 1
    )
    page, next_cursor = page_of(records, size, lambda record: record.id)
    return ProcessingLogPage(
        items=[ProcessingLogEntry.from_record(r) for r in page], next_cursor=next_cursor
    )


@router.get(
    "/{contact_id}/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Everything held about the contact, as one JSON document "
            "(an attachment).",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
    dependencies=[authorize(Permission.CONTACTS_EXPORT)],
)
async def export_contact(
    contact_id: ContactId, principal: CurrentPrincipal, service: Exports
) -> StreamingResponse:
    """Everything held about the person (GDPR Art. 15 and 20): the contact with its sensitive
    fields, its identities, consent now and every change with its proof, events, executions
    with their steps, dead letters and deliveries, CRM links, the suppression status of its
    address and the records of processing. Streamed; the export itself is recorded as
    processing (activity `export`, legal basis `legal_obligation`)."""
    export = await service.export(
        principal.workspace_id, contact_id, requested_by=principal.subject
    )
    filename = quote(f"contact-{export.contact_id}.json", safe="")
    return StreamingResponse(
        export.chunks(),
        media_type="application/json",
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{filename}",
            "Cache-Control": "no-store",
        },
    )
