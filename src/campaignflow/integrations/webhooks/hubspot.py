"""HubSpot webhooks (v3 signatures): a JSON array of CRM notifications.

Each notification has ``eventId``, ``subscriptionType`` (``contact.propertyChange`` …),
``portalId``, ``objectId``, ``occurredAt`` (ms) and, for property changes, ``propertyName`` and
``propertyValue``. HubSpot says ``eventId`` is not guaranteed unique, and a retry changes
``attemptNumber``; so the id is ``eventId`` plus a digest of the notification without
``attemptNumber``: the same for every retry of one notification, different for two.

A notification names a HubSpot record, not an address, so its event's identity is the record:
the ``anonymousId`` ``hubspot:<portalId>:<objectId>``. Only contact notifications are routed
(a company or a deal is no contact); others are ignored. A contact's ``hs_email_optout`` set
to ``true`` is an ``email.unsubscribed`` (``hs_email_optout_<id>``: from one subscription
type only); anything else is ``hubspot.<subscriptionType>``. Without an address, none of
these can feed the suppression list.
"""

from __future__ import annotations

import re
from typing import Any

from campaignflow.integrations.webhooks.events import WebhookEvent
from campaignflow.integrations.webhooks.payloads import (
    ParsedWebhook,
    Reader,
    collect,
    decode_json,
    event_digest,
    require_array,
)
from campaignflow.security.masking import KeyKind, key_kind

PROVIDER = "hubspot"
_SUBSCRIPTION = re.compile(r"[A-Za-z][A-Za-z0-9_.]{0,99}")
_OPT_OUT = "hs_email_optout"


def parse(body: bytes) -> ParsedWebhook:
    notifications = require_array(decode_json(body), "HubSpot's body")
    return collect(notifications, (), _event)


def _event(item: Any, read: Reader) -> WebhookEvent | None:
    if not isinstance(item, dict):
        read.fail((), "not_an_object", "a notification must be a JSON object")
        return None
    subscription = read.text(
        item.get("subscriptionType"), ("subscriptionType",), required=True, limit=100, cut=False
    )
    if subscription is not None and not _SUBSCRIPTION.fullmatch(subscription):
        read.fail(("subscriptionType",), "invalid", "subscriptionType is not a HubSpot type")
        return None
    if subscription is None or not subscription.startswith("contact."):
        return None
    event_id = read.text(item.get("eventId"), ("eventId",), required=True, limit=64, cut=False)
    portal = read.text(item.get("portalId"), ("portalId",), required=True, limit=32, cut=False)
    record = read.text(item.get("objectId"), ("objectId",), required=True, limit=64, cut=False)
    occurred_at = read.instant(item.get("occurredAt"), ("occurredAt",), per_second=1000)
    details = _details(item, read)
    if read.failed or occurred_at is None:
        return None
    unsubscribed = _opted_out(details)
    retry_free = {key: value for key, value in item.items() if key != "attemptNumber"}
    return WebhookEvent(
        provider=PROVIDER,
        event_id=f"{event_id}.{event_digest(retry_free)[:24]}",
        name="email.unsubscribed" if unsubscribed else f"hubspot.{subscription}",
        kind="unsubscribed" if unsubscribed else None,
        occurred_at=occurred_at,
        raw_type=subscription,
        record_id=f"hubspot:{portal}:{record}",
        group_only=unsubscribed and details.get("propertyName") != _OPT_OUT,
        details={"portalId": portal, "objectId": record, **details},
    )


def _details(item: dict[str, Any], read: Reader) -> dict[str, Any]:
    """The notification's facts. The new value of a personal property (``email``, ``phone``,
    ``firstname`` …, as the log masking classifies names) is left out: it would sit unsealed in
    the event's properties, and the record's id already says whose it is."""
    details: dict[str, Any] = {}
    for name in ("propertyName", "propertyValue", "changeSource", "subscriptionId"):
        value = read.text(item.get(name), (name,))
        if value is not None:
            details[name] = value
    if key_kind(details.get("propertyName", "")) is not KeyKind.PLAIN:
        details.pop("propertyValue", None)
    return details


def _opted_out(details: dict[str, Any]) -> bool:
    name = details.get("propertyName", "")
    return (name == _OPT_OUT or name.startswith(_OPT_OUT + "_")) and str(
        details.get("propertyValue", "")
    ).lower() == "true"
