"""Recording action steps in the records of processing: the executors the worker registers
(``Integrations.executors``) against the local sink, through the ``http`` connector and the
built-in ``http`` action, the buffer's batching and shutdown flush, and the CRM sync's pushes
(see ``test_crm_sync.py``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from campaignflow.bus.wakeup import InProcessWakeup
from campaignflow.compliance.processing import ProcessingBuffer
from campaignflow.config import Settings
from campaignflow.domain.processing import Activity, ProcessingEntry
from campaignflow.engine.actions import ActionCall, ActionExecutor, ActionFailed
from campaignflow.engine.clock import ManualClock
from campaignflow.engine.compiled import CompiledWorkflows
from campaignflow.engine.interpreter import Interpreter
from campaignflow.engine.options import WorkerOptions
from campaignflow.engine.worker import Worker
from campaignflow.integrations.guards import LocalGuards
from campaignflow.integrations.runtime import Integrations, open_integrations
from campaignflow.services.connections import ConnectionRequest, ConnectionService
from campaignflow.services.executions import ExecutionService
from campaignflow.services.workflows import WorkflowService
from campaignflow.store.database import Database
from campaignflow.store.dead_letters import DeadLetterStore
from campaignflow.store.executions import ExecutionStore
from campaignflow.store.processing_log import ProcessingLogStore
from campaignflow.store.suppressions import NewSuppression, SuppressionStore
from campaignflow.store.task_queue import TaskQueue
from campaignflow.store.workflows import WorkflowStore
from tests._support.ciphers import contact_cipher
from tests._support.sink import Sink, running_sink
from tests.integration.integrations import test_crm_sync as crm_sync
from tests.integration.integrations.test_crm_sync import MAPPING, Platform, local_contact

WORKSPACE = "acme"
platform = crm_sync.platform  # the CRM sync tests' harness (app, engine, a local HubSpot)
AT = datetime(2026, 3, 27, 8, 0, tzinfo=UTC)


@dataclass
class Recording:
    links: Integrations
    sink: Sink
    log: ProcessingLogStore

    def executor(self, action: str) -> ActionExecutor:
        executor = self.links.executors().get(action)
        assert executor is not None
        return executor

    async def entries(self, contact: str = "c1") -> list[Any]:
        await self.links.processing.flush()
        return await self.log.list(WORKSPACE, contact)


def call(action: str = "http.request", **changes: Any) -> ActionCall:
    values: dict[str, Any] = {
        "action": action,
        "params": {"method": "POST", "path": "/ok", "body": {"hello": "ada"}},
        "idempotency_key": f"key-{changes.get('node_id', 'send')}",
        "workspace_id": WORKSPACE,
        "execution_id": "x1",
        "node_id": "send",
        "attempt": 1,
        "connection": "sink",
        "contact_id": "c1",
        "purpose": "marketing",
    }
    values.update(changes)
    return ActionCall(**values)


@pytest.fixture
async def recording(database: Database) -> AsyncIterator[Recording]:
    await WorkflowStore(database).ensure_workspace(WORKSPACE, "Acme")
    links = open_integrations(database, Settings(), contact_cipher(), guards=LocalGuards())
    connections = ConnectionService(
        links.connections, links.secrets, links.connectors, links.resolver, links.executor
    )
    try:
        async with running_sink() as sink:
            for name, provider, credentials in (
                ("sink", "http", {"scheme": "none"}),
                ("mail", "sendgrid", {"token": "SG.test-key"}),
            ):
                request = ConnectionRequest(
                    name, provider, None, credentials, {"baseUrl": sink.url}
                )
                await connections.create(WORKSPACE, None, request)
            yield Recording(links, sink, ProcessingLogStore(database))
    finally:
        await links.aclose()


async def test_a_step_that_reached_the_provider_is_recorded_with_purpose_basis_and_recipient(
    recording: Recording,
) -> None:
    output = await recording.executor("http.request").execute(call(purpose="transactional"))

    (entry,) = await recording.entries()
    assert output["status"] == 200
    assert len(recording.sink.requests) == 1
    assert (entry.activity, entry.purpose, entry.legal_basis, entry.recipient) == (
        "action",
        "transactional",
        "contract",
        "http (sink)",
    )
    assert entry.details == {"execution": "x1", "node": "send", "action": "http.request"}


async def test_a_failed_step_and_a_step_without_a_contact_record_nothing(
    recording: Recording,
) -> None:
    executor = recording.executor("http.request")
    failing = call(params={"method": "POST", "path": "/status/400"}, node_id="bad")
    with pytest.raises(ActionFailed):
        await executor.execute(failing)
    await executor.execute(call(contact_id=None, node_id="anonymous"))

    assert len(recording.sink.requests) == 2  # both went out
    assert await recording.entries() == []


async def test_a_send_skipped_for_a_suppressed_address_records_nothing(
    recording: Recording, database: Database
) -> None:
    await SuppressionStore(database, contact_cipher()).add(
        WORKSPACE, [NewSuppression("ada@example.com", "bounce", "sendgrid")]
    )
    params = {
        "to": "ada@example.com",
        "from": "news@example.com",
        "subject": "Hi",
        "text": "Hello",
    }

    output = await recording.executor("sendgrid.send_email").execute(
        call("sendgrid.send_email", params=params, connection="mail")
    )

    assert output["skipped"] == "suppressed"
    assert recording.sink.requests == []
    assert await recording.entries() == []


async def test_entries_of_other_contacts_and_workspaces_stay_apart(recording: Recording) -> None:
    executor = recording.executor("http.request")
    await executor.execute(call(contact_id="c1", node_id="one"))
    await executor.execute(call(contact_id="c2", node_id="two"))

    assert [e.details["node"] for e in await recording.entries("c1")] == ["one"]
    assert [e.details["node"] for e in await recording.entries("c2")] == ["two"]


# ------------------------------------------------------------------------------ the buffer


def entry(n: int) -> ProcessingEntry:
    return ProcessingEntry.of(
        workspace_id=WORKSPACE,
        contact_id="c1",
        occurred_at=AT,
        activity=Activity.ACTION,
        purpose="marketing",
        recipient="http (sink)",
        details={"n": n},
    )


async def test_a_full_batch_is_written_without_waiting_and_shutdown_writes_the_rest(
    database: Database,
) -> None:
    store = ProcessingLogStore(database)
    buffer = ProcessingBuffer(store, max_batch=3, interval_s=3600)  # only size or close flush
    for n in range(3):
        buffer.add(entry(n))
    for _ in range(200):  # the background task writes the full batch
        if buffer.pending == 0:
            break
        await asyncio.sleep(0.01)
    buffer.add(entry(3))  # not a full batch: it waits (the interval is an hour)
    await asyncio.sleep(0.05)
    written_before_close = len(await store.list(WORKSPACE, "c1"))
    await buffer.aclose()

    assert (written_before_close, buffer.pending) == (3, 0)
    assert sorted(r.details["n"] for r in await store.list(WORKSPACE, "c1")) == [0, 1, 2, 3]
    assert buffer.pending == 0


async def test_entries_wait_while_the_database_is_down_up_to_a_cap(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # A real database that cannot be opened (its directory does not exist): every write fails.
    unreachable = Database.from_url(f"sqlite:///{tmp_path}/missing/dir/db.sqlite")
    buffer = ProcessingBuffer(ProcessingLogStore(unreachable), interval_s=3600, max_pending=5)
    try:
        for n in range(8):
            buffer.add(entry(n))
        with caplog.at_level(logging.ERROR):
            await buffer.flush()
        assert buffer.pending == 5  # the 3 oldest dropped, and said so
        assert "3 oldest entries dropped" in caplog.text
    finally:
        await buffer.aclose()
        await unreachable.dispose()


# ------------------------------------------------------------------------- through the worker


async def run_workflow(
    recording: Recording, database: Database, definition: dict[str, Any], subject: str
) -> tuple[str, str]:
    """Start ``definition`` for ``subject`` through the API's service and run it to its end
    in a worker with the executors the process registers: (execution id, its status)."""
    clock = ManualClock(AT)
    store = WorkflowStore(database, clock=clock.now)
    cipher = contact_cipher()

    async def load(workspace: str, workflow: str, version: int) -> dict[str, Any]:
        return (await store.get_version(workspace, workflow, version)).definition

    compiled = CompiledWorkflows(load)
    wakeup = InProcessWakeup()
    worker = Worker(
        TaskQueue(database, cipher),
        compiled,
        Interpreter(recording.links.executors()),
        wakeup,
        clock,
        options=WorkerOptions(batch_size=10, lanes=1),
        name="test-worker",
    )
    executions = ExecutionStore(database, cipher)
    service = ExecutionService(
        store, executions, DeadLetterStore(database), compiled, wakeup, clock
    )
    workflows = WorkflowService(store)
    record = await workflows.create(WORKSPACE, definition)
    await workflows.activate(WORKSPACE, record.id)

    execution, _ = await service.execute(WORKSPACE, record.id, subject_id=subject, input={})
    while await worker.run_once():
        pass
    return execution.id, (await executions.get(WORKSPACE, execution.id)).status


async def test_a_workflow_step_is_recorded_for_the_executions_contact_with_the_nodes_purpose(
    recording: Recording, database: Database
) -> None:
    execution_id, status = await run_workflow(recording, database, receipt_workflow(), "c7")

    (entry,) = await recording.entries("c7")
    assert status == "completed"
    assert (entry.purpose, entry.legal_basis, entry.recipient) == (
        "transactional",
        "contract",
        "http (sink)",
    )
    assert entry.details == {
        "execution": execution_id,
        "node": "receipt",
        "action": "http.request",
    }


async def test_a_builtin_http_step_is_recorded_with_the_urls_origin_as_recipient(
    recording: Recording, database: Database
) -> None:
    url = f"{recording.sink.url}/ok?email=ada%40example.com"
    definition = http_workflow(url, purpose="marketing")

    execution_id, status = await run_workflow(recording, database, definition, "c8")

    (entry,) = await recording.entries("c8")
    assert status == "completed"
    assert len(recording.sink.requests) == 1
    assert recording.sink.url.startswith("http://127.0.0.1:")
    assert (entry.activity, entry.purpose, entry.legal_basis, entry.recipient) == (
        "action",
        "marketing",
        "consent",
        recording.sink.url,  # the origin: scheme, host and port
    )
    assert entry.details == {"execution": execution_id, "node": "notify", "action": "http"}
    assert "/ok" not in str(entry)
    assert "ada" not in str(entry)  # the query carried the address; the record does not


async def test_a_builtin_http_step_that_failed_records_nothing(
    recording: Recording, database: Database
) -> None:
    definition = http_workflow(f"{recording.sink.url}/status/400", purpose="marketing")

    _, status = await run_workflow(recording, database, definition, "c9")

    assert status == "failed"
    assert len(recording.sink.requests) == 1  # it went out, and was refused
    assert await recording.entries("c9") == []


def http_workflow(url: str, *, purpose: str) -> dict[str, Any]:
    return {
        "workflowId": "notify",
        "name": "Notify",
        "triggers": [{"type": "api"}],
        "errorHandling": {"retryPolicy": "none", "maxRetries": 0},
        "nodes": [
            {
                "id": "notify",
                "type": "action",
                "config": {
                    "action": "http",
                    "purpose": purpose,
                    "params": {"method": "POST", "url": url, "body": {"event": "signup"}},
                },
                "next": "done",
            },
            {"id": "done", "type": "end"},
        ],
    }


def receipt_workflow() -> dict[str, Any]:
    return {
        "workflowId": "receipt",
        "name": "Receipt",
        "triggers": [{"type": "api"}],
        "errorHandling": {"retryPolicy": "none", "maxRetries": 0},
        "nodes": [
            {
                "id": "receipt",
                "type": "action",
                "config": {
                    "action": "http.request",
                    "connection": "sink",
                    "purpose": "transactional",
                    "params": {"method": "POST", "path": "/ok", "body": {"order": 1}},
                },
                "next": "done",
            },
            {"id": "done", "type": "end"},
        ],
    }


# ------------------------------------------------------------------------------- CRM sync


@pytest.mark.timeout(120)
async def test_each_contact_a_crm_took_is_recorded_and_a_refused_one_is_not(
    platform: Platform,
) -> None:
    for name in ("cy", "di", "ed"):
        await local_contact(platform, f"{name}@example.com", firstName=name.title(), plan="free")
    platform.crm.refuse_emails = {"di@example.com"}
    await platform.connect({"syncStrategy": "on-demand", "dataMapping": MAPPING})
    run = await platform.ok("POST", f"/api/v1/connections/{platform.connection_id}/sync")
    assert await platform.sync_worker().run_once()

    logs = {}
    for name in ("cy", "di", "ed"):
        contact = await platform.contact(f"{name}@example.com")
        page = await platform.ok("GET", f"/api/v1/contacts/{contact['id']}/processing-log")
        logs[name] = page["items"]

    assert logs["di"] == []
    for name in ("cy", "ed"):
        (entry,) = logs[name]
        assert (entry["activity"], entry["purpose"], entry["legalBasis"]) == (
            "crm.sync",
            "crm_sync",
            "legitimate_interests",
        )
        assert entry["recipient"] == "hubspot (hubspot)"
        assert entry["details"]["run"] == run["id"]
        assert "email" in entry["details"]["fields"]
        assert f"{name}@example.com" not in str(entry)  # field names, never values
