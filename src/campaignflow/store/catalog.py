"""What the router and the scheduler need to know about workflows: the active ones with their
latest definition, and a cheap stamp that changes whenever that set may have changed (so they
rebuild their trigger tables only then). These queries span workspaces on purpose: a router
serves them all, and every row it returns carries its workspace."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from campaignflow.store.database import Database
from campaignflow.store.tables import triggers, workflow_versions, workflows


@dataclass(frozen=True, slots=True)
class ActiveWorkflow:
    workspace_id: str
    workflow_id: str
    version: int
    definition: dict[str, Any]
    updated_at: datetime  # last activated or published: time triggers fire no earlier tick


@dataclass(frozen=True, slots=True)
class StoredTrigger:
    """A trigger managed through ``/api/v1/triggers`` (enabled, on an active workflow)."""

    workspace_id: str
    id: str
    workflow_id: str
    definition: dict[str, Any]
    updated_at: datetime


_ACTIVE = (
    select(
        workflows.c.workspace_id,
        workflows.c.id,
        workflows.c.latest_version,
        workflow_versions.c.definition,
        workflows.c.updated_at,
    )
    .join(
        workflow_versions,
        (workflow_versions.c.workspace_id == workflows.c.workspace_id)
        & (workflow_versions.c.workflow_id == workflows.c.id)
        & (workflow_versions.c.version == workflows.c.latest_version),
    )
    .where(workflows.c.status == "active")
    .order_by(workflows.c.workspace_id, workflows.c.id)
)
_ENABLED_TRIGGERS = (
    select(
        triggers.c.workspace_id,
        triggers.c.id,
        triggers.c.workflow_id,
        triggers.c.definition,
        triggers.c.updated_at,
    )
    .join(
        workflows,
        (workflows.c.workspace_id == triggers.c.workspace_id)
        & (workflows.c.id == triggers.c.workflow_id),
    )
    .where(triggers.c.enabled.is_(True), workflows.c.status == "active")
    .order_by(triggers.c.workspace_id, triggers.c.id)
)
_STAMP = select(
    select(func.count()).select_from(workflows).scalar_subquery(),
    select(func.count()).where(workflows.c.status == "active").scalar_subquery(),
    select(func.max(workflows.c.updated_at)).scalar_subquery(),
    select(func.count()).select_from(triggers).scalar_subquery(),
    select(func.count()).where(triggers.c.enabled.is_(True)).scalar_subquery(),
    select(func.max(triggers.c.updated_at)).scalar_subquery(),
)
"""Counts (all, active or enabled) and the latest change of workflows and triggers: activating,
pausing, adding or removing changes a count even when two changes share a timestamp."""


async def load_active(
    database: Database,
) -> tuple[list[ActiveWorkflow], list[StoredTrigger]]:
    async with database.read() as connection:
        workflow_rows = (await connection.execute(_ACTIVE)).all()
        trigger_rows = (await connection.execute(_ENABLED_TRIGGERS)).all()
    return (
        [ActiveWorkflow(*row) for row in workflow_rows],
        [StoredTrigger(*row) for row in trigger_rows],
    )


async def catalog_stamp(database: Database) -> tuple[object, ...]:
    """Changes when a workflow or trigger is created, changed, activated, paused or deleted."""
    async with database.read() as connection:
        return tuple((await connection.execute(_STAMP)).one())
