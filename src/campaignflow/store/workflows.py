"""Workflow definitions and their immutable versions, per workspace.

Every statement filters by ``workspace_id``. Writes are single conditional statements (insert
that fails on a duplicate key, update guarded by its ``WHERE``) so that concurrent callers are
serialised by the database, never by a read-then-write in Python.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from campaignflow.errors import (
    AlreadyExists,
    ClientError,
    Conflict,
    NotFound,
    PreconditionFailed,
)
from campaignflow.store import workflow_sql as sql
from campaignflow.store.database import Database, integrity_kind
from campaignflow.store.tables import WORKFLOW_STATUSES
from campaignflow.store.workflow_sql import ARCHIVED

Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class WorkflowSummaryRecord:
    """A workflow without its definition, as lists return it."""

    workspace_id: str
    id: str
    name: str
    status: str
    version: int
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None


@dataclass(frozen=True, slots=True)
class WorkflowRecord(WorkflowSummaryRecord):
    """A workflow with its latest version's definition."""

    definition: dict[str, Any]
    content_hash: str


@dataclass(frozen=True, slots=True)
class VersionRecord:
    """One immutable version of a workflow definition."""

    workspace_id: str
    workflow_id: str
    version: int
    name: str
    definition: dict[str, Any]
    content_hash: str
    created_at: datetime


def utc_now() -> datetime:
    return datetime.now(UTC)


def aware_now(clock: Clock) -> datetime:
    """The clock's time in UTC; a store refuses a clock that forgets its time zone."""
    now = clock()
    if now.utcoffset() is None:
        raise ValueError("the store's clock must return aware datetimes")
    return now.astimezone(UTC)


# --- the store ----------------------------------------------------------------------------


