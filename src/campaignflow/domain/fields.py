"""Pydantic field types of the definition format, built on the pure parsers of this package.

Each type validates the text a user wrote and reports a failure as a pydantic error whose ``type``
is the stable problem code (``invalid_duration``, ``invalid_cron``, …) and whose message is the
parser's own, so ``validation`` can translate it without knowing which field it came from.
Parsed values are typed (a :class:`Duration`, a :class:`datetime.time`) so the engine never
parses again; they serialise back to the text the user wrote.
"""

from __future__ import annotations

import math
from datetime import datetime, time
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from campaignflow.domain import durations, schedules
from campaignflow.domain.durations import Duration, InvalidDuration
from campaignflow.domain.schedules import ScheduleError

NODE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
WORKFLOW_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
CONNECTION_NAME_PATTERN = WORKFLOW_ID_PATTERN  # a slug, like workflow ids
IDENTIFIER_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
ATTRIBUTE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.]{0,127}$"


class FormatModel(BaseModel):
    """Base of every model of the definition format.

    Unknown keys are refused everywhere so a typo (``"tmeout"``) is an error, not a silently
    ignored setting; models are frozen because a published definition never changes.
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        populate_by_name=True,
        alias_generator=to_camel,
    )


def domain_error(code: str, message: str, *, at: tuple[str | int, ...] = ()) -> PydanticCustomError:
    """A pydantic error carrying our problem ``code``; ``at`` extends the location.

    Model validators can only fail at the model itself; ``at`` lets a cross-field rule point at
    the field that is wrong (``/entry/reentryAfter``) rather than at the enclosing object.
    """
    return PydanticCustomError(code, "{reason}", {"reason": message, "at": at})


def _require_text(value: object) -> str:
    if not isinstance(value, str):
        raise PydanticCustomError("string_type", "Input should be a valid string")
    return value


def _duration_validator(*, allow_negative: bool) -> PlainValidator:
    def validate(value: object) -> Duration:
        if isinstance(value, Duration):
            return value
        try:
            return durations.parse_duration(_require_text(value), allow_negative=allow_negative)
        except InvalidDuration as exc:
            raise domain_error("invalid_duration", exc.message) from exc

    return PlainValidator(validate, json_schema_input_type=str)


def _duration_schema(*, signed: bool) -> dict[str, Any]:
    pattern = durations.JSON_SCHEMA_PATTERN
    return {
        "type": "string",
        "pattern": pattern if signed else pattern.replace("^-?", "^", 1),
        "examples": ["-P7D", "PT12H"] if signed else list(durations.EXAMPLES[:5]),
    }


def _schedule_check(check: Any) -> AfterValidator:
    def validate(value: str) -> str:
        try:
            check(value)
        except ScheduleError as exc:
            raise domain_error(exc.code, exc.message) from exc
        return value

    return AfterValidator(validate)


def _parsed(parse: Any) -> PlainValidator:
    def validate(value: object) -> Any:
        if isinstance(value, datetime) and value.tzinfo is None:
            raise domain_error("invalid_timestamp", "has no UTC offset; add Z or +01:00")
        if isinstance(value, datetime | time):
            return value  # already typed, e.g. an unquoted timestamp read from YAML
        try:
            return parse(_require_text(value))
        except ScheduleError as exc:
            raise domain_error(exc.code, exc.message) from exc

    return PlainValidator(validate, json_schema_input_type=str)


DurationValue = Annotated[
    Duration,
    _duration_validator(allow_negative=False),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(_duration_schema(signed=False)),
]
"""A non-negative ISO-8601 duration such as ``PT4H`` or ``P2D``."""

SignedDurationValue = Annotated[
    Duration,
    _duration_validator(allow_negative=True),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(_duration_schema(signed=True)),
]
"""An ISO-8601 duration that may be negative (``-P7D``: seven days before)."""

CronExpression = Annotated[
    str, Field(min_length=1, max_length=200), _schedule_check(schedules.check_cron)
]
TimeZoneName = Annotated[
    str,
    Field(min_length=1, max_length=64, examples=["UTC", "Europe/Berlin"]),
    _schedule_check(schedules.check_timezone),
]
TimeOfDay = Annotated[
    time,
    _parsed(schedules.parse_time_of_day),
    PlainSerializer(schedules.format_time_of_day, return_type=str),
    WithJsonSchema(
        {"type": "string", "pattern": r"^([01]\d|2[0-3]):[0-5]\d$", "examples": ["09:00"]}
    ),
]
Timestamp = Annotated[
    datetime,
    _parsed(schedules.parse_timestamp),
    PlainSerializer(schedules.format_timestamp, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time", "examples": ["2026-12-01T09:00:00Z"]}),
]

NodeId = Annotated[str, Field(pattern=NODE_ID_PATTERN, examples=["send-welcome"])]
WorkflowId = Annotated[str, Field(pattern=WORKFLOW_ID_PATTERN, examples=["abandoned-cart"])]
Identifier = Annotated[str, Field(pattern=IDENTIFIER_PATTERN)]
EventName = Annotated[str, Field(min_length=1, max_length=200, examples=["order_completed"])]
CelSource = Annotated[
    str, Field(min_length=1, max_length=4000, examples=["event.properties.total > 100"])
]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Description = Annotated[str, Field(max_length=2000)]


def _positive_number(value: object) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError("float_type", "Input should be a valid number")
    if not (math.isfinite(value) and value > 0):
        raise domain_error("out_of_range", f"must be a number greater than 0, not {value}")
    return value


def _zone_or_contact(value: str) -> str:
    if value != "contact":
        try:
            schedules.check_timezone(value)
        except ScheduleError as exc:
            raise domain_error(exc.code, f'{exc.message}, or "contact"') from exc
    return value


PositiveNumber = Annotated[
    int | float,
    PlainValidator(_positive_number, json_schema_input_type=float),
    WithJsonSchema({"type": "number", "exclusiveMinimum": 0}),
]
"""A number > 0 that keeps its type (``45`` stays an integer in the stored document)."""

ZoneOrContact = Annotated[
    str,
    Field(min_length=1, max_length=64, examples=["contact", "Europe/Berlin"]),
    AfterValidator(_zone_or_contact),
]


def exactly_one(model: FormatModel, fields: tuple[str, ...]) -> None:
    """Raise unless exactly one of ``fields`` (Python names) is set; point at the offender."""
    present = [name for name in fields if getattr(model, name) is not None]
    aliases = ", ".join(alias_of(model, name) for name in fields)
    if not present:
        raise domain_error("required", f"needs exactly one of: {aliases}")
    if len(present) > 1:
        extra = alias_of(model, present[1])
        raise domain_error("one_of", f"set only one of: {aliases}", at=(extra,))


def one_of_schema(*aliases: str) -> dict[str, JsonValue]:
    """JSON Schema for "exactly one of these keys", so editors flag it as the validator does."""
    return {"oneOf": [{"required": [alias]} for alias in aliases]}


def alias_of(model: FormatModel, name: str) -> str:
    return type(model).model_fields[name].alias or name
