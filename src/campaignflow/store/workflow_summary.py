"""The reads behind a workflow's live summary: counts, durations, where executions wait.

Executions started in a window are those whose id is at least the window's id floor
(:func:`id_floor`: ids are time-ordered), so every read of the window is a range scan of the
index ``(workspace_id, workflow_id, id)`` — no migration, no scan of the workspace. Where
executions wait now is read from the task and wait rows of the workflow's live executions.

Duration percentiles are PostgreSQL's ``percentile_cont`` over every finished execution of the
window. SQLite has no such aggregate: the durations of the newest :data:`SQLITE_DURATION_SAMPLE`
finished executions of the window are read (newest first, bounded) and the same interpolation
is done in Python (:func:`campaignflow.domain.percentiles.percentile_cont`). The embedded mode
never holds more than that in an hour; over a longer window its percentiles are those of the
newest executions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, extract, func, select

from campaignflow.domain.percentiles import percentile_cont
from campaignflow.engine.model import ExecutionStatus, TaskKind
from campaignflow.store.database import Database
from campaignflow.store.ids import id_floor
from campaignflow.store.tables import executions, tasks, waits

#: Finished executions whose durations SQLite reads for the percentiles (see the module doc).
SQLITE_DURATION_SAMPLE = 100_000
PERCENTILES = (0.5, 0.9, 0.95, 0.99)

_FINAL = tuple(status.value for status in ExecutionStatus if status.is_final)
_LIVE = tuple(status.value for status in ExecutionStatus if not status.is_final)


@dataclass(frozen=True, slots=True)
class Durations:
    """Seconds from start to end of finished executions: how many were measured, and the
    value at each of :data:`PERCENTILES` (``None`` when none were)."""

    measured: int
    percentiles: dict[float, float | None]


@dataclass(frozen=True, slots=True)
class WaitingCount:
    """Executions' tokens parked at ``node_id``: ``kind`` is ``delay`` (a delay's timer),
    ``retry`` (a failed attempt's backoff), ``ready`` (due or running work, a deferred send)
    or ``event`` (a ``wait_for_event``)."""

    node_id: str
    kind: str
    count: int


class WorkflowSummaryStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def status_counts(
        self, workspace_id: str, workflow_id: str, since: datetime
    ) -> dict[str, int]:
        """Executions started since ``since``, by their status now."""
        statement = (
            select(executions.c.status, func.count())
            .where(_started_since(workspace_id, workflow_id, since))
            .group_by(executions.c.status)
        )
        async with self._db.read() as connection:
            rows = (await connection.execute(statement)).all()
        return {str(status): int(count) for status, count in rows}

    async def durations(self, workspace_id: str, workflow_id: str, since: datetime) -> Durations:
        """Start-to-end seconds of the executions started since ``since`` that have ended."""
        where = and_(
            _started_since(workspace_id, workflow_id, since),
            executions.c.status.in_(_FINAL),
            executions.c.finished_at.is_not(None),
        )
        if self._db.dialect == "postgresql":
            return await self._postgres_durations(where)
        return await self._sampled_durations(where)

    async def _postgres_durations(self, where: ColumnElement[bool]) -> Durations:
        seconds = extract("epoch", executions.c.finished_at - executions.c.created_at)
        statement = select(
            func.count(),
            *(func.percentile_cont(p).within_group(seconds) for p in PERCENTILES),
        ).where(where)
        async with self._db.read() as connection:
            row = (await connection.execute(statement)).one()
        values = [None if value is None else float(value) for value in row[1:]]
        return Durations(int(row[0]), dict(zip(PERCENTILES, values, strict=True)))

    async def _sampled_durations(self, where: ColumnElement[bool]) -> Durations:
        statement = (
            select(executions.c.created_at, executions.c.finished_at)
            .where(where)
            .order_by(executions.c.id.desc())
            .limit(SQLITE_DURATION_SAMPLE)
        )
        async with self._db.read() as connection:
            rows = (await connection.execute(statement)).all()
        ordered = sorted((finished - started).total_seconds() for started, finished in rows)
        return Durations(len(ordered), {p: percentile_cont(ordered, p) for p in PERCENTILES})

    async def waiting(self, workspace_id: str, workflow_id: str) -> list[WaitingCount]:
        """Where the workflow's live executions are parked now, per node and kind. A
        ``wait_for_event`` with a timeout has a wait row and a timeout task: it counts once,
        as ``event``."""
        retry = (tasks.c.attempt > 1).label("retry")
        task_counts = (
            select(tasks.c.node_id, tasks.c.kind, retry, func.count())
            .join(executions, _of_execution(tasks.c.workspace_id, tasks.c.execution_id))
            .where(
                tasks.c.workspace_id == workspace_id,
                tasks.c.kind != TaskKind.TIMEOUT.value,
                _live_of(workspace_id, workflow_id),
            )
            .group_by(tasks.c.node_id, tasks.c.kind, retry)
        )
        wait_counts = (
            select(waits.c.node_id, func.count())
            .join(executions, _of_execution(waits.c.workspace_id, waits.c.execution_id))
            .where(waits.c.workspace_id == workspace_id, _live_of(workspace_id, workflow_id))
            .group_by(waits.c.node_id)
        )
        async with self._db.read() as connection:
            task_rows = (await connection.execute(task_counts)).all()
            wait_rows = (await connection.execute(wait_counts)).all()
        found = [
            WaitingCount(str(node), _task_category(str(kind), bool(is_retry)), int(count))
            for node, kind, is_retry, count in task_rows
        ]
        found += [WaitingCount(str(node), "event", int(count)) for node, count in wait_rows]
        return _merged(found)


def _started_since(workspace_id: str, workflow_id: str, since: datetime) -> ColumnElement[bool]:
    return and_(
        executions.c.workspace_id == workspace_id,
        executions.c.workflow_id == workflow_id,
        executions.c.id >= id_floor(since),
    )


def _of_execution(
    workspace: ColumnElement[str], execution: ColumnElement[str]
) -> ColumnElement[bool]:
    return and_(executions.c.workspace_id == workspace, executions.c.id == execution)


def _live_of(workspace_id: str, workflow_id: str) -> ColumnElement[bool]:
    return and_(
        executions.c.workspace_id == workspace_id,
        executions.c.workflow_id == workflow_id,
        executions.c.status.in_(_LIVE),
    )


def _task_category(kind: str, retry: bool) -> str:
    if kind == TaskKind.TIMER.value:
        return "delay"
    if kind == TaskKind.RUN.value and retry:
        return "retry"
    return "ready"  # a run (first attempt, or deferred by the send policy) or a received event


def _merged(counts: Sequence[WaitingCount]) -> list[WaitingCount]:
    """One count per (node, kind) — a run task of attempt 1 and an event task are both
    ``ready`` — ordered by node then kind."""
    totals: dict[tuple[str, str], int] = {}
    for count in counts:
        key = (count.node_id, count.kind)
        totals[key] = totals.get(key, 0) + count.count
    return [WaitingCount(node, kind, n) for (node, kind), n in sorted(totals.items())]
