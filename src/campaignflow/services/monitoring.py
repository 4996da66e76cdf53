"""Live monitoring as a use case: the step stream a principal may watch, and a workflow's
summary. REST (SSE, ``/summary``) and GraphQL (subscription, query) call these, nothing else.

Who sees what: the stream needs ``executions:read`` (checked by the caller's route), and each
event is shown only if the principal may read its workflow (``workflows:read`` for that
workflow, which a grant may give and a credential's scopes may take away), the rule every
``/workflows/{id}`` route applies; a subscriber that asks for no workflow in particular gets
every workflow it may read. The summary is read under ``workflows:read`` of its workflow.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from campaignflow.bus.step_feed import LAGGED, StepEvent, StepFeed, StepFilter
from campaignflow.domain.durations import InvalidDuration, parse_duration
from campaignflow.engine.model import ExecutionStatus, StepStatus
from campaignflow.errors import InvalidField
from campaignflow.security.principal import Principal
from campaignflow.security.rbac import Permission
from campaignflow.store.workflow_summary import (
    PERCENTILES,
    Durations,
    WaitingCount,
    WorkflowSummaryStore,
)
from campaignflow.store.workflows import WorkflowStore

#: What ``status`` may filter on: a step's status, or an execution's.
STREAM_STATUSES = frozenset(s.value for s in StepStatus) | frozenset(
    s.value for s in ExecutionStatus
)
MAX_FILTER_VALUES = 100
_MAX_WORKFLOW_ID = 64

DEFAULT_WINDOW = timedelta(hours=1)
MIN_WINDOW = timedelta(minutes=1)
MAX_WINDOW = timedelta(days=30)


# --- the step stream --------------------------------------------------------------------


def step_filter(
    principal: Principal, workflow_ids: Iterable[str] | None, statuses: Iterable[str] | None
) -> StepFilter:
    """The principal's filter; :class:`InvalidField` (pointing at the value) for an unknown
    status, an over-long workflow id, or more than :data:`MAX_FILTER_VALUES` of either."""
    workflows = _checked("workflowId", workflow_ids, _valid_workflow_id, "an unknown workflow id")
    wanted = _checked("status", statuses, STREAM_STATUSES.__contains__, "an unknown status")
    return StepFilter(principal.workspace_id, workflows, wanted)


def _checked(
    name: str, values: Iterable[str] | None, valid: Callable[[str], bool], what: str
) -> frozenset[str] | None:
    if values is None:
        return None
    listed = list(values)
    if not listed:
        return None
    if len(listed) > MAX_FILTER_VALUES:
        raise InvalidField(f"At most {MAX_FILTER_VALUES} values of {name}.", f"/{name}")
    for index, value in enumerate(listed):
        if not valid(value):
            allowed = ", ".join(sorted(STREAM_STATUSES)) if name == "status" else ""
            hint = f" (one of {allowed})" if allowed else ""
            raise InvalidField(f"{value[:80]!r} is {what}{hint}.", f"/{name}/{index}")
    return frozenset(listed)


def _valid_workflow_id(value: str) -> bool:
    return 0 < len(value) <= _MAX_WORKFLOW_ID


def may_watch(principal: Principal, event: StepEvent) -> bool:
    """Whether ``principal`` may see ``event``: a lag marker always (it names no execution)."""
    return event.kind == LAGGED or principal.may(Permission.WORKFLOWS_READ, event.workflow_id)


async def watch_steps(
    feed: StepFeed, principal: Principal, filter: StepFilter, *, after: str | None = None
) -> AsyncGenerator[StepEvent, None]:
    """The feed's events for ``filter`` that ``principal`` may see, until the caller stops.
    Closing this generator closes the subscription at once (not when garbage collected), so a
    dropped client leaves no subscriber behind."""
    events = feed.subscribe(filter, after=after)
    try:
        async for event in events:
            if may_watch(principal, event):
                yield event
    finally:
        if isinstance(events, AsyncGenerator):
            await events.aclose()


# --- the summary ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NodeWaiting:
    """Where live executions wait at one node, by kind (see :class:`WaitingCount`)."""

    node_id: str
    delay: int = 0
    retry: int = 0
    ready: int = 0
    event: int = 0

    @property
    def total(self) -> int:
        return self.delay + self.retry + self.ready + self.event


@dataclass(frozen=True, slots=True)
class DurationSummary:
    """Seconds from start to end of the window's finished executions."""

    measured: int
    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None


