"""The grouped reads behind the sampled gauges: the task queue's backlog and open dead letters.

Like the task claim, these read every workspace at once, on purpose: metrics are the operator's
view of the whole process (the rows carry their workspace as a label, and ``/metrics`` is
served to the operator's workspace only). Each is one grouped statement, run every few seconds
by each worker process, never per step.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, bindparam, func, select

from campaignflow.store.database import Database
from campaignflow.store.tables import dead_letters, executions, tasks

# Due and not taken: a leased task's run_at is its lease expiry, so it is due again only once
# the lease has run out (and then it is backlog again: its worker is gone).
QUEUE_BACKLOG = (
    select(
        tasks.c.workspace_id,
        executions.c.workflow_id,
        tasks.c.node_id,
        func.count().label("depth"),
        func.min(tasks.c.run_at, type_=tasks.c.run_at.type).label("oldest"),
    )
    .select_from(
        tasks.join(
            executions,
            and_(
                executions.c.workspace_id == tasks.c.workspace_id,
                executions.c.id == tasks.c.execution_id,
            ),
        )
    )
    .where(tasks.c.run_at <= bindparam("now"))
    .group_by(tasks.c.workspace_id, executions.c.workflow_id, tasks.c.node_id)
)

OPEN_DEAD_LETTERS = (
    select(dead_letters.c.workspace_id, dead_letters.c.workflow_id, func.count().label("open"))
    .where(dead_letters.c.status == "open")
    .group_by(dead_letters.c.workspace_id, dead_letters.c.workflow_id)
)


@dataclass(frozen=True, slots=True)
class Backlog:
    """Due, untaken tasks of one node of one workflow: how many, and the oldest due time."""

    workspace_id: str
    workflow_id: str
    node_id: str
    depth: int
    oldest: datetime


@dataclass(frozen=True, slots=True)
class OpenDeadLetters:
    workspace_id: str
    workflow_id: str
    count: int


async def queue_backlog(database: Database, now: datetime) -> list[Backlog]:
    async with database.read() as connection:
        rows = (await connection.execute(QUEUE_BACKLOG, {"now": now})).all()
    return [Backlog(*row) for row in rows]


async def open_dead_letters(database: Database) -> list[OpenDeadLetters]:
    async with database.read() as connection:
        rows = (await connection.execute(OPEN_DEAD_LETTERS)).all()
    return [OpenDeadLetters(*row) for row in rows]
