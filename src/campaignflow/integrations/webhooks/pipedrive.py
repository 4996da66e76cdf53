"""Pipedrive webhooks: a deal moved to another stage becomes ``crm.deal.stage_changed``.

Pipedrive posts one JSON object per change. Webhooks v2 (the default since 2025)::

    {"meta": {"action": "change", "entity": "deal", "entity_id": "42", "id": "<uuid>",
              "timestamp": "2026-11-29T10:00:00.000Z", "version": "2.0", …},
     "data": {"id": 42, "stage_id": 3, "pipeline_id": 1, "person_id": 7, "status": "open", …},
     "previous": {"stage_id": 2}}

and v1 (``"event": "updated.deal"``, ``meta.action: "updated"``, ``meta.object: "deal"``,
``current`` instead of ``data``, ``meta.timestamp`` in seconds) are both read. Only a deal
change whose ``previous`` holds ``stage_id`` is an event; every other notification is counted
as ignored (the contact sync pulls person changes itself). Pipedrive signs nothing: a webhook is
created with HTTP Basic credentials, which the connection keeps (``webhook_user``,
``webhook_password``) and :mod:`providers` checks.

The event is about the deal's person: ``crm_record`` is the person's id, which the intake
service turns into the contact the CRM sync linked to it (an unlinked person has no contact, and
the event is then ignored). The id is ``meta.id`` (v2) or a digest of the notification (v1), so
a redelivery is the same event.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from campaignflow.integrations.webhooks.events import WebhookEvent
from campaignflow.integrations.webhooks.payloads import (
    ParsedWebhook,
    Reader,
    decode_json,
    event_digest,
)

PROVIDER = "pipedrive"
EVENT = "crm.deal.stage_changed"
_CHANGED = frozenset({"change", "updated"})


def parse(body: bytes) -> ParsedWebhook:
    document = decode_json(body)
    read = Reader(())
    event = _event(document, read)
    if read.failed:
        return ParsedWebhook([], read.problems, [0], 0)
    return ParsedWebhook([event] if event else [], [], [], 0 if event else 1)


def _event(document: Any, read: Reader) -> WebhookEvent | None:
    if not isinstance(document, dict):
        read.fail((), "not_an_object", "a Pipedrive notification must be a JSON object")
        return None
    meta = read.mapping(document.get("meta"), ("meta",))
    action = meta.get("action")
    entity = meta.get("entity", meta.get("object"))
    if action not in _CHANGED or entity != "deal":
        return None
    v2 = "data" in document
    current = read.mapping(
        document.get("data" if v2 else "current"), ("data" if v2 else "current",)
    )
    previous = read.mapping(document.get("previous"), ("previous",))
    if read.failed or "stage_id" not in previous:
        return None
    deal = read.text(current.get("id", meta.get("entity_id")), ("data", "id"), required=True,
                     limit=32, cut=False)  # fmt: skip
    stage = read.text(current.get("stage_id"), ("data", "stage_id"), required=True, limit=32)
    person = read.text(current.get("person_id"), ("data", "person_id"), limit=32)
    occurred_at = _timestamp(meta.get("timestamp"), read)
    event_id = read.text(meta.get("id"), ("meta", "id"), limit=64, cut=False) if v2 else None
    if read.failed or occurred_at is None or deal is None:
        return None
    details = {
        "dealId": deal,
        "stageId": stage,
        "previousStageId": _text(previous.get("stage_id")),
        "pipelineId": _text(current.get("pipeline_id")),
        "previousPipelineId": _text(previous.get("pipeline_id")),
        "status": _text(current.get("status")),
        "personId": person,
    }
    return WebhookEvent(
        provider=PROVIDER,
        event_id=event_id or event_digest(document),
        name=EVENT,
        kind=None,
        occurred_at=occurred_at,
        raw_type=f"{action}.deal",
        crm_record=person,
        details={key: value for key, value in details.items() if value is not None},
    )


def _timestamp(value: Any, read: Reader) -> datetime | None:
    """v2: an ISO 8601 string; v1: Unix seconds (a number or its text)."""
    if isinstance(value, str) and not value.strip().isdecimal():
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            read.fail(("meta", "timestamp"), "invalid_timestamp", "timestamp is not ISO 8601")
            return None
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return read.instant(value, ("meta", "timestamp"))


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    return str(value)[:64]
