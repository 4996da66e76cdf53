"""Rows of the engine's tables as the store writes and reads them, shared by its modules."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from campaignflow.engine.model import ExecutionRecord, NewTask, StepEntry, TaskRecord
from campaignflow.security.contact_fields import ContactCipher
from campaignflow.security.sealed_records import open_execution, seal_execution

Key = tuple[str, str]
"""An execution's identity: (workspace id, execution id)."""


def execution_from_row(row: Any, cipher: ContactCipher) -> ExecutionRecord:
    """A row of :data:`engine_sql.EXECUTION_COLUMNS` as the engine sees it (sealed values
    opened)."""
    return execution_from_mapping(dict(row._mapping), cipher)


def execution_from_mapping(mapping: dict[str, Any], cipher: ContactCipher) -> ExecutionRecord:
    opened = open_execution(cipher, mapping["workspace_id"], mapping["id"], mapping)
    return ExecutionRecord(**opened)


def task_from_row(row: Any) -> TaskRecord:
    return TaskRecord(**row._mapping)


def execution_row(record: ExecutionRecord, cipher: ContactCipher) -> dict[str, Any]:
    """The row of a new execution, its sensitive values sealed."""
    stored = seal_execution(
        cipher,
        record.workspace_id,
        record.id,
        contact=record.contact,
        input=record.input,
        state=record.state,
    )
    return {
        "workspace_id": record.workspace_id,
        "id": record.id,
        "workflow_id": record.workflow_id,
        "workflow_version": record.workflow_version,
        "subject_id": record.subject_id,
        "status": str(record.status),
        "trigger": record.trigger,
        "input": stored.input,
        "contact": stored.contact,
        "state": stored.state,
        "sealed": stored.sealed,
        "key_id": stored.key_id,
        "revision": record.revision,
        "idempotency_key": record.idempotency_key,
        "error": None,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "finished_at": None,
        "exit_reason": None,
    }


def task_row(workspace_id: str, execution_id: str, task: NewTask, now: datetime) -> dict[str, Any]:
    return {
        "workspace_id": workspace_id,
        "execution_id": execution_id,
        "node_id": task.node_id,
        "token": task.token,
        "kind": str(task.kind),
        "attempt": task.attempt,
        "run_at": task.run_at,
        "lease_owner": None,
        "payload": task.payload,
        "created_at": now,
    }


def step_row(workspace_id: str, execution_id: str, step: StepEntry) -> dict[str, Any]:
    return {
        "workspace_id": workspace_id,
        "execution_id": execution_id,
        "seq": step.seq,
        "node_id": step.node_id,
        "node_type": step.node_type,
        "token": step.token,
        "attempt": step.attempt,
        "status": str(step.status),
        "started_at": step.started_at,
        "finished_at": step.finished_at,
        "output": step.output,
        "error": step.error,
    }
