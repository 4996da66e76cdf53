"""The records of processing (``processing_log``): written in batches, read per contact.

Writers are the connector steps (through :mod:`campaignflow.compliance.processing`'s buffer), the
CRM sync and the export; the readers are the API's per-contact list and the export itself; the
retention purger removes old entries in bounded batches. An entry's id is made from the time it
occurred (:func:`~campaignflow.store.ids.new_id`), so id order is time order: the list is a
keyset walk of the (workspace, contact, id) index, and a cursor is one id.

Every statement filters by ``workspace_id``.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select

from campaignflow.domain.processing import ProcessingEntry
from campaignflow.store import pg_batch as pg
from campaignflow.store.database import Database
from campaignflow.store.ids import new_id
from campaignflow.store.tables import processing_log

_FIELDS = (
    "workspace_id", "id", "contact_id", "occurred_at", "activity", "purpose", "legal_basis",
    "recipient", "details",
)  # fmt: skip
_INSERT = insert(processing_log)
_PG_INSERT = """
INSERT INTO processing_log (workspace_id, id, contact_id, occurred_at, activity, purpose,
                            legal_basis, recipient, details)
SELECT workspace_id, id, contact_id, occurred_at, activity, purpose, legal_basis, recipient,
       details::jsonb
FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[], $6::text[],
            $7::text[], $8::text[], $9::text[])
     AS p(workspace_id, id, contact_id, occurred_at, activity, purpose, legal_basis, recipient,
          details)
"""
_COLUMNS = tuple(processing_log.c[name] for name in _FIELDS)


@dataclass(frozen=True, slots=True)
class ProcessingRecord:
    """A stored entry (``legal_basis`` as the column holds it)."""

    workspace_id: str
    id: str
    contact_id: str
    occurred_at: datetime
    activity: str
    purpose: str
    legal_basis: str
    recipient: str
    details: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class ProcessingFilter:
    """Which entries of a contact a list returns: an activity, a time range (``since``
    inclusive, ``until`` exclusive), and the keyset position (entries older than the id
    ``before``)."""

    activity: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before: str | None = None


class ProcessingLogStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def add(self, entries: Sequence[ProcessingEntry]) -> None:
        """Insert ``entries`` in one statement (PostgreSQL: arrays; SQLite: executemany)."""
        if not entries:
            return
        rows = [_row(entry) for entry in entries]
        async with self._db.transaction() as connection:
            if self._db.dialect == "postgresql":
                await pg.execute(connection, _PG_INSERT, *_pg_columns(rows))
            else:
                await connection.execute(_INSERT, rows)

    async def list(
        self,
        workspace_id: str,
        contact_id: str,
        where: ProcessingFilter | None = None,
        *,
        limit: int = 50,
    ) -> builtins.list[ProcessingRecord]:
        """A contact's entries, newest first."""
        where = where or ProcessingFilter()
        table = processing_log.c
        query = select(*_COLUMNS).where(
            table.workspace_id == workspace_id, table.contact_id == contact_id
        )
        if where.activity is not None:
            query = query.where(table.activity == where.activity)
        if where.since is not None:
            query = query.where(table.occurred_at >= where.since)
        if where.until is not None:
            query = query.where(table.occurred_at < where.until)
        if where.before is not None:
            query = query.where(table.id < where.before)
        query = query.order_by(table.id.desc()).limit(limit)
        async with self._db.read() as connection:
            rows = (await connection.execute(query)).all()
        return [ProcessingRecord(**row._mapping) for row in rows]

    async def purge_older_than(self, workspace_id: str, cutoff: datetime, batch: int) -> int:
        """Delete up to ``batch`` of the workspace's entries that occurred before ``cutoff``,
        oldest first; the number deleted. One short transaction per call, so a purger calling
        it until it returns less than ``batch`` never holds locks long enough to stall writers."""
        table = processing_log.c
        due = (
            select(table.id)
            .where(table.workspace_id == workspace_id, table.occurred_at < cutoff)
            .order_by(table.occurred_at)
            .limit(batch)
            .scalar_subquery()
        )
        statement = delete(processing_log).where(
            table.workspace_id == workspace_id, table.id.in_(due)
        )
        async with self._db.transaction() as connection:
            return int((await connection.execute(statement)).rowcount)


def _row(entry: ProcessingEntry) -> dict[str, Any]:
    at_ms = int(entry.occurred_at.timestamp() * 1000)
    return {
        "workspace_id": entry.workspace_id,
        "id": new_id(at_ms),
        "contact_id": entry.contact_id,
        "occurred_at": entry.occurred_at,
        "activity": entry.activity,
        "purpose": entry.purpose,
        "legal_basis": entry.legal_basis.value,
        "recipient": entry.recipient,
        "details": None if entry.details is None else dict(entry.details),
    }


def _pg_columns(rows: Sequence[dict[str, Any]]) -> tuple[builtins.list[Any], ...]:
    columns = pg.columns(rows, _FIELDS)
    details = _FIELDS.index("details")
    return (
        *columns[:details],
        [pg.json_or_null(value) for value in columns[details]],
        *columns[details + 1 :],
    )
