"""The ``Subscription`` root: step events from the live step feed (``bus/step_feed.py``), as
the SSE stream serves them, over graphql-transport-ws or the legacy graphql-ws protocol."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime

import strawberry

from campaignflow.api.graphql.context import Info
from campaignflow.api.graphql.fields import subscription
from campaignflow.bus.events import BusUnavailable
from campaignflow.bus.step_feed import StepEvent, StepFeed
from campaignflow.security.rbac import Permission
from campaignflow.services.monitoring import step_filter, watch_steps


@strawberry.type(
    description="A step an execution committed (`kind: step`) or an execution ending "
    "(`kind: execution`). No step output or error message: read the execution for those."
)
class ExecutionEvent:
    id: str = strawberry.field(description="The feed's position of the event.")
    kind: str
    execution_id: str
    workflow_id: str
    workflow_version: int
    status: str = strawberry.field(description="The step's status, or the execution's final one.")
    at: datetime
    seq: int | None
    node_id: str | None
    node_type: str | None
    attempt: int | None
    started_at: datetime | None
    error_type: str | None

    @classmethod
    def from_event(cls, event: StepEvent) -> ExecutionEvent:
        return cls(
            id=event.id,
            kind=event.kind,
            execution_id=event.execution_id,
            workflow_id=event.workflow_id,
            workflow_version=event.workflow_version,
            status=event.status,
            at=event.at,
            seq=event.seq,
            node_id=event.node_id,
            node_type=event.node_type,
            attempt=event.attempt,
            started_at=event.started_at,
            error_type=event.error_type,
        )


@strawberry.type
class Subscription:
    @subscription(
        description="Step events of this workspace's executions as they happen, optionally of "
        "some workflows and statuses only (those the caller may read, as the SSE stream); `after` "
        "resumes from an event's `id`."
    )
    async def execution_events(
        self,
        info: Info,
        workflow_ids: list[str] | None = None,
        statuses: list[str] | None = None,
        after: str | None = None,
    ) -> AsyncGenerator[ExecutionEvent, None]:
        context = info.context
        principal = await context.require(Permission.EXECUTIONS_READ)
        feed: StepFeed | None = getattr(context.app_state, "step_feed", None)
        if feed is None:
            raise BusUnavailable("The live step feed is not running in this process.")
        wanted = step_filter(principal, workflow_ids, statuses)
        async for event in watch_steps(feed, principal, wanted, after=after):
            yield ExecutionEvent.from_event(event)
