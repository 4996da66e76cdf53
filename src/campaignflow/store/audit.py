"""The audit log's storage: append a batch of entries, list them, read a chain in pages.

Append-only by construction: this module has no update and no delete, and on both databases a
trigger (migration 0005) refuses UPDATE and DELETE of ``audit_log`` rows.

Appending extends each workspace's chain from its head (last seq and hash), so the head must
not move between reading it and inserting after it, even with several API processes appending:

- PostgreSQL: ``pg_advisory_xact_lock`` on a key derived from the workspace id, *then* the head
  is read (READ COMMITTED: that statement sees every chain committed before the lock was
  granted). ``SELECT … FOR UPDATE`` on the last row would not do: an empty log has no row to
  lock, so two first appenders both write seq 1; and a waiter woken after the holder commits
  re-checks only the row it waited for, so it returns the old head and collides on its seq.
- SQLite: transactions begin ``IMMEDIATE`` (see :mod:`campaignflow.store.database`), so the
  writer holds the database's write lock before it reads the head.

A batch holding several workspaces locks them in sorted order, so two batches never deadlock.
"""

from __future__ import annotations

import builtins
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, bindparam, insert, select, text
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from campaignflow.security.audit_chain import AuditEntry, AuditEvent, extend
from campaignflow.store.database import Database
from campaignflow.store.tables import audit_anchors, audit_log, workspaces

_LOCK_NAMESPACE = b"campaignflow.audit_log:"

INSERT_ENTRIES = insert(audit_log)
LOCK_WORKSPACE_CHAIN = text("SELECT pg_advisory_xact_lock(:key)")
CHAIN_HEAD = (
    select(audit_log.c.seq, audit_log.c.hash)
    .where(audit_log.c.workspace_id == bindparam("workspace"))
    .order_by(audit_log.c.seq.desc())
    .limit(1)
)
CHAIN_RANGE = (
    select(audit_log)
    .where(audit_log.c.workspace_id == bindparam("workspace"), audit_log.c.seq > bindparam("after"))
    .order_by(audit_log.c.seq)
    .limit(bindparam("limit"))
)
WORKSPACE_IDS = select(workspaces.c.id).order_by(workspaces.c.id)

# Query parameter -> column, for the equality filters of a listing.
_EQUALITY_FILTERS = ("actor_id", "action", "resource_type", "resource_id", "outcome")


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """What a listing keeps; ``since`` is inclusive, ``until`` exclusive."""

    actor_id: str | None = None
    action: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def params(self) -> dict[str, Any]:
        values = {name: getattr(self, name) for name in (*_EQUALITY_FILTERS, "since", "until")}
        return {name: value for name, value in values.items() if value is not None}


NO_FILTER = AuditFilter()


def lock_key(workspace_id: str) -> int:
    """The advisory-lock key of a workspace's chain: 64 bits of SHA-256, as a signed bigint."""
    digest = hashlib.sha256(_LOCK_NAMESPACE + workspace_id.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def list_statement(wanted: AuditFilter, *, before: bool) -> Select[tuple[Any, ...]]:
    """Newest first; only the filters that are set (and the cursor) become conditions."""
    columns = audit_log.c
    statement = select(audit_log).where(columns.workspace_id == bindparam("workspace"))
    for name in _EQUALITY_FILTERS:
        if getattr(wanted, name) is not None:
            statement = statement.where(columns[name] == bindparam(name))
    if wanted.since is not None:
        statement = statement.where(columns.occurred_at >= bindparam("since"))
    if wanted.until is not None:
        statement = statement.where(columns.occurred_at < bindparam("until"))
    if before:
        statement = statement.where(columns.seq < bindparam("before"))
    return statement.order_by(columns.seq.desc()).limit(bindparam("limit"))


def entry_from_row(row: Row[Any]) -> AuditEntry:
    values = dict(row._mapping)
    seq, prev_hash, hash_ = values.pop("seq"), values.pop("prev_hash"), values.pop("hash")
    return AuditEntry(seq, AuditEvent(**values), prev_hash, hash_)


class AuditStore:
    """The ``audit_log`` table on a :class:`Database`. Every read is scoped to a workspace."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def append_batch(self, events: Sequence[AuditEvent]) -> builtins.list[AuditEntry]:
        """Chain ``events`` (of any workspaces, each in the order given) in one transaction."""
        by_workspace: dict[str, builtins.list[AuditEvent]] = {}
        for event in events:
            by_workspace.setdefault(event.workspace_id, []).append(event)
        entries: builtins.list[AuditEntry] = []
        async with self._db.transaction() as connection:
            for workspace_id in sorted(by_workspace):
                head = await self._lock_head(connection, workspace_id)
                entries.extend(extend(head, by_workspace[workspace_id]))
            if entries:
                await connection.execute(INSERT_ENTRIES, [entry.columns() for entry in entries])
        return entries

    async def _lock_head(
        self, connection: AsyncConnection, workspace_id: str
    ) -> tuple[int, str] | None:
        if self._db.dialect == "postgresql":
            await connection.execute(LOCK_WORKSPACE_CHAIN, {"key": lock_key(workspace_id)})
        row = (await connection.execute(CHAIN_HEAD, {"workspace": workspace_id})).first()
        return (row.seq, row.hash) if row is not None else None

    async def list(
        self,
        workspace_id: str,
        wanted: AuditFilter = NO_FILTER,
        *,
        before: int | None = None,
        limit: int = 50,
    ) -> builtins.list[AuditEntry]:
        """Entries newest first, older than seq ``before`` (the cursor) when given."""
        params = {"workspace": workspace_id, "limit": limit, **wanted.params()}
        if before is not None:
            params["before"] = before
        statement = list_statement(wanted, before=before is not None)
        async with self._db.read() as connection:
            rows = (await connection.execute(statement, params)).all()
        return [entry_from_row(row) for row in rows]

    async def read_range(
        self, workspace_id: str, *, after: int, limit: int
    ) -> builtins.list[AuditEntry]:
        """Up to ``limit`` entries with seq above ``after``, in chain order: a verification page."""
        params = {"workspace": workspace_id, "after": after, "limit": limit}
        async with self._db.read() as connection:
            rows = (await connection.execute(CHAIN_RANGE, params)).all()
        return [entry_from_row(row) for row in rows]

    async def anchor(self, workspace_id: str) -> tuple[int, str] | None:
        """(last purged seq, its hash) once retention purged the chain's oldest entries: where
        verification starts. ``None``: the chain is whole from seq 1."""
        anchors = audit_anchors
        statement = select(anchors.c.purged_through_seq, anchors.c.anchor_hash).where(
            anchors.c.workspace_id == workspace_id
        )
        async with self._db.read() as connection:
            row = (await connection.execute(statement)).first()
        return None if row is None else (int(row[0]), str(row[1]))

    async def workspace_ids(self) -> builtins.list[str]:
        """Every workspace, for a platform-wide verification (``campaignflow audit verify``)."""
        async with self._db.read() as connection:
            return list((await connection.execute(WORKSPACE_IDS)).scalars().all())
