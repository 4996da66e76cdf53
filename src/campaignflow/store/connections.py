"""Connections: which provider accounts a workspace connected, without their credentials.

Every statement filters by ``workspace_id`` except :meth:`ConnectionStore.find`, which is how
an inbound webhook finds its workspace: by the connection id in its URL (ids are global). The
credentials live in the secret store under :func:`credential_id`; this store never sees them.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from campaignflow.errors import AlreadyExists, NotFound
from campaignflow.store.database import Database, integrity_kind
from campaignflow.store.tables import connections
from campaignflow.store.workflows import Clock, aware_now, utc_now


def credential_id(connection_id: str) -> str:
    """The secret-store id of a connection's credentials."""
    return f"connection:{connection_id}"


@dataclass(frozen=True, slots=True)
class ConnectionRecord:
    workspace_id: str
    id: str
    name: str
    provider: str
    description: str | None
    settings: dict[str, Any]
    created_by: str | None
    created_at: datetime
    updated_at: datetime
    tested_at: datetime | None
    test_outcome: str | None
    test_message: str | None
    sync: dict[str, Any] | None = None  # the sync configuration of a CRM connection
    sync_due_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class NewConnection:
    workspace_id: str
    id: str
    name: str
    provider: str
    description: str | None
    settings: dict[str, Any]
    created_by: str | None


_COLUMNS = (
    connections.c.workspace_id,
    connections.c.id,
    connections.c.name,
    connections.c.provider,
    connections.c.description,
    connections.c.settings,
    connections.c.created_by,
    connections.c.created_at,
    connections.c.updated_at,
    connections.c.tested_at,
    connections.c.test_outcome,
    connections.c.test_message,
    connections.c.sync,
    connections.c.sync_due_at,
)


class ConnectionStore:
    def __init__(self, database: Database, clock: Clock = utc_now) -> None:
        self.database = database
        self._clock = clock

    async def create(self, new: NewConnection) -> ConnectionRecord:
        """Store a connection; :class:`AlreadyExists` when its name is taken in the workspace."""
        now = aware_now(self._clock)
        values: dict[str, Any] = {
            "workspace_id": new.workspace_id,
            "id": new.id,
            "name": new.name,
            "provider": new.provider,
            "description": new.description,
            "settings": new.settings,
            "created_by": new.created_by,
            "created_at": now,
            "updated_at": now,
        }
        async with self.database.transaction() as connection:
            try:  # inside: the connection turns any driver error leaving it into StorageError
                await connection.execute(insert(connections).values(**values))
            except IntegrityError as exc:
                if integrity_kind(exc) == "unique":
                    message = f"a connection named {new.name!r} already exists"
                    raise AlreadyExists(message) from exc
                raise
        return ConnectionRecord(**values, tested_at=None, test_outcome=None, test_message=None)

    async def get(self, workspace_id: str, connection_id: str) -> ConnectionRecord:
        return await self._one(
            and_(connections.c.workspace_id == workspace_id, connections.c.id == connection_id),
            f"connection {connection_id!r} not found",
        )

    async def named(self, workspace_id: str, name: str) -> ConnectionRecord:
        return await self._one(
            and_(connections.c.workspace_id == workspace_id, connections.c.name == name),
            f"no connection named {name!r} in this workspace",
        )

    async def find(self, connection_id: str) -> ConnectionRecord:
        """A connection by its global id, whatever its workspace (inbound webhooks only)."""
        return await self._one(
            connections.c.id == connection_id, f"connection {connection_id!r} not found"
        )

    async def list(
        self,
        workspace_id: str,
        *,
        provider: str | None = None,
        after: str | None = None,
        limit: int,
    ) -> builtins.list[ConnectionRecord]:
        """A page in name order: up to ``limit`` after the name ``after``."""
        query = select(*_COLUMNS).where(connections.c.workspace_id == workspace_id)
        if provider is not None:
            query = query.where(connections.c.provider == provider)
        if after is not None:
            query = query.where(connections.c.name > after)
        query = query.order_by(connections.c.name).limit(limit)
        async with self.database.read() as connection:
            rows = (await connection.execute(query)).all()
        return [_record(row) for row in rows]

    async def names(self, workspace_id: str) -> dict[str, str]:
        """Every connection of the workspace: name → provider (to check workflows on save)."""
        query = select(connections.c.name, connections.c.provider).where(
            connections.c.workspace_id == workspace_id
        )
        async with self.database.read() as connection:
            rows = (await connection.execute(query)).all()
        return {str(name): str(provider) for name, provider in rows}

    async def record_test(
        self, workspace_id: str, connection_id: str, *, ok: bool, message: str
    ) -> ConnectionRecord:
        statement = (
            update(connections)
            .where(
                and_(connections.c.workspace_id == workspace_id, connections.c.id == connection_id)
            )
            .values(
                tested_at=aware_now(self._clock),
                test_outcome="ok" if ok else "failed",
                test_message=message[:500],
            )
        )
        async with self.database.transaction() as connection:
            result = await connection.execute(statement)
        if result.rowcount == 0:
            raise NotFound(f"connection {connection_id!r} not found")
        return await self.get(workspace_id, connection_id)

    async def delete(self, workspace_id: str, connection_id: str) -> ConnectionRecord:
        """Remove the row and return it (the caller then deletes the credentials)."""
        record = await self.get(workspace_id, connection_id)
        statement = delete(connections).where(
            and_(connections.c.workspace_id == workspace_id, connections.c.id == connection_id)
        )
        async with self.database.transaction() as connection:
            result = await connection.execute(statement)
        if result.rowcount == 0:
            raise NotFound(f"connection {connection_id!r} not found")
        return record

    async def _one(self, where: Any, missing: str) -> ConnectionRecord:
        async with self.database.read() as connection:
            row = (await connection.execute(select(*_COLUMNS).where(where))).first()
        if row is None:
            raise NotFound(missing)
        return _record(row)


def _record(row: Any) -> ConnectionRecord:
    return ConnectionRecord(**row._mapping)
