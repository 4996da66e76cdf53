"""Executions and their step log: starting them, reading them, and the changes made from
outside a worker (cancel, an event ending a wait, replay, the in-flight exit policy).

Each of those changes locks the execution and advances its ``revision``, so a worker holding
the execution at the same time writes nothing for it (see :mod:`task_queue`).
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from campaignflow.engine.model import (
    MAIN_TOKEN,
    ExecutionRecord,
    ExecutionStatus,
    NewTask,
    TaskKind,
)
from campaignflow.errors import Conflict, NotFound
from campaignflow.observability.tracing import current_traceparent
from campaignflow.security.contact_fields import ContactCipher
from campaignflow.security.sealed_records import stored_state
from campaignflow.store import engine_sql as sql
from campaignflow.store import pg_batch
from campaignflow.store.database import Database, integrity_kind
from campaignflow.store.engine_rows import (
    execution_from_row,
    execution_row,
    task_row,
)
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
    event: dict[str, Any] | None = None  # the event that started it (``event`` in the nodes)
    start_at: datetime | None = None  # when its start task is due; None: at once


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


def initial_state(event: dict[str, Any] | None = None, trace: str | None = None) -> dict[str, Any]:
    """A new execution: one live token (its start task) and no steps yet; an execution started
    by an event sees that event as ``event`` until a wait takes another. ``trace`` is the
    ``traceparent`` of what started it (tracing on): every later advance is its child."""
    state: dict[str, Any] = {"live": 1, "seq": 0}
    if event is not None:
        state["event"] = event
    if trace is not None:
        state["trace"] = trace
    return state


def new_records(
    news: Sequence[NewExecution], now: datetime, ids: Sequence[str] | None = None
) -> builtins.list[ExecutionRecord]:
    """The records of executions about to start (ids assigned here unless given)."""
    trace = current_traceparent()  # the router's batch span, the execute request's span …
    return [
        ExecutionRecord(
            workspace_id=new.workspace_id,
            id=ids[index] if ids is not None else new_id(),
            workflow_id=new.workflow_id,
            workflow_version=new.workflow_version,
            subject_id=new.subject_id,
            status=ExecutionStatus.PENDING,
            trigger=new.trigger,
            input=new.input,
            contact=new.contact,
            state=initial_state(new.event, trace),
            revision=0,
            created_at=now,
            updated_at=now,
            idempotency_key=new.idempotency_key,
        )
        for index, new in enumerate(news)
    ]


class ExecutionStore:
    """The engine's tables on a :class:`Database`; ``cipher`` seals the sensitive values of
    new executions and opens them on every read (required: there is no plaintext mode)."""

    def __init__(self, database: Database, cipher: ContactCipher) -> None:
        self._db = database
        self._cipher = cipher

    # ------------------------------------------------------------------ starting

    async def start(self, new: NewExecution, now: datetime) -> tuple[ExecutionRecord, bool]:
        """Create one execution and its start task; when its idempotency key is already used
        for this workflow (a concurrent repeat), return that execution instead (and ``False``).
        """
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
        return None if row is None else execution_from_row(row, self._cipher)

    async def start_many(
        self, news: Sequence[NewExecution], now: datetime
    ) -> builtins.list[ExecutionRecord]:
        """Create executions and their start tasks in one transaction (batch inserts)."""
        if not news:
            return []
        records = new_records(news, now)
        async with self._db.transaction() as connection:
            await self.insert_started(connection, records, news, now)
        return records

    async def insert_started(
        self,
        connection: AsyncConnection,
        records: Sequence[ExecutionRecord],
        news: Sequence[NewExecution],
        now: datetime,
    ) -> None:
        """Insert executions built by :func:`new_records` and their start tasks, inside the
        caller's transaction (the router's, which also writes the events that started them).
        A start task is due at its execution's ``start_at`` (a ``relativeTo`` moment), else now.
        """
        task_rows = [
            task_row(
                record.workspace_id,
                record.id,
                NewTask(new.start_node, MAIN_TOKEN, TaskKind.RUN, 1, new.start_at or now),
                now,
            )
            for record, new in zip(records, news, strict=True)
        ]
        execution_rows = [execution_row(record, self._cipher) for record in records]
        if self._db.dialect == "postgresql":
            await _insert_started_postgres(connection, execution_rows, task_rows)
        else:
            await _insert_executions(connection, execution_rows)
            await connection.execute(sql.INSERT_TASKS, task_rows)
        await self._notify(connection)

    async def _notify(self, connection: AsyncConnection) -> None:
        """Wake the workers of every process when this transaction commits (PostgreSQL
        delivers a NOTIFY at commit, and not at all on rollback). Whoever writes due tasks
        through the store wakes the workers, so no caller can forget to."""
        if self._db.dialect == "postgresql":
            await connection.execute(sql.NOTIFY_WORKERS)

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
        return execution_from_row(row, self._cipher)

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
        return [execution_from_row(row, self._cipher) for row in rows]

    # ------------------------------------------------------------------ outside the worker

    async def cancel(self, workspace_id: str, execution_id: str, now: datetime) -> ExecutionRecord:
        """Cancel a live execution: its tasks and waits go; a final one is a :class:`Conflict`."""
        params = {"workspace": workspace_id, "execution": execution_id}
        async with self._db.transaction() as connection:
            record = await _lock(connection, self._cipher, workspace_id, execution_id)
            if ExecutionStatus(record.status).is_final:
                raise Conflict(f"Execution {execution_id!r} is already {record.status}.")
            await connection.execute(sql.DELETE_EXECUTION_TASKS, params)
            await connection.execute(sql.DELETE_EXECUTION_WAITS, params)
            record.state["live"] = 0
            record.status = ExecutionStatus.CANCELLED
            record.finished_at = now
            await _bump(connection, self._cipher, record, now)
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
        event: dict[str, Any],
        now: datetime,
    ) -> bool:
        """Turn ``wait`` into an event task (the wait node continues with ``event``).

        ``False`` when that very wait is gone (a timeout, a cancel or another event got there
        first); the caller re-reads and decides again. The execution's revision moves, so a
        worker holding it at the same moment writes nothing for it.
        """
        async with self._db.transaction() as connection:
            return await self.complete_wait_in(connection, wait, event=event, now=now)

    async def complete_wait_in(
        self,
        connection: AsyncConnection,
        wait: WaitRecord,
        *,
        event: dict[str, Any],
        now: datetime,
    ) -> bool:
        """:meth:`complete_wait` inside the caller's transaction (the router's)."""
        params = {
            "workspace": wait.workspace_id,
            "execution": wait.execution_id,
            "token": wait.token,
            "node": wait.node_id,
            "created": wait.created_at,
        }
        record = await _lock(connection, self._cipher, wait.workspace_id, wait.execution_id)
        if ExecutionStatus(record.status).is_final:
            return False
        # The same branch may wait again later (a loop): only this wait is taken.
        deleted = await connection.execute(sql.DELETE_THIS_WAIT, params)
        if deleted.rowcount != 1:
            return False
        await connection.execute(sql.DELETE_TIMEOUT_TASK, params)
        payload = {"event": event, "since": wait.created_at.isoformat()}
        task = NewTask(wait.node_id, wait.token, TaskKind.EVENT, 1, now, payload)
        await connection.execute(
            sql.INSERT_TASKS, [task_row(wait.workspace_id, wait.execution_id, task, now)]
        )
        record.status = ExecutionStatus.RUNNING
        await _bump(connection, self._cipher, record, now)
        await self._notify(connection)
        return True

    async def lock_in(
        self, connection: AsyncConnection, workspace_id: str, execution_id: str
    ) -> ExecutionRecord:
        """Read and lock one execution inside the caller's transaction."""
        return await _lock(connection, self._cipher, workspace_id, execution_id)

    async def waits_of_subjects(
        self,
        connection: AsyncConnection,
        workspace_id: str,
        subjects: Sequence[str],
        names: Sequence[str],
    ) -> builtins.list[WaitRecord]:
        """The waits of these subjects for these event names, oldest first."""
        if not subjects or not names:
            return []
        if self._db.dialect == "postgresql":
            rows = await pg_batch.fetch(
                connection, pg_batch.WAITS_OF_SUBJECTS, workspace_id, list(subjects), list(names)
            )
        else:
            params = {"workspace": workspace_id, "subjects": list(subjects), "names": list(names)}
            rows = list((await connection.execute(sql.WAITS_OF_SUBJECTS, params)).all())
        return sorted((WaitRecord(**row._mapping) for row in rows), key=lambda w: w.created_at)

    async def live_of_subjects(
        self,
        connection: AsyncConnection,
        workspace_id: str,
        subjects: Sequence[str],
        workflows: Sequence[str],
    ) -> builtins.list[tuple[str, str, str]]:
        """(execution id, workflow id, subject) of the live executions of these subjects in
        these workflows."""
        if not subjects or not workflows:
            return []
        params = {
            "workspace": workspace_id,
            "subjects": list(subjects),
            "workflows": list(workflows),
        }
        rows = (await connection.execute(sql.LIVE_OF_SUBJECTS, params)).all()
        return [(row.id, row.workflow_id, row.subject_id) for row in rows]

    async def exit_in(
        self,
        connection: AsyncConnection,
        workspace_id: str,
        execution_ids: Sequence[str],
        reason: dict[str, Any],
        now: datetime,
    ) -> builtins.list[str]:
        """End live executions at once (an exit criterion), inside the caller's transaction:
        cancelled, with ``reason`` as their ``exitReason``; their tasks and waits go, and the
        revision moves so a worker holding one writes nothing. Returns the ids that were live.
        """
        if not execution_ids:
            return []
        params = {
            "workspace": workspace_id,
            "ids": sorted(execution_ids),
            "reason": reason,
            "now": now,
        }
        ids = (await connection.execute(sql.EXIT_EXECUTIONS, params)).scalars().all()
        if ids:
            scope = {"workspace": workspace_id, "ids": list(ids)}
            await connection.execute(sql.DELETE_TASKS_OF_EXECUTIONS, scope)
            await connection.execute(sql.DELETE_WAITS_OF_EXECUTIONS, scope)
        return list(ids)

    async def reopen(
        self, workspace_id: str, execution_id: str, now: datetime, *, dead_letter_id: str | None
    ) -> ExecutionRecord:
        """Re-run the failed node(s) of a failed execution (its open dead letters, or one).

        The replayed node gets a new idempotency-key group: a deliberate replay is a new
        intent, not a repeat of the failed one.
        """
        params = {"workspace": workspace_id, "execution": execution_id}
        async with self._db.transaction() as connection:
            record = await _lock(connection, self._cipher, workspace_id, execution_id)
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
                task_rows.append(task_row(workspace_id, execution_id, task, now))
                await connection.execute(
                    sql.RESOLVE_DEAD_LETTER,
                    {**params, "dead_letter": letter.id, "status": "replayed", "now": now},
                )
            await connection.execute(sql.INSERT_TASKS, task_rows)
            record.state["live"] = len(task_rows)
            record.status = ExecutionStatus.RUNNING
            record.error = None
            record.finished_at = None
            await _bump(connection, self._cipher, record, now)
            await self._notify(connection)
        return record


