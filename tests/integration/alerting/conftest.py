"""An engine whose ``http`` steps call the fault server, the alert service and an evaluator on
one virtual clock, on each database: the test moves the clock, nothing sleeps."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from campaignflow.bus.wakeup import InProcessWakeup
from campaignflow.config import Settings
from campaignflow.engine.clock import ManualClock
from campaignflow.engine.compiled import CompiledWorkflows
from campaignflow.engine.interpreter import Interpreter
from campaignflow.engine.options import WorkerOptions
from campaignflow.engine.worker import Worker
from campaignflow.integrations.runtime import open_integrations
from campaignflow.observability.alert_evaluator import AlertEvaluator, open_evaluator
from campaignflow.services.alerts import AlertService
from campaignflow.services.executions import ExecutionService
from campaignflow.services.workflows import WorkflowService
from campaignflow.store.alerts import AlertStore
from campaignflow.store.database import Database
from campaignflow.store.dead_letters import DeadLetterStore
from campaignflow.store.executions import ExecutionStore
from campaignflow.store.task_queue import TaskQueue
from campaignflow.store.workflows import WorkflowStore
from tests._support.ciphers import contact_cipher
from tests._support.faults import FaultServer, fault_server
from tests.integration.api.conftest import app_client, client  # noqa: F401 - shared fixtures

WORKSPACE = "acme"
START = datetime(2026, 3, 27, 8, 0, tzinfo=UTC)


@dataclass
class Stage:
    database: Database
    clock: ManualClock
    server: FaultServer
    workflows: WorkflowService
    executions: ExecutionStore
    service: ExecutionService
    worker: Worker
    alerts: AlertService
    store: AlertStore
    evaluator: AlertEvaluator

    async def deploy(self, definition: dict[str, Any]) -> str:
        record = await self.workflows.create(WORKSPACE, definition)
        await self.workflows.activate(WORKSPACE, record.id)
        return record.id

    async def run(self, workflow_id: str, count: int) -> list[str]:
        """Start ``count`` executions and run the worker until nothing is due."""
        ids = []
        for n in range(count):
            record, _ = await self.service.execute(
                WORKSPACE, workflow_id, subject_id=f"contact-{n}", input={}
            )
            ids.append(record.id)
        for _ in range(1000):
            if await self.worker.run_once() == 0:
                return ids
        raise AssertionError("the worker never went idle")


@pytest.fixture
async def stage(database: Database) -> AsyncIterator[Stage]:
    clock = ManualClock(START)
    workflow_store = WorkflowStore(database, clock=clock.now)
    await workflow_store.ensure_workspace(WORKSPACE, "Acme")
    executions = ExecutionStore(database, contact_cipher())

    async def load(workspace: str, workflow: str, version: int) -> dict[str, Any]:
        return (await workflow_store.get_version(workspace, workflow, version)).definition

    compiled = CompiledWorkflows(load)
    wakeup = InProcessWakeup()
    links = open_integrations(database, Settings(), contact_cipher())
    worker = Worker(
        TaskQueue(database, contact_cipher()),
        compiled,
        Interpreter(links.executors()),
        wakeup,
        clock,
        options=WorkerOptions(batch_size=50, lanes=1),
        name="test-worker",
    )
    service = ExecutionService(
        workflow_store, executions, DeadLetterStore(database), compiled, wakeup, clock
    )
    evaluator = open_evaluator(database, links, clock.now)
    store = AlertStore(database, clock.now)
    alerts = AlertService(store, links.secrets, links.connections, evaluator.sender, clock.now)
    try:
        async with fault_server(clock=clock.now) as server:
            yield Stage(
                database,
                clock,
                server,
                WorkflowService(workflow_store),
                executions,
                service,
                worker,
                alerts,
                store,
                evaluator,
            )
    finally:
        await links.aclose()


def calling(url: str) -> dict[str, Any]:
    """A workflow of one ``http`` step, not retried: a 5xx fails the execution at once."""
    return {
        "workflowId": "calling",
        "name": "Calling",
        "triggers": [{"type": "api"}],
        "errorHandling": {"retryPolicy": "none"},
        "nodes": [
            {
                "id": "call",
                "type": "action",
                "config": {"action": "http", "params": {"method": "POST", "url": url}},
                "next": "done",
            },
            {"id": "done", "type": "end"},
        ],
    }
