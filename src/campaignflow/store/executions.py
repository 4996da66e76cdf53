"""Executions, their step log, the task queue, event waits and dead letters.

The queue is a table, so a state change and the tasks it creates commit in one transaction: no
dual write, nothing lost between a database and a broker. A worker's batch commit is a
compare-and-set on each execution's ``revision``: an execution changed by someone else since the
worker loaded it (a cancel, an event, another worker on a parallel branch) is not written; its
tasks are released and run again on the new state.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from campaignflow.engine.model import (
    MAIN_TOKEN,
    ExecutionRecord,
    ExecutionStatus,
    NewTask,
    Outcome,
    TaskKind,
    TaskRecord,
)
from campaignflow.errors import Conflict, NotFound
from campaignflow.store import engine_sql as sql
from campaignflow.store import pg_batch as pg
from campaignflow.store.database import Database, integrity_kind
from campaignflow.store.ids import new_id

Key = tuple[str, str]


@dataclass(frozen=True, slots=True)
class NewExecution:
    """What starting an execution needs; the store assigns the id."""

    workspace_id: str
    workflow_id: str
    workflow_version: int
    subject_id: str
    trigger: str
    input: dict[str, Any]
    contact: dict[str, Any]
    start_node: str
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class StepRecord:
    seq: int
    node_id: str
    node_type: str
    token: str
    attempt: int
    status: str
    started_at: datetime
    finished_at: datetime
    output: Any
    error: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class WaitRecord:
    workspace_id: str
    execution_id: str
    token: str
    node_id: str
    subject_id: str
    event_name: str
    correlation_value: str | None
    expires_at: datetime | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    workspace_id: str
    id: str
    execution_id: str
    workflow_id: str
    workflow_version: int
    node_id: str
    token: str
    status: str
    attempts: int
    errors: list[dict[str, Any]]
    input: dict[str, Any]
    created_at: datetime
    resolved_at: datetime | None


def _execution(row: Any) -> ExecutionRecord:
    return ExecutionRecord(**row._mapping)


def _task(row: Any) -> TaskRecord:
    return TaskRecord(**row._mapping)


def initial_state() -> dict[str, Any]:
    """A new execution: one live token (its start task) and no steps yet."""
    return {"live": 1, "seq": 0}


class ExecutionStore:
    """The engine's tables on a :class:`Database`."""

    def __init__(self, database: Database) -> None:
        self._db = database

    @property
    def database(self) -> Database:
        return self._db

    # ------------------------------------------------------------------ starting

    async def start(self, new: NewExecution, now: datetime) -> tuple[ExecutionRecord, bool]:
        """Create one execution and its start task; with an idempotency key already used for
        this workflow, return the existing execution instead (and ``False``)."""
        if new.idempotency_key is not None:
            existing = await self.find_by_idempotency_key(
                new.workspace_id, new.workflow_id, new.idempotency_key
            )
            if existing is not None:
                return existing, False
        try:
            (record,) = await self.start_many([new], now)
        except Conflict:
            existing = await self.find_by_idempotency_key(
                new.workspace_id, new.workflow_id, new.idempotency_key
            )
            if existing is None:
                raise
            return existing, False
        return record, True

    async def find_by_idempotency_key(
        self, workspace_id: str, workflow_id: str, key: str | None
    ) -> ExecutionRecord | None:
        params = {"workspace": workspace_id, "workflow": workflow_id, "key": key}
        async with self._db.read() as connection:
            row = (await connection.execute(sql.BY_IDEMPOTENCY_KEY, params)).first()
        return None if row is None else _execution(row)

    async def start_many(
        self, news: Sequence[NewExecution], now: datetime
    ) -> builtins.list[ExecutionRecord]:
        """Create executions and their start tasks in one transaction (batch inserts)."""
        if not news:
            return []
        records = [
            ExecutionRecord(
                workspace_id=new.workspace_id,
                id=new_id(),
                workflow_id=new.workflow_id,
                workflow_version=new.workflow_version,
                subject_id=new.subject_id,
                status=ExecutionStatus.PENDING,
                trigger=new.trigger,
                input=new.input,
                contact=new.contact,
                state=initial_state(),
                revision=0,
                created_at=now,
                updated_at=now,
                idempotency_key=new.idempotency_key,
            )
            for new in news
        ]
        execution_rows = [_execution_row(record) for record in records]
        task_rows = [
            _task_row(
                record.workspace_id,
                record.id,
                NewTask(new.start_node, MAIN_TOKEN, TaskKind.RUN, 1, now),
                now,
            )
            for record, new in zip(records, news, strict=True)
        ]
        try:
            async with self._db.transaction() as connection:
                await connection.execute(sql.INSERT_EXECUTION, execution_rows)
                await connection.execute(sql.INSERT_TASKS, task_rows)
                await self._notify(connection)
        except IntegrityError as exc:  # pragma: no branch - translated for the caller
            if integrity_kind(exc) == "unique":
                raise Conflict("An execution with this idempotency key already exists.") from exc
            if integrity_kind(exc) == "foreign_key":
                raise NotFound("The workflow version does not exist.") from exc
            raise
        return records

    async def _notify(self, connection: AsyncConnection) -> None:
        """Wake the workers of every process when this transaction commits (PostgreSQL
        delivers a NOTIFY at commit, and not at all on rollback). Whoever writes due tasks
        through the store wakes the workers, so no caller can forget to."""
        if self._db.dialect == "postgresql":
            await connection.execute(sql.NOTIFY_WORKERS)

    # ------------------------------------------------------------------ the worker's side

    async def claim(
        self, owner: str, now: datetime, *, lease: timedelta, limit: int
    ) -> builtins.list[TaskRecord]:
        """Lease up to ``limit`` due tasks to ``owner`` until ``now + lease``."""
        params = {"now": now, "lease_until": now + lease, "owner": owner, "limit": limit}
        async with self._db.transaction() as connection:
            rows = (await connection.execute(sql.CLAIM_TASKS, params)).all()
        return [_task(row) for row in rows]

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
                    executions[key] = ExecutionRecord(
                        **{alias[2:]: mapping[alias] for alias in pg.EXECUTION_ALIASES}
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
        return {(row.workspace_id, row.id): _execution(row) for row in rows}

    async def next_due(self) -> datetime | None:
        """When the earliest task (or lease) falls due; ``None`` when the queue is empty."""
        async with self._db.read() as connection:
            value: datetime | None = (await connection.execute(sql.NEXT_DUE)).scalar()
        return value

    async def release(self, task_ids: Sequence[int], owner: str, now: datetime) -> None:
        """Give leased tasks back (graceful shutdown, lost compare-and-set)."""
        if not task_ids:
            return
        async with self._db.transaction() as connection:
            await connection.execute(
                sql.RELEASE_TASKS, {"ids": list(task_ids), "owner": owner, "now": now}
            )

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
            await _write_outcomes(connection, fresh, now)
        return conflicted

    # ------------------------------------------------------------------ reading

    async def get(self, workspace_id: str, execution_id: str) -> ExecutionRecord:
        async with self._db.read() as connection:
            row = (
                await connection.execute(
                    sql.GET_EXECUTION, {"workspace": workspace_id, "execution": execution_id}
                )
            ).first()
        if row is None:
            raise NotFound(f"Execution {execution_id!r} does not exist.")
        return _execution(row)

    async def steps(self, workspace_id: str, execution_id: str) -> builtins.list[StepRecord]:
        params = {"workspace": workspace_id, "execution": execution_id}
        async with self._db.read() as connection:
            rows = (await connection.execute(sql.STEPS_OF_EXECUTION, params)).all()
        return [
            StepRecord(
                row.seq,
                row.node_id,
                row.node_type,
                row.token,
                row.attempt,
                row.status,
                row.started_at,
                row.finished_at,
                row.output,
                row.error,
            )
            for row in rows
        ]

    async def waits(self, workspace_id: str, execution_id: str) -> builtins.list[WaitRecord]:
        params = {"workspace": workspace_id, "execution": execution_id}
        async with self._db.read() as connection:
            rows = (await connection.execute(sql.WAITS_OF_EXECUTION, params)).all()
        return [WaitRecord(**row._mapping) for row in rows]

    async def list(
        self,
        workspace_id: str,
        *,
        workflow_id: str | None = None,
        status: str | None = None,
        subject_id: str | None = None,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        before: str | None = None,
        limit: int = 50,
    ) -> builtins.list[ExecutionRecord]:
        """Newest first, starting after (older than) the id ``before``."""
        statement = sql.list_executions(
            workflow=workflow_id,
            status=status,
            subject=subject_id,
            created_from=created_from is not None,
            created_to=created_to is not None,
            before=before,
        )
        params = {
            "workspace": workspace_id,
            "workflow": workflow_id,
            "status": status,
            "subject": subject_id,
            "created_from": created_from,
            "created_to": created_to,
            "before": before,
            "limit": limit,
        }
        used = {key: value for key, value in params.items() if value is not None}
        async with self._db.read() as connection:
            rows = (await connection.execute(statement, used)).all()
        return [_execution(row) for row in rows]

    # ------------------------------------------------------------------ outside the worker

    async def cancel(self, workspace_id: str, execution_id: str, now: datetime) -> ExecutionRecord:
        """Cancel a live execution: its tasks and waits go; a final one is a :class:`Conflict`."""
        params = {"workspace": workspace_id, "execution": execution_id}
        async with self._db.transaction() as connection:
            record = await _lock(connection, workspace_id, execution_id)
            if ExecutionStatus(record.status).is_final:
                raise Conflict(f"Execution {execution_id!r} is already {record.status}.")
            await connection.execute(sql.DELETE_EXECUTION_TASKS, params)
            await connection.execute(sql.DELETE_EXECUTION_WAITS, params)
            record.state["live"] = 0
            record.status = ExecutionStatus.CANCELLED
            record.finished_at = now
            await _bump(connection, record, now)
        return record

    async def exit_versions_below(
        self, workspace_id: str, workflow_id: str, version: int, now: datetime
    ) -> int:
        """Cancel every live execution of ``workflow_id`` pinned to a version below ``version``
        (with its tasks and waits); the revision moves, so a worker holding one writes nothing."""
        params = {
            "workspace": workspace_id,
            "workflow": workflow_id,
            "version": version,
            "now": now,
            "error": {"reason": f"exited: version {version} was published with inFlight=exit"},
        }
        async with self._db.transaction() as connection:
            ids = (await connection.execute(sql.EXIT_OLD_VERSIONS, params)).scalars().all()
            if ids:
                scope = {"workspace": workspace_id, "ids": list(ids)}
                await connection.execute(sql.DELETE_TASKS_OF_EXECUTIONS, scope)
                await connection.execute(sql.DELETE_WAITS_OF_EXECUTIONS, scope)
        return len(ids)

    async def complete_wait(
        self,
        wait: WaitRecord,
        *,
        expected_revision: int,
        event: dict[str, Any],
        now: datetime,
    ) -> bool:
        """Turn ``wait`` into an event task (the wait node continues with ``event``).

        A compare-and-set on the execution's revision: ``False`` when the execution moved on
        since the caller read it (the caller re-reads and decides again).
        """
        params = {
            "workspace": wait.workspace_id,
            "execution": wait.execution_id,
            "token": wait.token,
        }
        async with self._db.transaction() as connection:
            record = await _lock(connection, wait.workspace_id, wait.execution_id)
            if record.revision != expected_revision or ExecutionStatus(record.status).is_final:
                return False
            deleted = await connection.execute(sql.DELETE_WAIT, params)
            if deleted.rowcount != 1:
                return False
            await connection.execute(sql.DELETE_TIMEOUT_TASK, params)
            payload = {"event": event, "since": wait.created_at.isoformat()}
            task = NewTask(wait.node_id, wait.token, TaskKind.EVENT, 1, now, payload)
            await connection.execute(
                sql.INSERT_TASKS, [_task_row(wait.workspace_id, wait.execution_id, task, now)]
            )
            record.status = ExecutionStatus.RUNNING
            await _bump(connection, record, now)
            await self._notify(connection)
        return True

    async def reopen(
        self, workspace_id: str, execution_id: str, now: datetime, *, dead_letter_id: str | None
    ) -> ExecutionRecord:
        """Re-run the failed node(s) of a failed execution (its open dead letters, or one).

        The replayed node gets a new idempotency-key group: a deliberate replay is a new
        intent, not a repeat of the failed one.
        """
        params = {"workspace": workspace_id, "execution": execution_id}
        async with self._db.transaction() as connection:
            record = await _lock(connection, workspace_id, execution_id)
            rows = (await connection.execute(sql.OPEN_DEAD_LETTERS_OF_EXECUTION, params)).all()
            letters = [row for row in rows if dead_letter_id in (None, row.id)]
            if record.status != ExecutionStatus.FAILED or not letters:
                raise Conflict(
                    f"Execution {execution_id!r} is {record.status} with nothing to replay; "
                    "only a failed execution's open dead letters can be replayed."
                )
            groups = record.state.setdefault("groups", {})
            task_rows = []
            for letter in letters:
                key = f"{letter.token}|{letter.node_id}"
                groups[key] = groups.get(key, 0) + 1
                record.state.setdefault("errors", {}).pop(key, None)
                task = NewTask(letter.node_id, letter.token, TaskKind.RUN, 1, now)
                task_rows.append(_task_row(workspace_id, execution_id, task, now))
                await connection.execute(
                    sql.RESOLVE_DEAD_LETTER,
                    {**params, "dead_letter": letter.id, "status": "replayed", "now": now},
                )
            await connection.execute(sql.INSERT_TASKS, task_rows)
            record.state["live"] = len(task_rows)
            record.status = ExecutionStatus.RUNNING
            record.error = None
            record.finished_at = None
            await _bump(connection, record, now)
            await self._notify(connection)
        return record

    # ------------------------------------------------------------------ dead letters

    async def dead_letter(self, workspace_id: str, dead_letter_id: str) -> DeadLetterRecord:
        params = {"workspace": workspace_id, "dead_letter": dead_letter_id}
        async with self._db.read() as connection:
            row = (await connection.execute(sql.GET_DEAD_LETTER, params)).first()
        if row is None:
            raise NotFound(f"Dead letter {dead_letter_id!r} does not exist.")
        return DeadLetterRecord(**row._mapping)

    async def dead_letters(
        self,
        workspace_id: str,
        *,
        status: str | None = None,
        workflow_id: str | None = None,
        before: str | None = None,
        limit: int = 50,
    ) -> builtins.list[DeadLetterRecord]:
        statement = sql.list_dead_letters(status=status, workflow=workflow_id, before=before)
        params = {
            "workspace": workspace_id,
            "status": status,
            "workflow": workflow_id,
            "before": before,
            "limit": limit,
        }
        used = {key: value for key, value in params.items() if value is not None}
        async with self._db.read() as connection:
            rows = (await connection.execute(statement, used)).all()
        return [DeadLetterRecord(**row._mapping) for row in rows]

    async def discard_dead_letter(
        self, workspace_id: str, dead_letter_id: str, now: datetime
    ) -> DeadLetterRecord:
        params = {
            "workspace": workspace_id,
            "dead_letter": dead_letter_id,
            "status": "discarded",
            "now": now,
        }
        async with self._db.transaction() as connection:
            changed = await connection.execute(sql.RESOLVE_DEAD_LETTER, params)
            row = (await connection.execute(sql.GET_DEAD_LETTER, params)).first()
        if row is None:
            raise NotFound(f"Dead letter {dead_letter_id!r} does not exist.")
        if changed.rowcount != 1:
            raise Conflict(f"Dead letter {dead_letter_id!r} is already {row.status}.")
        return DeadLetterRecord(**row._mapping)


# ---------------------------------------------------------------------- helpers


async def _lock(
    connection: AsyncConnection, workspace_id: str, execution_id: str
) -> ExecutionRecord:
    params = {"workspace": workspace_id, "execution": execution_id}
    row = (await connection.execute(sql.LOCK_EXECUTION, params)).first()
    if row is None:
        raise NotFound(f"Execution {execution_id!r} does not exist.")
    return _execution(row)


async def _lock_revisions(connection: AsyncConnection, keys: list[Key]) -> list[Any]:
    if connection.dialect.name == "postgresql":
        workspaces, ids = [key[0] for key in keys], [key[1] for key in keys]
        return await pg.fetch(connection, pg.LOCK_REVISIONS, workspaces, ids)
    return list((await connection.execute(sql.lock_revisions(keys))).all())


async def _bump(connection: AsyncConnection, record: ExecutionRecord, now: datetime) -> None:
    """Write ``record`` (locked by the caller) and advance its revision."""
    await connection.execute(
        sql.BUMP_REVISION,
        {
            "workspace": record.workspace_id,
            "execution": record.id,
            "expected": record.revision,
            "status": str(record.status),
            "state": record.state,
            "error": record.error,
            "now": now,
            "finished_at": record.finished_at,
        },
    )
    record.revision += 1
    record.updated_at = now


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
    if execution.status == ExecutionStatus.FAILED:
        return
    live = max(0, execution.state.get("live", 0) - removed)
    execution.state["live"] = live
    if live == 0:
        execution.status = ExecutionStatus.COMPLETED
        execution.finished_at = now


async def _write_outcomes(
    connection: AsyncConnection, outcomes: Sequence[Outcome], now: datetime
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
                "state": execution.state,
                "error": execution.error,
                "updated_at": execution.updated_at,
                "finished_at": execution.finished_at,
            }
        )
        steps.extend(_step_row(workspace, execution_id, step) for step in outcome.steps)
        tasks.extend(_task_row(workspace, execution_id, task, now) for task in outcome.tasks)
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
_TASK_COLUMNS = (
    "workspace_id", "execution_id", "node_id", "token", "kind", "attempt", "run_at",
    "payload", "created_at",
)  # fmt: skip


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


