"""Reading everything held about one contact, for the right of access and portability
(GDPR Art. 15, 20).

The per-table knowledge of the export is here and only here: which tables hold a person's rows,
how they are found (the contact id, the execution subject, the executions' ids) and how their
sealed values are opened. Large collections (events, executions and their steps, the records of
processing) are read in keyset pages, so the service can stream a person with a million events
without holding them. Values come back as JSON-ready dicts in the API's camelCase, sealed fields
opened, email identities (stored as blind-index digests) left to the caller, who has the
contact's address in clear.

Every statement filters by ``workspace_id``, and by the contact or its executions.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select

from campaignflow.security.contact_fields import ContactCipher
from campaignflow.security.sealed_records import open_event_payload, open_execution
from campaignflow.store import tables as t
from campaignflow.store.database import Database

EventPosition = tuple[datetime, str]  # (timestamp, message_id)


class ContactExportStore:
    """The reads of an export, on ``database``; sealed values opened with ``cipher``."""

    def __init__(self, database: Database, cipher: ContactCipher) -> None:
        self._db = database
        self._cipher = cipher

    async def consent(self, workspace_id: str, contact_id: str) -> Any:
        """The contact's consent now (``contacts.consent``), or ``None``."""
        query = select(t.contacts.c.consent).where(
            t.contacts.c.workspace_id == workspace_id, t.contacts.c.id == contact_id
        )
        return await self._scalar(query)

    async def identities(self, workspace_id: str, contact_id: str) -> list[dict[str, Any]]:
        """``[{kind, value, createdAt}]``; an email's ``value`` is its digest."""
        c = t.contact_identities.c
        query = (
            select(c.kind, c.value, c.created_at)
            .where(c.workspace_id == workspace_id, c.contact_id == contact_id)
            .order_by(c.created_at, c.kind, c.value)
        )
        return [
            {"kind": kind, "value": value, "createdAt": at}
            for kind, value, at in await self._all(query)
        ]

    async def consent_records(
        self, workspace_id: str, contact_id: str, *, after: str | None, limit: int
    ) -> list[dict[str, Any]]:
        """Every change of consent, oldest first, with its proof."""
        c = t.consent_records.c
        query = select(
            c.id, c.purpose, c.granted, c.source, c.proof, c.occurred_at, c.recorded_at
        ).where(c.workspace_id == workspace_id, c.contact_id == contact_id)
        if after is not None:
            query = query.where(c.id > after)
        rows = await self._all(query.order_by(c.id).limit(limit))
        return [
            {
                "id": row.id,
                "purpose": row.purpose,
                "granted": row.granted,
                "source": row.source,
                "proof": row.proof,
                "occurredAt": row.occurred_at,
                "recordedAt": row.recorded_at,
            }
            for row in rows
        ]

    async def events(
        self, workspace_id: str, contact_id: str, *, after: EventPosition | None, limit: int
    ) -> list[dict[str, Any]]:
        """The contact's events, oldest first, payloads as received (sealed keys opened)."""
        c = t.events.c
        query = select(
            c.message_id,
            c.type,
            c.name,
            c.user_id,
            c.anonymous_id,
            c.payload,
            c.sealed,
            c.timestamp,
            c.received_at,
        ).where(c.workspace_id == workspace_id, c.contact_id == contact_id)
        if after is not None:
            at, message_id = after
            query = query.where(
                (c.timestamp > at) | ((c.timestamp == at) & (c.message_id > message_id))
            )
        rows = await self._all(query.order_by(c.timestamp, c.message_id).limit(limit))
        return [self._event(workspace_id, row) for row in rows]

    async def executions(
        self, workspace_id: str, subjects: Sequence[str], *, after: str | None, limit: int
    ) -> list[dict[str, Any]]:
        """The executions about the person, oldest first, with their input, contact snapshot
        and state opened. ``subjects``: the contact's id (what triggers start executions for)
        and the identity values an API caller may have named the person by (userId,
        anonymousIds, email)."""
        c = t.executions.c
        query = select(
            c.id,
            c.workflow_id,
            c.workflow_version,
            c.status,
            c.trigger,
            c.input,
            c.contact,
            c.state,
            c.sealed,
            c.error,
            c.exit_reason,
            c.created_at,
            c.updated_at,
            c.finished_at,
        ).where(c.workspace_id == workspace_id, c.subject_id.in_(list(subjects)))
        if after is not None:
            query = query.where(c.id > after)
        rows = await self._all(query.order_by(c.id).limit(limit))
        return [self._execution(workspace_id, row) for row in rows]

    async def steps(
        self, workspace_id: str, execution_id: str, *, after: int, limit: int
    ) -> list[dict[str, Any]]:
        """An execution's step log from ``seq`` ``after`` + 1 on."""
        c = t.execution_steps.c
        query = (
            select(
                c.seq,
                c.node_id,
                c.node_type,
                c.token,
                c.attempt,
                c.status,
                c.started_at,
                c.finished_at,
                c.output,
                c.error,
            )
            .where(c.workspace_id == workspace_id, c.execution_id == execution_id, c.seq > after)
            .order_by(c.seq)
            .limit(limit)
        )
        return [_camel(row._mapping) for row in await self._all(query)]

    async def dead_letters(
        self, workspace_id: str, execution_ids: Sequence[str]
    ) -> list[dict[str, Any]]:
        """The dead letters of these executions (each one's ``executionId`` says whose)."""
        c = t.dead_letters.c
        query = (
            select(
                c.id,
                c.execution_id,
                c.workflow_id,
                c.node_id,
                c.status,
                c.attempts,
                c.errors,
                c.input,
                c.created_at,
                c.resolved_at,
            )
            .where(c.workspace_id == workspace_id, c.execution_id.in_(list(execution_ids)))
            .order_by(c.id)
        )
        return [_camel(row._mapping) for row in await self._all(query)] if execution_ids else []

    async def deliveries(
        self, workspace_id: str, execution_ids: Sequence[str]
    ) -> list[dict[str, Any]]:
        """The messages these executions sent, and how far each got."""
        c = t.message_deliveries.c
        query = (
            select(
                c.send_id,
                c.execution_id,
                c.node_id,
                c.connection_id,
                c.provider,
                c.provider_message_id,
                c.status,
                c.events,
                c.sent_at,
                c.updated_at,
            )
            .where(c.workspace_id == workspace_id, c.execution_id.in_(list(execution_ids)))
            .order_by(c.sent_at, c.send_id)
        )
        return [_camel(row._mapping) for row in await self._all(query)] if execution_ids else []

    async def crm_links(self, workspace_id: str, contact_id: str) -> list[dict[str, Any]]:
        """The CRM records the contact is linked to: which connection, the record's id, when
        it was last synced."""
        links, connections = t.sync_links.c, t.connections.c
        query = (
            select(
                links.connection_id,
                connections.name.label("connection"),
                connections.provider,
                links.remote_id,
                links.synced_at,
            )
            .join_from(
                t.sync_links,
                t.connections,
                (connections.id == links.connection_id)
                & (connections.workspace_id == links.workspace_id),
            )
            .where(links.workspace_id == workspace_id, links.contact_id == contact_id)
            .order_by(connections.name)
        )
        return [_camel(row._mapping) for row in await self._all(query)]

    # ------------------------------------------------------------------ helpers

    def _event(self, workspace_id: str, row: Any) -> dict[str, Any]:
        payload = open_event_payload(
            self._cipher, workspace_id, row.message_id, row.payload, row.sealed
        )
        return {
            "messageId": row.message_id,
            "type": row.type,
            "name": row.name,
            "userId": row.user_id,
            "anonymousId": row.anonymous_id,
            "timestamp": row.timestamp,
            "receivedAt": row.received_at,
            **payload,
        }

    def _execution(self, workspace_id: str, row: Any) -> dict[str, Any]:
        opened = open_execution(self._cipher, workspace_id, row.id, dict(row._mapping))
        return _camel(opened)

    async def _all(self, query: Any) -> list[Any]:
        async with self._db.read() as connection:
            return list((await connection.execute(query)).all())

    async def _scalar(self, query: Any) -> Any:
        async with self._db.read() as connection:
            return (await connection.execute(query)).scalar_one_or_none()


def _camel(row: Any) -> dict[str, Any]:
    """A row's mapping with the API's member names (``node_id`` → ``nodeId``)."""
    return {_camel_name(name): value for name, value in dict(row).items()}


def _camel_name(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part.title() for part in rest)
