"""The GraphQL object types: the REST resources' fields, in GraphQL's camelCase.

Each type is built from the record a service returns (``from_record``), with the same fields
REST shows: contacts as their store opens them (sealed fields unsealed only for a caller with
``contacts:read``, as REST), message deliveries in REST's own shape. Nested lists that cost a
read (a workflow's versions, an execution's steps) are resolvers that call the services with
the same permission check as the REST route that serves them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from campaignflow.api.consent_schemas import purposes_of
from campaignflow.api.execution_schemas import DeadLetterStatus, Delivery
from campaignflow.api.graphql.arguments import bounded_first
from campaignflow.api.graphql.context import Info
from campaignflow.api.graphql.fields import field
from campaignflow.api.pagination import decode_cursor, page_of
from campaignflow.api.schemas import etag_for
from campaignflow.domain.contacts import ContactRecord
from campaignflow.engine.model import ExecutionRecord, ExecutionStatus, StepStatus
from campaignflow.security.rbac import Permission
from campaignflow.services import monitoring
from campaignflow.services.executions import ExecutionDetail
from campaignflow.services.triggers import TriggerSource, TriggerType, TriggerView
from campaignflow.services.workflows import WorkflowStatus
from campaignflow.store.dead_letters import DeadLetterRecord
from campaignflow.store.deliveries import DeliveryRecord
from campaignflow.store.executions import StepRecord
from campaignflow.store.workflows import VersionRecord, WorkflowRecord, WorkflowSummaryRecord

strawberry.enum(WorkflowStatus, name="WorkflowStatus")
strawberry.enum(ExecutionStatus, name="ExecutionStatus")
strawberry.enum(StepStatus, name="StepStatus")
strawberry.enum(DeadLetterStatus, name="DeadLetterStatus")
strawberry.enum(TriggerSource, name="TriggerSource")
strawberry.enum(TriggerType, name="TriggerType")


@strawberry.type(description="One immutable version of a workflow definition.")
class WorkflowVersion:
    workflow_id: str
    version: int
    name: str
    content_hash: str = strawberry.field(description="sha256 of the canonical definition.")
    created_at: datetime
    definition: JSON

    @classmethod
    def from_record(cls, record: VersionRecord) -> WorkflowVersion:
        return cls(
            workflow_id=record.workflow_id,
            version=record.version,
            name=record.name,
            content_hash=record.content_hash,
            created_at=record.created_at,
            definition=JSON({**record.definition, "version": record.version}),
        )


@strawberry.type
class VersionPage:
    items: list[WorkflowVersion]
    next_cursor: str | None = strawberry.field(description="`after` of the next page.")


@strawberry.type(description="A workflow and its latest version.")
class Workflow:
    workflow_id: str
    name: str
    status: WorkflowStatus
    version: int = strawberry.field(description="The latest version.")
    etag: str = strawberry.field(
        description="The REST ETag of this version (`version` is `expectedVersion`)."
    )
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None
    loaded: strawberry.Private[dict[str, Any] | None] = None

    @classmethod
    def from_record(cls, record: WorkflowSummaryRecord) -> Workflow:
        definition = record.definition if isinstance(record, WorkflowRecord) else None
        return cls(
            workflow_id=record.id,
            name=record.name,
            status=WorkflowStatus(record.status),
            version=record.version,
            etag=etag_for(record.version),
            created_at=record.created_at,
            updated_at=record.updated_at,
            archived_at=record.archived_at,
            loaded=definition,
        )

    @field(description="The latest version's definition.")
    async def definition(self, info: Info) -> JSON:
        loaded = self.loaded
        if loaded is None:  # listed without it: read as `workflow(id)` does
            context = info.context
            principal = await context.require(Permission.WORKFLOWS_READ, self.workflow_id)
            record = await context.workflows.get(principal.workspace_id, self.workflow_id)
            loaded = record.definition
        return JSON({**loaded, "version": self.version})

    @field(description="Every published version, oldest first.")
    async def versions(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> VersionPage:
        context = info.context
        principal = await context.require(Permission.WORKFLOWS_READ, self.workflow_id)
        size = bounded_first(first, context.settings)
        records = await context.workflows.versions(
            principal.workspace_id,
            self.workflow_id,
            after=decode_cursor(after, int),
            limit=size + 1,
        )
        page, cursor = page_of(records, size, lambda record: record.version)
        return VersionPage(items=[WorkflowVersion.from_record(r) for r in page], next_cursor=cursor)


@strawberry.type
class WorkflowPage:
    items: list[Workflow]
    next_cursor: str | None = strawberry.field(description="`after` of the next page.")


@strawberry.type(description="One step an execution ran.")
class Step:
    seq: int = strawberry.field(description="Order of the step within the execution, from 1.")
    node_id: str
    node_type: str
    branch: str = strawberry.field(description='The token of the path that ran it (`""`: main).')
    attempt: int
    status: StepStatus
    started_at: datetime
    finished_at: datetime
    output: JSON | None
    error: JSON | None
    delivery: JSON | None = strawberry.field(
        description="The message the step sent, if any, and how far it got (as REST shows it)."
    )

    @classmethod
    def from_record(cls, record: StepRecord, delivery: DeliveryRecord | None) -> Step:
        sent = (
            Delivery.from_record(delivery).model_dump(mode="json", by_alias=True)
            if delivery
            else None
        )
        return cls(
            seq=record.seq,
            node_id=record.node_id,
            node_type=record.node_type,
            branch=record.token,
            attempt=record.attempt,
            status=StepStatus(record.status),
            started_at=record.started_at,
            finished_at=record.finished_at,
            output=JSON(record.output),
            error=JSON(record.error),
            delivery=JSON(sent),
        )


@strawberry.type(description="One run of a workflow version for one subject.")
class Execution:
    id: strawberry.ID
    workflow_id: str
    workflow_version: int = strawberry.field(description="The version it is pinned to.")
    subject: str
    status: ExecutionStatus
    trigger: str = strawberry.field(description="What started it (`api`, …).")
    input: JSON
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    error: JSON | None = strawberry.field(description="Why it failed.")
    exit_reason: JSON | None = strawberry.field(description="Why it ended early.")
    loaded: strawberry.Private[ExecutionDetail | None] = None

    @classmethod
    def from_record(
        cls, record: ExecutionRecord, detail: ExecutionDetail | None = None
    ) -> Execution:
        return cls(
            id=strawberry.ID(record.id),
            workflow_id=record.workflow_id,
            workflow_version=record.workflow_version,
            subject=record.subject_id,
            status=ExecutionStatus(record.status),
            trigger=record.trigger,
            input=JSON(record.input),
            created_at=record.created_at,
            updated_at=record.updated_at,
            finished_at=record.finished_at,
            error=JSON(record.error),
            exit_reason=JSON(record.exit_reason),
            loaded=detail,
        )

    @field(description="Every step run so far, in order.")
    async def steps(self, info: Info) -> list[Step]:
        detail = self.loaded
        if detail is None:  # listed without them: read as `execution(id)` does
            context = info.context
            principal = await context.require(Permission.EXECUTIONS_READ)
            detail = await context.executions.get(principal.workspace_id, str(self.id))
        return [Step.from_record(s, detail.deliveries.get(s.seq)) for s in detail.steps]


@strawberry.type
class ExecutionPage:
    items: list[Execution]
    next_cursor: str | None = strawberry.field(description="`after` of the next page.")


@strawberry.type(description="A step that failed for good, to replay or discard.")
class DeadLetter:
    id: strawberry.ID
    execution_id: str
    workflow_id: str
    workflow_version: int
    node_id: str
    branch: str
    status: DeadLetterStatus
    attempts: int
    errors: JSON = strawberry.field(description="Every attempt's error, oldest first.")
    input: JSON = strawberry.field(description="The execution's input.")
    created_at: datetime
    resolved_at: datetime | None

    @classmethod
    def from_record(cls, record: DeadLetterRecord) -> DeadLetter:
        return cls(
            id=strawberry.ID(record.id),
            execution_id=record.execution_id,
            workflow_id=record.workflow_id,
            workflow_version=record.workflow_version,
            node_id=record.node_id,
            branch=record.token,
            status=DeadLetterStatus(record.status),
            attempts=record.attempts,
            errors=JSON(record.errors),
            input=JSON(record.input),
            created_at=record.created_at,
            resolved_at=record.resolved_at,
        )


@strawberry.type
class DeadLetterPage:
    items: list[DeadLetter]
    next_cursor: str | None = strawberry.field(description="`after` of the next page.")


@strawberry.type(description="A trigger: created through the API, or declared in a workflow.")
class Trigger:
    id: strawberry.ID
    workflow_id: str
    source: TriggerSource
    enabled: bool
    trigger: JSON = strawberry.field(description="The trigger in the workflow format.")
    created_at: datetime
    updated_at: datetime
    etag: str

    @classmethod
    def from_view(cls, view: TriggerView) -> Trigger:
        return cls(
            id=strawberry.ID(view.id),
            workflow_id=view.workflow_id,
            source=view.source,
            enabled=view.enabled,
            trigger=JSON(view.trigger),
            created_at=view.created_at,
            updated_at=view.updated_at,
            etag=etag_for(view.revision),
        )


@strawberry.type
class TriggerPage:
    items: list[Trigger]
    next_cursor: str | None = strawberry.field(description="`after` of the next page.")


@strawberry.type(description="A person (or device) the workflows run for.")
class Contact:
    id: strawberry.ID
    user_id: str | None
    email: str | None
    timezone: str | None
    traits: JSON
    created_at: datetime
    updated_at: datetime
    last_seen_at: datetime | None
    consent: JSON = strawberry.field(description="Consent per purpose, as REST shows it.")

    @classmethod
    def from_record(cls, record: ContactRecord) -> Contact:
        consent = {
            purpose: state.model_dump(mode="json", by_alias=True)
            for purpose, state in purposes_of(record.consent).items()
        }
        return cls(
            id=strawberry.ID(record.id),
            user_id=record.user_id,
            email=record.email,
            timezone=record.timezone,
            traits=JSON(record.traits),
            created_at=record.created_at,
            updated_at=record.updated_at,
            last_seen_at=record.last_seen_at,
            consent=JSON(consent),
        )


@strawberry.type
class ContactPage:
    items: list[Contact]
    next_cursor: str | None = strawberry.field(description="`after` of the next page.")


@strawberry.type(description="Seconds from start to end of the window's finished executions.")
class Durations:
    measured: int
    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None


@strawberry.type(description="Where live executions wait at one node, by kind.")
class NodeWaiting:
    node_id: str
    delay: int
    retry: int
    ready: int
    event: int
    total: int


@strawberry.type(description="A workflow's executions in a window, and where contacts wait now.")
class WorkflowSummary:
    workflow_id: str
    window_seconds: float
    since: datetime
    until: datetime
    started: int
    throughput_per_minute: float
    completed: int
    failed: int
    cancelled: int
    running: int
    waiting: int
    success_rate: float | None
    durations: Durations
    waiting_at: list[NodeWaiting]

    @classmethod
    def from_summary(cls, summary: monitoring.WorkflowSummary) -> WorkflowSummary:
        d = summary.durations
        return cls(
            workflow_id=summary.workflow_id,
            window_seconds=summary.window.total_seconds(),
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
            durations=Durations(measured=d.measured, p50=d.p50, p90=d.p90, p95=d.p95, p99=d.p99),
            waiting_at=[
                NodeWaiting(
                    node_id=n.node_id,
                    delay=n.delay,
                    retry=n.retry,
                    ready=n.ready,
                    event=n.event,
                    total=n.total,
                )
                for n in summary.waiting_at
            ],
        )
