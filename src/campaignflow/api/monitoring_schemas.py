"""Response shapes of live monitoring: a workflow's summary, and the step stream's messages
(documented for the OpenAPI document; the stream itself is ``text/event-stream``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from campaignflow.api.schemas import ApiModel
from campaignflow.domain.durations import Duration, format_duration
from campaignflow.services.monitoring import NodeWaiting, WorkflowSummary


class ExecutionDurations(ApiModel):
    """Seconds from start to end of the window's finished executions (completed, failed or
    cancelled); percentiles are `null` when none finished."""

    measured: int = Field(
        description="How many were measured (SQLite: at most the newest 100,000)."
    )
    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None


class NodeWaitingCounts(ApiModel):
    """Live executions parked at one node now, by why."""

    node_id: str
    total: int
    delay: int = Field(description="Waiting for a delay node's time.")
    retry: int = Field(description="Waiting for the backoff of a failed attempt.")
    ready: int = Field(
        description="Due or running work (and sends deferred by the send-time policy)."
    )
    event: int = Field(description="Waiting for an event (`wait_for_event`).")

    @classmethod
    def from_counts(cls, counts: NodeWaiting) -> NodeWaitingCounts:
        return cls(
            node_id=counts.node_id,
            total=counts.total,
            delay=counts.delay,
            retry=counts.retry,
            ready=counts.ready,
            event=counts.event,
        )


class WorkflowMonitoringSummary(ApiModel):
    """The executions *started* in the window (`since`..`until`) as they stand now, and where
    every live execution of the workflow waits now."""

    workflow_id: str
    window: str = Field(description="The window, as an ISO 8601 duration.")
    since: datetime
    until: datetime
    started: int
    throughput_per_minute: float = Field(description="`started` per minute of the window.")
    completed: int
    failed: int
    cancelled: int
    running: int = Field(description="Pending or running now.")
    waiting: int = Field(description="Waiting now (a delay, an event, a retry's backoff).")
    success_rate: float | None = Field(
        description="completed / (completed + failed + cancelled); `null` when none finished."
    )
    durations: ExecutionDurations
    waiting_at: list[NodeWaitingCounts] = Field(
        description="Per node, the live executions of the workflow waiting there now "
        "(whenever they started), ordered by node id."
    )

    @classmethod
    def from_summary(cls, summary: WorkflowSummary) -> WorkflowMonitoringSummary:
        durations = summary.durations
        return cls(
            workflow_id=summary.workflow_id,
            window=format_duration(Duration(exact=summary.window)),
            since=summary.since,
            until=summary.until,
            started=summary.started,
            throughput_per_minute=summary.throughput_per_minute,
            completed=summary.completed,
            failed=summary.failed,
            cancelled=summary.cancelled,
            running=summary.running,
            waiting=summary.waiting,
            success_rate=summary.success_rate,
            durations=ExecutionDurations(
                measured=durations.measured,
                p50=durations.p50,
                p90=durations.p90,
                p95=durations.p95,
                p99=durations.p99,
            ),
            waiting_at=[NodeWaitingCounts.from_counts(node) for node in summary.waiting_at],
        )


STREAM_DESCRIPTION = (
    "Server-sent events, one per step (`event: step`) and per execution that ends "
    "(`event: execution`), each with `id:` (its position: send it back as `Last-Event-ID` to "
    "resume) and `data:` (JSON: kind, workspaceId, executionId, workflowId, workflowVersion, "
    "status, at, seq, nodeId, nodeType, attempt, startedAt, errorType, id). `event: lagged` "
    "(no id) says events were dropped for this client; reconnect with the last id to get back "
    "what the feed still keeps. A `: heartbeat` comment comes every 15 s. See docs/monitoring.md."
)

STREAM_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": STREAM_DESCRIPTION,
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}
