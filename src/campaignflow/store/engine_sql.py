"""The engine's SQL, written once and named (executions, steps, tasks, waits, dead letters).

Statements that touch one tenant's rows filter by ``workspace_id``. The two that do not are the
task claim and the next-due query: the queue is shared by every workspace, as a worker serves
them all; the rows they return carry their workspace, and every statement after them uses it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    true,
    tuple_,
    update,
)
from sqlalchemy.sql.dml import ReturningDelete, ReturningUpdate

from campaignflow.store.tables import dead_letters, execution_steps, executions, tasks, waits

_EXECUTION = and_(
    executions.c.workspace_id == bindparam("workspace"),
    executions.c.id == bindparam("execution"),
)

INSERT_EXECUTION = insert(executions)
INSERT_STEPS = insert(execution_steps)
INSERT_TASKS = insert(tasks)
INSERT_WAITS = insert(waits)
INSERT_DEAD_LETTERS = insert(dead_letters)

EXECUTION_COLUMNS = (
    executions.c.workspace_id,
    executions.c.id,
    executions.c.workflow_id,
    executions.c.workflow_version,
    executions.c.subject_id,
    executions.c.status,
    executions.c.trigger,
    executions.c.input,
    executions.c.contact,
    executions.c.state,
    executions.c.revision,
    executions.c.created_at,
    executions.c.updated_at,
    executions.c.finished_at,
    executions.c.error,
    executions.c.idempotency_key,
    executions.c.exit_reason,
    executions.c.sealed,  # opened into contact, input and state (store.engine_rows)
)
TASK_COLUMNS = (
    tasks.c.id,
    tasks.c.workspace_id,
    tasks.c.execution_id,
    tasks.c.node_id,
    tasks.c.token,
    tasks.c.kind,
    tasks.c.attempt,
    tasks.c.run_at,
    tasks.c.payload,
    tasks.c.created_at,
)

GET_EXECUTION = select(*EXECUTION_COLUMNS).where(_EXECUTION)
LOCK_EXECUTION = select(*EXECUTION_COLUMNS).where(_EXECUTION).with_for_update()
BY_IDEMPOTENCY_KEY = select(*EXECUTION_COLUMNS).where(
    executions.c.workspace_id == bindparam("workspace"),
    executions.c.workflow_id == bindparam("workflow"),
    executions.c.idempotency_key == bindparam("key"),
)


def load_executions(keys: list[tuple[str, str]]) -> Select[tuple[object, ...]]:
    return select(*EXECUTION_COLUMNS).where(
        tuple_(executions.c.workspace_id, executions.c.id).in_(keys)
    )


def lock_revisions(keys: list[tuple[str, str]]) -> Select[tuple[str, str, int]]:
    """Lock the executions a batch is about to write, in key order (no deadlocks between
    workers committing overlapping batches)."""
    return (
        select(executions.c.workspace_id, executions.c.id, executions.c.revision)
        .where(tuple_(executions.c.workspace_id, executions.c.id).in_(keys))
        .order_by(executions.c.workspace_id, executions.c.id)
        .with_for_update()
    )


UPDATE_EXECUTION = (
    update(executions)
    .where(
        executions.c.workspace_id == bindparam("b_workspace"),
        executions.c.id == bindparam("b_id"),
    )
    .values(
        status=bindparam("status"),
        state=bindparam("state"),
        revision=executions.c.revision + 1,
        error=bindparam("error"),
        updated_at=bindparam("updated_at"),
        finished_at=bindparam("finished_at"),
    )
)
"""Executed many times in one commit, for rows :func:`lock_revisions` has locked and checked."""

BUMP_REVISION = (
    update(executions)
    .where(_EXECUTION, executions.c.revision == bindparam("expected"))
    .values(
        revision=executions.c.revision + 1,
        status=bindparam("status"),
        state=bindparam("state"),
        error=bindparam("error"),
        updated_at=bindparam("now"),
        finished_at=bindparam("finished_at"),
    )
)
"""A compare-and-set write of one execution outside a worker (cancel, resume, retry)."""


def claim_tasks() -> ReturningUpdate[Any]:
    """Lease up to ``limit`` due tasks: their ``run_at`` becomes the lease expiry, so a task
    whose worker died is simply due again once the lease has run out."""
    due = (
        select(tasks.c.id)
        .where(tasks.c.run_at <= bindparam("now"))
        .order_by(tasks.c.run_at)
        .limit(bindparam("limit"))
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    return (
        update(tasks)
        .where(tasks.c.id.in_(due))
        .values(run_at=bindparam("lease_until"), lease_owner=bindparam("owner"))
        .returning(*TASK_COLUMNS)
    )


CLAIM_TASKS = claim_tasks()
NEXT_DUE = select(func.min(tasks.c.run_at))
#: The channel workers LISTEN on (:mod:`campaignflow.bus.wakeup`).
TASKS_CHANNEL = "campaignflow_tasks"
NOTIFY_WORKERS = select(func.pg_notify(TASKS_CHANNEL, ""))
DELETE_TASKS = delete(tasks).where(tasks.c.id.in_(bindparam("ids", expanding=True)))
RELEASE_TASKS = (
    update(tasks)
    .where(
        tasks.c.id.in_(bindparam("ids", expanding=True)), tasks.c.lease_owner == bindparam("owner")
    )
    .values(run_at=bindparam("now"), lease_owner=None)
)


def _token_prefix(column: ColumnElement[str], prefix: str) -> ColumnElement[bool]:
    """The token ``prefix`` and every branch under it (``""``: every token)."""
    if not prefix:
        return true()
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return or_(column == prefix, column.like(escaped + "/%", escape="\\"))


def delete_branch_tasks(
    workspace: str, execution: str, prefix: str, keep: list[int]
) -> ReturningDelete[str]:
    """Tasks of the branch ``prefix`` (all of the execution for ``""``), except ``keep``."""
    condition = and_(
        tasks.c.workspace_id == workspace,
        tasks.c.execution_id == execution,
        _token_prefix(tasks.c.token, prefix),
    )
    if keep:
        condition = and_(condition, tasks.c.id.not_in(keep))
    return delete(tasks).where(condition).returning(tasks.c.kind)


def delete_branch_waits(workspace: str, execution: str, prefix: str) -> ReturningDelete[str]:
    return (
        delete(waits)
        .where(
            waits.c.workspace_id == workspace,
            waits.c.execution_id == execution,
            _token_prefix(waits.c.token, prefix),
        )
        .returning(waits.c.token)
    )


DELETE_WAIT = delete(waits).where(
    waits.c.workspace_id == bindparam("workspace"),
    waits.c.execution_id == bindparam("execution"),
    waits.c.token == bindparam("token"),
)
DELETE_THIS_WAIT = delete(waits).where(
    waits.c.workspace_id == bindparam("workspace"),
    waits.c.execution_id == bindparam("execution"),
    waits.c.token == bindparam("token"),
    waits.c.node_id == bindparam("node"),
    waits.c.created_at == bindparam("created"),
)
DELETE_TIMEOUT_TASK = delete(tasks).where(
    tasks.c.workspace_id == bindparam("workspace"),
    tasks.c.execution_id == bindparam("execution"),
    tasks.c.token == bindparam("token"),
    tasks.c.kind == "timeout",
)
WAITS_OF_EXECUTION = select(waits).where(
    waits.c.workspace_id == bindparam("workspace"),
    waits.c.execution_id == bindparam("execution"),
)
DELETE_EXECUTION_TASKS = delete(tasks).where(
    tasks.c.workspace_id == bindparam("workspace"),
    tasks.c.execution_id == bindparam("execution"),
)
DELETE_EXECUTION_WAITS = delete(waits).where(
    waits.c.workspace_id == bindparam("workspace"),
    waits.c.execution_id == bindparam("execution"),
)

STEPS_OF_EXECUTION = (
    select(execution_steps)
    .where(
        execution_steps.c.workspace_id == bindparam("workspace"),
        execution_steps.c.execution_id == bindparam("execution"),
    )
    .order_by(execution_steps.c.seq)
)

DEAD_LETTER_COLUMNS = tuple(dead_letters.c)
GET_DEAD_LETTER = select(dead_letters).where(
    dead_letters.c.workspace_id == bindparam("workspace"),
    dead_letters.c.id == bindparam("dead_letter"),
)
RESOLVE_DEAD_LETTER = (
    update(dead_letters)
    .where(
        dead_letters.c.workspace_id == bindparam("workspace"),
        dead_letters.c.id == bindparam("dead_letter"),
        dead_letters.c.status == "open",
    )
    .values(status=bindparam("status"), resolved_at=bindparam("now"))
)
OPEN_DEAD_LETTERS_OF_EXECUTION = select(dead_letters).where(
    dead_letters.c.workspace_id == bindparam("workspace"),
    dead_letters.c.execution_id == bindparam("execution"),
    dead_letters.c.status == "open",
)


def list_executions(
    *,
    workflow: str | None,
    status: str | None,
    subject: str | None,
    created_from: bool,
    created_to: bool,
    before: str | None,
) -> Select[tuple[object, ...]]:
    """Newest first (ids are time-ordered); ``before`` is the last id of the previous page."""
    statement = select(*EXECUTION_COLUMNS).where(
        executions.c.workspace_id == bindparam("workspace")
    )
    if workflow is not None:
        statement = statement.where(executions.c.workflow_id == bindparam("workflow"))
    if status is not None:
        statement = statement.where(executions.c.status == bindparam("status"))
    if subject is not None:
        statement = statement.where(executions.c.subject_id == bindparam("subject"))
    if created_from:
        statement = statement.where(executions.c.created_at >= bindparam("created_from"))
    if created_to:
        statement = statement.where(executions.c.created_at < bindparam("created_to"))
    if before is not None:
        statement = statement.where(executions.c.id < bindparam("before"))
    return statement.order_by(executions.c.id.desc()).limit(bindparam("limit"))


def list_dead_letters(
    *, status: str | None, workflow: str | None, before: str | None
) -> Select[tuple[object, ...]]:
    statement = select(dead_letters).where(dead_letters.c.workspace_id == bindparam("workspace"))
    if status is not None:
        statement = statement.where(dead_letters.c.status == bindparam("status"))
    if workflow is not None:
        statement = statement.where(dead_letters.c.workflow_id == bindparam("workflow"))
    if before is not None:
        statement = statement.where(dead_letters.c.id < bindparam("before"))
    return statement.order_by(dead_letters.c.id.desc()).limit(bindparam("limit"))


LIVE_STATUSES = ("pending", "running", "waiting")
EXIT_OLD_VERSIONS = (
    update(executions)
    .where(
        executions.c.workspace_id == bindparam("workspace"),
        executions.c.workflow_id == bindparam("workflow"),
        executions.c.workflow_version < bindparam("version"),
        executions.c.status.in_(LIVE_STATUSES),
    )
    .values(
        status="cancelled",
        revision=executions.c.revision + 1,
        error=bindparam("error"),
        updated_at=bindparam("now"),
        finished_at=bindparam("now"),
    )
    .returning(executions.c.id)
)
EXIT_EXECUTIONS = (
    update(executions)
    .where(
        executions.c.workspace_id == bindparam("workspace"),
        executions.c.id.in_(bindparam("ids", expanding=True)),
        executions.c.status.in_(LIVE_STATUSES),
    )
    .values(
        status="cancelled",
        revision=executions.c.revision + 1,
        exit_reason=bindparam("reason"),
        updated_at=bindparam("now"),
        finished_at=bindparam("now"),
    )
    .returning(executions.c.id)
)
LIVE_OF_SUBJECTS = select(
    executions.c.id, executions.c.workflow_id, executions.c.subject_id, executions.c.created_at
).where(
    executions.c.workspace_id == bindparam("workspace"),
    executions.c.subject_id.in_(bindparam("subjects", expanding=True)),
    executions.c.workflow_id.in_(bindparam("workflows", expanding=True)),
    executions.c.status.in_(LIVE_STATUSES),
)
WAITS_OF_SUBJECTS = select(waits).where(
    waits.c.workspace_id == bindparam("workspace"),
    waits.c.subject_id.in_(bindparam("subjects", expanding=True)),
    waits.c.event_name.in_(bindparam("names", expanding=True)),
)
DELETE_TASKS_OF_EXECUTIONS = delete(tasks).where(
    tasks.c.workspace_id == bindparam("workspace"),
    tasks.c.execution_id.in_(bindparam("ids", expanding=True)),
)
DELETE_WAITS_OF_EXECUTIONS = delete(waits).where(
    waits.c.workspace_id == bindparam("workspace"),
    waits.c.execution_id.in_(bindparam("ids", expanding=True)),
)
