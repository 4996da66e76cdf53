"""One incoming message as sent (:class:`Message`) and the rules on its members.

Each check takes the decoded JSON value and a :class:`Findings` that knows where the message
sits in the body; it returns the normalized value, or records a :class:`Problem` at the member's
JSON Pointer and returns ``None``. ``null`` and ``""`` mean "not given", as Segment's libraries
send ``"userId": null`` for anonymous calls.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec

from campaignflow.domain.events import EVENT_TYPES, EventType
from campaignflow.domain.problems import PathPart, Problem

MAX_ID_LENGTH = 200  # messageId, userId, anonymousId, previousId, groupId and a track's event


class Message(msgspec.Struct, rename="camel"):
    """One message as sent (camelCase). Every member is decoded as-is and checked by hand, so
    each problem gets its own pointer; members not listed here are skipped by the decoder."""

    type: Any = None
    message_id: Any = None
    event: Any = None
    name: Any = None
    user_id: Any = None
    anonymous_id: Any = None
    previous_id: Any = None
    group_id: Any = None
    properties: Any = None
    traits: Any = None
    context: Any = None
    timestamp: Any = None
    original_timestamp: Any = None
    sent_at: Any = None


_TYPES: dict[str, EventType] = {kind: kind for kind in EVENT_TYPES}
# The members each type stores, walked for U+0000: (member, attribute of Message).
_COMMON = (
    ("messageId", "message_id"),
    ("userId", "user_id"),
    ("anonymousId", "anonymous_id"),
    ("context", "context"),
)
_STORED: dict[EventType, tuple[tuple[str, str], ...]] = {
    "track": (*_COMMON, ("event", "event"), ("properties", "properties")),
    "page": (*_COMMON, ("name", "name"), ("properties", "properties")),
    "screen": (*_COMMON, ("name", "name"), ("properties", "properties")),
    "identify": (*_COMMON, ("traits", "traits")),
    "group": (*_COMMON, ("groupId", "group_id"), ("traits", "traits")),
    "alias": (*_COMMON, ("previousId", "previous_id")),
}


@dataclass(slots=True)
class Findings:
    """The problems of a body, each located below ``prefix`` and, in a batch, the index of the
    message being checked (one instance serves every message of a body)."""

    prefix: tuple[PathPart, ...]
    problems: list[Problem] = field(default_factory=list)
    index: int | None = None

    def add(self, path: tuple[PathPart, ...], code: str, message: str) -> None:
        where = self.prefix if self.index is None else (*self.prefix, self.index)
        self.problems.append(Problem(where + path, message, code))


def identifier(value: Any, field: str, out: Findings) -> str | None:
    """An identity: a string, or a number Segment coerces to one; ``""`` counts as not given."""
    if type(value) is str and 0 < len(value) <= MAX_ID_LENGTH:  # the usual case, first
        return value
    if value is None or value == "":
        return None
    if isinstance(value, str):
        text = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        text = _number_text(value)
    else:
        out.add((field,), "not_a_string", f"{field} must be a string or a number")
        return None
    if len(text) > MAX_ID_LENGTH:
        out.add((field,), "too_long", f"{field} is longer than {MAX_ID_LENGTH} characters")
        return None
    return text


def _number_text(number: int | float) -> str:
    """Render a number the way JavaScript's ``String()`` does for the common cases (``7.0`` is
    ``"7"``), so the same id sent from analytics.js and from Python names one contact."""
    if isinstance(number, float) and number.is_integer() and abs(number) < 1e21:
        return str(int(number))
    return str(number)


def required_identifier(value: Any, field: str, out: Findings) -> str | None:
    if value is None or value == "":
        out.add((field,), "missing", f"{field} is required")
        return None
    return identifier(value, field, out)


def message_id(value: Any, out: Findings) -> str | None:
    """The sender's ``messageId``; ``None`` when absent (the caller generates one)."""
    if type(value) is str and 0 < len(value) <= MAX_ID_LENGTH:
        return value
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        out.add(("messageId",), "not_a_string", "messageId must be a string")
        return None
    if len(value) > MAX_ID_LENGTH:
        out.add(("messageId",), "too_long", f"messageId is longer than {MAX_ID_LENGTH} characters")
        return None
    return value


def event_name(value: Any, out: Findings) -> str | None:
    """A track call's ``event``: a non-empty string of at most 200 characters."""
    if value is None or value == "":
        out.add(("event",), "missing", "event is required for a track call")
        return None
    if not isinstance(value, str):
        out.add(("event",), "not_a_string", "event must be a string")
        return None
    if len(value) > MAX_ID_LENGTH:
        out.add(("event",), "too_long", f"event is longer than {MAX_ID_LENGTH} characters")
        return None
    return value


def optional_name(value: Any, out: Findings, field: str = "name") -> str | None:
    """A page's or screen's ``name`` (or another optional string member)."""
    if value is None or isinstance(value, str):
        return value
    out.add((field,), "not_a_string", f"{field} must be a string")
    return None


def json_object(value: Any, field: str, out: Findings) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if value is None:
        return {}
    out.add((field,), "not_an_object", f"{field} must be an object")
    return {}


def timestamp(value: Any, field: str, out: Findings) -> datetime | None:
    """An ISO-8601 / RFC 3339 string, in UTC; a string without an offset is read as UTC."""
    if value is None:
        return None
    if not isinstance(value, str):
        _invalid_timestamp(field, out)
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        try:  # RFC 3339 allows a lower-case "t" and "z", which fromisoformat refuses
            parsed = datetime.fromisoformat(value.upper())
        except ValueError:
            _invalid_timestamp(field, out)
            return None
    if parsed.tzinfo is UTC:  # "Z" and "+00:00" give the singleton
        return parsed
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _invalid_timestamp(field: str, out: Findings) -> None:
    out.add((field,), "invalid_timestamp", f"{field} must be an ISO-8601 date-time string")