class WorkflowStore:
    """Workflows and their versions on a :class:`Database`."""

    def __init__(self, database: Database, *, clock: Clock = utc_now) -> None:
        self._db = database
        self._clock = clock

    def _now(self) -> datetime:
        return aware_now(self._clock)

    async def ensure_workspace(self, workspace_id: str, name: str) -> None:
        """Create the workspace unless it exists (an existing one keeps its name)."""
        row = {"id": workspace_id, "name": name, "created_at": self._now()}
        async with self._db.transaction() as connection:
            await connection.execute(sql.ENSURE_WORKSPACE[self._db.dialect], row)

    async def create(
        self,
        workspace_id: str,
        workflow_id: str,
        *,
        name: str,
        definition: Mapping[str, Any],
        content_hash: str,
        status: str = "draft",
    ) -> WorkflowRecord:
        """Create the workflow with its version 1.

        Raises :class:`AlreadyExists` if the id is taken in the workspace, whatever its status
        (ids of archived workflows are never reused), and :class:`NotFound` if the workspace
        does not exist.
        """
        _check_status(status)
        now = self._now()
        workflow = {
            "workspace_id": workspace_id,
            "id": workflow_id,
            "name": name,
            "name_search": name.casefold(),
            "status": status,
            "latest_version": 1,
            "created_at": now,
            "updated_at": now,
            "archived_at": now if status == ARCHIVED else None,
        }
        version = _version_row(
            workspace_id,
            workflow_id,
            1,
            name=name,
            definition=definition,
            content_hash=content_hash,
            created_at=now,
        )
        async with self._db.transaction() as connection:
            await _insert_workflow(connection, workflow)
            await connection.execute(sql.INSERT_VERSION, version)
        return _record(workflow, version)

    async def get(self, workspace_id: str, workflow_id: str) -> WorkflowRecord:
        """The workflow in any status, with its latest version; :class:`NotFound` otherwise."""
        async with self._db.read() as connection:
            return await _fetch_record(connection, workspace_id, workflow_id)

    async def list(
        self,
        workspace_id: str,
        *,
        status: str | None = None,
        name_contains: str | None = None,
        after: str | None = None,
        limit: int = 50,
    ) -> builtins.list[WorkflowSummaryRecord]:
        """Workflows ordered by id, starting after the id ``after`` (keyset pagination).

        Archived workflows are listed only when asked for with ``status="archived"``.
        ``name_contains`` matches a substring of the name, ignoring case (Unicode case folding
        on both dialects); ``%``, ``_`` and ``\\`` in it are literal characters.
        """
        if status is not None:
            _check_status(status)
        _check_limit(limit)
        statement = sql.list_workflows(status, name_contains, after)
        params = {"workspace": workspace_id, "limit": limit}
        async with self._db.read() as connection:
            rows = (await connection.execute(statement, params)).all()
        return [WorkflowSummaryRecord(**row._mapping) for row in rows]

    async def add_version(
        self,
        workspace_id: str,
        workflow_id: str,
        *,
        name: str,
        definition: Mapping[str, Any],
        content_hash: str,
        expected_version: int | None,
    ) -> WorkflowRecord:
        """Store a new version and make it the latest, atomically.

        With ``expected_version`` this is a compare-and-set: :class:`PreconditionFailed` if the
        latest version is another one by now. :class:`NotFound` if the workflow does not exist,
        :class:`Conflict` if it is archived.
        """
        now = self._now()
        params = {
            "workspace": workspace_id,
            "workflow": workflow_id,
            "expected": expected_version,
            "new_name": name,
            "new_name_search": name.casefold(),
            "now": now,
        }
        async with self._db.transaction() as connection:
            bumped = (await connection.execute(sql.BUMP_VERSION, params)).first()
            if bumped is None:
                raise await _version_refusal(
                    connection, workspace_id, workflow_id, expected_version
                )
            row = _version_row(
                workspace_id,
                workflow_id,
                bumped.latest_version,
                name=name,
                definition=definition,
                content_hash=content_hash,
                created_at=now,
            )
            await connection.execute(sql.INSERT_VERSION, row)
        workflow = {
            "workspace_id": workspace_id,
            "id": workflow_id,
            "name": name,
            "status": bumped.status,
            "created_at": bumped.created_at,
            "updated_at": now,
            "archived_at": bumped.archived_at,
        }
        return _record(workflow, row)

    async def set_status(
        self, workspace_id: str, workflow_id: str, status: str, *, allowed_from: Collection[str]
    ) -> WorkflowRecord:
        """Move the workflow to ``status`` if its current status is in ``allowed_from``.

        :class:`Conflict` otherwise, :class:`NotFound` if it does not exist. Archiving records
        ``archived_at``; leaving ``archived`` clears it.
        """
        _check_status(status)
        statement = sql.ARCHIVE if status == ARCHIVED else sql.SET_STATUS
        params = {
            "workspace": workspace_id,
            "workflow": workflow_id,
            "target": status,
            "allowed": sorted(allowed_from),
            "now": self._now(),
        }
        async with self._db.transaction() as connection:
            if not (await connection.execute(statement, params)).rowcount:
                raise await _status_refusal(connection, workspace_id, workflow_id, status)
            return await _fetch_record(connection, workspace_id, workflow_id)

    async def list_versions(
        self, workspace_id: str, workflow_id: str, *, after: int | None = None, limit: int = 50
    ) -> builtins.list[VersionRecord]:
        """Versions in ascending order, after version ``after``; :class:`NotFound` if the
        workflow does not exist."""
        _check_limit(limit)
        params = {"workspace": workspace_id, "workflow": workflow_id, "after": after or 0}
        async with self._db.connect() as connection:
            rows = (await connection.execute(sql.LIST_VERSIONS, {**params, "limit": limit})).all()
            if not rows and await _fetch_state(connection, workspace_id, workflow_id) is None:
                raise _not_found(workflow_id)
        return [VersionRecord(**row._mapping) for row in rows]

    async def get_version(self, workspace_id: str, workflow_id: str, version: int) -> VersionRecord:
        """One version; :class:`NotFound` if the workflow or that version does not exist."""
        params = {"workspace": workspace_id, "workflow": workflow_id, "version": version}
        async with self._db.connect() as connection:
            row = (await connection.execute(sql.GET_VERSION, params)).first()
        if row is None:
            raise NotFound(f"Workflow {workflow_id!r} has no version {version}.")
        return VersionRecord(**row._mapping)


