"""The task queue: due work and timers as rows, claimed in batches, committed in batches.

The queue is a table, so a state change and the tasks it creates commit in one transaction: no
dual write, nothing lost between a database and a broker. A worker's batch commit is a
compare-and-set on each execution's ``revision``: an execution changed by someone else since the
worker loaded it (a cancel, an event, another worker on a parallel branch) is not written; its
tasks are released and run again on the new state.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from campaignflow.engine.model import (
    ExecutionRecord,
    Outcome,
    TaskKind,
    TaskRecord,
    branches_removed,
)
from campaignflow.security.contact_fields import ContactCipher
from campaignflow.security.sealed_records import stored_state
from campaignflow.store import engine_sql as sql
from campaignflow.store import pg_batch as pg
from campaignflow.store.database import Database
from campaignflow.store.engine_rows import (
    Key,
    execution_from_mapping,
    execution_from_row,
    step_row,
    task_from_row,
    task_row,
)
from campaignflow.store.ids import new_id


class TaskQueue:
    """The worker's side of the engine's tables; ``cipher`` opens the executions it loads and
    keeps their started-by event sealed when it writes them back (required)."""

    def __init__(self, database: Database, cipher: ContactCipher) -> None:
        self._db = database
        self._cipher = cipher

    async def claim(
        self, owner: str, now: datetime, *, lease: timedelta, limit: int
    ) -> builtins.list[TaskRecord]:
        """Lease up to ``limit`` due tasks to ``owner`` until ``now + lease``."""
        params = {"now": now, "lease_until": now + lease, "owner": owner, "limit": limit}
        async with self._db.transaction() as connection:
            rows = (await connection.execute(sql.CLAIM_TASKS, params)).all()
        return [task_from_row(row) for row in rows]

    async def claim_batch(
        self, owner: str, now: datetime, *, lease: timedelta, limit: int
    ) -> tuple[builtins.list[TaskRecord], dict[Key, ExecutionRecord]]:
        """:meth:`claim`, then :meth:`load` the claimed tasks' executions (one statement on
        PostgreSQL). A task whose execution is gone has no entry in the mapping."""
        if self._db.dialect != "postgresql":
            tasks = await self.claim(owner, now, lease=lease, limit=limit)
            return tasks, await self.load((t.workspace_id, t.execution_id) for t in tasks)
        async with self._db.autocommit() as connection:
            rows = await pg.fetch(
                connection, pg.CLAIM_WITH_EXECUTIONS, now, limit, now + lease, owner
            )
        tasks, executions = [], {}
        for row in rows:
            mapping = row._mapping
            tasks.append(TaskRecord(**{name: mapping[name] for name in pg.TASK_FIELDS}))
            if mapping["x_id"] is not None:
                key = (mapping["x_workspace_id"], mapping["x_id"])
                if key not in executions:
                    executions[key] = execution_from_mapping(
                        {alias[2:]: mapping[alias] for alias in pg.EXECUTION_ALIASES},
                        self._cipher,
                    )
        return tasks, executions

    async def load(self, keys: Iterable[Key]) -> dict[Key, ExecutionRecord]:
        unique = sorted(set(keys))
        if not unique:
            return {}
        async with self._db.read() as connection:
            if self._db.dialect == "postgresql":
                workspaces, ids = [key[0] for key in unique], [key[1] for key in unique]
                rows = await pg.fetch(connection, pg.LOAD_EXECUTIONS, workspaces, ids)
            else:
                rows = list((await connection.execute(sql.load_executions(unique))).all())
        return {(row.workspace_id, row.id): execution_from_row(row, self._cipher) for row in rows}

    async def next_due(self) -> datetime | None:
        """When the earliest task (or lease) falls due; ``None`` when the queue is empty."""
        async with self._db.read() as connection:
            value: datetime | None = (await connection.execute(sql.NEXT_DUE)).scalar()
        return value

    async def drop_tasks(self, task_ids: Sequence[int]) -> None:
        """Delete tasks whose execution no longer exists."""
        if task_ids:
            async with self._db.transaction() as connection:
                await connection.execute(sql.DELETE_TASKS, {"ids": list(task_ids)})

    async def commit(
        self, outcomes: Sequence[Outcome], revisions: dict[Key, int], owner: str, now: datetime
    ) -> builtins.list[Key]:
        """Write a batch of outcomes in one transaction; return the executions not written.

        ``revisions`` holds each execution's revision as it was loaded. An execution whose
        revision moved since is left as it is now and its consumed tasks are released.
        """
        if not outcomes:
            return []
        keys = [(o.execution.workspace_id, o.execution.id) for o in outcomes]
        async with self._db.transaction() as connection:
            current = {
                (row.workspace_id, row.id): row.revision
                for row in await _lock_revisions(connection, keys)
            }
            conflicted = [key for key in keys if current.get(key) != revisions.get(key)]
            stale = set(conflicted)
            fresh = [o for o, key in zip(outcomes, keys, strict=True) if key not in stale]
            released = [
                tid
                for o, key in zip(outcomes, keys, strict=True)
                if key in stale
                for tid in o.consumed_task_ids
            ]
            if released:
                await connection.execute(
                    sql.RELEASE_TASKS, {"ids": released, "owner": owner, "now": now}
                )
            for outcome in fresh:
                await _cancel_branches(connection, outcome, now)
            await _write_outcomes(connection, self._cipher, fresh, now)
        return conflicted


async def _lock_revisions(connection: AsyncConnection, keys: list[Key]) -> list[Any]:
    if connection.dialect.name == "postgresql":
        workspaces, ids = [key[0] for key in keys], [key[1] for key in keys]
        return await pg.fetch(connection, pg.LOCK_REVISIONS, workspaces, ids)
    return list((await connection.execute(sql.lock_revisions(keys))).all())


async def _cancel_branches(connection: AsyncConnection, outcome: Outcome, now: datetime) -> None:
    """Delete the tasks and waits of cancelled branches that exist from earlier runs."""
    if not outcome.cancelled_prefixes:
        return
    execution = outcome.execution
    removed = 0
    for prefix in outcome.cancelled_prefixes:
        kinds = (
            (
                await connection.execute(
                    sql.delete_branch_tasks(
                        execution.workspace_id, execution.id, prefix, outcome.consumed_task_ids
                    )
                )
            )
            .scalars()
            .all()
        )
        tokens = (
            (
                await connection.execute(
                    sql.delete_branch_waits(execution.workspace_id, execution.id, prefix)
                )
            )
            .scalars()
            .all()
        )
        removed += sum(1 for kind in kinds if kind != TaskKind.TIMEOUT) + len(tokens)
    branches_removed(execution, removed, now)


async def _write_outcomes(
    connection: AsyncConnection, cipher: ContactCipher, outcomes: Sequence[Outcome], now: datetime
) -> None:
    if not outcomes:
        return
    updates: list[dict[str, Any]] = []
    steps: list[dict[str, Any]] = []
    tasks: list[dict[str, Any]] = []
    waits: list[dict[str, Any]] = []
    letters: list[dict[str, Any]] = []
    removed_waits: list[dict[str, Any]] = []
    consumed: list[int] = []
    for outcome in outcomes:
        execution = outcome.execution
        workspace, execution_id = execution.workspace_id, execution.id
        updates.append(
            {
                "b_workspace": workspace,
                "b_id": execution_id,
                "status": str(execution.status),
                "state": stored_state(cipher, execution.state),
                "error": execution.error,
                "updated_at": execution.updated_at,
                "finished_at": execution.finished_at,
            }
        )
        steps.extend(step_row(workspace, execution_id, step) for step in outcome.steps)
        tasks.extend(task_row(workspace, execution_id, task, now) for task in outcome.tasks)
        waits.extend(
            {
                "workspace_id": workspace,
                "execution_id": execution_id,
                "token": wait.token,
                "node_id": wait.node_id,
                "subject_id": execution.subject_id,
                "event_name": wait.event_name,
                "correlation_value": wait.correlation_value,
                "expires_at": wait.expires_at,
                "created_at": now,
            }
            for wait in outcome.waits
        )
        letters.extend(
            {
                "workspace_id": workspace,
                "id": new_id(),
                "execution_id": execution_id,
                "workflow_id": execution.workflow_id,
                "workflow_version": execution.workflow_version,
                "node_id": letter.node_id,
                "token": letter.token,
                "status": "open",
                "attempts": letter.attempts,
                "errors": letter.errors,
                "input": execution.input,
                "created_at": now,
                "resolved_at": None,
            }
            for letter in outcome.dead_letters
        )
        removed_waits.extend(
            {"workspace": workspace, "execution": execution_id, "token": token}
            for token in outcome.removed_wait_tokens
        )
        consumed.extend(outcome.consumed_task_ids)
    if connection.dialect.name == "postgresql":
        await _write_bulk_pg(connection, updates, consumed, steps, tasks)
    else:
        await connection.execute(sql.UPDATE_EXECUTION, updates)
        if consumed:
            await connection.execute(sql.DELETE_TASKS, {"ids": consumed})
        for statement, rows in ((sql.INSERT_STEPS, steps), (sql.INSERT_TASKS, tasks)):
            if rows:
                await connection.execute(statement, rows)
    if removed_waits:
        await connection.execute(sql.DELETE_WAIT, removed_waits)
    for statement, rows in ((sql.INSERT_WAITS, waits), (sql.INSERT_DEAD_LETTERS, letters)):
        if rows:
            await connection.execute(statement, rows)


_UPDATE_COLUMNS = ("b_workspace", "b_id", "status", "state", "error", "updated_at", "finished_at")
_STEP_COLUMNS = (
    "workspace_id", "execution_id", "seq", "node_id", "node_type", "token", "attempt",
    "status", "started_at", "finished_at", "output", "error",
)  # fmt: skip
_TASK_COLUMNS = pg.NEW_TASK_COLUMNS


async def _write_bulk_pg(
    connection: AsyncConnection,
    updates: list[dict[str, Any]],
    consumed: list[int],
    steps: list[dict[str, Any]],
    tasks: list[dict[str, Any]],
) -> None:
    """The same writes as the portable path, as array statements (:mod:`pg_batch`)."""
    for row in updates:
        row["state"] = pg.json_text(row["state"])
        row["error"] = pg.json_or_null(row["error"])
    await pg.execute(connection, pg.UPDATE_EXECUTIONS, *pg.columns(updates, _UPDATE_COLUMNS))
    if consumed:
        await pg.execute(connection, pg.DELETE_TASKS, consumed)
    if steps:
        for row in steps:
            row["output"] = pg.json_text(row["output"])
            row["error"] = pg.json_or_null(row["error"])
        await pg.execute(connection, pg.INSERT_STEPS, *pg.columns(steps, _STEP_COLUMNS))
    if tasks:
        for row in tasks:
            row["payload"] = pg.json_or_null(row["payload"])
        await pg.execute(connection, pg.INSERT_TASKS, *pg.columns(tasks, _TASK_COLUMNS))
