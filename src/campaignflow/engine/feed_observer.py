"""Publishing what a worker committed to the live step feed (SSE, GraphQL subscriptions).

The worker calls :meth:`StepFeedObserver.committed` after each commit with only the durable
outcomes, so a subscriber never sees a step that is then rolled back. Every logged step becomes
a ``step`` event, and an execution that reached a final status in the batch an ``execution``
event after its steps; the whole batch goes to the feed in one call (one Redis round trip).

Events carry no step output and no error message (they may hold personal data): a failure is
named by :func:`error_type` only, a coarse class derived from the error record.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from campaignflow.bus.step_feed import EXECUTION, STEP, StepEvent, StepFeed
from campaignflow.engine.model import (
    ExecutionRecord,
    ExecutionStatus,
    Outcome,
    StepEntry,
    TaskRecord,
)


class StepFeedObserver:
    """A :class:`~campaignflow.engine.observers.BatchObserver` publishing to ``feed``."""

    def __init__(self, feed: StepFeed) -> None:
        self.feed = feed

    def claimed(self, tasks: Sequence[TaskRecord], now: datetime) -> None:
        """Claims are not steps: nothing to publish."""

    async def committed(self, outcomes: Sequence[Outcome], now: datetime) -> None:
        workspaces = {outcome.execution.workspace_id for outcome in outcomes}
        watched = await self.feed.watched(workspaces) if workspaces else set()
        if not watched:  # nobody looks: build nothing (the usual case at full load)
            return
        events = step_events([o for o in outcomes if o.execution.workspace_id in watched], now)
        if events:
            await self.feed.publish(events)


def step_events(outcomes: Sequence[Outcome], now: datetime) -> list[StepEvent]:
    """The feed's events for committed ``outcomes``, in commit order; pure."""
    events: list[StepEvent] = []
    for outcome in outcomes:
        execution = outcome.execution
        events.extend(_step_event(execution, step) for step in outcome.steps)
        if ExecutionStatus(execution.status).is_final:
            events.append(_execution_event(execution, now))
    return events


def _step_event(execution: ExecutionRecord, step: StepEntry) -> StepEvent:
    return StepEvent(
        kind=STEP,
        workspace_id=execution.workspace_id,
        execution_id=execution.id,
        workflow_id=execution.workflow_id,
        workflow_version=execution.workflow_version,
        status=step.status.value,
        at=step.finished_at,
        seq=step.seq,
        node_id=step.node_id,
        node_type=step.node_type,
        attempt=step.attempt,
        started_at=step.started_at,
        error_type=error_type(step.error),
    )


def _execution_event(execution: ExecutionRecord, now: datetime) -> StepEvent:
    return StepEvent(
        kind=EXECUTION,
        workspace_id=execution.workspace_id,
        execution_id=execution.id,
        workflow_id=execution.workflow_id,
        workflow_version=execution.workflow_version,
        status=execution.status,
        at=execution.finished_at or now,
        started_at=execution.created_at,
        error_type=error_type(execution.error),
    )


def error_type(error: Mapping[str, Any] | None) -> str | None:
    """A failure's class without its message: ``policy`` (held by the send-time policy),
    ``http_<status>`` (the provider's answer), ``circuit_open``, ``rate_limited``, else
    ``retryable`` or ``permanent``. ``None`` without an error."""
    if not error:
        return None
    if "policy" in error:
        return "policy"
    details = error.get("details")
    details = details if isinstance(details, Mapping) else {}
    status = details.get("status")
    if isinstance(status, int) and not isinstance(status, bool):
        return f"http_{status}"
    if "breaker" in details:
        return "circuit_open"
    if "rateLimit" in details:
        return "rate_limited"
    return "retryable" if error.get("retryable") else "permanent"
