"""An engine on a fresh database (each dialect), a clock the test moves, and a local HTTP sink.

``Harness.drain()`` runs the worker batch by batch until nothing is due at the current virtual
time; tests move the clock to make timers, retries and timeouts fall due — no sleeping.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from campaignflow.bus.wakeup import InProcessWakeup
from campaignflow.engine.actions import ExecutorRegistry
from campaignflow.engine.clock import ManualClock
from campaignflow.engine.compiled import CompiledWorkflows
from campaignflow.engine.http_action import HttpExecutor
from campaignflow.engine.interpreter import Interpreter
from campaignflow.engine.model import ExecutionRecord
from campaignflow.engine.worker import Worker, WorkerOptions
from campaignflow.services.executions import ExecutionService
from campaignflow.services.workflows import WorkflowService
from campaignflow.store.database import Database
from campaignflow.store.dead_letters import DeadLetterStore
from campaignflow.store.executions import ExecutionStore, StepRecord
from campaignflow.store.task_queue import TaskQueue
from campaignflow.store.workflows import WorkflowStore
from tests._support.ciphers import contact_cipher
from tests._support.sink import Sink, running_sink

WORKSPACE = "acme"
START = datetime(2026, 3, 27, 8, 0, tzinfo=UTC)  # a Friday, two days before Berlin's DST change


@dataclass
class Harness:
    database: Database
    clock: ManualClock
    workflows: WorkflowService
    executions: ExecutionStore
    queue: TaskQueue
    service: ExecutionService
    worker: Worker
    sink: Sink

    async def deploy(self, definition: Mapping[str, Any]) -> str:
        record = await self.workflows.create(WORKSPACE, dict(definition))
        await self.workflows.activate(WORKSPACE, record.id)
        return record.id

    async def start(
        self,
        workflow_id: str,
        input: Mapping[str, Any] | None = None,
        *,
        subject: str = "contact-1",
        contact: Mapping[str, Any] | None = None,
    ) -> str:
        record, _ = await self.service.execute(
            WORKSPACE, workflow_id, subject_id=subject, input=input or {}, contact=contact
        )
        return record.id

    async def drain(self, *, max_batches: int = 1000) -> int:
        handled = 0
        for _ in range(max_batches):
            count = await self.worker.run_once()
            if count == 0:
                return handled
            handled += count
        raise AssertionError("the worker never went idle")

    async def advance(self, delta: timedelta) -> None:
        self.clock.advance(delta)
        await self.drain()

    async def execution(self, execution_id: str) -> ExecutionRecord:
        return await self.executions.get(WORKSPACE, execution_id)

    async def steps(self, execution_id: str) -> list[StepRecord]:
        return await self.executions.steps(WORKSPACE, execution_id)

    async def path(self, execution_id: str) -> list[tuple[str, str]]:
        return [(step.node_id, step.status) for step in await self.steps(execution_id)]


@pytest.fixture
async def harness(database: Database) -> AsyncIterator[Harness]:
    clock = ManualClock(START)
    workflow_store = WorkflowStore(database, clock=clock.now)
    await workflow_store.ensure_workspace(WORKSPACE, "Acme")
    executions = ExecutionStore(database, contact_cipher())
    queue = TaskQueue(database, contact_cipher())

    async def load(workspace: str, workflow: str, version: int) -> dict[str, Any]:
        return (await workflow_store.get_version(workspace, workflow, version)).definition

    compiled = CompiledWorkflows(load)
    wakeup = InProcessWakeup()
    http = HttpExecutor()
    interpreter = Interpreter(ExecutorRegistry().with_executor("http", http))
    worker = Worker(
        queue,
        compiled,
        interpreter,
        wakeup,
        clock,
        options=WorkerOptions(batch_size=50, lanes=1),
        name="test-worker",
    )
    letters = DeadLetterStore(database)
    service = ExecutionService(workflow_store, executions, letters, compiled, wakeup, clock)
    async with running_sink() as sink:
        yield Harness(
            database,
            clock,
            WorkflowService(workflow_store),
            executions,
            queue,
            service,
            worker,
            sink,
        )
    await http.aclose()


def workflow(workflow_id: str, nodes: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "workflowId": workflow_id,
        "name": workflow_id.title(),
        "triggers": [{"type": "api"}],
        "errorHandling": extra.pop("errorHandling", {}),
        "nodes": nodes,
        **extra,
    }
