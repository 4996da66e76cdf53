"""Parse request bodies of incoming events into :class:`~campaignflow.domain.events.Event`.

Four sources share one message shape (Segment's, camelCase): Segment's HTTP Tracking API single
calls (``/v1/track`` …, the type given by the path), Segment's ``/v1/batch`` (what
segment-analytics-python and RudderStack send), and the native ``/api/v1/events`` and
``/api/v1/events/batch``. Pure: no I/O and no clock; ``received_at`` and the source of generated
messageIds are passed in.

The rules beyond Segment's field semantics:

- A single call's ``type`` comes from the path; a ``type`` member in the body must equal it
  (``type_mismatch`` otherwise), so a message posted to the wrong endpoint is refused rather
  than silently reinterpreted. A batch message must carry ``type``; a native one defaults to
  ``track``.
- Unknown members (``integrations``, ``writeKey``, ``category``, a track's ``traits`` …) are
  ignored and not stored; only the members :class:`Event` holds are checked.
- ``null`` and ``""`` mean "not given"; a missing messageId is generated (``cf-`` + uuid4 hex).
- A batch's ``context`` is merged under each message's context, one level deep (a message's
  ``library`` replaces the batch's whole ``library``). A bad batch-level ``sentAt`` or
  ``context`` refuses the whole body (:class:`MalformedEvents`), as it concerns every message.
- A repeated messageId among the accepted messages of one body is dropped and counted; a refused
  message does not claim its messageId.
- Every timestamp is returned in UTC.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import uuid4

import msgspec

from campaignflow.domain import event_fields as fields
from campaignflow.domain.event_fields import Findings, Message
from campaignflow.domain.events import Event, EventType
from campaignflow.domain.problems import Problem
from campaignflow.errors import ClientError

DEFAULT_MAX_EVENT_BYTES = 32 * 1024  # Segment's limit on one message, as sent
DEFAULT_MAX_BODY_BYTES = 500 * 1024  # Segment's limit on one request body


class MalformedEvents(ClientError):
    """The request body is not a JSON object of events."""

    def __init__(self, message: str | None = None, problems: Sequence[Problem] = ()) -> None:
        self.problems = list(problems)
        super().__init__(message)


class BatchTooLarge(ClientError):
    """The request body is larger than the limit on one request."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(f"The body holds {size} bytes; at most {limit} are accepted.")


@dataclass(frozen=True, slots=True)
class ParsedBatch:
    """What a body yielded: the accepted events in body order, and why the others were not."""

    events: list[Event]
    problems: list[Problem]  # located from the body's root: ("batch", 3, "userId")
    rejected_indexes: list[int]  # each refused message's index in the body (0 for a single call)
    duplicates: int  # messages dropped because an earlier one in the body had their messageId


def generate_message_id() -> str:
    return "cf-" + uuid4().hex


class _SegmentBatch(msgspec.Struct, rename="camel"):
    batch: list[msgspec.Raw]  # raw, so each message's size is known without re-encoding it
    sent_at: Any = None
    context: Any = None


class _NativeBatch(msgspec.Struct, rename="camel"):
    events: list[msgspec.Raw]
    sent_at: Any = None
    context: Any = None


_Body = TypeVar("_Body", Message, _SegmentBatch, _NativeBatch)
_DECODERS: dict[type[Any], msgspec.json.Decoder[Any]] = {
    kind: msgspec.json.Decoder(kind) for kind in (Message, _SegmentBatch, _NativeBatch)
}

_MESSAGE_DECODER: msgspec.json.Decoder[Message] = _DECODERS[Message]


@dataclass(frozen=True, slots=True)
class _Job:
    """What every message of one body is parsed against."""

    workspace_id: str
    received_at: datetime
    max_event_bytes: int
    new_message_id: Callable[[], str]
    may_hold_nul: bool  # the body spells U+0000 somewhere: walk the strings to find it
    fixed_type: EventType | None = None  # a single call's type, from its path
    default_type: EventType | None = None  # the native API's "track"
    sent_at: datetime | None = None  # the batch's
    context: dict[str, Any] | None = None  # the batch's


def parse_segment_call(
    kind: EventType,
    body: bytes,
    *,
    workspace_id: str,
    received_at: datetime,
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    new_message_id: Callable[[], str] = generate_message_id,
) -> ParsedBatch:
    """One Segment call (``/v1/track``, ``/v1/identify`` …); ``kind`` comes from the path."""
    job = _job(body, workspace_id, received_at, max_event_bytes, new_message_id)
    return _parse_single(body, replace(job, fixed_type=kind), max_body_bytes)


def parse_segment_batch(
    body: bytes,
    *,
    workspace_id: str,
    received_at: datetime,
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    new_message_id: Callable[[], str] = generate_message_id,
) -> ParsedBatch:
    """Segment's ``/v1/batch``: ``{"batch": [...], "sentAt"?, "context"?}``."""
    job = _job(body, workspace_id, received_at, max_event_bytes, new_message_id)
    envelope = _decode(body, _SegmentBatch, max_body_bytes, 'an object with a "batch" array')
    return _parse_batch("batch", envelope.batch, envelope.sent_at, envelope.context, job)


def parse_native_event(
    body: bytes,
    *,
    workspace_id: str,
    received_at: datetime,
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    new_message_id: Callable[[], str] = generate_message_id,
) -> ParsedBatch:
    """``POST /api/v1/events``: one message, ``type`` defaulting to ``track``."""
    job = _job(body, workspace_id, received_at, max_event_bytes, new_message_id)
    return _parse_single(body, replace(job, default_type="track"), max_body_bytes)


