"""Segment's HTTP Tracking API (``/v1/track``, ``/v1/identify``, …, ``/v1/batch``), so any
Segment or RudderStack source sends here unchanged: point its host at this server and use the
write key. Answers as Segment does (``{"success": true}``), plus what was refused and why.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from campaignflow.api.auth import CurrentWriter
from campaignflow.api.body import read_ingest_body, require_json_content_type
from campaignflow.api.deps import AppSettings, Ingest
from campaignflow.api.event_schemas import (
    EventMessage,
    SegmentBatch,
    SegmentReceipt,
)
from campaignflow.api.routers.events import rejected_events
from campaignflow.api.schemas import problem_responses, request_body
from campaignflow.domain.events import EventType
from campaignflow.services.ingest import IngestResult

router = APIRouter(
    prefix="/v1", tags=["segment"], responses=problem_responses(400, 401, 413, 415, 422, 429)
)
# Browser beacons send text/plain to avoid a CORS preflight; the body is JSON all the same.
_MEDIA_TYPES = ("application/json", "text/plain")
_ALSO_ACCEPTED = frozenset({"text/plain", ""})


async def _read(request: Request, settings: AppSettings) -> bytes:
    require_json_content_type(request, also=_ALSO_ACCEPTED)
    return await read_ingest_body(request, limit=settings.events.max_batch_bytes)


def _receipt(result: IngestResult) -> SegmentReceipt:
    return SegmentReceipt(accepted=len(result.accepted), rejected=rejected_events(result))


def _call_route(kind: EventType) -> None:
    async def ingest_call(
        request: Request, writer: CurrentWriter, ingest: Ingest, settings: AppSettings
    ) -> SegmentReceipt:
        body = await _read(request, settings)
        return _receipt(await ingest.segment_call(writer.workspace_id, kind, body))

    router.add_api_route(
        f"/{kind}",
        ingest_call,
        methods=["POST"],
        response_model=SegmentReceipt,
        name=f"segment_{kind}",
        summary=f"Segment {kind}",
        description=f"Segment's `{kind}` call.",
        openapi_extra=request_body(EventMessage, *_MEDIA_TYPES),
    )


for _kind in ("track", "identify", "page", "screen", "group", "alias"):
    _call_route(_kind)


@router.post(
    "/batch",
    response_model=SegmentReceipt,
    openapi_extra=request_body(SegmentBatch, *_MEDIA_TYPES),
)
async def segment_batch(
    request: Request, writer: CurrentWriter, ingest: Ingest, settings: AppSettings
) -> SegmentReceipt:
    """Segment's batch call: up to 500 KB, each message at most 32 KB; a bad message is
    reported with its index and does not hold back the others."""
    body = await _read(request, settings)
    return _receipt(await ingest.segment_batch(writer.workspace_id, body))
