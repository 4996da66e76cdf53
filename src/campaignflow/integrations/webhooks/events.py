"""What every provider's webhook payload is normalised into, and what follows from it.

A :class:`WebhookEvent` is one thing a provider reports about one message or one record, in
our terms: its kind (``opened``, ``bounced`` …), the provider's own event id (redeliveries
repeat it), the address or record it is about, and the tracking our outgoing messages carry
(``cf_workspace``, ``cf_send``, ``cf_execution``, ``cf_node``), which names the step that sent
the message. From it follow, purely:

- the bus event (:func:`bus_event`): a ``track`` named ``email.<kind>`` whose only identity is
  the address (``context.traits.email``; the router resolves it to the contact holding that
  email), or a CRM record's event with the record as an ``anonymousId``. Its ``messageId`` is
  ``<provider>:<event id>``, so the event log's (workspace, messageId) key makes a redelivered
  webhook a duplicate;
- whether the address must be suppressed (:func:`suppression_reason`);
- how far the message got (:func:`delivery_entry`).

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, get_args

from campaignflow.domain.deliveries import DeliveryEntry, DeliveryStatus
from campaignflow.domain.events import Event

EmailKind = Literal[
    "delivered",
    "deferred",
    "opened",
    "clicked",
    "bounced",
    "dropped",
    "unsubscribed",
    "spam_reported",
    "subscribed",
]
EMAIL_KINDS: tuple[EmailKind, ...] = get_args(EmailKind)
EMAIL_EVENT_NAMES = tuple(f"email.{kind}" for kind in EMAIL_KINDS)
SuppressionReason = Literal["bounce", "unsubscribe", "spam_report", "manual"]
BounceType = Literal["hard", "soft"]

# What a kind means for the message's delivery status (``subscribed`` concerns no message).
_DELIVERY: dict[str, DeliveryStatus] = {
    "delivered": "delivered",
    "deferred": "deferred",
    "opened": "opened",
    "clicked": "clicked",
    "bounced": "bounced",
    "dropped": "dropped",
    "unsubscribed": "unsubscribed",
    "spam_reported": "spam_reported",
}
TRACKING_KEYS = ("cf_workspace", "cf_send", "cf_execution", "cf_node")
_MAX_TRACKING_LENGTH = 64  # the id columns of message_deliveries


@dataclass(frozen=True, slots=True)
class Tracking:
    """Our own ids, echoed back by the provider (SendGrid ``custom_args``, Mandrill
    ``metadata``): the workspace, the step's idempotency key (``send_id``), the execution and
    the node that sent the message."""

    workspace_id: str | None = None
    send_id: str | None = None
    execution_id: str | None = None
    node_id: str | None = None

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Tracking | None:
        """The ``cf_*`` members that are short strings; ``None`` when there is none."""
        found = [
            value
            if isinstance(value, str)
            and 0 < len(value) <= _MAX_TRACKING_LENGTH
            and "\x00" not in value
            else None
            for value in (values.get(key) for key in TRACKING_KEYS)
        ]
        return cls(*found) if any(found) else None

    def for_workspace(self, workspace_id: str) -> Tracking | None:
        """The tracking if it names no other workspace: a message another workspace sent
        through a shared provider account says nothing about this one's steps."""
        if self.workspace_id not in (None, workspace_id):
            return None
        return self


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """One normalised provider event. ``kind`` is ``None`` for a CRM record's event, which is
    named by ``name`` alone (``hubspot.contact.propertyChange``)."""

    provider: str
    event_id: str
    name: str
    kind: EmailKind | None
    occurred_at: datetime
    raw_type: str
    email: str | None = None  # normalised (stripped, lower-cased)
    record_id: str | None = None  # a CRM record, as an anonymousId (``hubspot:<portal>:<id>``)
    # A CRM person the sync linked to a contact (Pipedrive's person id): the intake service
    # resolves it to that contact's address; an event of an unlinked person is ignored.
    crm_record: str | None = None
    message_id: str | None = None  # the provider's id of the message
    tracking: Tracking | None = None
    url: str | None = None
    reason: str | None = None
    bounce_type: BounceType | None = None
    # Set by the parser where the kind is not enough (why a provider dropped a message).
    suppression: SuppressionReason | None = None
    group_only: bool = False  # an unsubscribe from one subscription group, not from all mail
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def delivery_status(self) -> DeliveryStatus | None:
        return _DELIVERY.get(self.kind) if self.kind is not None else None


def suppression_reason(event: WebhookEvent) -> SuppressionReason | None:
    """Why no message may go to the event's address any more, or ``None``.

    A hard bounce, an unsubscribe and a spam report suppress; a soft bounce (a full mailbox, a
    temporary block) does not; a drop suppresses when the provider says why in those terms
    (SendGrid drops mail to addresses on its own bounce, unsubscribe and spam lists), which the
    parser records in ``suppression``. An unsubscribe from one subscription group only
    (SendGrid's ASM groups) is not an unsubscribe from all mail, so it suppresses nothing.
    """
    if event.email is None:
        return None
    if event.suppression is not None:
        return event.suppression
    if event.kind == "bounced" and event.bounce_type != "soft":
        return "bounce"
    if event.kind == "unsubscribed" and not event.group_only:
        return "unsubscribe"
    if event.kind == "spam_reported":
        return "spam_report"
    return None


def delivery_entry(event: WebhookEvent) -> DeliveryEntry | None:
    """The event as an entry of its message's delivery history, if it concerns a message."""
    status = event.delivery_status
    if status is None or (event.message_id is None and event.tracking is None):
        return None
    return DeliveryEntry(event.occurred_at, status, event.event_id)


def bus_event(
    event: WebhookEvent,
    *,
    workspace_id: str,
    connection_id: str,
    received_at: datetime,
) -> Event:
    """The event the router routes: to triggers, ``wait_for_event`` nodes and exit criteria of
    the contact with that address (or that CRM record). A timestamp in the future (a provider's
    clock ahead of ours) is taken as the moment it arrived."""
    tracking = event.tracking.for_workspace(workspace_id) if event.tracking else None
    return Event(
        workspace_id=workspace_id,
        message_id=f"{event.provider}:{event.event_id}",
        type="track",
        name=event.name,
        anonymous_id=event.record_id,
        properties=_properties(event, connection_id, tracking),
        context={"traits": {"email": event.email}} if event.email is not None else {},
        timestamp=min(event.occurred_at, received_at),
        received_at=received_at,
    )


def _properties(
    event: WebhookEvent, connection_id: str, tracking: Tracking | None
) -> dict[str, Any]:
    properties: dict[str, Any] = {
        **event.details,
        "provider": event.provider,
        "connectionId": connection_id,
        "providerEventId": event.event_id,
        "providerEventType": event.raw_type,
    }
    optional = {
        "providerMessageId": event.message_id,
        "url": event.url,
        "reason": event.reason,
        "bounceType": event.bounce_type,
        "sendId": tracking.send_id if tracking else None,
        "executionId": tracking.execution_id if tracking else None,
        "nodeId": tracking.node_id if tracking else None,
    }
    properties.update({name: value for name, value in optional.items() if value is not None})
    return properties
