"""CRM sync state: runs and their errors, contact ↔ CRM record links, field sources.

Every statement filters by ``workspace_id`` except the worker's own (:meth:`SyncStore.claim`,
:meth:`SyncStore.due_connections`), which look across workspaces for work and hand back the
workspace with it.

A run's progress is written in one transaction with the links and errors of the records it
covers (:meth:`SyncStore.save_progress`), and only by the worker holding the run's lease: a run
resumed after a crash starts from the last progress written, so it repeats no record whose
links were saved, and a worker that lost its lease cannot overwrite its successor's progress.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, insert, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from campaignflow.domain.record_merge import FieldBase
from campaignflow.errors import Conflict, NotFound
from campaignflow.store.database import Database, integrity_kind
from campaignflow.store.ids import new_id
from campaignflow.store.leases import update_if_held
from campaignflow.store.tables import (
    connections,
    contact_field_sources,
    events,
    sync_links,
    sync_run_errors,
    sync_runs,
)

ACTIVE = ("queued", "running")
MAX_ERROR_MESSAGE = 1000


@dataclass(frozen=True, slots=True)
class SyncRun:
    id: str
    workspace_id: str
    connection_id: str
    trigger: str
    status: str
    requested_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    lease_owner: str | None
    lease_until: datetime | None
    attempts: int
    cursor: dict[str, Any]
    stats: dict[str, Any]
    error: str | None


@dataclass(frozen=True, slots=True)
class SyncLink:
    """A contact's CRM record and the per-field state of the last sync (see ``tables``)."""

    contact_id: str
    remote_id: str | None
    fields: Mapping[str, FieldBase]
    synced_at: datetime | None = None
    pending_push: bool = False
    push_attempts: int = 0


@dataclass(frozen=True, slots=True)
class RecordError:
    record: str  # contact id (push) or "remote:<id>" (pull)
    direction: str  # "push" or "pull"
    message: str
    retryable: bool


@dataclass(frozen=True, slots=True)
class FieldSource:
    field: str
    source: str
    digest: str
    changed_at: datetime


@dataclass(slots=True)
class Progress:
    """What a stretch of a run did, saved together: the run's new cursor and counts, the links
    it wrote, the records it could not sync, and the sources of the fields it pulled."""

    cursor: dict[str, Any]
    stats: dict[str, Any]
    links: list[SyncLink] = field(default_factory=list)
    errors: list[RecordError] = field(default_factory=list)
    sources: dict[str, list[FieldSource]] = field(default_factory=dict)  # contact id → sources


@dataclass(frozen=True, slots=True)
class ActivityEvent:
    """An event a sync logs on the CRM as an activity (its name, whose, when)."""

    message_id: str
    name: str
    contact_id: str
    timestamp: datetime
    received_at: datetime


@dataclass(frozen=True, slots=True)
class DueConnection:
    workspace_id: str
    connection_id: str
    sync: dict[str, Any]
    due_at: datetime


_RUN_COLUMNS = tuple(sync_runs.c[name] for name in SyncRun.__dataclass_fields__)


