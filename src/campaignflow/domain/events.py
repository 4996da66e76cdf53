"""The normalized event: what ingestion accepts, the bus carries and the router acts on.

Every source — the native API, Segment's and RudderStack's libraries — is parsed into this one
shape (Segment's field semantics, camelCase on the wire, snake_case here). It is a msgspec
struct because the bus moves it at tens of thousands per second: encoding a list of them to
msgpack and back is an order of magnitude cheaper than pydantic or JSON.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

EventType = Literal["track", "identify", "page", "screen", "group", "alias"]
EVENT_TYPES: tuple[EventType, ...] = ("track", "identify", "page", "screen", "group", "alias")


class Event(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One accepted event, its timestamp already corrected for the sender's clock skew."""

    workspace_id: str
    message_id: str
    type: EventType
    # track: the event name; page/screen: the page or screen name (may be None); else None.
    name: str | None = None
    user_id: str | None = None
    anonymous_id: str | None = None
    previous_id: str | None = None  # alias: the identity being merged into user_id
    group_id: str | None = None  # group
    properties: dict[str, Any] = msgspec.field(default_factory=dict)
    traits: dict[str, Any] = msgspec.field(default_factory=dict)
    context: dict[str, Any] = msgspec.field(default_factory=dict)
    timestamp: datetime
    received_at: datetime
    sent_at: datetime | None = None
    original_timestamp: datetime | None = None
    # The W3C traceparent of the request that accepted it, when tracing is on: carried over the
    # bus so the router's span links back to it. Not stored with the event, not shown to CEL.
    trace: str | None = None

    @property
    def routing_name(self) -> str:
        """The name triggers, waits and exit criteria match on: a track event's own name, and
        ``$identify``, ``$page``, ``$screen``, ``$group``, ``$alias`` for the other types."""
        if self.type == "track" and self.name is not None:
            return self.name
        return "$" + self.type

    @property
    def partition_key(self) -> str:
        """Which identity orders this event: one contact's events share a bus shard. An event
        known only by an address (a provider webhook's) is ordered by that address."""
        return (
            self.user_id
            or self.anonymous_id
            or self.previous_id
            or self._context_email()
            or self.message_id
        )

    def _context_email(self) -> str | None:
        traits = self.context.get("traits")
        email = traits.get("email") if isinstance(traits, dict) else None
        return "email:" + email.strip().lower() if isinstance(email, str) and email else None

    def to_variables(self) -> dict[str, Any]:
        """The event as CEL's ``event`` variable and as a workflow's view of it (camelCase,
        the timestamp as an RFC 3339 string). On the router's hot path: one dict, no loops."""
        document: dict[str, Any] = {
            "type": self.type,
            "event": self.name
            if self.type == "track" and self.name is not None
            else "$" + self.type,
            "messageId": self.message_id,
            "properties": self.properties,
            "traits": self.traits,
            "context": self.context,
            "timestamp": self.timestamp.isoformat(),
        }
        if self.name is not None:
            document["name"] = self.name
        if self.user_id is not None:
            document["userId"] = self.user_id
        if self.anonymous_id is not None:
            document["anonymousId"] = self.anonymous_id
        if self.previous_id is not None:
            document["previousId"] = self.previous_id
        if self.group_id is not None:
            document["groupId"] = self.group_id
        return document


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(list[Event])


def encode_events(events: list[Event]) -> bytes:
    """A bus entry's payload: a list of events, in order."""
    return _ENCODER.encode(events)


def decode_events(payload: bytes) -> list[Event]:
    return _DECODER.decode(payload)