def _execution_row(record: ExecutionRecord) -> dict[str, Any]:
    return {
        "workspace_id": record.workspace_id,
        "id": record.id,
        "workflow_id": record.workflow_id,
        "workflow_version": record.workflow_version,
        "subject_id": record.subject_id,
        "status": str(record.status),
        "trigger": record.trigger,
        "input": record.input,
        "contact": record.contact,
        "state": record.state,
        "revision": record.revision,
        "idempotency_key": record.idempotency_key,
        "error": None,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "finished_at": None,
    }


def _task_row(workspace_id: str, execution_id: str, task: NewTask, now: datetime) -> dict[str, Any]:
    return {
        "workspace_id": workspace_id,
        "execution_id": execution_id,
        "node_id": task.node_id,
        "token": task.token,
        "kind": str(task.kind),
        "attempt": task.attempt,
        "run_at": task.run_at,
        "lease_owner": None,
        "payload": task.payload,
        "created_at": now,
    }


def _step_row(workspace_id: str, execution_id: str, step: Any) -> dict[str, Any]:
    return {
        "workspace_id": workspace_id,
        "execution_id": execution_id,
        "seq": step.seq,
        "node_id": step.node_id,
        "node_type": step.node_type,
        "token": step.token,
        "attempt": step.attempt,
        "status": str(step.status),
        "started_at": step.started_at,
        "finished_at": step.finished_at,
        "output": step.output,
        "error": step.error,
    }