@dataclass(frozen=True, slots=True)
class WorkflowSummary:
    workflow_id: str
    window: timedelta
    since: datetime
    until: datetime
    started: int
    throughput_per_minute: float
    completed: int
    failed: int
    cancelled: int
    running: int  # pending or running now, of those started in the window
    waiting: int  # waiting now (a delay, an event, a retry), of those started in the window
    success_rate: float | None  # completed / finished; None when none finished
    durations: DurationSummary
    waiting_at: list[NodeWaiting]  # every live execution of the workflow, whenever it started


def parse_window(text: str | None) -> timedelta:
    """An ISO 8601 duration of exact units (``PT1H``, ``P7D``) between one minute and 30
    days; :data:`DEFAULT_WINDOW` when absent. :class:`InvalidField` otherwise."""
    if text is None:
        return DEFAULT_WINDOW
    try:
        duration = parse_duration(text)
    except InvalidDuration as exc:
        raise InvalidField(f"window: {exc.message}", "/window") from exc
    if duration.years or duration.months:
        raise InvalidField("window must use days, hours, minutes or seconds.", "/window")
    if not MIN_WINDOW <= duration.exact <= MAX_WINDOW:
        raise InvalidField("window must be between PT1M and P30D.", "/window")
    return duration.exact


@dataclass(frozen=True, slots=True)
class MonitoringService:
    workflows: WorkflowStore
    summaries: WorkflowSummaryStore
    now: Callable[[], datetime]

    async def summary(
        self, workspace_id: str, workflow_id: str, window: timedelta = DEFAULT_WINDOW
    ) -> WorkflowSummary:
        """The workflow's executions started in the last ``window``, and where its live
        executions wait now. :class:`NotFound` for an unknown workflow."""
        await self.workflows.get(workspace_id, workflow_id)  # NotFound
        until = self.now()
        since = until - window
        counts = await self.summaries.status_counts(workspace_id, workflow_id, since)
        durations = await self.summaries.durations(workspace_id, workflow_id, since)
        waiting = await self.summaries.waiting(workspace_id, workflow_id)
        return summarize(
            workflow_id, window, until, counts=counts, durations=durations, waiting=waiting
        )


def summarize(
    workflow_id: str,
    window: timedelta,
    until: datetime,
    *,
    counts: dict[str, int],
    durations: Durations,
    waiting: list[WaitingCount],
) -> WorkflowSummary:
    """The summary from the store's reads; pure."""

    def count(*statuses: ExecutionStatus) -> int:
        return sum(counts.get(status.value, 0) for status in statuses)

    started = sum(counts.values())
    completed = count(ExecutionStatus.COMPLETED)
    finished = count(ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED)
    p50, p90, p95, p99 = (durations.percentiles.get(p) for p in PERCENTILES)
    return WorkflowSummary(
        workflow_id=workflow_id,
        window=window,
        since=until - window,
        until=until,
        started=started,
        throughput_per_minute=started / (window.total_seconds() / 60),
        completed=completed,
        failed=count(ExecutionStatus.FAILED),
        cancelled=count(ExecutionStatus.CANCELLED),
        running=count(ExecutionStatus.PENDING, ExecutionStatus.RUNNING),
        waiting=count(ExecutionStatus.WAITING),
        success_rate=completed / finished if finished else None,
        durations=DurationSummary(durations.measured, p50, p90, p95, p99),
        waiting_at=_by_node(waiting),
    )


def _by_node(counts: list[WaitingCount]) -> list[NodeWaiting]:
    nodes: dict[str, dict[str, int]] = {}
    for count in counts:
        kinds = nodes.setdefault(count.node_id, {})
        kinds[count.kind] = kinds.get(count.kind, 0) + count.count
    return [NodeWaiting(node, **kinds) for node, kinds in sorted(nodes.items())]
