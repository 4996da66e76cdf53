"""Reading provider webhook bodies: what every provider's parser shares.

A body that is not the provider's shape at all (not JSON, not a form, not an array) is a
:class:`MalformedWebhook` for the whole request. Within a well-shaped body each event is read on
its own: a bad member records a :class:`Problem` at its JSON Pointer (from the body's root; a
form field's JSON value is rooted at the field, ``/mandrill_events/3/msg/email``) and only that
event is refused; an event type we do not act on (SendGrid's ``processed``) is counted as
ignored. Providers add event types without notice, so an unknown type is ignored, never
refused.

Every string that reaches an event is checked here for what the stores cannot hold (U+0000, as
PostgreSQL refuses it in text and jsonb) and bounded in length: an event the router could not
store would come back to it forever. Free text (reasons, links) is masked (:func:`masked`).

Pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import orjson

from campaignflow.domain.contacts import normalize_email
from campaignflow.domain.problems import PathPart, Problem
from campaignflow.errors import ClientError
from campaignflow.integrations.webhooks.events import WebhookEvent
from campaignflow.security.masking import mask_text

MAX_EVENT_ID_LENGTH = 150  # "<provider>:<id>" must fit the event log's 200-character messageId
MAX_TEXT_LENGTH = 1000  # reasons, property values: cut, not refused
MAX_URL_LENGTH = 4096
MAX_FORM_FIELDS = 1000
# Instants outside these years are refused rather than stored: no provider reports them.
_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC).timestamp()
_LATEST = datetime(2100, 1, 1, tzinfo=UTC).timestamp()


class MalformedWebhook(ClientError):
    """The webhook's body is not what the provider sends."""

    def __init__(self, message: str | None = None, problems: Sequence[Problem] = ()) -> None:
        self.problems = list(problems)
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class ParsedWebhook:
    """A body's events in order; the problems of the refused ones (with their indexes); how
    many were of a type we do not act on."""

    events: list[WebhookEvent]
    problems: list[Problem]
    rejected: list[int]
    ignored: int


def event_digest(value: Any) -> str:
    """A stable id for an event its provider gives none: 40 hex characters of the SHA-256 of
    its canonical JSON (sorted keys), so a redelivery of the same event gets the same id."""
    canonical = orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.sha256(canonical).hexdigest()[:40]


def decode_json(body: bytes, *, pointer_prefix: tuple[PathPart, ...] = ()) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedWebhook(
            f"The body is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.",
            [Problem(pointer_prefix, exc.msg, "malformed_json")],
        ) from exc


