"""SendGrid's Event Webhook: a JSON array of events, batched, delivered at least once.

Each event carries ``sg_event_id`` (the dedupe key), ``email``, ``timestamp`` (Unix seconds),
``event``, ``sg_message_id`` and our ``custom_args`` as extra top-level members
(``cf_send`` …). ``sg_message_id`` is the send's ``X-Message-Id`` followed by ``.`` and a
per-recipient suffix; the part before the first ``.`` is the id the send returned, which is
what the delivery row holds. Shapes: ``../shared/provider-specs/NOTES.md`` §4.

``processed`` (SendGrid accepted the message; our own ``sent`` already says so) and unknown
types are ignored. ``blocked`` bounces are soft (temporary); other bounces hard. A
``group_unsubscribe`` leaves one suppression group only, so it suppresses nothing globally.
"""

from __future__ import annotations

from typing import Any

from campaignflow.integrations.webhooks.events import (
    EmailKind,
    SuppressionReason,
    Tracking,
    WebhookEvent,
)
from campaignflow.integrations.webhooks.payloads import (
    MAX_URL_LENGTH,
    ParsedWebhook,
    Reader,
    collect,
    decode_json,
    masked,
    require_array,
)

PROVIDER = "sendgrid"
_KINDS: dict[str, EmailKind] = {
    "delivered": "delivered",
    "deferred": "deferred",
    "open": "opened",
    "click": "clicked",
    "bounce": "bounced",
    "dropped": "dropped",
    "spamreport": "spam_reported",
    "unsubscribe": "unsubscribed",
    "group_unsubscribe": "unsubscribed",
    "group_resubscribe": "subscribed",
}
# SendGrid's reasons for dropping a message to an address on one of its own lists.
_DROPPED_BECAUSE: tuple[tuple[str, SuppressionReason], ...] = (
    ("bounced address", "bounce"),
    ("unsubscribed address", "unsubscribe"),
    ("spam reporting address", "spam_report"),
)


def parse(body: bytes) -> ParsedWebhook:
    events = require_array(decode_json(body), "SendGrid's body")
    return collect(events, (), _event)


def _event(item: Any, read: Reader) -> WebhookEvent | None:
    if not isinstance(item, dict):
        read.fail((), "not_an_object", "an event must be a JSON object")
        return None
    raw = read.text(item.get("event"), ("event",), required=True, limit=64, cut=False)
    kind = _KINDS.get(raw) if raw is not None else None
    if raw is None or kind is None:
        return None
    event_id = read.identifier(item.get("sg_event_id"), ("sg_event_id",))
    email = read.email(item.get("email"), ("email",))
    occurred_at = read.instant(item.get("timestamp"), ("timestamp",))
    message = read.text(item.get("sg_message_id"), ("sg_message_id",), limit=200, cut=False)
    reason = read.text(item.get("reason"), ("reason",)) or read.text(
        item.get("response"), ("response",)
    )
    url = read.text(item.get("url"), ("url",), limit=MAX_URL_LENGTH) if kind == "clicked" else None
    details = _details(item, raw, read)
    if read.failed or event_id is None or occurred_at is None:
        return None
    return WebhookEvent(
        provider=PROVIDER,
        event_id=event_id,
        name=f"email.{kind}",
        kind=kind,
        occurred_at=occurred_at,
        raw_type=raw,
        email=email,
        message_id=message.split(".", 1)[0] if message else None,
        tracking=Tracking.from_mapping(item),
        url=masked(url),
        reason=masked(reason),
        bounce_type=_bounce_type(item) if kind == "bounced" else None,
        suppression=_dropped_because(reason) if kind == "dropped" else None,
        group_only=raw.startswith("group_"),
        details=details,
    )


def _bounce_type(item: dict[str, Any]) -> Any:
    return "soft" if item.get("type") == "blocked" else "hard"


def _dropped_because(reason: str | None) -> SuppressionReason | None:
    lowered = (reason or "").lower()
    return next((why for text, why in _DROPPED_BECAUSE if text in lowered), None)


def _details(item: dict[str, Any], raw: str, read: Reader) -> dict[str, Any]:
    details: dict[str, Any] = {}
    status = read.text(item.get("status"), ("status",), limit=32)
    if status is not None:
        details["status"] = status
    group = item.get("asm_group_id")
    if raw.startswith("group_") and type(group) is int and 0 <= group < 2**53:
        details["asmGroupId"] = group
    if raw == "open" and isinstance(item.get("sg_machine_open"), bool):
        details["machineOpen"] = item["sg_machine_open"]
    return details
