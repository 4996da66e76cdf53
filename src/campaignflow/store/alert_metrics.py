"""The alert metric catalog (``domain.alerting.METRICS``) evaluated from the database.

The database, not the Prometheus registry, is the authority: every worker process sees the
same counts, whichever process ran the executions. Each metric is one indexed query of one
workspace:

- executions by start time use the time-ordered id: "started since T" is ``id >= floor(T)``
  on ``(workspace_id, id)`` / ``(workspace_id, workflow_id, id)``;
- executions by end time (failed, failure rate) use ``(workspace_id, finished_at)`` (0012);
- dead letters by id (creation time) and ``(workspace_id, status, id)``;
- the queue lag by ``tasks.run_at``: the oldest task that is due and not leased.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, Table, and_, func, select

from campaignflow.domain.alerting import AlertRule
from campaignflow.store.database import Database
from campaignflow.store.ids import id_floor
from campaignflow.store.tables import dead_letters, executions, tasks

CountQuery = Callable[[str, str | None, datetime, datetime], Select[Any]]


class AlertMetrics:
    """Reads the value of a rule's metric for one workspace at a given time."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def value(self, workspace_id: str, rule: AlertRule, now: datetime) -> float | None:
        """The metric over the rule's window ending at ``now``; None when it has no value (a
        failure rate over fewer than ``minSamples`` finished executions)."""
        since = now - rule.window
        metric = rule.metric
        if metric == "executions.failure_rate":
            return await self._failure_rate(workspace_id, rule, since, now)
        if metric == "queue.lag_seconds":
            return await self._queue_lag(workspace_id, now)
        query = _COUNTS[metric](workspace_id, rule.workflow_id, since, now)
        return float(await self._scalar(query) or 0)

    async def _failure_rate(
        self, workspace_id: str, rule: AlertRule, since: datetime, now: datetime
    ) -> float | None:
        failed = func.count().filter(executions.c.status == "failed")
        query = select(func.count(), failed).where(
            *_finished(workspace_id, rule.workflow_id, since, now),
            executions.c.status.in_(("completed", "failed")),
        )
        async with self._db.read() as connection:
            row = (await connection.execute(query)).one()
        finished, failures = int(row[0]), int(row[1])
        if finished < rule.min_samples:
            return None
        return failures / finished

    async def _queue_lag(self, workspace_id: str, now: datetime) -> float:
        query = select(func.min(tasks.c.run_at)).where(
            tasks.c.workspace_id == workspace_id,
            tasks.c.run_at <= now,
            tasks.c.lease_owner.is_(None),
        )
        oldest = await self._scalar(query)
        if oldest is None:
            return 0.0
        return max(float((now - oldest).total_seconds()), 0.0)

    async def _scalar(self, query: Select[Any]) -> Any:
        async with self._db.read() as connection:
            return (await connection.execute(query)).scalar()


def _finished(
    workspace_id: str, workflow_id: str | None, since: datetime, now: datetime
) -> list[Any]:
    conditions = [
        executions.c.workspace_id == workspace_id,
        executions.c.finished_at >= since,
        executions.c.finished_at <= now,
    ]
    if workflow_id is not None:
        conditions.append(executions.c.workflow_id == workflow_id)
    return conditions


def _failed(
    workspace_id: str, workflow_id: str | None, since: datetime, now: datetime
) -> Select[Any]:
    return select(func.count()).where(
        *_finished(workspace_id, workflow_id, since, now), executions.c.status == "failed"
    )


def _created_since(table: Table) -> CountQuery:
    """Rows of ``table`` created within the window, by their time-ordered ids."""

    def query(
        workspace_id: str, workflow_id: str | None, since: datetime, now: datetime
    ) -> Select[Any]:
        statement = select(func.count()).where(
            table.c.workspace_id == workspace_id,
            table.c.id >= id_floor(since),
            table.c.id < id_floor(now + timedelta(milliseconds=1)),
        )
        if workflow_id is not None:
            statement = statement.where(table.c.workflow_id == workflow_id)
        return statement

    return query


def _dead_letters_open(
    workspace_id: str, workflow_id: str | None, _since: datetime, _now: datetime
) -> Select[Any]:
    query = select(func.count()).where(
        and_(dead_letters.c.workspace_id == workspace_id, dead_letters.c.status == "open")
    )
    if workflow_id is not None:
        query = query.where(dead_letters.c.workflow_id == workflow_id)
    return query


_COUNTS = {
    "executions.failed": _failed,
    "executions.started": _created_since(executions),
    "dead_letters.created": _created_since(dead_letters),
    "dead_letters.open": _dead_letters_open,
}
