"""Purging data past its retention, one bounded batch per transaction.

Each ``purge_*`` method removes at most ``batch`` rows (for execution logs: executions, with
everything that hangs off them) of one workspace that are older than ``cutoff``, in one short
transaction, and returns how many it removed. The caller (``compliance.retention``) loops until a
batch comes back short, pausing between batches, so a purge never holds long locks or one huge
transaction that would stall the engine's own writes. Every statement is idempotent: a purge
interrupted half-way is finished by the next pass.

The audit log is append-only (migration 0005); its oldest entries may go only through
:meth:`RetentionStore.purge_audit_log`, which first moves the workspace's *anchor*
(``audit_anchors``: the last purged seq and its hash) up to the entries it removes. The database
triggers refuse any delete above the anchor, and the chain stays verifiable from the anchor on.

On PostgreSQL whole months of the event log are dropped (``store.partitions``); :func:`record_drop`
records each drop in ``retention_runs`` from inside the dropping transaction.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from campaignflow.domain.retention import DataClass
from campaignflow.store import tables as t
from campaignflow.store.database import Database
from campaignflow.store.ids import new_id
from campaignflow.store.partitions import DroppedPartition

_FINAL = ("completed", "failed", "cancelled")
# Events that provider webhooks produced carry their provider's event id (see
# integrations.webhooks.events.bus_event); every other event is a customer's own.
_WEBHOOK_EVENT = {
    "postgresql": "(payload->'properties' ? 'providerEventId')",
    "sqlite": "(json_extract(payload, '$.properties.providerEventId') IS NOT NULL)",
}
_EXECUTION_CHILDREN = (
    t.execution_steps,
    t.dead_letters,
    t.message_deliveries,
    t.tasks,
    t.waits,
)


@dataclass(frozen=True, slots=True)
class AuditAnchor:
    """Where a workspace's audit chain now starts: entries up to ``seq`` were purged, the last
    of them had ``hash`` (the ``prev_hash`` the first remaining entry must carry)."""

    seq: int
    hash: str


class RetentionStore:
    """Bounded purges per data class, and the record of each pass (``retention_runs``)."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def workspace_ids(self) -> builtins.list[str]:
        async with self._db.read() as connection:
            rows = await connection.execute(select(t.workspaces.c.id).order_by(t.workspaces.c.id))
            return [row[0] for row in rows]

    # ------------------------------------------------------------------ the policy

    async def policy_document(self, workspace_id: str) -> dict[str, Any] | None:
        """The workspace's stored retention (``privacy_settings.retention``), or ``None``."""
        settings = t.privacy_settings
        statement = select(settings.c.retention).where(settings.c.workspace_id == workspace_id)
        async with self._db.read() as connection:
            row = (await connection.execute(statement)).first()
        return None if row is None else row[0]

    async def put_policy_document(
        self, workspace_id: str, document: dict[str, Any], *, by: str | None, now: datetime
    ) -> None:
        """Store the retention; the row's other settings (the send policy) are left as they
        are, and a missing row is created with them null."""
        settings = t.privacy_settings
        values = {"retention": document, "updated_by": by, "updated_at": now}
        upsert = (pg_insert if self._db.dialect == "postgresql" else sqlite_insert)(settings)
        statement = upsert.values(workspace_id=workspace_id, **values).on_conflict_do_update(
            index_elements=["workspace_id"], set_=values
        )
        async with self._db.transaction() as connection:
            await connection.execute(statement)

    # ------------------------------------------------------------------ one batch per class

    async def purge_batch(
        self, workspace_id: str, data_class: DataClass, cutoff: datetime, batch: int
    ) -> int:
        """Remove up to ``batch`` rows of ``data_class`` older than ``cutoff``; the count."""
        if data_class == "execution_logs":
            return await self._purge_executions(workspace_id, cutoff, batch)
        if data_class == "audit_log":
            return await self.purge_audit_log(workspace_id, cutoff, batch)
        if data_class == "processing_log":
            table, age = t.processing_log, t.processing_log.c.occurred_at
            key = (table.c.workspace_id, table.c.id)
            return await self._purge_keys(workspace_id, table, key, age < cutoff, batch)
        webhook = _WEBHOOK_EVENT[self._db.dialect]
        which = text(webhook if data_class == "webhook_payloads" else f"NOT {webhook}")
        events = t.events
        condition = (events.c.received_at < cutoff) & which
        # received_at is part of the key on PostgreSQL (0011): a messageId stored twice, far
        # apart, loses only the copy that is due.
        copy = (events.c.workspace_id, events.c.message_id, events.c.received_at)
        return await self._purge_keys(workspace_id, events, copy, condition, batch)

    async def _purge_keys(
        self,
        workspace_id: str,
        table: Any,
        key: tuple[Any, ...],
        condition: Any,
        batch: int,
    ) -> int:
        """Delete up to ``batch`` rows of the workspace matching ``condition``, chosen by
        ``key`` (the columns that tell rows apart)."""
        mine = (table.c.workspace_id == workspace_id) & condition
        due = select(*key).where(mine).limit(batch)
        # The condition again outside: PostgreSQL then prunes the partitions not yet due.
        statement = delete(table).where(mine, tuple_(*key).in_(due))
        async with self._db.transaction() as connection:
            result = await connection.execute(statement)
        return int(result.rowcount or 0)

    async def _purge_executions(self, workspace_id: str, cutoff: datetime, batch: int) -> int:
        """Finished executions older than ``cutoff``, with their steps, dead letters,
        deliveries and any leftover task or wait; a running or waiting one is never due."""
        executions = t.executions
        due = (
            select(executions.c.id)
            .where(
                executions.c.workspace_id == workspace_id,
                executions.c.status.in_(_FINAL),
                executions.c.finished_at < cutoff,
            )
            .limit(batch)
        )
        async with self._db.transaction() as connection:
            ids = [row[0] for row in await connection.execute(due)]
            if not ids:
                return 0
            for child in _EXECUTION_CHILDREN:
                await connection.execute(
                    delete(child).where(
                        child.c.workspace_id == workspace_id, child.c.execution_id.in_(ids)
                    )
                )
            result = await connection.execute(
                delete(executions).where(
                    executions.c.workspace_id == workspace_id, executions.c.id.in_(ids)
                )
            )
        return int(result.rowcount or 0)

    # ------------------------------------------------------------------ the audit log

    async def audit_anchor(self, workspace_id: str) -> AuditAnchor | None:
        anchors = t.audit_anchors
        async with self._db.read() as connection:
            row = (
                await connection.execute(
                    select(anchors.c.purged_through_seq, anchors.c.anchor_hash).where(
                        anchors.c.workspace_id == workspace_id
                    )
                )
            ).first()
        return None if row is None else AuditAnchor(row[0], row[1])

    async def purge_audit_log(self, workspace_id: str, cutoff: datetime, batch: int) -> int:
        """The oldest entries older than ``cutoff``, up to ``batch`` of them, as a prefix of the
        chain: it stops at the first entry that is not due, so the chain keeps no hole."""
        log = t.audit_log
        async with self._db.transaction() as connection:
            anchor = await _locked_anchor(connection, workspace_id)
            start = anchor.seq if anchor is not None else 0
            first_kept = (
                await connection.execute(
                    select(func.min(log.c.seq)).where(
                        log.c.workspace_id == workspace_id,
                        log.c.seq > start,
                        log.c.occurred_at >= cutoff,
                    )
                )
            ).scalar()
            last = (
                await connection.execute(
                    select(func.max(log.c.seq)).where(
                        log.c.workspace_id == workspace_id, log.c.seq > start
                    )
                )
            ).scalar()
            if last is None:
                return 0
            through = min(start + batch, last if first_kept is None else first_kept - 1)
            if through <= start:
                return 0
            hash_ = (
                await connection.execute(
                    select(log.c.hash).where(
                        log.c.workspace_id == workspace_id, log.c.seq == through
                    )
                )
            ).scalar_one()
            await _move_anchor(connection, workspace_id, anchor, AuditAnchor(through, hash_))
            result = await connection.execute(
                delete(log).where(log.c.workspace_id == workspace_id, log.c.seq <= through)
            )
        return int(result.rowcount or 0)

    # ------------------------------------------------------------------ the runs

    async def record_run(
        self,
        workspace_id: str,
        data_class: DataClass,
        cutoff: datetime,
        *,
        started_at: datetime,
        finished_at: datetime,
        purged: int,
        details: dict[str, Any],
    ) -> None:
        async with self._db.transaction() as connection:
            await connection.execute(
                insert(t.retention_runs).values(
                    workspace_id=workspace_id,
                    id=new_id(),
                    data_class=data_class,
                    cutoff=cutoff,
                    started_at=started_at,
                    finished_at=finished_at,
                    purged=purged,
                    details=details,
                )
            )

    async def runs(
        self,
        workspace_id: str,
        *,
        data_class: DataClass | None = None,
        before: str | None = None,
        limit: int = 50,
    ) -> builtins.list[dict[str, Any]]:
        """The passes, newest first, after the id ``before``."""
        runs = t.retention_runs
        statement = select(runs).where(runs.c.workspace_id == workspace_id)
        if data_class is not None:
            statement = statement.where(runs.c.data_class == data_class)
        if before is not None:
            statement = statement.where(runs.c.id < before)
        statement = statement.order_by(runs.c.id.desc()).limit(limit)
        async with self._db.read() as connection:
            return [dict(row._mapping) for row in await connection.execute(statement)]


