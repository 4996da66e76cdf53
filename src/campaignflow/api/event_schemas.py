"""Shapes of the ingestion endpoints, for the OpenAPI document.

The bodies are parsed by :mod:`campaignflow.domain.event_parsing` (msgspec, per-message
problems), not by these models: they only publish the format.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from campaignflow.api.schemas import ApiModel

# Segment accepts numeric ids and turns them into strings (7 → "7"); so do we.
Identity = str | int | float


class EventMessage(ApiModel):
    """One event in Segment's Tracking API format (camelCase)."""

    type: Literal["track", "identify", "page", "screen", "group", "alias"] | None = Field(
        None,
        description="Defaults to `track` on the native API; on `/v1/<type>` the path decides.",
    )
    event: str | None = Field(None, description="A track event's name (required for track).")
    name: str | None = Field(None, description="A page or screen name.")
    user_id: Identity | None = Field(
        None, description="Your id of the person; this or anonymousId."
    )
    anonymous_id: Identity | None = Field(None, description="A device or cookie id.")
    previous_id: Identity | None = Field(
        None, description="alias: the identity merged into userId."
    )
    group_id: Identity | None = Field(None, description="group: the account or company id.")
    message_id: str | None = Field(
        None, description="Deduplicates: a repeated messageId is stored and acted on once."
    )
    properties: dict[str, Any] | None = None
    traits: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    timestamp: str | None = Field(None, description="RFC 3339; corrected for clock skew.")
    original_timestamp: str | None = None
    sent_at: str | None = Field(None, description="When the sender sent it, on its own clock.")


class NativeBatch(ApiModel):
    events: list[EventMessage] = Field(description="The events, in order.")
    sent_at: str | None = Field(None, description="Applies to every event without its own.")
    context: dict[str, Any] | None = Field(None, description="Merged under each event's context.")


class SegmentBatch(ApiModel):
    batch: list[EventMessage]
    sent_at: str | None = None
    context: dict[str, Any] | None = None


class RejectedEvent(ApiModel):
    index: int = Field(description="Position of the refused event in the request.")
    errors: list[dict[str, Any]] = Field(
        description="Each problem with its JSON pointer into the request body."
    )


class IngestReceipt(ApiModel):
    """The accepted events are durable: they will be routed even if this server stops now."""

    accepted: int
    message_ids: list[str] = Field(description="The accepted events' messageIds, in order.")
    duplicates: int = Field(description="Events dropped because the request repeated a messageId.")
    rejected: list[RejectedEvent] = Field(default_factory=list)


class SegmentReceipt(ApiModel):
    success: bool = True
    accepted: int = 0
    rejected: list[RejectedEvent] = Field(default_factory=list)
