"""The engine's metrics as the observer takes them from committed outcomes.

The registry is the process's own, shared by every test of this process, so each test uses a
workspace of its own and asserts on differences.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from campaignflow.engine.actions import ActionCall, ActionFailed, ExecutorRegistry
from campaignflow.engine.model import (
    DeadLetterDraft,
    ExecutionRecord,
    ExecutionStatus,
    Outcome,
    StepEntry,
    StepStatus,
    TaskRecord,
)
from campaignflow.observability.engine_metrics import MetricsObserver, timed_executors
from campaignflow.observability.metrics import REGISTRY

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def execution(workspace: str, status: ExecutionStatus, **changes: Any) -> ExecutionRecord:
    record = ExecutionRecord(
        workspace_id=workspace,
        id="e-" + uuid.uuid4().hex[:8],
        workflow_id="cart",
        workflow_version=1,
        subject_id="c-1",
        status=status,
        trigger="api",
        input={},
        contact={},
        state={},
        revision=1,
        created_at=NOW,
        updated_at=NOW,
    )
    for name, changed in changes.items():
        setattr(record, name, changed)
    return record


def step(
    seq: int,
    status: StepStatus,
    *,
    node_type: str = "action",
    node_id: str = "call",
    attempt: int = 1,
    took: timedelta = timedelta(0),
) -> StepEntry:
    return StepEntry(seq, node_id, node_type, "", attempt, status, NOW - took, NOW)


@pytest.fixture
def workspace() -> str:
    return "ws-" + uuid.uuid4().hex[:10]


async def test_a_finished_run_counts_start_steps_retries_and_its_end(workspace: str) -> None:
    observer = MetricsObserver()
    first = Outcome(
        execution(workspace, ExecutionStatus.WAITING),
        consumed_task_ids=[1],
        steps=[step(1, StepStatus.COMPLETED, node_type="condition"), step(2, StepStatus.RETRYING)],
    )
    last = Outcome(
        execution(workspace, ExecutionStatus.COMPLETED, finished_at=NOW),
        consumed_task_ids=[2],
        steps=[step(3, StepStatus.COMPLETED, attempt=2), step(4, StepStatus.COMPLETED)],
    )
    retrying_before = value(
        "campaignflow_step_duration_seconds_count", node_type="action", status="retrying"
    )

    await observer.committed([first], NOW)
    await observer.committed([last], NOW)

    labels = {"workspace": workspace, "workflow": "cart"}
    assert value("campaignflow_executions_started_total", **labels) == 1
    assert value("campaignflow_step_retries_total", **labels, node_type="action") == 1
    assert value("campaignflow_executions_finished_total", **labels, status="completed") == 1
    assert value("campaignflow_executions_finished_total", **labels, status="failed") == 0
    assert (
        value("campaignflow_step_duration_seconds_count", node_type="action", status="retrying")
        == retrying_before + 1
    )


async def test_dropping_leftover_tasks_of_an_ended_execution_counts_nothing(
    workspace: str,
) -> None:
    ended = execution(workspace, ExecutionStatus.FAILED, finished_at=NOW - timedelta(hours=1))

    await MetricsObserver().committed([Outcome(ended, consumed_task_ids=[7, 8])], NOW)

    labels = {"workspace": workspace, "workflow": "cart", "status": "failed"}
    assert value("campaignflow_executions_finished_total", **labels) == 0


async def test_a_dead_lettered_failure_counts_the_dead_letter_and_the_failure(
    workspace: str,
) -> None:
    failed = Outcome(
        execution(workspace, ExecutionStatus.FAILED, finished_at=NOW),
        consumed_task_ids=[3],
        steps=[step(5, StepStatus.FAILED)],
        dead_letters=[DeadLetterDraft("call", "", 3, [{"message": "HTTP 500"}])],
    )

    await MetricsObserver().committed([failed], NOW)

    labels = {"workspace": workspace, "workflow": "cart"}
    assert value("campaignflow_dead_letters_total", **labels) == 1
    assert value("campaignflow_executions_finished_total", **labels, status="failed") == 1
    assert value("campaignflow_executions_started_total", **labels) == 0  # began earlier


async def test_a_delay_step_lasts_from_its_start_to_its_end() -> None:
    before = value(
        "campaignflow_step_duration_seconds_bucket",
        node_type="delay",
        status="completed",
        le="3600.0",
    )
    before_count = value(
        "campaignflow_step_duration_seconds_count", node_type="delay", status="completed"
    )
    waited = step(2, StepStatus.COMPLETED, node_type="delay", took=timedelta(hours=2))

    await MetricsObserver().committed(
        [Outcome(execution("ws-delay", ExecutionStatus.WAITING), [1], [waited])], NOW
    )

    labels = {"node_type": "delay", "status": "completed"}
    assert value("campaignflow_step_duration_seconds_count", **labels) == before_count + 1
    # Two hours is above the 1 h bucket: a zero-length sample would have landed in it.
    assert value("campaignflow_step_duration_seconds_bucket", **labels, le="3600.0") == before


class _Slow:
    """An executor whose call takes as long as the test says (no sleeping: a fake timer)."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    async def execute(self, call: ActionCall) -> Any:
        if self.fail:
            raise ActionFailed("HTTP 503", retryable=True)
        return {"ok": True}


async def test_an_action_step_lasts_as_long_as_its_call(
    workspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ticks = iter([100.0, 100.75])  # perf_counter before and after the call
    monkeypatch.setattr(
        "campaignflow.observability.engine_metrics.time.perf_counter", lambda: next(ticks)
    )
    observer = MetricsObserver()
    executors = timed_executors(ExecutorRegistry().with_executor("http", _Slow()), [observer])
    record = execution(workspace, ExecutionStatus.COMPLETED, finished_at=NOW)
    call = ActionCall("http", {}, "key", workspace, record.id, "call", 1)
    http = executors.get("http")
    assert http is not None
    await http.execute(call)
    before = _sum("completed")

    await observer.committed([Outcome(record, [1], [step(1, StepStatus.COMPLETED)])], NOW)

    assert _sum("completed") == pytest.approx(before + 0.75)


def _sum(status: str) -> float:
    return value("campaignflow_step_duration_seconds_sum", node_type="action", status=status)


async def test_a_failed_call_is_still_timed_and_its_failure_raised(workspace: str) -> None:
    observer = MetricsObserver()
    executors = observer.timed(ExecutorRegistry().with_executor("http", _Slow(fail=True)))
    call = ActionCall("http", {}, "key", workspace, "e-1", "call", 1)
    http = executors.get("http")
    assert http is not None

    with pytest.raises(ActionFailed):
        await http.execute(call)

    assert len(observer._call_seconds) == 1  # taken by the step later


def test_claimed_tasks_are_observed_by_how_late_they_were_claimed() -> None:
    def task(late: timedelta) -> TaskRecord:
        return TaskRecord(1, "ws", "e", "n", "", "timer", 1, NOW - late, None, NOW - late)

    count = value("campaignflow_timer_lateness_seconds_count")
    total = value("campaignflow_timer_lateness_seconds_sum")

    MetricsObserver().claimed([task(timedelta(seconds=3)), task(-timedelta(seconds=5))], NOW)

    assert value("campaignflow_timer_lateness_seconds_count") == count + 2
    # A task claimed "early" (another worker's clock) counts as on time, not negative.
    assert value("campaignflow_timer_lateness_seconds_sum") == pytest.approx(total + 3)


def test_without_a_metrics_observer_the_executors_are_left_alone() -> None:
    registry = ExecutorRegistry().with_executor("http", _Slow())

    assert timed_executors(registry, []) is registry