class SyncStore:
    def __init__(self, database: Database) -> None:
        self.database = database

    # ------------------------------------------------------------------ configuration

    async def configure(
        self,
        workspace_id: str,
        connection_id: str,
        sync: dict[str, Any] | None,
        due_at: datetime | None,
    ) -> None:
        """Set (or with None clear) a connection's sync configuration and next due time."""
        statement = (
            update(connections)
            .where(connections.c.workspace_id == workspace_id, connections.c.id == connection_id)
            .values(sync=sync, sync_due_at=due_at)
        )
        async with self.database.transaction() as connection:
            if not (await connection.execute(statement)).rowcount:
                raise NotFound(f"connection {connection_id!r} not found")

    async def due_connections(self, now: datetime, limit: int) -> builtins.list[DueConnection]:
        """Connections whose next scheduled or real-time run is due (across workspaces)."""
        query = (
            select(
                connections.c.workspace_id,
                connections.c.id,
                connections.c.sync,
                connections.c.sync_due_at,
            )
            .where(connections.c.sync_due_at <= now)
            .order_by(connections.c.sync_due_at)
            .limit(limit)
        )
        async with self.database.read() as connection:
            rows = (await connection.execute(query)).all()
        return [DueConnection(str(w), str(c), dict(s or {}), d) for w, c, s, d in rows]

    async def set_due(self, workspace_id: str, connection_id: str, due_at: datetime | None) -> None:
        statement = (
            update(connections)
            .where(connections.c.workspace_id == workspace_id, connections.c.id == connection_id)
            .values(sync_due_at=due_at)
        )
        async with self.database.transaction() as connection:
            await connection.execute(statement)

    # ------------------------------------------------------------------ runs

    async def queue(
        self,
        workspace_id: str,
        connection_id: str,
        *,
        trigger: str,
        requested_by: str | None,
        cursor: dict[str, Any],
        now: datetime,
    ) -> SyncRun:
        """A new queued run; :class:`Conflict` naming the active one if the connection has
        a run queued or running (one run at a time per connection: two would race on the
        same links)."""
        run = SyncRun(
            id=new_id(),
            workspace_id=workspace_id,
            connection_id=connection_id,
            trigger=trigger,
            status="queued",
            requested_by=requested_by,
            created_at=now,
            started_at=None,
            finished_at=None,
            lease_owner=None,
            lease_until=None,
            attempts=0,
            cursor=cursor,
            stats={},
            error=None,
        )
        async with self.database.transaction() as connection:
            active = await self._active(connection, workspace_id, connection_id)
            if active is not None:
                raise _busy(active)
            try:
                await connection.execute(insert(sync_runs).values(**_run_values(run)))
            except IntegrityError as exc:  # a concurrent queue won the unique active index
                if integrity_kind(exc) == "unique":
                    raise Conflict("a sync run of this connection is already queued") from exc
                raise
        return run

    async def last_finished(self, workspace_id: str, connection_id: str) -> SyncRun | None:
        """The connection's latest run that ended, failed ones included: its cursor is where
        the next one starts (a failed run's cursor only covers what it finished)."""
        query = (
            select(*_RUN_COLUMNS)
            .where(
                sync_runs.c.workspace_id == workspace_id,
                sync_runs.c.connection_id == connection_id,
                sync_runs.c.status.in_(("succeeded", "partial", "failed")),
            )
            .order_by(sync_runs.c.created_at.desc(), sync_runs.c.id.desc())
            .limit(1)
        )
        async with self.database.read() as connection:
            row = (await connection.execute(query)).first()
        return None if row is None else _run(row)

    async def claim(self, owner: str, now: datetime, lease: timedelta) -> SyncRun | None:
        """Take the oldest queued run, or a running one whose worker's lease ran out (it died
        mid-run: the run resumes at its cursor). None when there is nothing to do."""
        takeable = or_(
            sync_runs.c.status == "queued",
            and_(sync_runs.c.status == "running", sync_runs.c.lease_until < now),
        )
        query = (
            select(sync_runs.c.id, sync_runs.c.started_at)
            .where(takeable)
            .order_by(sync_runs.c.created_at)
            .limit(5)
        )
        async with self.database.read() as connection:
            candidates = (await connection.execute(query)).all()
        for run_id, started_at in candidates:
            statement = (
                update(sync_runs)
                .where(sync_runs.c.id == run_id, takeable)
                .values(
                    status="running",
                    lease_owner=owner,
                    lease_until=now + lease,
                    attempts=sync_runs.c.attempts + 1,
                    started_at=started_at or now,
                )
            )
            async with self.database.transaction() as connection:
                taken = (await connection.execute(statement)).rowcount == 1
            if taken:
                return await self._run_by_id(run_id)
        return None

    async def renew(self, run_id: str, owner: str, until: datetime) -> None:
        """Extend the lease; :class:`LeaseLost` if another worker holds the run now."""
        async with self.database.transaction() as connection:
            await self._hold(connection, run_id, owner, lease_until=until)

    async def save_progress(
        self, run: SyncRun, owner: str, progress: Progress, now: datetime
    ) -> None:
        """Write the run's cursor and counts with the links, errors and field sources of the
        records they cover, in one transaction, if ``owner`` still holds the run."""
        async with self.database.transaction() as connection:
            await self._hold(
                connection, run.id, owner, cursor=progress.cursor, stats=progress.stats
            )
            await self._write_links(connection, run, progress.links, now)
            await self._write_errors(connection, run, progress.errors, now)
            await self._write_sources(connection, run.workspace_id, progress.sources)

    async def finish(
        self,
        run: SyncRun,
        owner: str,
        *,
        status: str,
        stats: dict[str, Any],
        error: str | None,
        now: datetime,
    ) -> None:
        async with self.database.transaction() as connection:
            await self._hold(
                connection,
                run.id,
                owner,
                status=status,
                stats=stats,
                error=None if error is None else error[:MAX_ERROR_MESSAGE],
                finished_at=now,
                lease_owner=None,
                lease_until=None,
            )

    async def get_run(self, workspace_id: str, run_id: str) -> SyncRun:
        query = select(*_RUN_COLUMNS).where(
            sync_runs.c.workspace_id == workspace_id, sync_runs.c.id == run_id
        )
        async with self.database.read() as connection:
            row = (await connection.execute(query)).first()
        if row is None:
            raise NotFound(f"sync run {run_id!r} not found")
        return _run(row)

    async def list_runs(
        self, workspace_id: str, connection_id: str, *, before: str | None, limit: int
    ) -> builtins.list[SyncRun]:
        """Newest first (ids are time-ordered), older than the id ``before``."""
        query = select(*_RUN_COLUMNS).where(
            sync_runs.c.workspace_id == workspace_id,
            sync_runs.c.connection_id == connection_id,
        )
        if before is not None:
            query = query.where(sync_runs.c.id < before)
        query = query.order_by(sync_runs.c.id.desc()).limit(limit)
        async with self.database.read() as connection:
            rows = (await connection.execute(query)).all()
        return [_run(row) for row in rows]

    async def run_errors(
        self, workspace_id: str, run_id: str, *, limit: int
    ) -> builtins.list[RecordError]:
        query = (
            select(
                sync_run_errors.c.record,
                sync_run_errors.c.direction,
                sync_run_errors.c.message,
                sync_run_errors.c.retryable,
            )
            .where(
                sync_run_errors.c.workspace_id == workspace_id,
                sync_run_errors.c.run_id == run_id,
            )
            .order_by(sync_run_errors.c.record, sync_run_errors.c.direction)
            .limit(limit)
        )
        async with self.database.read() as connection:
            rows = (await connection.execute(query)).all()
        return [RecordError(str(r), str(d), str(m), bool(t)) for r, d, m, t in rows]

    # ------------------------------------------------------------------ links and sources

    async def links_by_remote(
        self, workspace_id: str, connection_id: str, remote_ids: Iterable[str]
    ) -> dict[str, SyncLink]:
        ids = sorted(set(remote_ids))
        if not ids:
            return {}
        links = await self._links(workspace_id, connection_id, sync_links.c.remote_id.in_(ids))
        return {link.remote_id: link for link in links if link.remote_id is not None}

    async def links_by_contact(
        self, workspace_id: str, connection_id: str, contact_ids: Iterable[str]
    ) -> dict[str, SyncLink]:
        ids = sorted(set(contact_ids))
        if not ids:
            return {}
        links = await self._links(workspace_id, connection_id, sync_links.c.contact_id.in_(ids))
        return {link.contact_id: link for link in links}

    async def pending_pushes(
        self, workspace_id: str, connection_id: str, limit: int
    ) -> builtins.list[SyncLink]:
        """Contacts whose last push failed, to retry one by one."""
        return await self._links(
            workspace_id, connection_id, sync_links.c.pending_push.is_(True), limit=limit
        )

    async def field_sources(
        self, workspace_id: str, contact_ids: Iterable[str]
    ) -> dict[str, dict[str, FieldSource]]:
        ids = sorted(set(contact_ids))
        if not ids:
            return {}
        table = contact_field_sources
        query = select(
            table.c.contact_id, table.c.field, table.c.source, table.c.digest, table.c.changed_at
        ).where(table.c.workspace_id == workspace_id, table.c.contact_id.in_(ids))
        async with self.database.read() as connection:
            rows = (await connection.execute(query)).all()
        found: dict[str, dict[str, FieldSource]] = {}
        for contact_id, name, source, digest, changed_at in rows:
            found.setdefault(str(contact_id), {})[str(name)] = FieldSource(
                str(name), str(source), str(digest), changed_at
            )
        return found

    async def activity_events(
        self,
        workspace_id: str,
        names: Sequence[str],
        *,
        after: tuple[datetime, str] | None,
        until: datetime,
        limit: int,
    ) -> builtins.list[ActivityEvent]:
        """Events named ``names`` that arrived after the (received_at, message id) position
        ``after`` and by ``until``, in arrival order, with a contact."""
        after_at, after_id = after or (until, "")
        query = (
            select(
                events.c.message_id,
                events.c.name,
                events.c.contact_id,
                events.c.timestamp,
                events.c.received_at,
            )
            .where(
                events.c.workspace_id == workspace_id,
                events.c.name.in_(sorted(set(names))),
                events.c.contact_id.is_not(None),
                tuple_(events.c.received_at, events.c.message_id) > tuple_(after_at, after_id),
                events.c.received_at <= until,
            )
            .order_by(events.c.received_at, events.c.message_id)
            .limit(limit)
        )
        async with self.database.read() as connection:
            rows = (await connection.execute(query)).all()
        return [ActivityEvent(str(m), str(n), str(c), t, r) for m, n, c, t, r in rows]

    async def forget_connection(self, workspace_id: str, connection_id: str) -> None:
        """Remove a deleted connection's links, runs and run errors."""
        async with self.database.transaction() as connection:
            run_ids = select(sync_runs.c.id).where(
                sync_runs.c.workspace_id == workspace_id,
                sync_runs.c.connection_id == connection_id,
            )
            await connection.execute(
                delete(sync_run_errors).where(
                    sync_run_errors.c.workspace_id == workspace_id,
                    sync_run_errors.c.run_id.in_(run_ids.scalar_subquery()),
                )
            )
            await connection.execute(
                delete(sync_runs).where(
                    sync_runs.c.workspace_id == workspace_id,
                    sync_runs.c.connection_id == connection_id,
                )
            )
            await connection.execute(
                delete(sync_links).where(
                    sync_links.c.workspace_id == workspace_id,
                    sync_links.c.connection_id == connection_id,
                )
            )

    # ------------------------------------------------------------------ internals

    async def _active(
        self, connection: AsyncConnection, workspace_id: str, connection_id: str
    ) -> SyncRun | None:
        query = select(*_RUN_COLUMNS).where(
            sync_runs.c.workspace_id == workspace_id,
            sync_runs.c.connection_id == connection_id,
            sync_runs.c.status.in_(ACTIVE),
        )
        row = (await connection.execute(query)).first()
        return None if row is None else _run(row)

    async def _run_by_id(self, run_id: str) -> SyncRun:
        async with self.database.read() as connection:
            row = (
                await connection.execute(select(*_RUN_COLUMNS).where(sync_runs.c.id == run_id))
            ).first()
        if row is None:
            raise NotFound(f"sync run {run_id!r} not found")
        return _run(row)

    async def _hold(
        self, connection: AsyncConnection, run_id: str, owner: str, **values: Any
    ) -> None:
        key = (sync_runs.c.id == run_id,)
        await update_if_held(connection, sync_runs, key, owner, f"sync run {run_id}", **values)

    async def _links(
        self, workspace_id: str, connection_id: str, where: Any, limit: int | None = None
    ) -> builtins.list[SyncLink]:
        query = select(
            sync_links.c.contact_id,
            sync_links.c.remote_id,
            sync_links.c.fields,
            sync_links.c.synced_at,
            sync_links.c.pending_push,
            sync_links.c.push_attempts,
        ).where(
            sync_links.c.workspace_id == workspace_id,
            sync_links.c.connection_id == connection_id,
            where,
        )
        if limit is not None:
            query = query.order_by(sync_links.c.contact_id).limit(limit)
        async with self.database.read() as connection:
            rows = (await connection.execute(query)).all()
        return [SyncLink(str(c), r, _bases(f), s, bool(p), int(a)) for c, r, f, s, p, a in rows]

    async def _write_links(
        self, connection: AsyncConnection, run: SyncRun, links: Sequence[SyncLink], now: datetime
    ) -> None:
        if not links:
            return
        rows = [
            {
                "workspace_id": run.workspace_id,
                "connection_id": run.connection_id,
                "contact_id": link.contact_id,
                "remote_id": link.remote_id,
                "fields": _documents(link.fields),
                "synced_at": link.synced_at or now,
                "pending_push": link.pending_push,
                "push_attempts": link.push_attempts,
            }
            for link in links
        ]
        statement = self._upsert(sync_links, ("connection_id", "contact_id"), rows[0])
        await connection.execute(statement, rows)

    async def _write_errors(
        self,
        connection: AsyncConnection,
        run: SyncRun,
        errors: Sequence[RecordError],
        now: datetime,
    ) -> None:
        if not errors:
            return
        rows = [
            {
                "workspace_id": run.workspace_id,
                "run_id": run.id,
                "record": error.record[:200],
                "direction": error.direction,
                "message": error.message[:MAX_ERROR_MESSAGE],
                "retryable": error.retryable,
                "at": now,
            }
            for error in errors
        ]
        statement = self._upsert(sync_run_errors, ("run_id", "record", "direction"), rows[0])
        await connection.execute(statement, rows)

    async def _write_sources(
        self,
        connection: AsyncConnection,
        workspace_id: str,
        sources: Mapping[str, Sequence[FieldSource]],
    ) -> None:
        rows = [
            {
                "workspace_id": workspace_id,
                "contact_id": contact_id,
                "field": source.field,
                "source": source.source,
                "digest": source.digest,
                "changed_at": source.changed_at,
            }
            for contact_id, written in sources.items()
            for source in written
        ]
        if not rows:
            return
        statement = self._upsert(
            contact_field_sources, ("workspace_id", "contact_id", "field"), rows[0]
        )
        await connection.execute(statement, rows)

    def _upsert(self, table: Any, key: tuple[str, ...], sample: Mapping[str, Any]) -> Any:
        dialect_insert = (
            postgresql.insert if self.database.dialect == "postgresql" else sqlite.insert
        )
        statement = dialect_insert(table)
        changed = {name: statement.excluded[name] for name in sample if name not in key}
        return statement.on_conflict_do_update(index_elements=list(key), set_=changed)


def _busy(active: SyncRun) -> Conflict:
    return Conflict(
        f"sync run {active.id} of this connection is {active.status}; one run at a time"
    )


def _run(row: Any) -> SyncRun:
    values = dict(row._mapping)
    values["cursor"] = dict(values["cursor"] or {})
    values["stats"] = dict(values["stats"] or {})
    return SyncRun(**values)


def _run_values(run: SyncRun) -> dict[str, Any]:
    return {name: getattr(run, name) for name in SyncRun.__dataclass_fields__}


def _documents(fields: Mapping[str, FieldBase]) -> dict[str, list[Any]]:
    return {
        name: [
            base.digest,
            None if base.local_at is None else base.local_at.isoformat(),
            None if base.remote_at is None else base.remote_at.isoformat(),
        ]
        for name, base in fields.items()
    }


def _bases(document: Any) -> dict[str, FieldBase]:
    bases: dict[str, FieldBase] = {}
    for name, (digest, local_at, remote_at) in dict(document or {}).items():
        bases[str(name)] = FieldBase(
            digest,
            None if local_at is None else datetime.fromisoformat(local_at),
            None if remote_at is None else datetime.fromisoformat(remote_at),
        )
    return bases
