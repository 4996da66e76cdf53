"""The engine's records: what a worker loads, what the interpreter decides, what gets committed.

An execution's progress is carried by *tokens*: the main path is the token ``""``; a parallel
node gives each branch a child token ``<parent>/<parallel id>:<first node of the branch>``. A
token is always in exactly one place — a task row (ready work, a timer, a retry), a wait row
(``wait_for_event``) — or it is being advanced by a worker. ``state["live"]`` counts them; an
execution with no live token has completed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class ExecutionStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in _FINAL


_FINAL = frozenset({ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED})


class TaskKind(StrEnum):
    RUN = "run"  # run the node (again, for a retry)
    TIMER = "timer"  # a delay node's time has come
    TIMEOUT = "timeout"  # a wait_for_event node gave up
    EVENT = "event"  # a wait_for_event node received its event (payload)


class StepStatus(StrEnum):
    COMPLETED = "completed"
    RETRYING = "retrying"  # failed; another attempt is scheduled
    FAILED = "failed"  # failed for good (then onError or the dead letters)
    TIMED_OUT = "timed_out"  # wait_for_event's timeout
    CANCELLED = "cancelled"
    DEFERRED = "deferred"  # held back by the send-time policy (error.policy: rule, reason, until)


MAIN_TOKEN = ""


def branch_token(parent: str, parallel_id: str, branch: str) -> str:
    return f"{parent}/{parallel_id}:{branch}"


def split_token(token: str) -> tuple[str, str, str] | None:
    """``(parent, parallel id, branch)`` of a branch token; ``None`` for the main path."""
    if not token:
        return None
    parent, _, last = token.rpartition("/")
    parallel_id, _, branch = last.partition(":")
    return parent, parallel_id, branch


def in_branch(token: str, prefix: str) -> bool:
    """Whether ``token`` is the branch ``prefix`` or nested inside it (``""``: every token)."""
    return not prefix or token == prefix or token.startswith(prefix + "/")


def idempotency_key(execution_id: str, token: str, node_id: str, visit: int, group: int) -> str:
    """The key of an action's effect: one per (execution, branch, node, visit, replay group).

    Retries and crash re-runs of the same visit share it; a loop's next visit and a deliberate
    replay of a dead letter get a new one.
    """
    raw = f"{execution_id}\x1f{token}\x1f{node_id}\x1f{visit}\x1f{group}"
    return hashlib.sha256(raw.encode()).hexdigest()[:40]


@dataclass(slots=True)
class ExecutionRecord:
    """An execution as loaded by a worker; ``state`` is mutated by the interpreter."""

    workspace_id: str
    id: str
    workflow_id: str
    workflow_version: int
    subject_id: str
    status: str
    trigger: str
    input: dict[str, Any]
    contact: dict[str, Any]
    state: dict[str, Any]
    revision: int
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
    error: dict[str, Any] | None = None
    idempotency_key: str | None = None
    exit_reason: dict[str, Any] | None = None  # why it ended early (an exit criterion)


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """A claimed task."""

    id: int
    workspace_id: str
    execution_id: str
    node_id: str
    token: str
    kind: str
    attempt: int
    run_at: datetime
    payload: Any
    created_at: datetime


@dataclass(frozen=True, slots=True)
class NewTask:
    node_id: str
    token: str
    kind: TaskKind
    attempt: int
    run_at: datetime
    payload: Any = None


@dataclass(frozen=True, slots=True)
class NewWait:
    node_id: str
    token: str
    event_name: str
    correlation_value: str | None
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class StepEntry:
    seq: int
    node_id: str
    node_type: str
    token: str
    attempt: int
    status: StepStatus
    started_at: datetime
    finished_at: datetime
    output: Any = None
    error: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class DeadLetterDraft:
    node_id: str
    token: str
    attempts: int
    errors: list[dict[str, Any]]


def branches_removed(execution: ExecutionRecord, tokens: int, now: datetime) -> None:
    """Account for ``tokens`` that a cancelled branch had parked (tasks and waits deleted by
    whoever applies the outcome): with none left, the execution has completed. A failed
    execution stays failed."""
    if execution.status == ExecutionStatus.FAILED:
        return
    live = max(0, execution.state.get("live", 0) - tokens)
    execution.state["live"] = live
    if live == 0:
        execution.status = ExecutionStatus.COMPLETED
        execution.finished_at = now


@dataclass(slots=True)
class Outcome:
    """Everything one advance of one execution decided, committed in one transaction."""

    execution: ExecutionRecord
    consumed_task_ids: list[int] = field(default_factory=list)
    steps: list[StepEntry] = field(default_factory=list)
    tasks: list[NewTask] = field(default_factory=list)
    waits: list[NewWait] = field(default_factory=list)
    removed_wait_tokens: list[str] = field(default_factory=list)
    # Token prefixes whose tasks and waits are to be deleted (join "any", a failed execution).
    cancelled_prefixes: list[str] = field(default_factory=list)
    dead_letters: list[DeadLetterDraft] = field(default_factory=list)

    def has_due_work(self, now: datetime) -> bool:
        return any(task.run_at <= now for task in self.tasks)
