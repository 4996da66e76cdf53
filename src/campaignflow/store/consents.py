"""Consent on the database: the contact's state in ``contacts.consent``, its history with the
proof of each statement in ``consent_records``.

This store is the only writer of ``contacts.consent``, and it writes it under the contact row's
lock: the API path locks the row itself (:meth:`ConsentStore.record`); the event router's path
(:meth:`ConsentStore.record_in`) runs in the router's transaction, after
:meth:`ContactStore.resolve_events` has locked the batch's contacts and read their consent with
them. The identity writers never list the column, so neither side overwrites the other's change.
The state changes nothing else of the row (not ``updated_at``: a CRM sync pushes contacts
changed since its cursor, and consent is not a field it maps).

Every statement filters by ``workspace_id``.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from campaignflow.domain.consent import (
    ConsentChange,
    ConsentDocument,
    apply_changes,
    apply_in_order,
    read_state,
    to_document,
)
from campaignflow.domain.contacts import ContactKey, ContactRecord
from campaignflow.errors import NotFound
from campaignflow.store import contact_sql
from campaignflow.store import pg_batch as pg
from campaignflow.store.database import Database
from campaignflow.store.ids import new_id
from campaignflow.store.tables import consent_records, contacts

_CONTACT = (
    contacts.c.workspace_id == bindparam("workspace"),
    contacts.c.id == bindparam("contact"),
)
_READ_CONSENT = select(contacts.c.consent).where(*_CONTACT)
_LOCK_CONSENT = _READ_CONSENT.with_for_update()
# Parameters: b_workspace, b_id, consent.
_INSERT_RECORDS = insert(consent_records)

_PG_SET_CONSENT = """
UPDATE contacts AS c SET consent = v.consent::jsonb
FROM unnest($1::text[], $2::text[], $3::text[]) AS v(workspace_id, id, consent)
WHERE c.workspace_id = v.workspace_id AND c.id = v.id
"""
_PG_INSERT_RECORDS = """
INSERT INTO consent_records (workspace_id, id, contact_id, purpose, granted, source, proof,
                             occurred_at, recorded_at)
SELECT workspace_id, id, contact_id, purpose, granted, source, proof::jsonb, occurred_at,
       recorded_at
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::boolean[], $6::text[],
            $7::text[], $8::timestamptz[], $9::timestamptz[])
     AS r(workspace_id, id, contact_id, purpose, granted, source, proof, occurred_at,
          recorded_at)
"""
_RECORD_COLUMNS = (
    "workspace_id", "id", "contact_id", "purpose", "granted", "source", "proof",
    "occurred_at", "recorded_at",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    """One statement in a contact's history, with its proof."""

    id: str  # time-ordered: the order it was recorded in
    contact_id: str
    purpose: str
    granted: bool
    source: str
    proof: dict[str, Any]
    occurred_at: datetime
    recorded_at: datetime


