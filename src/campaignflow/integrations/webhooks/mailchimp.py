"""Mailchimp Marketing (audience) webhooks: one event per form post.

The form holds ``type`` (``subscribe``, ``unsubscribe``, ``profile``, ``upemail``, ``cleaned``,
``campaign``), ``fired_at`` (``YYYY-MM-DD HH:MM:SS``, UTC) and ``data[...]`` fields
(``data[email]``, ``data[list_id]``, ``data[reason]`` …). Mapped: ``subscribe`` →
``email.subscribed``; ``unsubscribe`` → ``email.unsubscribed``; ``cleaned`` (Mailchimp removed
the address) → ``email.bounced`` (hard); either of the last two is ``email.spam_reported``
when its ``data[reason]`` is ``abuse`` (a spam complaint). ``profile``, ``upemail`` and
``campaign`` say nothing about deliverability and are ignored. Mailchimp gives no event id:
the id is a digest of the form as posted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from campaignflow.integrations.webhooks.events import EmailKind, WebhookEvent
from campaignflow.integrations.webhooks.payloads import (
    ParsedWebhook,
    Reader,
    decode_form,
    event_digest,
    masked,
)

PROVIDER = "mailchimp_marketing"
_KINDS: dict[str, EmailKind] = {
    "subscribe": "subscribed",
    "unsubscribe": "unsubscribed",
    "cleaned": "bounced",
}
_FIRED_AT = "%Y-%m-%d %H:%M:%S"


def parse(body: bytes) -> ParsedWebhook:
    read = Reader(())  # one event per body: pointers name the form's fields
    event = _event(decode_form(body), read)
    if read.failed:
        return ParsedWebhook([], read.problems, [0], 0)
    return ParsedWebhook([event] if event else [], [], [], 0 if event else 1)


def _event(form: dict[str, str], read: Reader) -> WebhookEvent | None:
    raw = read.text(form.get("type"), ("type",), required=True, limit=64, cut=False)
    kind = _KINDS.get(raw) if raw is not None else None
    if raw is None or kind is None:
        return None
    email = read.email(form.get("data[email]"), ("data[email]",))
    occurred_at = _fired_at(form.get("fired_at"), read)
    reason = read.text(form.get("data[reason]"), ("data[reason]",))
    list_id = read.text(form.get("data[list_id]"), ("data[list_id]",), limit=64)
    if read.failed or occurred_at is None:
        return None
    if reason == "abuse":  # cleaned, or unsubscribed, by a spam complaint
        kind = "spam_reported"
    return WebhookEvent(
        provider=PROVIDER,
        event_id=event_digest(form),
        name=f"email.{kind}",
        kind=kind,
        occurred_at=occurred_at,
        raw_type=raw,
        email=email,
        reason=masked(reason or read.text(form.get("data[action]"), ("data[action]",))),
        bounce_type="hard" if kind == "bounced" else None,
        details={"listId": list_id} if list_id else {},
    )


def _fired_at(value: Any, read: Reader) -> datetime | None:
    text = read.text(value, ("fired_at",), required=True, limit=32, cut=False)
    if text is None:
        return None
    try:
        return datetime.strptime(text, _FIRED_AT).replace(tzinfo=UTC)
    except ValueError:
        read.fail(("fired_at",), "invalid_time", "fired_at must be YYYY-MM-DD HH:MM:SS")
        return None
