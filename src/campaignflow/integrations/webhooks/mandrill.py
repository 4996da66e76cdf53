"""Mailchimp Transactional (Mandrill) webhooks: a form whose ``mandrill_events`` field holds a
JSON array of events.

A message event has ``event``, ``ts`` (Unix seconds), ``_id`` (the message id the send
returned) and ``msg`` (``email``, ``metadata`` with our tracking, ``bounce_description`` …).
Sync events (a rejection-list change) carry ``type`` instead of ``event`` and are ignored, as
are inbound mail and unknown types. Mandrill gives events no id of their own, so the id is a
digest of the event as sent: a redelivered batch repeats it byte for byte.

``send`` is Mandrill's "handed to the recipient's server": our ``delivered``. A ``reject``
(Mandrill refused to send) is our ``dropped``; when its rejection names a bounce, an
unsubscribe or a spam complaint, the address is suppressed for that reason.
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
    MalformedWebhook,
    ParsedWebhook,
    Reader,
    collect,
    decode_form,
    decode_json,
    event_digest,
    masked,
    require_array,
)

PROVIDER = "mailchimp_transactional"
FIELD = "mandrill_events"
_KINDS: dict[str, EmailKind] = {
    "send": "delivered",
    "deferral": "deferred",
    "hard_bounce": "bounced",
    "soft_bounce": "bounced",
    "open": "opened",
    "click": "clicked",
    "spam": "spam_reported",
    "unsub": "unsubscribed",
    "reject": "dropped",
}
_REJECTED_BECAUSE: dict[str, SuppressionReason] = {
    "hard-bounce": "bounce",
    "spam": "spam_report",
    "unsub": "unsubscribe",
}


def parse(body: bytes) -> ParsedWebhook:
    return parse_form(decode_form(body))


def parse_form(form: dict[str, str]) -> ParsedWebhook:
    """The events of an already decoded form (the signature is checked over the same form)."""
    if FIELD not in form:
        raise MalformedWebhook(f"The form has no {FIELD} field.")
    prefix = (FIELD,)
    events = require_array(decode_json(form[FIELD].encode(), pointer_prefix=prefix), FIELD, prefix)
    return collect(events, prefix, _event)


def _event(item: Any, read: Reader) -> WebhookEvent | None:
    if not isinstance(item, dict):
        read.fail((), "not_an_object", "an event must be a JSON object")
        return None
    if item.get("event") is None and "type" in item:
        return None  # a sync event: a change to the rejection or allow lists
    raw = read.text(item.get("event"), ("event",), required=True, limit=64, cut=False)
    kind = _KINDS.get(raw) if raw is not None else None
    if raw is None or kind is None:
        return None
    msg = read.mapping(item.get("msg"), ("msg",))
    email = read.email(msg.get("email"), ("msg", "email"))
    occurred_at = read.instant(item.get("ts"), ("ts",))
    message_id = read.text(item.get("_id") or msg.get("_id"), ("_id",), limit=200, cut=False)
    url = read.text(item.get("url"), ("url",), limit=MAX_URL_LENGTH) if kind == "clicked" else None
    reason = read.text(msg.get("bounce_description"), ("msg", "bounce_description")) or read.text(
        msg.get("diag"), ("msg", "diag")
    )
    metadata = read.mapping(msg.get("metadata"), ("msg", "metadata"))
    if read.failed or occurred_at is None:
        return None
    return WebhookEvent(
        provider=PROVIDER,
        event_id=event_digest(item),
        name=f"email.{kind}",
        kind=kind,
        occurred_at=occurred_at,
        raw_type=raw,
        email=email,
        message_id=message_id,
        tracking=Tracking.from_mapping(metadata),
        url=masked(url),
        reason=masked(reason),
        bounce_type="soft" if raw == "soft_bounce" else "hard" if kind == "bounced" else None,
        suppression=_rejected_because(msg) if kind == "dropped" else None,
    )


def _rejected_because(msg: dict[str, Any]) -> SuppressionReason | None:
    rejection = msg.get("reject")
    reason = rejection.get("reason") if isinstance(rejection, dict) else None
    return _REJECTED_BECAUSE.get(reason) if isinstance(reason, str) else None
