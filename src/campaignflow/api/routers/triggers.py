"""``/api/v1/triggers``: thin translations from HTTP onto :class:`TriggerService`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Request, Response

from campaignflow.api.auth import CurrentPrincipal, authorize
from campaignflow.api.body import read_json
from campaignflow.api.deps import AppSettings, Triggers
from campaignflow.api.etags import if_none_match_hits, versions_in_if_match
from campaignflow.api.pagination import decode_cursor, page_of, page_size
from campaignflow.api.parameters import Cursor, Limit
from campaignflow.api.problems import ProblemError
from campaignflow.api.schemas import problem_responses
from campaignflow.api.trigger_schemas import TRIGGER_BODY, Trigger, TriggerPage
from campaignflow.errors import CampaignflowError
from campaignflow.security.rbac import Permission
from campaignflow.services.triggers import TriggerFilters, TriggerSource, TriggerType, TriggerView
from campaignflow.store.triggers import WorkflowArchived, WorkflowNotFound

router = APIRouter(
    prefix="/triggers", tags=["triggers"], responses=problem_responses(400, 401, 404)
)

TriggerId = Annotated[
    str,
    Path(
        max_length=80,
        description="A stored trigger's id, or `<workflowId>%23<index>` for a declared one.",
    ),
]
IfMatch = Annotated[
    str | None, Header(description="ETag last read; 412 if the trigger changed since.")
]


def _with_etag(response: Response, view: TriggerView) -> Trigger:
    body = Trigger.from_view(view)
    response.headers["ETag"] = body.etag
    return body


@contextmanager
def _workflow_problems() -> Iterator[None]:
    """Point at ``/workflowId`` when the body names a workflow that cannot hold a trigger."""
    try:
        yield
    except WorkflowNotFound as exc:
        raise _at_workflow_id(HTTPStatus.NOT_FOUND, "not-found", exc, "unknown_workflow") from exc
    except WorkflowArchived as exc:
        raise _at_workflow_id(HTTPStatus.CONFLICT, "conflict", exc, "archived_workflow") from exc


def _at_workflow_id(
    status: HTTPStatus, slug: str, exc: CampaignflowError, code: str
) -> ProblemError:
    problem: dict[str, object] = {"pointer": "/workflowId", "detail": exc.message, "code": code}
    return ProblemError(status, slug, exc.message, problems=[problem])


@router.post(
    "",
    status_code=HTTPStatus.CREATED,
    response_model=Trigger,
    openapi_extra=TRIGGER_BODY,
    responses=problem_responses(409, 413, 415, 422),
    dependencies=[authorize(Permission.TRIGGERS_WRITE)],
)
async def create_trigger(
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    service: Triggers,
    settings: AppSettings,
) -> Trigger:
    """Attach a trigger (in the workflow format) to a workflow of the workspace. A `behavior`
    trigger starts executions while it is enabled and its workflow is active. An `api`
    trigger is documentary and needs no registration: any active workflow can be started with
    `POST /workflows/{workflowId}/execute`."""
    document = await read_json(request, limit=settings.api.max_body_bytes)
    with _workflow_problems():
        view = await service.create(principal.workspace_id, document)
    response.headers["Location"] = f"{request.url.path}/{view.id}"
    return _with_etag(response, view)


@router.get("", response_model=TriggerPage, dependencies=[authorize(Permission.TRIGGERS_READ)])
async def list_triggers(
    *,
    principal: CurrentPrincipal,
    service: Triggers,
    settings: AppSettings,
    workflow_id: Annotated[
        str | None,
        Query(alias="workflowId", max_length=64, description="Only triggers of this workflow."),
    ] = None,
    trigger_type: Annotated[
        TriggerType | None, Query(alias="type", description="Only triggers of this type.")
    ] = None,
    enabled: Annotated[
        bool | None, Query(description="Only enabled (or only disabled) triggers.")
    ] = None,
    source: Annotated[
        TriggerSource | None,
        Query(description="Only triggers created here (`api`) or declared in definitions."),
    ] = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> TriggerPage:
    """List triggers: those created here by id, then (unless `source=api`) those declared in
    the latest version of each workflow that is not archived, by workflow id and position."""
    size = page_size(limit, settings)
    filters = TriggerFilters(workflow_id, trigger_type, enabled, source)
    views = await service.list_triggers(
        principal.workspace_id, filters, after=decode_cursor(cursor, str), limit=size + 1
    )
    page, next_cursor = page_of(views, size, lambda view: view.id)
    return TriggerPage(items=[Trigger.from_view(view) for view in page], next_cursor=next_cursor)


@router.get(
    "/{trigger_id}",
    response_model=Trigger,
    responses={304: {"description": "Not Modified"}},
    dependencies=[authorize(Permission.TRIGGERS_READ)],
)
async def get_trigger(
    trigger_id: TriggerId,
    response: Response,
    principal: CurrentPrincipal,
    service: Triggers,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Trigger | Response:
    """A trigger of either source; `ETag` identifies its revision."""
    body = Trigger.from_view(await service.get(principal.workspace_id, trigger_id))
    if if_none_match_hits(if_none_match, body.etag):
        return Response(status_code=HTTPStatus.NOT_MODIFIED, headers={"ETag": body.etag})
    response.headers["ETag"] = body.etag
    return body


@router.put(
    "/{trigger_id}",
    response_model=Trigger,
    openapi_extra=TRIGGER_BODY,
    responses=problem_responses(409, 412, 413, 415, 422),
    dependencies=[authorize(Permission.TRIGGERS_WRITE)],
)
async def replace_trigger(
    *,
    trigger_id: TriggerId,
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    service: Triggers,
    settings: AppSettings,
    if_match: IfMatch = None,
) -> Trigger:
    """Replace a trigger created here (409 for a declared one: edit its workflow)."""
    document = await read_json(request, limit=settings.api.max_body_bytes)
    with _workflow_problems():
        view = await service.replace(
            principal.workspace_id,
            trigger_id,
            document,
            expected_revisions=versions_in_if_match(if_match),
        )
    return _with_etag(response, view)


@router.delete(
    "/{trigger_id}",
    status_code=HTTPStatus.NO_CONTENT,
    response_class=Response,
    responses=problem_responses(409, 412),
    dependencies=[authorize(Permission.TRIGGERS_WRITE)],
)
async def delete_trigger(
    trigger_id: TriggerId,
    principal: CurrentPrincipal,
    service: Triggers,
    if_match: IfMatch = None,
) -> Response:
    """Delete a trigger created here; it stops starting executions at once (409 for a
    declared one: edit its workflow)."""
    await service.delete(
        principal.workspace_id, trigger_id, expected_revisions=versions_in_if_match(if_match)
    )
    return Response(status_code=HTTPStatus.NO_CONTENT)
