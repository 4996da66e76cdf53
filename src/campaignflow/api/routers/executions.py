"""``/api/v1/workflows/{id}/execute`` and ``/api/v1/executions``: thin translations from HTTP
onto :class:`ExecutionService`."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from http import HTTPStatus
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Path, Query, Request, Response
from sse_starlette import EventSourceResponse, ServerSentEvent

from campaignflow.api.auth import CurrentPrincipal, authorize
from campaignflow.api.body import read_json, validate_body
from campaignflow.api.deps import AppSettings, Executions, StepFeedDep
from campaignflow.api.execution_schemas import (
    ExecuteRequest,
    Execution,
    ExecutionDetail,
    ExecutionPage,
)
from campaignflow.api.monitoring_schemas import STREAM_RESPONSE
from campaignflow.api.pagination import decode_cursor, page_of, page_size
from campaignflow.api.parameters import INSTANT, Cursor, Limit, WorkflowId, parse_instant
from campaignflow.api.schemas import problem_responses, request_body
from campaignflow.bus.step_feed import StepEvent
from campaignflow.engine.model import ExecutionStatus
from campaignflow.security.rbac import Permission
from campaignflow.services.monitoring import step_filter, watch_steps

router = APIRouter(tags=["executions"], responses=problem_responses(400, 401, 404))

ExecutionId = Annotated[str, Path(max_length=64, description="The execution's id.")]
CreatedFrom = Annotated[
    str | None,
    Query(
        alias="createdFrom",
        max_length=64,
        description="Only executions created at or after this RFC 3339 instant (with offset).",
        json_schema_extra=INSTANT,
    ),
]
CreatedTo = Annotated[
    str | None,
    Query(
        alias="createdTo",
        max_length=64,
        description="Only executions created before this RFC 3339 instant (with offset).",
        json_schema_extra=INSTANT,
    ),
]

_EXECUTE_BODY = request_body(ExecuteRequest, "application/json")


@router.post(
    "/workflows/{workflow_id}/execute",
    status_code=HTTPStatus.CREATED,
    response_model=Execution,
    openapi_extra=_EXECUTE_BODY,
    responses={
        200: {"model": Execution, "description": "A repeat of a call with this Idempotency-Key."},
        **problem_responses(409, 413, 415, 422),
    },
    dependencies=[authorize(Permission.WORKFLOWS_EXECUTE)],
)
async def execute_workflow(
    *,
    workflow_id: WorkflowId,
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    service: Executions,
    settings: AppSettings,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=200,
            description="A repeat with the same key (per workflow) returns the first execution.",
        ),
    ] = None,
) -> Execution:
    """Start an execution of the active workflow's latest version."""
    document = await read_json(request, limit=settings.api.max_body_bytes)
    body = validate_body(ExecuteRequest, document, ("subject", "input", "contact"))
    record, created = await service.execute(
        principal.workspace_id,
        workflow_id,
        subject_id=body.subject,
        input=body.input,
        contact=body.contact,
        idempotency_key=idempotency_key,
    )
    response.status_code = HTTPStatus.CREATED if created else HTTPStatus.OK
    response.headers["Location"] = str(
        request.app.url_path_for("get_execution", execution_id=record.id)
    )
    return Execution.from_record(record)


_SIMULATE_BODY = {
    "requestBody": {
        "required": True,
        "description": "The scenario: contact, input, timed events, action overrides "
        "(docs/workflow-format.md, Dry-run). `{}` simulates with every default.",
        "content": {"application/json": {"schema": {"type": ["object", "array"]}}},
    }
}


@router.post(
    "/workflows/{workflow_id}/simulate",
    openapi_extra=_SIMULATE_BODY,
    responses=problem_responses(413, 415, 422),
    dependencies=[authorize(Permission.WORKFLOWS_READ)],
)
async def simulate_workflow(
    *,
    workflow_id: WorkflowId,
    request: Request,
    principal: CurrentPrincipal,
    service: Executions,
    settings: AppSettings,
) -> dict[str, Any]:
    """Dry-run the latest version (drafts too) on a virtual clock: every step, branch, wait
    and message it would send, error paths included. Nothing is sent and nothing is stored."""
    scenario = await read_json(request, limit=settings.api.max_body_bytes)
    return await service.simulate(principal.workspace_id, workflow_id, scenario)


