"""The right of access and portability (GDPR Art. 15, 20): everything held about a contact, as
one JSON document, written piece by piece; and the contact's records of processing (Art. 30).

A person with years of events must not be loaded at once: :meth:`ContactExport.chunks` reads
each large section in pages (:class:`~campaignflow.store.contact_export.ContactExportStore`)
and yields the document's bytes page by page, for the API to stream. What can fail early does
(an unknown contact is :class:`NotFound` before a byte is sent); the export is recorded in the
records of processing (activity ``export``, legal basis ``legal_obligation``, recipient the
data subject) before it starts, so the document it produces lists itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import orjson

from campaignflow.domain.contacts import ContactRecord
from campaignflow.domain.processing import DATA_SUBJECT, Activity, ProcessingEntry, Purpose
from campaignflow.store.contact_export import ContactExportStore
from campaignflow.store.contacts import ContactStore
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
        """The document's bytes, section by section and page by page."""
        contact = self._contact
        ws, cid = contact.workspace_id, contact.id
        identities = await self._identities()
        named = (cid, identities["email"], identities["userId"], *identities["anonymousIds"])
        subjects = [subject for subject in named if subject]
        head = {
            "format": FORMAT,
            "exportedAt": self._at,
            "workspaceId": ws,
            "contact": _contact(contact),
            "identities": identities,
        }
        yield _dumps(head)[:-1]  # the object stays open: the sections follow
        consent = await self._stores.reads.consent(ws, cid)
        yield b',"consent":{"current":' + _dumps(consent) + b',"history":'
        async for chunk in _array(self._consent_history):
            yield chunk
        yield b'},"suppression":' + _dumps(await self._suppression())
        yield b',"crmLinks":' + _dumps(await self._stores.reads.crm_links(ws, cid))
        for name, pages in (
            ("events", self._events),
            ("executions", partial(self._executions, subjects)),
            ("processingLog", self._processing_log),
        ):
            yield b',"' + name.encode() + b'":'
            async for chunk in _array(pages):
                yield chunk
        yield b"}"

    # ------------------------------------------------------------------ sections

    async def _identities(self) -> dict[str, Any]:
        """The ways the contact is known; the email from the contact itself (its identity row
        holds only a digest)."""
        rows = await self._stores.reads.identities(self._contact.workspace_id, self._contact.id)
        user_ids = [row["value"] for row in rows if row["kind"] == "user_id"]
        return {
            "email": self._contact.email,
            "userId": user_ids[0] if user_ids else self._contact.user_id,
            "anonymousIds": [row["value"] for row in rows if row["kind"] == "anonymous_id"],
        }

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

    async def _consent_history(self) -> AsyncIterator[Page]:
        reads, ws, cid = self._stores.reads, self._contact.workspace_id, self._contact.id
        after: str | None = None
        while page := await reads.consent_records(ws, cid, after=after, limit=self._size):
            yield page
            after = page[-1]["id"]

    async def _events(self) -> AsyncIterator[Page]:
        reads, ws, cid = self._stores.reads, self._contact.workspace_id, self._contact.id
        after: tuple[datetime, str] | None = None
        while page := await reads.events(ws, cid, after=after, limit=self._size):
            yield page
            after = (page[-1]["timestamp"], page[-1]["messageId"])

    async def _executions(self, subjects: list[str]) -> AsyncIterator[Page]:
        """Executions with their steps, dead letters and deliveries nested."""
        reads, ws = self._stores.reads, self._contact.workspace_id
        after: str | None = None
        while page := await reads.executions(ws, subjects, after=after, limit=self._size):
            ids = [execution["id"] for execution in page]
            dead = _by_execution(await reads.dead_letters(ws, ids))
            sent = _by_execution(await reads.deliveries(ws, ids))
            for execution in page:
                execution["steps"] = await self._steps(execution["id"])
                execution["deadLetters"] = dead.get(execution["id"], [])
                execution["deliveries"] = sent.get(execution["id"], [])
            yield page
            after = ids[-1]

    async def _steps(self, execution_id: str) -> Page:
        """One execution's steps, read in pages; held for that execution only (a journey's
        step log is small next to a person's events)."""
        reads, ws = self._stores.reads, self._contact.workspace_id
        steps: Page = []
        while page := await reads.steps(
            ws, execution_id, after=steps[-1]["seq"] if steps else 0, limit=self._size
        ):
            steps.extend(page)
        return steps

    async def _processing_log(self) -> AsyncIterator[Page]:
        store, ws, cid = self._stores.processing, self._contact.workspace_id, self._contact.id
        before: str | None = None
        while records := await store.list(
            ws, cid, ProcessingFilter(before=before), limit=self._size
        ):
            yield [
                {
                    "id": r.id,
                    "occurredAt": r.occurred_at,
                    "activity": r.activity,
                    "purpose": r.purpose,
                    "legalBasis": r.legal_basis,
                    "recipient": r.recipient,
                    "details": r.details,
                }
                for r in records
            ]
            before = records[-1].id


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


async def _array(pages: Callable[[], AsyncIterator[Page]]) -> AsyncIterator[bytes]:
    """A JSON array of every page's items, one chunk per page."""
    yield b"["
    first = True
    async for page in pages():
        if not page:
            continue
        body = b",".join(_dumps(item) for item in page)
        yield body if first else b"," + body
        first = False
    yield b"]"


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS)
