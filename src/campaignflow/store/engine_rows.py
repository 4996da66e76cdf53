"""Rows of the engine's tables as the store writes and reads them, shared by its modules."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from campaignflow.engine.model import ExecutionRecord, NewTask, StepEntry, TaskRecord

Key = tuple[str, str]
"""An execution's identity: (workspace id, execution id)."""


def execution_from_row(row: Any) -> ExecutionRecord:
    return ExecutionRecord(**row._mapping)


def task_from_row(row: Any) -> TaskRecord:
    return TaskRecord(**row._mapping)


def execution_row(record: ExecutionRecord) -> dict[str, Any]:
    return {
        "workspace_id": record.workspace_id,
        "id": record.id,
        "workflow_id": record.workflow_id,
        "workflow_version": record.workflow_version,
        "subject_id": record.subject_id,
        "status": str(record.status),
        "trigger": record.trigger,
        "input": record.input,
        "contact": record.contact,
        "state": record.state,
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
