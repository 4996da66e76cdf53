"""The router on a fresh database (each dialect), with a clock the test moves.

Events go to the router as bus deliveries built here (``Routing.send``), so these tests pin the
router's behaviour independently of the bus; the bus has its own suite, and the API tests run
both together.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from campaignflow.bus.events import Delivery
from campaignflow.bus.in_process import InProcessBus
from campaignflow.bus.wakeup import InProcessWakeup
from campaignflow.domain.events import Event, encode_events
from campaignflow.engine.actions import ExecutorRegistry
from campaignflow.engine.clock import ManualClock
from campaignflow.engine.model import ExecutionRecord
from campaignflow.engine.options import WorkerOptions
from campaignflow.engine.runtime import Engine
from campaignflow.engine.worker import Worker
from campaignflow.services.workflows import WorkflowService
from campaignflow.store.database import Database
from campaignflow.triggers.batch import BatchOutcome
from campaignflow.triggers.router import EventRouter
from tests._support.ciphers import contact_cipher

WORKSPACE = "acme"
START = datetime(2026, 3, 27, 8, 0, tzinfo=UTC)
_ids = itertools.count(1)


def event(
    name: str,
    *,
    user: str | None = "u1",
    anonymous: str | None = None,
    properties: Mapping[str, Any] | None = None,
    type: str = "track",
    traits: Mapping[str, Any] | None = None,
    message_id: str | None = None,
    workspace: str = WORKSPACE,
    at: datetime = START,
) -> Event:
    return Event(
        workspace_id=workspace,
        message_id=message_id or f"m-{next(_ids)}",
        type=type,  # type: ignore[arg-type]
        name=name if type == "track" else None,
        user_id=user,
        anonymous_id=anonymous,
        properties=dict(properties or {}),
        traits=dict(traits or {}),
        timestamp=at,
        received_at=at,
    )


@dataclass
class Routing:
    engine: Engine
    clock: ManualClock
    router: EventRouter
    worker: Worker
    workflows: WorkflowService

    async def deploy(self, definition: Mapping[str, Any], workspace: str = WORKSPACE) -> str:
        record = await self.workflows.create(workspace, dict(definition))
        await self.workflows.activate(workspace, record.id)
        await self.router.refresh(force=True)
        return record.id

    async def send(self, *events: Event) -> BatchOutcome:
        """One bus entry holding ``events``, routed in one transaction."""
        delivery = Delivery(
            shard=0, entry_id="1-0", payload=encode_events(list(events)), redelivered=False
        )
        return await self.router.process([delivery])

    async def drain(self) -> int:
        handled = 0
        while count := await self.worker.run_once():
            handled += count
        return handled

    async def advance(self, delta: timedelta) -> None:
        self.clock.advance(delta)
        await self.drain()

    async def executions(self, workflow_id: str | None = None) -> list[ExecutionRecord]:
        found = await self.engine.executions.list(
            WORKSPACE,
            workflow_id=workflow_id,
            status=None,
            subject_id=None,
            created_from=None,
            created_to=None,
            before=None,
            limit=500,
        )
        return sorted(found, key=lambda record: record.id)

    async def path(self, execution_id: str) -> list[str]:
        steps = await self.engine.executions.steps(WORKSPACE, execution_id)
        return [step.node_id for step in steps]


@pytest.fixture
def executors() -> ExecutorRegistry:
    """The worker's executors (none but the built-in set and log); tests may override."""
    return ExecutorRegistry()


@pytest.fixture
async def routing(database: Database, executors: ExecutorRegistry) -> AsyncIterator[Routing]:
    """Closes the engine's bus afterwards, as a process would."""
    clock = ManualClock(START)
    engine = Engine.on(
        database,
        clock=clock,
        wakeup=InProcessWakeup(),
        bus=InProcessBus(),
        contact_cipher=contact_cipher(),
    )
    await engine.workflows.ensure_workspace(WORKSPACE, "Acme")
    await engine.workflows.ensure_workspace("other", "Other")
    worker = engine.worker(executors, WorkerOptions(batch_size=50, lanes=1))
    yield Routing(engine, clock, engine.router("test"), worker, WorkflowService(engine.workflows))
    await engine.bus.close()


def journey(
    workflow_id: str,
    triggers: list[dict[str, Any]],
    nodes: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A workflow started by ``triggers``; by default it waits a day, then logs."""
    return {
        "workflowId": workflow_id,
        "name": workflow_id.title(),
        "triggers": triggers,
        "errorHandling": {},
        "nodes": nodes
        or [
            {"id": "pause", "type": "delay", "config": {"duration": "P1D"}, "next": "done"},
            {"id": "done", "type": "end"},
        ],
        **extra,
    }
