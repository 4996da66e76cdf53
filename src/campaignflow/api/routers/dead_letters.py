"""``/api/v1/dead-letters``: steps that failed for good, to replay or discard."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from campaignflow.api.auth import CurrentPrincipal, authorize
from campaignflow.api.deps import AppSettings, Executions
from campaignflow.api.execution_schemas import DeadLetter, DeadLetterPage, DeadLetterStatus
from campaignflow.api.pagination import decode_cursor, page_of, page_size
from campaignflow.api.parameters import Cursor, Limit
from campaignflow.api.schemas import problem_responses
from campaignflow.security.rbac import Permission

router = APIRouter(
    prefix="/dead-letters", tags=["dead letters"], responses=problem_responses(400, 401, 404)
)

DeadLetterId = Annotated[str, Path(max_length=64, description="The dead letter's id.")]


@router.get(
    "", response_model=DeadLetterPage, dependencies=[authorize(Permission.DEAD_LETTERS_READ)]
)
async def list_dead_letters(
    *,
    principal: CurrentPrincipal,
    service: Executions,
    settings: AppSettings,
    status: Annotated[
        DeadLetterStatus | None, Query(description="Only dead letters in this status.")
    ] = None,
    workflow: Annotated[
        str | None, Query(max_length=64, description="Only dead letters of this workflow.")
    ] = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> DeadLetterPage:
    """List dead letters, newest first."""
    size = page_size(limit, settings)
    records = await service.dead_letters(
        principal.workspace_id,
        status=status.value if status else None,
        workflow_id=workflow,
        before=decode_cursor(cursor, str),
        limit=size + 1,
    )
    page, next_cursor = page_of(records, size, lambda record: record.id)
    return DeadLetterPage(items=[DeadLetter.from_record(r) for r in page], next_cursor=next_cursor)


@router.get(
    "/{dead_letter_id}",
    response_model=DeadLetter,
    dependencies=[authorize(Permission.DEAD_LETTERS_READ)],
)
async def get_dead_letter(
    dead_letter_id: DeadLetterId, principal: CurrentPrincipal, service: Executions
) -> DeadLetter:
    """One dead letter with every attempt's error."""
    return DeadLetter.from_record(await service.dead_letter(principal.workspace_id, dead_letter_id))


@router.post(
    "/{dead_letter_id}/replay",
    response_model=DeadLetter,
    responses=problem_responses(409),
    dependencies=[authorize(Permission.DEAD_LETTERS_WRITE)],
)
async def replay_dead_letter(
    dead_letter_id: DeadLetterId, principal: CurrentPrincipal, service: Executions
) -> DeadLetter:
    """Run the failed node again (with a new idempotency key); its execution becomes running."""
    return DeadLetter.from_record(await service.replay(principal.workspace_id, dead_letter_id))


@router.post(
    "/{dead_letter_id}/discard",
    response_model=DeadLetter,
    responses=problem_responses(409),
    dependencies=[authorize(Permission.DEAD_LETTERS_WRITE)],
)
async def discard_dead_letter(
    dead_letter_id: DeadLetterId, principal: CurrentPrincipal, service: Executions
) -> DeadLetter:
    """Give up on the failed node; the execution stays failed."""
    return DeadLetter.from_record(await service.discard(principal.workspace_id, dead_letter_id))