# ---------------------------------------------------------------------- helpers


@contextmanager
def _insert_errors() -> Iterator[None]:
    """Translate the constraint violations a caller can act on; used inside the transaction,
    because the connection turns any driver error that leaves it into a StorageError."""
    try:
        yield
    except IntegrityError as exc:
        if integrity_kind(exc) == "unique":
            raise Conflict("An execution with this idempotency key already exists.") from exc
        if integrity_kind(exc) == "foreign_key":
            raise NotFound("The workflow version does not exist.") from exc
        raise


async def _insert_executions(connection: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    with _insert_errors():
        await connection.execute(sql.INSERT_EXECUTION, rows)


async def _insert_started_postgres(
    connection: AsyncConnection,
    execution_rows: builtins.list[dict[str, Any]],
    task_rows: builtins.list[dict[str, Any]],
) -> None:
    """The same rows as the portable path, as two array statements (:mod:`pg_batch`)."""
    for row in execution_rows:
        for name in ("input", "contact", "state"):
            row[name] = pg_batch.json_text(row[name])
    for row in task_rows:
        row["payload"] = pg_batch.json_or_null(row["payload"])
    with _insert_errors():
        await pg_batch.execute(
            connection,
            pg_batch.INSERT_EXECUTIONS,
            *pg_batch.columns(execution_rows, pg_batch.NEW_EXECUTION_COLUMNS),
        )
    await pg_batch.execute(
        connection, pg_batch.INSERT_TASKS, *pg_batch.columns(task_rows, pg_batch.NEW_TASK_COLUMNS)
    )


async def _lock(
    connection: AsyncConnection, cipher: ContactCipher, workspace_id: str, execution_id: str
) -> ExecutionRecord:
    params = {"workspace": workspace_id, "execution": execution_id}
    row = (await connection.execute(sql.LOCK_EXECUTION, params)).first()
    if row is None:
        raise NotFound(f"Execution {execution_id!r} does not exist.")
    return execution_from_row(row, cipher)


async def _bump(
    connection: AsyncConnection, cipher: ContactCipher, record: ExecutionRecord, now: datetime
) -> None:
    """Write ``record`` (locked by the caller) and advance its revision."""
    await connection.execute(
        sql.BUMP_REVISION,
        {
            "workspace": record.workspace_id,
            "execution": record.id,
            "expected": record.revision,
            "status": str(record.status),
            "state": stored_state(cipher, record.state),
            "error": record.error,
            "now": now,
            "finished_at": record.finished_at,
        },
    )
    record.revision += 1
    record.updated_at = now