# --- helpers ------------------------------------------------------------------------------


async def _insert_workflow(connection: AsyncConnection, workflow: Mapping[str, Any]) -> None:
    try:
        await connection.execute(sql.INSERT_WORKFLOW, workflow)
    except IntegrityError as exc:
        kind = integrity_kind(exc)
        if kind == "unique":
            raise AlreadyExists(f"Workflow {workflow['id']!r} already exists.") from exc
        if kind == "foreign_key":
            raise NotFound(f"Workspace {workflow['workspace_id']!r} does not exist.") from exc
        raise


async def _fetch_record(
    connection: AsyncConnection, workspace_id: str, workflow_id: str
) -> WorkflowRecord:
    params = {"workspace": workspace_id, "workflow": workflow_id}
    row = (await connection.execute(sql.GET_WORKFLOW, params)).first()
    if row is None:
        raise _not_found(workflow_id)
    return WorkflowRecord(**row._mapping)


async def _fetch_state(
    connection: AsyncConnection, workspace_id: str, workflow_id: str
) -> tuple[str, int] | None:
    """The workflow's status and latest version, ``None`` if it does not exist."""
    params = {"workspace": workspace_id, "workflow": workflow_id}
    row = (await connection.execute(sql.GET_STATE, params)).first()
    return None if row is None else (row.status, row.latest_version)


async def _version_refusal(
    connection: AsyncConnection, workspace_id: str, workflow_id: str, expected: int | None
) -> ClientError:
    """Why :data:`sql.BUMP_VERSION` changed no row."""
    state = await _fetch_state(connection, workspace_id, workflow_id)
    if state is None:
        return _not_found(workflow_id)
    status, latest = state
    if status == ARCHIVED:
        return Conflict(f"Workflow {workflow_id!r} is archived; cannot add a version.")
    return PreconditionFailed(
        f"Workflow {workflow_id!r} is at version {latest}, not {expected}; "
        "fetch it again and retry."
    )


async def _status_refusal(
    connection: AsyncConnection, workspace_id: str, workflow_id: str, target: str
) -> ClientError:
    """Why a status update changed no row."""
    state = await _fetch_state(connection, workspace_id, workflow_id)
    if state is None:
        return _not_found(workflow_id)
    return Conflict(f"Workflow {workflow_id!r} is {state[0]}; cannot make it {target}.")


def _not_found(workflow_id: str) -> NotFound:
    return NotFound(f"Workflow {workflow_id!r} does not exist.")


def _version_row(
    workspace_id: str,
    workflow_id: str,
    version: int,
    *,
    name: str,
    definition: Mapping[str, Any],
    content_hash: str,
    created_at: datetime,
) -> dict[str, Any]:
    return {
        "workspace_id": workspace_id,
        "workflow_id": workflow_id,
        "version": version,
        "name": name,
        "definition": dict(definition),
        "content_hash": content_hash,
        "created_at": created_at,
    }


def _record(workflow: Mapping[str, Any], version: Mapping[str, Any]) -> WorkflowRecord:
    return WorkflowRecord(
        workspace_id=workflow["workspace_id"],
        id=workflow["id"],
        name=workflow["name"],
        status=workflow["status"],
        version=version["version"],
        definition=version["definition"],
        content_hash=version["content_hash"],
        created_at=workflow["created_at"],
        updated_at=workflow["updated_at"],
        archived_at=workflow["archived_at"],
    )


def _check_status(status: str) -> None:
    if status not in WORKFLOW_STATUSES:
        raise ValueError(f"unknown workflow status {status!r}; one of {WORKFLOW_STATUSES}")


def _check_limit(limit: int) -> None:
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
