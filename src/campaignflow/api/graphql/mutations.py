"""The ``Mutation`` root: each field is the REST write of the same name, with the permission its
route declares, calling the same service method. Documents (a definition, an execution's input)
are ``JSON`` arguments, validated by the services exactly as REST bodies are: a bad one is
``BAD_USER_INPUT`` with every problem and its JSON pointer into that argument."""

from __future__ import annotations

import strawberry
from strawberry.scalars import JSON

from campaignflow.api.body import validate_body
from campaignflow.api.execution_schemas import ExecuteRequest
from campaignflow.api.graphql.arguments import bounded_length
from campaignflow.api.graphql.context import Info
from campaignflow.api.graphql.fields import mutation
from campaignflow.api.graphql.types import DeadLetter, Execution, Workflow
from campaignflow.security.rbac import Permission
from campaignflow.services.executions import InFlightPolicy

strawberry.enum(InFlightPolicy, name="InFlightPolicy")

_MAX_IDEMPOTENCY_KEY = 200


@strawberry.type
class Mutation:
    @mutation(description="Create a workflow from a definition (draft, version 1).")
    async def create_workflow(self, info: Info, definition: JSON) -> Workflow:
        context = info.context
        principal = await context.require(Permission.WORKFLOWS_WRITE)
        return Workflow.from_record(
            await context.workflows.create(principal.workspace_id, definition)
        )

    @mutation(
        description="Publish a new version; an unchanged definition creates none. With "
        "`expectedVersion` (the `version` last read) a concurrent edit is refused "
        "(PRECONDITION_FAILED), as REST's If-Match."
    )
    async def update_workflow(
        self,
        info: Info,
        id: strawberry.ID,
        definition: JSON,
        expected_version: int | None = None,
        in_flight: InFlightPolicy = InFlightPolicy.FINISH,
    ) -> Workflow:
        context = info.context
        workflow_id = str(id)
        principal = await context.require(Permission.WORKFLOWS_WRITE, workflow_id)
        record, changed = await context.workflows.update(
            principal.workspace_id, workflow_id, definition, expected_version=expected_version
        )
        if changed and in_flight is InFlightPolicy.EXIT:
            await context.executions.exit_older_versions(
                principal.workspace_id, workflow_id, record.version
            )
        return Workflow.from_record(record)

    @mutation(description="Start accepting triggers on the latest version.")
    async def activate_workflow(self, info: Info, id: strawberry.ID) -> Workflow:
        context = info.context
        principal = await context.require(Permission.WORKFLOWS_WRITE, str(id))
        return Workflow.from_record(
            await context.workflows.activate(principal.workspace_id, str(id))
        )

    @mutation(description="Stop starting new executions; those in flight go on.")
    async def pause_workflow(self, info: Info, id: strawberry.ID) -> Workflow:
        context = info.context
        principal = await context.require(Permission.WORKFLOWS_WRITE, str(id))
        return Workflow.from_record(await context.workflows.pause(principal.workspace_id, str(id)))

    @mutation(description="Archive: no new executions; running ones finish.")
    async def archive_workflow(self, info: Info, id: strawberry.ID) -> Workflow:
        context = info.context
        principal = await context.require(Permission.WORKFLOWS_WRITE, str(id))
        return Workflow.from_record(
            await context.workflows.archive(principal.workspace_id, str(id))
        )

    @mutation(
        description="Start an execution of the active workflow's latest version; a repeat with "
        "the same `idempotencyKey` returns the first execution."
    )
    async def execute_workflow(
        self,
        info: Info,
        *,
        workflow_id: strawberry.ID,
        subject: str,
        input: JSON | None = None,
        contact: JSON | None = None,
        idempotency_key: str | None = None,
    ) -> Execution:
        context = info.context
        principal = await context.require(Permission.WORKFLOWS_EXECUTE, str(workflow_id))
        document: dict[str, object] = {"subject": subject, "input": input or {}}
        if contact is not None:
            document["contact"] = contact
        body = validate_body(ExecuteRequest, document, ("subject", "input", "contact"))
        record, _ = await context.executions.execute(
            principal.workspace_id,
            str(workflow_id),
            subject_id=body.subject,
            input=body.input,
            contact=body.contact,
            idempotency_key=bounded_length("idempotencyKey", idempotency_key, _MAX_IDEMPOTENCY_KEY),
        )
        return Execution.from_record(record)

    @mutation(description="Stop an execution that has not finished.")
    async def cancel_execution(self, info: Info, id: strawberry.ID) -> Execution:
        context = info.context
        principal = await context.require(Permission.EXECUTIONS_WRITE)
        return Execution.from_record(
            await context.executions.cancel(principal.workspace_id, str(id))
        )

    @mutation(description="Re-run a failed execution from where it failed.")
    async def retry_execution(self, info: Info, id: strawberry.ID) -> Execution:
        context = info.context
        principal = await context.require(Permission.EXECUTIONS_WRITE)
        return Execution.from_record(
            await context.executions.retry(principal.workspace_id, str(id))
        )

    @mutation(description="Run a dead letter's failed node again.")
    async def replay_dead_letter(self, info: Info, id: strawberry.ID) -> DeadLetter:
        context = info.context
        principal = await context.require(Permission.DEAD_LETTERS_WRITE)
        return DeadLetter.from_record(
            await context.executions.replay(principal.workspace_id, str(id))
        )

    @mutation(description="Give up on a dead letter's node; the execution stays failed.")
    async def discard_dead_letter(self, info: Info, id: strawberry.ID) -> DeadLetter:
        context = info.context
        principal = await context.require(Permission.DEAD_LETTERS_WRITE)
        return DeadLetter.from_record(
            await context.executions.discard(principal.workspace_id, str(id))
        )