@router.get(
    "/executions",
    response_model=ExecutionPage,
    dependencies=[authorize(Permission.EXECUTIONS_READ)],
)
async def list_executions(
    *,
    principal: CurrentPrincipal,
    service: Executions,
    settings: AppSettings,
    workflow: Annotated[
        str | None, Query(max_length=64, description="Only executions of this workflow.")
    ] = None,
    status: Annotated[
        ExecutionStatus | None, Query(description="Only executions in this status.")
    ] = None,
    subject: Annotated[
        str | None, Query(max_length=200, description="Only executions about this subject.")
    ] = None,
    created_from: CreatedFrom = None,
    created_to: CreatedTo = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> ExecutionPage:
    """List executions, newest first."""
    size = page_size(limit, settings)
    records = await service.list_executions(
        principal.workspace_id,
        workflow_id=workflow,
        status=status,
        subject_id=subject,
        created_from=parse_instant(created_from, "createdFrom"),
        created_to=parse_instant(created_to, "createdTo"),
        before=decode_cursor(cursor, str),
        limit=size + 1,
    )
    page, next_cursor = page_of(records, size, lambda record: record.id)
    return ExecutionPage(items=[Execution.from_record(r) for r in page], next_cursor=next_cursor)


#: Seconds between heartbeat comments on an idle stream (proxies close silent connections).
HEARTBEAT_SECONDS = 15.0


@router.get(
    "/executions/stream",
    response_class=EventSourceResponse,
    responses={**STREAM_RESPONSE, **problem_responses(422)},
    dependencies=[authorize(Permission.EXECUTIONS_READ)],
)
async def stream_executions(
    *,
    principal: CurrentPrincipal,
    feed: StepFeedDep,
    workflow_id: Annotated[
        list[str] | None,
        Query(alias="workflowId", description="Only steps of these workflows (repeatable)."),
    ] = None,
    status: Annotated[
        list[str] | None,
        Query(
            description="Only steps and execution ends with these statuses (repeatable): "
            "a step's (`completed`, `retrying`, `failed`, `timed_out`, `cancelled`, "
            "`deferred`) or an execution's."
        ),
    ] = None,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            max_length=64,
            description="Resume after this position (the `id:` of the last message seen).",
        ),
    ] = None,
) -> EventSourceResponse:
    """Live steps and execution ends of the workspace as server-sent events, restricted to the
    workflows the caller may read. Declared before `/executions/{executionId}`."""
    wanted = step_filter(principal, workflow_id, status)
    events = watch_steps(feed, principal, wanted, after=last_event_id)
    return EventSourceResponse(
        _messages(events),
        ping=HEARTBEAT_SECONDS,
        ping_message_factory=lambda: ServerSentEvent(comment="heartbeat"),
    )


async def _messages(
    events: AsyncGenerator[StepEvent, None],
) -> AsyncGenerator[ServerSentEvent, None]:
    """``id:`` the feed position (none for a lag marker), ``event:`` the kind, ``data:`` the
    event's JSON; the subscription ends with the response."""
    async with contextlib.aclosing(events):
        async for event in events:
            data = orjson.dumps(event.to_json()).decode()
            yield ServerSentEvent(data=data, event=event.kind, id=event.id or None)


@router.get(
    "/executions/{execution_id}",
    response_model=ExecutionDetail,
    dependencies=[authorize(Permission.EXECUTIONS_READ)],
)
async def get_execution(
    execution_id: ExecutionId, principal: CurrentPrincipal, service: Executions
) -> ExecutionDetail:
    """The execution with every step it has run, in order."""
    return ExecutionDetail.from_detail(await service.get(principal.workspace_id, execution_id))


@router.post(
    "/executions/{execution_id}/cancel",
    response_model=Execution,
    responses=problem_responses(409),
    dependencies=[authorize(Permission.EXECUTIONS_WRITE)],
)
async def cancel_execution(
    execution_id: ExecutionId, principal: CurrentPrincipal, service: Executions
) -> Execution:
    """Stop an execution that has not finished; its pending work and waits are dropped."""
    return Execution.from_record(await service.cancel(principal.workspace_id, execution_id))


@router.post(
    "/executions/{execution_id}/retry",
    response_model=Execution,
    responses=problem_responses(409),
    dependencies=[authorize(Permission.EXECUTIONS_WRITE)],
)
async def retry_execution(
    execution_id: ExecutionId, principal: CurrentPrincipal, service: Executions
) -> Execution:
    """Re-run a failed execution from the node(s) where it failed (their dead letters are
    marked replayed)."""
    return Execution.from_record(await service.retry(principal.workspace_id, execution_id))
