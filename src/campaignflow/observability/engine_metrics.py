"""The engine's metrics, taken from what its workers claim and commit (``engine/observers.py``).

Counted after the commit, from the committed outcomes only, so a batch that conflicted and runs
again is not counted twice: steps (duration by node type and status), retries, executions that
began running (their first step, ``seq`` 1, was committed) and that ended, dead letters; and from
each claimed batch, how late its tasks were claimed.

A step's log entry says when it started and finished on the engine's clock, which is fixed for
one advance: right for a delay or a wait (parked since), but an action's entry spans nothing.
So :func:`timed_executors` wraps the worker's executors to measure each call, and the observer
takes that measurement when it meets the call's step. Measurements of calls whose step is never
committed (a conflict) are dropped, oldest first, beyond :data:`MAX_PENDING_CALLS`.

Cancellations outside a worker (the API, exit criteria) are counted where they happen.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final

from campaignflow.engine.actions import ActionCall, ActionExecutor, ExecutorRegistry
from campaignflow.engine.model import ExecutionStatus, Outcome, StepEntry, StepStatus, TaskRecord
from campaignflow.engine.observers import BatchObserver
from campaignflow.observability import metrics

MAX_PENDING_CALLS: Final = 10_000

CallKey = tuple[str, str, str, str, int]  # workspace, execution, token, node, attempt


class _TimedExecutor:
    """An executor that notes how long each call took, for the step the call belongs to."""

    __slots__ = ("_inner", "_seconds")

    def __init__(self, inner: ActionExecutor, seconds: dict[CallKey, float]) -> None:
        self._inner = inner
        self._seconds = seconds

    async def execute(self, call: ActionCall) -> Any:
        started = time.perf_counter()
        try:
            return await self._inner.execute(call)
        finally:
            seconds = self._seconds
            if len(seconds) >= MAX_PENDING_CALLS:
                del seconds[next(iter(seconds))]
            key = (call.workspace_id, call.execution_id, call.token, call.node_id, call.attempt)
            seconds[key] = time.perf_counter() - started


class MetricsObserver:
    """The :class:`~campaignflow.engine.observers.BatchObserver` that feeds the engine's
    metrics. Pure bookkeeping in memory: no I/O, nothing awaited."""

    def __init__(self) -> None:
        self._call_seconds: dict[CallKey, float] = {}

    def timed(self, executors: ExecutorRegistry) -> ExecutorRegistry:
        """``executors`` with each call measured for this observer's step durations."""
        wrapped = {
            name: _TimedExecutor(executor, self._call_seconds)
            for name, executor in executors.executors.items()
        }
        return ExecutorRegistry(MappingProxyType(wrapped))

    def claimed(self, tasks: Sequence[TaskRecord], now: datetime) -> None:
        observe = metrics.TIMER_LATENESS.observe
        for task in tasks:
            observe(max(0.0, (now - task.run_at).total_seconds()))

    async def committed(self, outcomes: Sequence[Outcome], now: datetime) -> None:
        for outcome in outcomes:
            self._count(outcome)

    def _count(self, outcome: Outcome) -> None:
        execution = outcome.execution
        workspace, workflow = execution.workspace_id, execution.workflow_id
        for step in outcome.steps:
            if step.seq == 1:
                metrics.execution_started(workspace, workflow)
            metrics.step_finished(step.node_type, step.status.value, self._seconds(outcome, step))
            if step.status is StepStatus.RETRYING:
                metrics.step_retried(workspace, workflow, step.node_type)
        if outcome.dead_letters:
            metrics.dead_letter_created(workspace, workflow, len(outcome.dead_letters))
        if execution.status in _FINAL_STATUSES and _ended(outcome):
            metrics.execution_finished(workspace, workflow, execution.status)

    def _seconds(self, outcome: Outcome, step: StepEntry) -> float:
        execution = outcome.execution
        key = (execution.workspace_id, execution.id, step.token, step.node_id, step.attempt)
        measured = self._call_seconds.pop(key, None)
        if measured is not None:
            return measured
        return (step.finished_at - step.started_at).total_seconds()


_FINAL_STATUSES: Final = frozenset(
    {ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED}
)


def _ended(outcome: Outcome) -> bool:
    """Whether this advance is the one that ended its execution. Leftover tasks of an execution
    that had already ended are dropped by an outcome that only consumes them; the advance that
    ends one always logs a step (the end node, the failed step) or cancels its branches (an
    unrunnable version)."""
    return bool(outcome.steps or outcome.cancelled_prefixes)


def timed_executors(
    executors: ExecutorRegistry, observers: Sequence[BatchObserver]
) -> ExecutorRegistry:
    """The worker's executors, measured for the first :class:`MetricsObserver` among
    ``observers`` (unchanged when there is none)."""
    for observer in observers:
        if isinstance(observer, MetricsObserver):
            return observer.timed(executors)
    return executors
