"""``/api/v1/events``: the native ingestion endpoints, thin translations onto
:class:`IngestService`. A 202 means durable: the events will be routed even if this process
stops right after answering."""

from __future__ import annotations

from http import HTTPStatus

from fastapi import APIRouter, Request

from campaignflow.api.auth import CurrentWriter
from campaignflow.api.body import read_ingest_body, require_json_content_type
from campaignflow.api.deps import AppSettings, Ingest
from campaignflow.api.event_schemas import (
    EventMessage,
    IngestReceipt,
    NativeBatch,
    RejectedEvent,
)
from campaignflow.api.problems import ProblemError
from campaignflow.api.schemas import problem_responses, request_body
from campaignflow.services.ingest import IngestResult

router = APIRouter(tags=["events"], responses=problem_responses(400, 401, 413, 415, 422, 429))


@router.post(
    "/events",
    status_code=HTTPStatus.ACCEPTED,
    response_model=IngestReceipt,
    openapi_extra=request_body(EventMessage, "application/json"),
)
async def ingest_event(
    request: Request, writer: CurrentWriter, ingest: Ingest, settings: AppSettings
) -> IngestReceipt:
    """Accept one event (`type` defaults to `track`); 422 with every problem's pointer if it
    is not valid, 429 with `Retry-After` when the router is behind."""
    require_json_content_type(request)
    body = await read_ingest_body(request, limit=settings.events.max_batch_bytes)
    return receipt(await ingest.native_event(writer.workspace_id, body))


@router.post(
    "/events/batch",
    status_code=HTTPStatus.ACCEPTED,
    response_model=IngestReceipt,
    openapi_extra=request_body(NativeBatch, "application/json"),
)
async def ingest_batch(
    request: Request, writer: CurrentWriter, ingest: Ingest, settings: AppSettings
) -> IngestReceipt:
    """Accept up to 500 KB of events. A bad event is listed under `rejected` with its index
    and pointers and does not hold back the good ones; 422 only when none is good."""
    require_json_content_type(request)
    body = await read_ingest_body(request, limit=settings.events.max_batch_bytes)
    return receipt(await ingest.native_batch(writer.workspace_id, body))


def receipt(result: IngestResult) -> IngestReceipt:
    """The receipt, or 422 when the request held events and none was accepted."""
    return IngestReceipt(
        accepted=len(result.accepted),
        message_ids=[event.message_id for event in result.accepted],
        duplicates=result.parsed.duplicates,
        rejected=rejected_events(result),
    )


def rejected_events(result: IngestResult) -> list[RejectedEvent]:
    """The refused events of a request that kept some (both APIs answer 2xx then); a request
    whose every event was refused is a 422 listing every problem."""
    rejected = result.rejected
    if rejected and not result.accepted:
        problems = [error for item in rejected for error in item["errors"]]  # type: ignore[attr-defined]
        raise ProblemError(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            "invalid-events",
            "No event in the request is valid; each problem points at its field.",
            problems=problems,
        )
    return [RejectedEvent(**item) for item in rejected]
