"""Principals, their API keys, per-workflow grants and workspace allowlists.

Every statement filters by ``workspace_id`` except :meth:`AccessStore.find_key`, which is how a
request finds its workspace in the first place: by the SHA-256 of the key it presented (unique).
Principals are disabled, never deleted, so the audit log's actors keep meaning something.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from campaignflow.errors import NotFound
from campaignflow.security.api_keys import NewKey
from campaignflow.store.database import Database
from campaignflow.store.ids import new_id
from campaignflow.store.tables import (
    api_keys,
    principals,
    workflow_grants,
    workflows,
    workspaces,
)
from campaignflow.store.workflows import Clock, aware_now, utc_now


@dataclass(frozen=True, slots=True)
class PrincipalRecord:
    workspace_id: str
    id: str
    kind: str
    name: str
    role: str
    created_at: datetime
    disabled_at: datetime | None


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    workspace_id: str
    id: str
    principal_id: str
    name: str
    prefix: str
    scopes: list[str]
    allowed_cidrs: list[str] | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


@dataclass(frozen=True, slots=True)
class GrantRecord:
    workspace_id: str
    workflow_id: str
    principal_id: str
    role: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class PrincipalContext:
    """What authorising a request needs to know about its principal, read in one go."""

    principal: PrincipalRecord
    grants: dict[str, str]  # workflow id -> role
    workspace_cidrs: list[str] | None


@dataclass(frozen=True, slots=True)
class KeyIdentity:
    key: ApiKeyRecord
    context: PrincipalContext


_KEY_COLUMNS = [c for c in api_keys.c if c.name != "key_hash"]


def _principal(row: Any) -> PrincipalRecord:
    return PrincipalRecord(**{c.name: row[c.name] for c in principals.c})


def _key(row: Any) -> ApiKeyRecord:
    return ApiKeyRecord(**{c.name: row[c.name] for c in _KEY_COLUMNS})


class AccessStore:
    def __init__(self, database: Database, clock: Clock = utc_now) -> None:
        self._db = database
        self._clock = clock

    # --- principals ---------------------------------------------------------------------

    async def create_principal(
        self, workspace_id: str, *, kind: str, name: str, role: str, principal_id: str | None = None
    ) -> PrincipalRecord:
        record = PrincipalRecord(
            workspace_id, principal_id or new_id(), kind, name, role, aware_now(self._clock), None
        )
        async with self._db.transaction() as connection:
            await connection.execute(insert(principals).values(**_as_row(record)))
        return record

    async def get_principal(self, workspace_id: str, principal_id: str) -> PrincipalRecord:
        async with self._db.read() as connection:
            record = await _fetch_principal(connection, workspace_id, principal_id)
        if record is None:
            raise NotFound(f"Principal {principal_id!r} does not exist.")
        return record

    async def list_principals(
        self, workspace_id: str, *, after: str | None = None, limit: int = 50
    ) -> builtins.list[PrincipalRecord]:
        statement = select(principals).where(principals.c.workspace_id == workspace_id)
        if after is not None:
            statement = statement.where(principals.c.id > after)
        async with self._db.read() as connection:
            rows = await connection.execute(statement.order_by(principals.c.id).limit(limit))
            return [_principal(row._mapping) for row in rows]

    async def update_principal(
        self, workspace_id: str, principal_id: str, changes: Mapping[str, Any]
    ) -> PrincipalRecord:
        """Apply ``changes`` (name, role, disabled: bool) to one principal."""
        values = {k: v for k, v in changes.items() if k in ("name", "role")}
        if "disabled" in changes:
            values["disabled_at"] = aware_now(self._clock) if changes["disabled"] else None
        async with self._db.transaction() as connection:
            if values:
                await connection.execute(
                    update(principals)
                    .where(_is_principal(workspace_id, principal_id))
                    .values(**values)
                )
            record = await _fetch_principal(connection, workspace_id, principal_id)
        if record is None:
            raise NotFound(f"Principal {principal_id!r} does not exist.")
        return record

    async def context(self, workspace_id: str, principal_id: str) -> PrincipalContext | None:
        async with self._db.read() as connection:
            principal = await _fetch_principal(connection, workspace_id, principal_id)
            if principal is None:
                return None
            return await _context(connection, principal)

    # --- API keys -----------------------------------------------------------------------

    async def create_key(
        self,
        workspace_id: str,
        principal_id: str,
        key: NewKey,
        *,
        name: str,
        scopes: Sequence[str],
        allowed_cidrs: Sequence[str] | None,
        expires_at: datetime | None,
    ) -> ApiKeyRecord:
        record = ApiKeyRecord(
            workspace_id=workspace_id,
            id=new_id(),
            principal_id=principal_id,
            name=name,
            prefix=key.prefix,
            scopes=sorted(scopes),
            allowed_cidrs=list(allowed_cidrs) if allowed_cidrs is not None else None,
            created_at=aware_now(self._clock),
            expires_at=expires_at,
            revoked_at=None,
            last_used_at=None,
        )
        async with self._db.transaction() as connection:
            if await _fetch_principal(connection, workspace_id, principal_id) is None:
                raise NotFound(f"Principal {principal_id!r} does not exist.")
            await connection.execute(
                insert(api_keys).values(**_as_row(record), key_hash=key.key_hash)
            )
        return record

    async def get_key(self, workspace_id: str, key_id: str) -> ApiKeyRecord:
        async with self._db.read() as connection:
            row = (
                await connection.execute(select(*_KEY_COLUMNS).where(_is_key(workspace_id, key_id)))
            ).first()
        if row is None:
            raise NotFound(f"API key {key_id!r} does not exist.")
        return _key(row._mapping)

    async def list_keys(
        self,
        workspace_id: str,
        *,
        principal_id: str | None = None,
        after: str | None = None,
        limit: int = 50,
    ) -> builtins.list[ApiKeyRecord]:
        statement = select(*_KEY_COLUMNS).where(api_keys.c.workspace_id == workspace_id)
        if principal_id is not None:
            statement = statement.where(api_keys.c.principal_id == principal_id)
        if after is not None:
            statement = statement.where(api_keys.c.id > after)
        async with self._db.read() as connection:
            rows = await connection.execute(statement.order_by(api_keys.c.id).limit(limit))
            return [_key(row._mapping) for row in rows]

    async def revoke_key(self, workspace_id: str, key_id: str) -> ApiKeyRecord:
        """Revoke once; revoking again keeps the first time."""
        async with self._db.transaction() as connection:
            await connection.execute(
                update(api_keys)
                .where(_is_key(workspace_id, key_id), api_keys.c.revoked_at.is_(None))
                .values(revoked_at=aware_now(self._clock))
            )
        return await self.get_key(workspace_id, key_id)

    async def find_key(self, key_hash: str) -> KeyIdentity | None:
        """The key with this hash, with its principal's context, whatever its state (the caller
        decides whether revoked, expired or disabled refuses)."""
        statement = select(*_KEY_COLUMNS).where(api_keys.c.key_hash == key_hash)
        async with self._db.read() as connection:
            row = (await connection.execute(statement)).first()
            if row is None:
                return None
            key = _key(row._mapping)
            principal = await _fetch_principal(connection, key.workspace_id, key.principal_id)
            if principal is None:  # impossible with the foreign key; refuse rather than guess
                return None
            return KeyIdentity(key, await _context(connection, principal))

    async def touch_keys(self, used: Mapping[tuple[str, str], datetime]) -> None:
        """Record when keys were last used; ``used`` maps (workspace, key id) to a time."""
        if not used:
            return
        async with self._db.transaction() as connection:
            for (workspace_id, key_id), at in used.items():
                await connection.execute(
                    update(api_keys).where(_is_key(workspace_id, key_id)).values(last_used_at=at)
                )

    # --- grants and workspace allowlists -----------------------------------------------

    async def put_grant(
        self, workspace_id: str, workflow_id: str, principal_id: str, role: str
    ) -> GrantRecord:
        record = GrantRecord(workspace_id, workflow_id, principal_id, role, aware_now(self._clock))
        async with self._db.transaction() as connection:
            await _require_workflow(connection, workspace_id, workflow_id)
            if await _fetch_principal(connection, workspace_id, principal_id) is None:
                raise NotFound(f"Principal {principal_id!r} does not exist.")
            await connection.execute(
                delete(workflow_grants).where(_is_grant(workspace_id, workflow_id, principal_id))
            )
            await connection.execute(insert(workflow_grants).values(**_as_row(record)))
        return record

    async def delete_grant(self, workspace_id: str, workflow_id: str, principal_id: str) -> None:
        async with self._db.transaction() as connection:
            result = await connection.execute(
                delete(workflow_grants).where(_is_grant(workspace_id, workflow_id, principal_id))
            )
        if not result.rowcount:
            raise NotFound(f"Principal {principal_id!r} has no grant on {workflow_id!r}.")

    async def list_grants(self, workspace_id: str, workflow_id: str) -> builtins.list[GrantRecord]:
        statement = select(workflow_grants).where(
            workflow_grants.c.workspace_id == workspace_id,
            workflow_grants.c.workflow_id == workflow_id,
        )
        async with self._db.read() as connection:
            await _require_workflow(connection, workspace_id, workflow_id)
            rows = await connection.execute(statement.order_by(workflow_grants.c.principal_id))
            return [GrantRecord(**row._mapping) for row in rows]

    async def workspace_cidrs(self, workspace_id: str) -> list[str] | None:
        async with self._db.read() as connection:
            return await _workspace_cidrs(connection, workspace_id)

    async def set_workspace_cidrs(self, workspace_id: str, cidrs: Sequence[str] | None) -> None:
        value = list(cidrs) if cidrs is not None else None
        async with self._db.transaction() as connection:
            await connection.execute(
                update(workspaces)
                .where(workspaces.c.id == workspace_id)
                .values(allowed_cidrs=value)
            )


def _as_row(record: object) -> dict[str, Any]:
    return {name: getattr(record, name) for name in record.__slots__}  # type: ignore[attr-defined]


def _is_principal(workspace_id: str, principal_id: str) -> Any:
    return and_(principals.c.workspace_id == workspace_id, principals.c.id == principal_id)


def _is_key(workspace_id: str, key_id: str) -> Any:
    return and_(api_keys.c.workspace_id == workspace_id, api_keys.c.id == key_id)


def _is_grant(workspace_id: str, workflow_id: str, principal_id: str) -> Any:
    return and_(
        workflow_grants.c.workspace_id == workspace_id,
        workflow_grants.c.workflow_id == workflow_id,
        workflow_grants.c.principal_id == principal_id,
    )


async def _fetch_principal(
    connection: AsyncConnection, workspace_id: str, principal_id: str
) -> PrincipalRecord | None:
    statement = select(principals).where(_is_principal(workspace_id, principal_id))
    row = (await connection.execute(statement)).first()
    return _principal(row._mapping) if row is not None else None


async def _context(connection: AsyncConnection, principal: PrincipalRecord) -> PrincipalContext:
    grants = await connection.execute(
        select(workflow_grants.c.workflow_id, workflow_grants.c.role).where(
            workflow_grants.c.workspace_id == principal.workspace_id,
            workflow_grants.c.principal_id == principal.id,
        )
    )
    return PrincipalContext(
        principal=principal,
        grants={row.workflow_id: row.role for row in grants},
        workspace_cidrs=await _workspace_cidrs(connection, principal.workspace_id),
    )


async def _workspace_cidrs(connection: AsyncConnection, workspace_id: str) -> list[str] | None:
    statement = select(workspaces.c.allowed_cidrs).where(workspaces.c.id == workspace_id)
    value = (await connection.execute(statement)).scalar()
    return list(value) if value is not None else None


async def _require_workflow(
    connection: AsyncConnection, workspace_id: str, workflow_id: str
) -> None:
    statement = select(workflows.c.id).where(
        workflows.c.workspace_id == workspace_id, workflows.c.id == workflow_id
    )
    if (await connection.execute(statement)).first() is None:
        raise NotFound(f"Workflow {workflow_id!r} does not exist.")