async def record_drop(
    connection: AsyncConnection,
    gone: DroppedPartition,
    cutoff: datetime,
    *,
    started_at: datetime,
    finished_at: datetime,
) -> None:
    """Record a dropped event partition, inside the transaction that drops it: a run of class
    ``events`` for each workspace that had rows in it, with its own count (the partition
    held webhook payloads too). ``batches`` is 1: the drop was one transaction."""
    partition = gone.partition
    details = {
        "batches": 1,
        "complete": True,
        "partition": partition.name,
        "receivedFrom": partition.lower and partition.lower.isoformat(),
        "receivedBefore": partition.upper and partition.upper.isoformat(),
    }
    runs = [
        {
            "workspace_id": workspace_id,
            "id": new_id(),
            "data_class": "events",
            "cutoff": cutoff,
            "started_at": started_at,
            "finished_at": finished_at,
            "purged": rows,
            "details": details,
        }
        for workspace_id, rows in sorted(gone.rows_by_workspace.items())
    ]
    if runs:
        await connection.execute(insert(t.retention_runs), runs)


async def _locked_anchor(connection: AsyncConnection, workspace_id: str) -> AuditAnchor | None:
    """The anchor, locked for this transaction on PostgreSQL (two purgers of one workspace
    serialise here; SQLite has one writer anyway)."""
    anchors = t.audit_anchors
    statement = select(anchors.c.purged_through_seq, anchors.c.anchor_hash).where(
        anchors.c.workspace_id == workspace_id
    )
    if connection.dialect.name == "postgresql":
        statement = statement.with_for_update()
    row = (await connection.execute(statement)).first()
    return None if row is None else AuditAnchor(row[0], row[1])


async def _move_anchor(
    connection: AsyncConnection,
    workspace_id: str,
    old: AuditAnchor | None,
    new: AuditAnchor,
) -> None:
    anchors = t.audit_anchors
    values = {"purged_through_seq": new.seq, "anchor_hash": new.hash}
    if old is None:
        await connection.execute(insert(anchors).values(workspace_id=workspace_id, **values))
    else:
        await connection.execute(
            update(anchors).where(anchors.c.workspace_id == workspace_id).values(**values)
        )