def parse_native_batch(
    body: bytes,
    *,
    workspace_id: str,
    received_at: datetime,
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    new_message_id: Callable[[], str] = generate_message_id,
) -> ParsedBatch:
    """``POST /api/v1/events/batch``: ``{"events": [...], "sentAt"?, "context"?}``."""
    job = _job(body, workspace_id, received_at, max_event_bytes, new_message_id)
    job = replace(job, default_type="track")
    envelope = _decode(body, _NativeBatch, max_body_bytes, 'an object with an "events" array')
    return _parse_batch("events", envelope.events, envelope.sent_at, envelope.context, job)


def _job(
    body: bytes,
    workspace_id: str,
    received_at: datetime,
    max_event_bytes: int,
    new_message_id: Callable[[], str],
) -> _Job:
    received_at = (
        received_at.astimezone(UTC) if received_at.tzinfo else received_at.replace(tzinfo=UTC)
    )
    # JSON can only spell U+0000 as an escape (a raw NUL byte is not valid JSON).
    may_hold_nul = b"\\u0000" in body
    return _Job(workspace_id, received_at, max_event_bytes, new_message_id, may_hold_nul)


def _decode(body: bytes, kind: type[_Body], max_body_bytes: int, shape: str) -> _Body:
    if len(body) > max_body_bytes:
        raise BatchTooLarge(len(body), max_body_bytes)
    try:
        decoded: _Body = _DECODERS[kind].decode(body)
    except msgspec.ValidationError as exc:
        raise MalformedEvents(f"The body must be {shape}: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise MalformedEvents(f"The body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise MalformedEvents("The body nests arrays or objects too deeply.") from exc
    return decoded


def _parse_single(body: bytes, job: _Job, max_body_bytes: int) -> ParsedBatch:
    if len(body) > max_body_bytes:
        raise BatchTooLarge(len(body), max_body_bytes)
    out = Findings(())
    if len(body) > job.max_event_bytes:
        _too_large(len(body), out, job)
        return ParsedBatch([], out.problems, [0], 0)
    event = _build(_decode(body, Message, max_body_bytes, "a JSON object"), out, job)
    if event is None:
        return ParsedBatch([], out.problems, [0], 0)
    return ParsedBatch([event], [], [], 0)


def _parse_batch(
    key: str, items: list[msgspec.Raw], sent_at: Any, context: Any, job: _Job
) -> ParsedBatch:
    job = _with_batch_members(sent_at, context, job)
    out = Findings((key,))
    events: list[Event] = []
    rejected: list[int] = []
    seen: set[str] = set()
    for index, raw in enumerate(items):
        out.index = index
        event = _parse_item(raw, out, job)
        if event is None:
            rejected.append(index)
        elif event.message_id not in seen:
            seen.add(event.message_id)
            events.append(event)
    duplicates = len(items) - len(rejected) - len(events)
    return ParsedBatch(events, out.problems, rejected, duplicates)


def _with_batch_members(sent_at: Any, context: Any, job: _Job) -> _Job:
    out = Findings(())
    batch_sent_at = fields.timestamp(sent_at, "sentAt", out)
    batch_context = fields.json_object(context, "context", out)
    if job.may_hold_nul:
        fields.nul_problems([("context", batch_context)], out)
    if out.problems:
        count = len(out.problems)
        message = f"The body has {count} problem(s) outside its messages."
        raise MalformedEvents(message, out.problems)
    return replace(job, sent_at=batch_sent_at, context=batch_context or None)


def _parse_item(raw: msgspec.Raw, out: Findings, job: _Job) -> Event | None:
    size = len(raw)
    if size > job.max_event_bytes:
        _too_large(size, out, job)
        return None
    try:
        message: Message = _MESSAGE_DECODER.decode(raw)
    except msgspec.ValidationError:
        out.add((), "not_an_object", "A message must be a JSON object")
        return None
    except RecursionError:
        out.add((), "too_deep", "The message nests arrays or objects too deeply")
        return None
    return _build(message, out, job)


def _too_large(size: int, out: Findings, job: _Job) -> None:
    limit = job.max_event_bytes
    out.add((), "event_too_large", f"The message holds {size} bytes; at most {limit} allowed")


def _build(message: Message, out: Findings, job: _Job) -> Event | None:
    before = len(out.problems)
    kind = fields.event_type(message.type, out, fixed=job.fixed_type, default=job.default_type)
    if kind is None:
        return None
    user_id, anonymous_id, previous_id, group_id = fields.identities(message, kind, out)
    name, properties, traits = fields.content(message, kind, out)
    context = fields.json_object(message.context, "context", out)
    timestamp, sent_at, original = fields.times(
        message, out, received_at=job.received_at, batch_sent_at=job.sent_at
    )
    message_id = fields.message_id(message.message_id, out)
    if job.may_hold_nul:
        fields.nul_problems(fields.stored_members(message, kind), out)
    if len(out.problems) > before or timestamp is None:
        return None
    return Event(
        workspace_id=job.workspace_id,
        message_id=message_id or job.new_message_id(),
        type=kind,
        name=name,
        user_id=user_id,
        anonymous_id=anonymous_id,
        previous_id=previous_id,
        group_id=group_id,
        properties=properties,
        traits=traits,
        context={**job.context, **context} if job.context else context,
        timestamp=timestamp,
        received_at=job.received_at,
        sent_at=sent_at,
        original_timestamp=original,
    )
