"""A workflow store on a fresh database (each dialect), with a clock the test controls."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from campaignflow.store.database import Database
from campaignflow.store.workflows import WorkflowRecord, WorkflowStore

WORKSPACE = "acme"
START = datetime(2025, 3, 30, 0, 59, 59, 123456, tzinfo=UTC)


class StepClock:
    """Each reading is one second after the previous one."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def clock() -> StepClock:
    return StepClock()


@pytest.fixture
async def store(database: Database, clock: StepClock) -> WorkflowStore:
    workflows = WorkflowStore(database, clock=clock)
    await workflows.ensure_workspace(WORKSPACE, "Acme")
    return workflows


def definition(workflow_id: str, **extra: Any) -> dict[str, Any]:
    return {"workflowId": workflow_id, "nodes": [{"id": "done", "type": "end"}], **extra}


async def create(
    store: WorkflowStore, workflow_id: str, name: str | None = None, **kwargs: Any
) -> WorkflowRecord:
    return await store.create(
        kwargs.pop("workspace_id", WORKSPACE),
        workflow_id,
        name=name or workflow_id.title(),
        definition=definition(workflow_id),
        content_hash=f"hash-of-{workflow_id}",
        **kwargs,
    )
