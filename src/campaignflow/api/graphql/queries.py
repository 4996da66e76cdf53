"""The ``Query`` root: each field is the REST read of the same name, with the permission its
route declares, calling the same service method."""

from __future__ import annotations

import strawberry

from campaignflow.api.execution_schemas import DeadLetterStatus
from campaignflow.api.graphql.arguments import bounded_first
from campaignflow.api.graphql.context import Info
from campaignflow.api.graphql.fields import field
from campaignflow.api.graphql.types import (
    Contact,
    ContactPage,
    DeadLetter,
    DeadLetterPage,
    Execution,
    ExecutionPage,
    Trigger,
    TriggerPage,
    Workflow,
    WorkflowPage,
    WorkflowSummary,
)
from campaignflow.api.pagination import decode_cursor, page_of
from campaignflow.api.parameters import parse_instant
from campaignflow.engine.model import ExecutionStatus
from campaignflow.security.rbac import Permission
from campaignflow.services.monitoring import MonitoringService, parse_window
from campaignflow.services.triggers import TriggerFilters, TriggerSource, TriggerType
from campaignflow.services.workflows import WorkflowStatus


@strawberry.type
class Query:
    @field(description="Workflows by id; archived ones only with `status: ARCHIVED`.")
    async def workflows(
        self,
        info: Info,
        status: WorkflowStatus | None = None,
        name: str | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> WorkflowPage:
        context = info.context
        principal = await context.require(Permission.WORKFLOWS_READ)
        size = bounded_first(first, context.settings)
        records = await context.workflows.list_workflows(
            principal.workspace_id,
            status=status,
            name_contains=name,
            after=decode_cursor(after, str),
            limit=size + 1,
        )
        page, cursor = page_of(records, size, lambda record: record.id)
        return WorkflowPage(items=[Workflow.from_record(r) for r in page], next_cursor=cursor)

    @field(description="A workflow with its latest definition.")
    async def workflow(self, info: Info, id: strawberry.ID) -> Workflow:
        context = info.context
        principal = await context.require(Permission.WORKFLOWS_READ, str(id))
        return Workflow.from_record(await context.workflows.get(principal.workspace_id, str(id)))

    @field(description="Executions, newest first.")
    async def executions(
        self,
        info: Info,
        *,
        workflow_id: str | None = None,
        status: ExecutionStatus | None = None,
        subject: str | None = None,
        created_from: str | None = None,
        created_to: str | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> ExecutionPage:
        context = info.context
        principal = await context.require(Permission.EXECUTIONS_READ)
        size = bounded_first(first, context.settings)
        records = await context.executions.list_executions(
            principal.workspace_id,
            workflow_id=workflow_id,
            status=status,
            subject_id=subject,
            created_from=parse_instant(created_from, "createdFrom"),
            created_to=parse_instant(created_to, "createdTo"),
            before=decode_cursor(after, str),
            limit=size + 1,
        )
        page, cursor = page_of(records, size, lambda record: record.id)
        return ExecutionPage(items=[Execution.from_record(r) for r in page], next_cursor=cursor)

    @field(description="An execution with every step it has run.")
    async def execution(self, info: Info, id: strawberry.ID) -> Execution:
        context = info.context
        principal = await context.require(Permission.EXECUTIONS_READ)
        detail = await context.executions.get(principal.workspace_id, str(id))
        return Execution.from_record(detail.execution, detail)

    @field(description="Triggers created here by id, then those declared in workflows.")
    async def triggers(
        self,
        info: Info,
        *,
        workflow_id: str | None = None,
        type: TriggerType | None = None,
        enabled: bool | None = None,
        source: TriggerSource | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> TriggerPage:
        context = info.context
        principal = await context.require(Permission.TRIGGERS_READ)
        size = bounded_first(first, context.settings)
        views = await context.triggers.list_triggers(
            principal.workspace_id,
            TriggerFilters(workflow_id, type, enabled, source),
            after=decode_cursor(after, str),
            limit=size + 1,
        )
        page, cursor = page_of(views, size, lambda view: view.id)
        return TriggerPage(items=[Trigger.from_view(v) for v in page], next_cursor=cursor)

    @field(description="A trigger of either source.")
    async def trigger(self, info: Info, id: strawberry.ID) -> Trigger:
        context = info.context
        principal = await context.require(Permission.TRIGGERS_READ)
        return Trigger.from_view(await context.triggers.get(principal.workspace_id, str(id)))

    @field(description="Contacts, newest first.")
    async def contacts(
        self,
        info: Info,
        *,
        email: str | None = None,
        user_id: str | None = None,
        anonymous_id: str | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> ContactPage:
        context = info.context
        principal = await context.require(Permission.CONTACTS_READ)
        size = bounded_first(first, context.settings)
        records = await context.contacts.list_contacts(
            principal.workspace_id,
            email=email,
            user_id=user_id,
            anonymous_id=anonymous_id,
            before=decode_cursor(after, str),
            limit=size + 1,
        )
        page, cursor = page_of(records, size, lambda record: record.id)
        return ContactPage(items=[Contact.from_record(r) for r in page], next_cursor=cursor)

    @field(description="A contact.")
    async def contact(self, info: Info, id: strawberry.ID) -> Contact:
        context = info.context
        principal = await context.require(Permission.CONTACTS_READ)
        return Contact.from_record(await context.contacts.get(principal.workspace_id, str(id)))

    @field(description="Dead letters, newest first.")
    async def dead_letters(
        self,
        info: Info,
        status: DeadLetterStatus | None = None,
        workflow_id: str | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> DeadLetterPage:
        context = info.context
        principal = await context.require(Permission.DEAD_LETTERS_READ)
        size = bounded_first(first, context.settings)
        records = await context.executions.dead_letters(
            principal.workspace_id,
            status=status.value if status else None,
            workflow_id=workflow_id,
            before=decode_cursor(after, str),
            limit=size + 1,
        )
        page, cursor = page_of(records, size, lambda record: record.id)
        return DeadLetterPage(items=[DeadLetter.from_record(r) for r in page], next_cursor=cursor)

    @field(description="A dead letter with every attempt's error.")
    async def dead_letter(self, info: Info, id: strawberry.ID) -> DeadLetter:
        context = info.context
        principal = await context.require(Permission.DEAD_LETTERS_READ)
        letter = await context.executions.dead_letter(principal.workspace_id, str(id))
        return DeadLetter.from_record(letter)

    @field(
        description="Throughput, success rate and latency percentiles of the executions started "
        "in `window` (an ISO 8601 duration, PT1M to P30D; default PT1H), and where live "
        "executions wait now."
    )
    async def workflow_summary(
        self, info: Info, workflow_id: strawberry.ID, window: str | None = None
    ) -> WorkflowSummary:
        context = info.context
        principal = await context.require(Permission.WORKFLOWS_READ, str(workflow_id))
        service: MonitoringService = context.app_state.monitoring
        summary = await service.summary(
            principal.workspace_id, str(workflow_id), parse_window(window)
        )
        return WorkflowSummary.from_summary(summary)