class ConsentStore:
    """Consent of the contacts of a :class:`Database`."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def record(
        self,
        workspace_id: str,
        contact_id: str,
        changes: Sequence[ConsentChange],
        now: datetime,
    ) -> ConsentDocument:
        """Apply ``changes`` to the contact (its row locked meanwhile) and record them; the
        state after them. :class:`NotFound` for an unknown contact."""
        params = {"workspace": workspace_id, "contact": contact_id}
        async with self._db.transaction() as connection:
            row = (await connection.execute(_LOCK_CONSENT, params)).first()
            if row is None:
                raise _not_found(contact_id)
            outcome = apply_changes(read_state(row.consent), changes)
            document = to_document(outcome.state)
            key = (workspace_id, contact_id)
            changed = {key: document} if outcome.changed else {}
            recorded = [(key, change) for change in outcome.recorded]
            await _write_portable(connection, changed, recorded, now)
        return document

    @staticmethod
    async def record_in(
        connection: AsyncConnection,
        entries: Sequence[tuple[ContactRecord, Sequence[ConsentChange]]],
        now: datetime,
    ) -> builtins.list[ContactRecord]:
        """The event router's batch, in its transaction: each entry's changes applied to its
        contact in order, in one UPDATE and one INSERT whatever the batch size (no read: the
        records carry the consent read under their lock). Returns each entry's record with
        the consent as of its own changes, so a trigger on the event that grants a purpose
        already sees it granted. A static method: the router holds no database of its own."""
        if not any(changes for _, changes in entries):
            return [record for record, _ in entries]
        batch = apply_in_order([(r.key, r.consent, changes) for r, changes in entries])
        write = _write_pg if connection.dialect.name == "postgresql" else _write_portable
        await write(connection, batch.changed, batch.recorded, now)
        return [
            record if document is record.consent else replace(record, consent=document or {})
            for (record, _), document in zip(entries, batch.after, strict=True)
        ]

    async def current(self, workspace_id: str, contact_id: str) -> ConsentDocument:
        """The contact's consent now; :class:`NotFound` for an unknown contact."""
        params = {"workspace": workspace_id, "contact": contact_id}
        async with self._db.read() as connection:
            row = (await connection.execute(_READ_CONSENT, params)).first()
        if row is None:
            raise _not_found(contact_id)
        return to_document(read_state(row.consent))

    async def history(
        self,
        workspace_id: str,
        contact_id: str,
        *,
        purpose: str | None = None,
        occurred_before: datetime | None = None,
        before: str | None = None,
        limit: int = 50,
    ) -> builtins.list[ConsentRecord]:
        """The contact's statements, newest recorded first, older than the record id
        ``before`` (a page's cursor); only ``purpose``'s, and only those made before
        ``occurred_before``, when given. :class:`NotFound` for an unknown contact (its
        history goes with it when it is erased)."""
        r = consent_records.c
        query = select(*(r[name] for name in _RECORD_COLUMNS[1:])).where(
            r.workspace_id == workspace_id, r.contact_id == contact_id
        )
        if purpose is not None:
            query = query.where(r.purpose == purpose)
        if occurred_before is not None:
            query = query.where(r.occurred_at < occurred_before)
        if before is not None:
            query = query.where(r.id < before)
        query = query.order_by(r.id.desc()).limit(limit)
        params = {"workspace": workspace_id, "contact": contact_id}
        async with self._db.read() as connection:
            if (await connection.execute(_READ_CONSENT, params)).first() is None:
                raise _not_found(contact_id)
            rows = (await connection.execute(query)).all()
        return [ConsentRecord(*row) for row in rows]


# --------------------------------------------------------------------------- writes


async def _write_portable(
    connection: AsyncConnection,
    changed: Mapping[ContactKey, ConsentDocument],
    recorded: Sequence[tuple[ContactKey, ConsentChange]],
    now: datetime,
) -> None:
    if changed:
        states = [
            {"b_workspace": workspace, "b_id": contact_id, "consent": document}
            for (workspace, contact_id), document in changed.items()
        ]
        await connection.execute(contact_sql.SET_CONSENT, states)
    if recorded:
        await connection.execute(_INSERT_RECORDS, _record_rows(recorded, now))


async def _write_pg(
    connection: AsyncConnection,
    changed: Mapping[ContactKey, ConsentDocument],
    recorded: Sequence[tuple[ContactKey, ConsentChange]],
    now: datetime,
) -> None:
    """The same writes as array statements (the router's batches on PostgreSQL)."""
    if changed:
        keys = builtins.list(changed)
        await pg.execute(
            connection,
            _PG_SET_CONSENT,
            [workspace for workspace, _ in keys],
            [contact_id for _, contact_id in keys],
            [pg.json_text(changed[key]) for key in keys],
        )
    if recorded:
        rows = _record_rows(recorded, now)
        for row in rows:
            row["proof"] = pg.json_text(row["proof"])
        await pg.execute(connection, _PG_INSERT_RECORDS, *pg.columns(rows, _RECORD_COLUMNS))


class _OrderedIds:
    """History ids in recording order within this process: an id's low 80 bits are random, so
    two ids of one millisecond sort by chance, and two quick changes through the API would
    list in either order. Each call takes a millisecond after the previous call's (ahead of
    the clock only by as many calls as a millisecond saw) and sorts its own ids."""

    def __init__(self) -> None:
        self._last_ms = 0

    def take(self, count: int) -> builtins.list[str]:
        millis = max(time.time_ns() // 1_000_000, self._last_ms + 1)
        self._last_ms = millis
        return sorted(new_id(millis) for _ in range(count))


_IDS = _OrderedIds()


def _record_rows(
    recorded: Sequence[tuple[ContactKey, ConsentChange]], now: datetime
) -> builtins.list[dict[str, Any]]:
    ids = _IDS.take(len(recorded))
    return [
        {
            "workspace_id": workspace,
            "id": record_id,
            "contact_id": contact_id,
            "purpose": change.purpose,
            "granted": change.granted,
            "source": change.source,
            "proof": change.proof.to_document(),
            "occurred_at": change.occurred_at,
            "recorded_at": now,
        }
        for record_id, ((workspace, contact_id), change) in zip(ids, recorded, strict=True)
    ]


def _not_found(contact_id: str) -> NotFound:
    return NotFound(f"Contact {contact_id!r} does not exist.")