def decode_form(body: bytes) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body; a repeated field keeps its last value."""
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=False,
            errors="strict",
            max_num_fields=MAX_FORM_FIELDS,
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedWebhook(f"The body is not a UTF-8 form: {exc}.") from exc
    return dict(pairs)


class Reader:
    """Reads the members of one event, recording a problem at the member's pointer (below
    ``prefix``) when one is missing or wrong. ``failed`` says whether any was."""

    def __init__(self, prefix: tuple[PathPart, ...]) -> None:
        self.prefix = prefix
        self.problems: list[Problem] = []

    @property
    def failed(self) -> bool:
        return bool(self.problems)

    def fail(self, path: tuple[PathPart, ...], code: str, message: str) -> None:
        self.problems.append(Problem(self.prefix + path, message, code))

    def text(
        self,
        value: Any,
        path: tuple[PathPart, ...],
        *,
        required: bool = False,
        limit: int = MAX_TEXT_LENGTH,
        cut: bool = True,
    ) -> str | None:
        """A string (a number is taken as its text); ``None``/``""`` is "not given". Longer
        than ``limit``: cut, or refused when ``cut`` is false (ids)."""
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = _number_text(value)
        if value is None or value == "":
            if required:
                self.fail(path, "missing", f"{_name(path)} is required")
            return None
        if not isinstance(value, str):
            self.fail(path, "not_a_string", f"{_name(path)} must be a string")
            return None
        if "\x00" in value:
            self.fail(path, "invalid_character", f"{_name(path)} contains U+0000")
            return None
        if len(value) > limit:
            if not cut:
                self.fail(path, "too_long", f"{_name(path)} is longer than {limit} characters")
                return None
            value = value[:limit]
        text: str = value
        return text

    def identifier(self, value: Any, path: tuple[PathPart, ...]) -> str | None:
        """A required id, refused when longer than :data:`MAX_EVENT_ID_LENGTH`."""
        return self.text(value, path, required=True, limit=MAX_EVENT_ID_LENGTH, cut=False)

    def email(self, value: Any, path: tuple[PathPart, ...]) -> str | None:
        """A required address, normalised (stripped, lower-cased)."""
        text = self.text(value, path, required=True, limit=10_000)
        if text is None:
            return None
        email = normalize_email(text)
        if email is None:
            self.fail(path, "invalid_email", f"{_name(path)} is not an email address")
        return email

    def instant(
        self, value: Any, path: tuple[PathPart, ...], *, per_second: float = 1.0
    ) -> datetime | None:
        """A required Unix time (seconds, or ``per_second`` units of it: 1000 for ms)."""
        if isinstance(value, str) and len(value) <= 20 and value.strip().isdecimal():
            value = int(value.strip())
        if not isinstance(value, int | float) or isinstance(value, bool):
            code = "missing" if value is None else "not_a_number"
            self.fail(path, code, f"{_name(path)} must be a Unix time")
            return None
        try:
            seconds = value / per_second
        except OverflowError:
            seconds = math.inf
        if not math.isfinite(seconds) or not _EARLIEST <= seconds < _LATEST:
            self.fail(path, "out_of_range", f"{_name(path)} is not a time between 2000 and 2100")
            return None
        return datetime.fromtimestamp(seconds, UTC)

    def mapping(self, value: Any, path: tuple[PathPart, ...]) -> dict[str, Any]:
        """An optional object; anything else is refused, absent is empty."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(path, "not_an_object", f"{_name(path)} must be an object")
            return {}
        return value


def masked(text: str | None) -> str | None:
    """Free text a provider wrote (a bounce reason quotes the address, a tracked link may carry
    it or a token) with addresses, phone numbers and secrets masked as the logs mask them: it is
    kept in the event's properties, which are not sealed."""
    return mask_text(text) if text is not None else None


def _name(path: tuple[PathPart, ...]) -> str:
    return str(path[-1]) if path else "the event"


def _number_text(number: int | float) -> str:
    if isinstance(number, float) and number.is_integer() and abs(number) < 1e21:
        return str(int(number))
    return str(number)


EventParser = Callable[[Any, Reader], WebhookEvent | None]


def collect(
    items: Sequence[Any], prefix: tuple[PathPart, ...], parse: EventParser
) -> ParsedWebhook:
    """Parse each item with ``parse`` (``None`` without a problem: a type we ignore); an event
    id repeated within the body counts once (the provider batched a retry with the original)."""
    events: list[WebhookEvent] = []
    problems: list[Problem] = []
    rejected: list[int] = []
    ignored = 0
    seen: set[str] = set()
    for index, item in enumerate(items):
        reader = Reader((*prefix, index))
        event = parse(item, reader)
        if reader.failed:
            problems.extend(reader.problems)
            rejected.append(index)
        elif event is None:
            ignored += 1
        elif event.event_id not in seen:
            seen.add(event.event_id)
            events.append(event)
    return ParsedWebhook(events, problems, rejected, ignored)


def require_array(document: Any, what: str, prefix: tuple[PathPart, ...] = ()) -> list[Any]:
    if not isinstance(document, list):
        raise MalformedWebhook(
            f"{what} must be a JSON array of events.",
            [Problem(prefix, "must be an array of events", "not_an_array")],
        )
    return document