def corrected_timestamp(
    original: datetime | None, sent: datetime | None, received_at: datetime
) -> datetime:
    """Segment's clock-skew correction: the sender's clock may be wrong, but the time between
    the event and the upload (``sent - original``) measured on that clock is right.

    Raises :class:`OverflowError` when the result falls outside the years 1-9999.
    """
    if original is None:
        return received_at
    if sent is None:
        return original
    return received_at - (sent - original)


_NUL_KEY = object()  # stands for a member whose name holds U+0000


def nul_paths(value: Any, path: tuple[PathPart, ...]) -> Iterator[tuple[PathPart, ...]]:
    """Where ``value`` holds U+0000 (in a string or a member name), which PostgreSQL's JSONB
    cannot store, in document order. Iterative: nesting depth is the sender's choice."""
    pending: list[tuple[tuple[PathPart, ...], Any]] = [(path, value)]
    while pending:
        where, item = pending.pop()
        if item is _NUL_KEY or (isinstance(item, str) and "\x00" in item):
            yield where
        elif isinstance(item, dict):
            members = reversed(item.items())
            pending.extend(((*where, k), _NUL_KEY if "\x00" in k else v) for k, v in members)
        elif isinstance(item, list):
            pending.extend(((*where, i), item[i]) for i in range(len(item) - 1, -1, -1))


def event_type(
    value: Any, out: Findings, *, fixed: EventType | None, default: EventType | None
) -> EventType | None:
    """The message's type: ``fixed`` by a single call's path (a ``type`` member must agree),
    else the ``type`` member, else ``default`` (``None``: the member is required)."""
    if fixed is not None:
        if value is None or value == fixed:
            return fixed
        out.add(("type",), "type_mismatch", f"type must be {fixed!r} at this endpoint")
        return None
    if value is None:
        if default is None:
            out.add(("type",), "missing", "type is required")
        return default
    kind = _TYPES.get(value) if isinstance(value, str) else None
    if kind is None:
        out.add(("type",), "unknown_type", f"type must be one of {', '.join(EVENT_TYPES)}")
    return kind


def identities(
    message: Message, kind: EventType, out: Findings
) -> tuple[str | None, str | None, str | None, str | None]:
    """userId, anonymousId, previousId and groupId, as the type requires them (the ones a type
    does not keep are still checked)."""
    if kind == "alias":
        previous_id = required_identifier(message.previous_id, "previousId", out)
        user_id = required_identifier(message.user_id, "userId", out)
        anonymous_id = identifier(message.anonymous_id, "anonymousId", out)
        identifier(message.group_id, "groupId", out)
        return user_id, anonymous_id, previous_id, None
    identifier(message.previous_id, "previousId", out)
    user_id = identifier(message.user_id, "userId", out)
    anonymous_id = identifier(message.anonymous_id, "anonymousId", out)
    if user_id is None and anonymous_id is None and _absent(message.user_id, message.anonymous_id):
        out.add(("userId",), "missing_identity", "userId or anonymousId is required")
    if kind == "group":
        return user_id, anonymous_id, None, required_identifier(message.group_id, "groupId", out)
    identifier(message.group_id, "groupId", out)
    return user_id, anonymous_id, None, None


def _absent(*values: Any) -> bool:
    return all(value is None or value == "" for value in values)


def content(
    message: Message, kind: EventType, out: Findings
) -> tuple[str | None, dict[str, Any], dict[str, Any]]:
    """The name, properties and traits the type carries: a track's ``event`` and properties, a
    page's or screen's ``name`` and properties, an identify's or group's traits (a track's
    ``context.traits`` stays in its context). Members a type does not keep are still checked,
    so every message the published schema refuses is refused here too."""
    properties = json_object(message.properties, "properties", out)
    traits = json_object(message.traits, "traits", out)
    name = optional_name(message.name, out)
    if kind == "track":
        return event_name(message.event, out), properties, {}
    optional_name(message.event, out, "event")
    if kind in ("page", "screen"):
        return name, properties, {}
    if kind == "alias":
        return None, {}, {}
    return None, {}, traits


def times(
    message: Message, out: Findings, *, received_at: datetime, batch_sent_at: datetime | None
) -> tuple[datetime | None, datetime | None, datetime | None]:
    """The corrected timestamp (``None`` when out of range), and the sentAt and the original
    timestamp it was computed from."""
    stamp = timestamp(message.timestamp, "timestamp", out)
    original, field = stamp, "timestamp"
    if message.original_timestamp is not None:
        field = "originalTimestamp"
        original = timestamp(message.original_timestamp, field, out)
    sent_at = batch_sent_at
    if message.sent_at is not None:
        sent_at = timestamp(message.sent_at, "sentAt", out)
    try:
        return corrected_timestamp(original, sent_at, received_at), sent_at, original
    except OverflowError:
        out.add((field,), "timestamp_out_of_range", "The corrected timestamp is out of range")
        return None, sent_at, original


def stored_members(message: Message, kind: EventType) -> list[tuple[str, Any]]:
    """The members an event of ``kind`` keeps, by their name on the wire."""
    return [(wire, getattr(message, attribute)) for wire, attribute in _STORED[kind]]


def nul_problems(members: Sequence[tuple[str, Any]], out: Findings) -> None:
    for wire, value in members:
        for path in nul_paths(value, (wire,)):
            out.add(path, "nul_character", "U+0000 cannot be stored; remove it from this string")
