"""The right of access and portability (GDPR Art. 15, 20): everything held about a contact, as
one JSON document, written piece by piece; and the contact's records of processing (Art. 30).

The document holds every table of :data:`~campaignflow.store.personal_data.PERSONAL_DATA` (the
list erasure deletes by), each where its rendering puts it: the head (contact, identities,
consent, CRM links), the executions with their child tables nested, and one array per other
table. A person with years of events must not be loaded at once: :meth:`ContactExport.chunks`
reads each section in keyset pages (:class:`~campaignflow.store.contact_export.ContactExportStore`)
and yields the document's bytes page by page, for the API to stream. What can fail early does
(an unknown contact is :class:`NotFound` before a byte is sent); the export is recorded in the
records of processing (activity ``export``, legal basis ``legal_obligation``, recipient the
data subject) before it starts, so the document it produces lists itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import orjson

from campaignflow.domain.contacts import ContactRecord
from campaignflow.domain.processing import DATA_SUBJECT, Activity, ProcessingEntry, Purpose
from campaignflow.store import personal_data as pd
from campaignflow.store.contact_export import (
    RENDERINGS,
    ContactExportStore,
    Place,
    person_of,
    personal,
    sections,
)
from campaignflow.store.contacts import ContactStore
from campaignflow.store.personal_data import Person, PersonalTable
from campaignflow.store.processing_log import (
    ProcessingFilter,
    ProcessingLogStore,
    ProcessingRecord,
)
from campaignflow.store.suppressions import SuppressionStore

FORMAT = "campaignflow.contact-export/1"
Page = list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class ExportStores:
    contacts: ContactStore
    reads: ContactExportStore
    suppressions: SuppressionStore
    processing: ProcessingLogStore


class ContactExportService:
    def __init__(
        self, stores: ExportStores, now: Callable[[], datetime], *, page_size: int = 500
    ) -> None:
        self._stores = stores
        self._now = now
        self._page_size = page_size

    async def export(
        self, workspace_id: str, contact_id: str, *, requested_by: str | None = None
    ) -> ContactExport:
        """The export of a contact (:class:`NotFound` when the workspace has none with this
        id), recorded as processing before any of it is read."""
        contact = await self._stores.contacts.get(workspace_id, contact_id)
        at = self._now()
        details = {"requestedBy": requested_by} if requested_by else None
        entry = ProcessingEntry.of(
            workspace_id=workspace_id,
            contact_id=contact_id,
            occurred_at=at,
            activity=Activity.EXPORT,
            purpose=Purpose.ACCESS_REQUEST,
            recipient=DATA_SUBJECT,
            details=details,
        )
        await self._stores.processing.add([entry])
        return ContactExport(self._stores, contact, at, self._page_size)

    async def processing_log(
        self, workspace_id: str, contact_id: str, where: ProcessingFilter, *, limit: int
    ) -> list[ProcessingRecord]:
        """What was done with the contact's data, by whom and on what basis (Art. 15(1)(a)-(c)
        and Art. 30), newest first; :class:`NotFound` for a contact the workspace lacks."""
        await self._stores.contacts.get(workspace_id, contact_id)
        return await self._stores.processing.list(workspace_id, contact_id, where, limit=limit)


class ContactExport:
    """One contact's document, produced on demand by :meth:`chunks`."""

    def __init__(
        self, stores: ExportStores, contact: ContactRecord, at: datetime, page_size: int
    ) -> None:
        self._stores = stores
        self._contact = contact
        self._at = at
        self._size = page_size

    @property
    def contact_id(self) -> str:
        return self._contact.id

    async def chunks(self) -> AsyncIterator[bytes]:
        """The document's bytes: the head (the contact, its identities, consent, suppression
        and CRM links), then one array per table rendered in the document
        (:data:`~campaignflow.store.contact_export.RENDERINGS`), page by page."""
        contact, reads = self._contact, self._stores.reads
        named = Person(contact.workspace_id, contact_ids=(contact.id,))
        identities = await reads.rows(personal("contact_identities"), named)
        links = await reads.crm_links(named)
        person = person_of(contact, identities, links)
        head = {
            "format": FORMAT,
            "exportedAt": self._at,
            "workspaceId": contact.workspace_id,
            "contact": _contact(contact),
            "identities": _identities(contact, person),
        }
        yield _dumps(head)[:-1]  # the object stays open: the sections follow
        yield b',"consent":{"current":' + _dumps(contact.consent or None) + b',"history":'
        async for chunk in _array(reads.pages(personal("consent_records"), person, self._size)):
            yield chunk
        yield b'},"suppression":' + _dumps(await self._suppression())
        yield b',"crmLinks":' + _dumps(links)
        for entry in sections(Place.DOCUMENT):
            yield b',"' + RENDERINGS[entry.table.name].member.encode() + b'":'
            async for chunk in _array(self._rows(entry, person)):
                yield chunk
        yield b"}"

    # ------------------------------------------------------------------ sections

    def _rows(self, entry: PersonalTable, person: Person) -> AsyncIterator[Page]:
        if entry is pd.EXECUTIONS:
            return self._executions(person)
        return self._stores.reads.pages(entry, person, self._size)

    async def _executions(self, person: Person) -> AsyncIterator[Page]:
        """Executions with the rows of their child tables nested (steps, tasks, waits, dead
        letters, deliveries), a page of executions at a time."""
        reads = self._stores.reads
        async for page in reads.pages(pd.EXECUTIONS, person, self._size):
            of_page = replace(person, execution_ids=tuple(x["id"] for x in page))
            for child in sections(Place.EXECUTION):
                member = RENDERINGS[child.table.name].member
                found = await reads.by_execution(child, of_page, self._size)
                for execution in page:
                    execution[member] = found.get(execution["id"], [])
            yield page

    async def _suppression(self) -> dict[str, Any]:
        email = self._contact.email
        record = (
            await self._stores.suppressions.get(self._contact.workspace_id, email)
            if email
            else None
        )
        if record is None:
            return {"suppressed": False}
        return {
            "suppressed": True,
            "reason": record.reason,
            "source": record.source,
            "createdAt": record.created_at,
        }


def _identities(contact: ContactRecord, person: Person) -> dict[str, Any]:
    """The ways the contact is known; the email from the contact itself (its identity row
    holds only a digest)."""
    return {
        "email": contact.email,
        "userId": person.user_ids[0] if person.user_ids else None,
        "anonymousIds": list(person.anonymous_ids),
    }


def _contact(contact: ContactRecord) -> dict[str, Any]:
    return {
        "id": contact.id,
        "userId": contact.user_id,
        "email": contact.email,
        "timezone": contact.timezone,
        "traits": contact.traits,
        "createdAt": contact.created_at,
        "updatedAt": contact.updated_at,
        "lastSeenAt": contact.last_seen_at,
    }


def _by_execution(rows: Page) -> dict[str, Page]:
    grouped: dict[str, Page] = {}
    for row in rows:
        grouped.setdefault(row["executionId"], []).append(row)
    return grouped


async def _array(pages: AsyncIterator[Page]) -> AsyncIterator[bytes]:
    """A JSON array of every page's items, one chunk per page."""
    yield b"["
    first = True
    async for page in pages:
        if not page:
            continue
        body = b",".join(_dumps(item) for item in page)
        yield body if first else b"," + body
        first = False
    yield b"]"


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS)
