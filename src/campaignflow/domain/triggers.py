"""Triggers: what starts an execution (an event, a time, an API call)."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import ConfigDict, Field, TypeAdapter, model_validator

from campaignflow.domain.durations import parse_duration
from campaignflow.domain.fields import (
    ATTRIBUTE_PATTERN,
    CelSource,
    CronExpression,
    DurationValue,
    EventName,
    FormatModel,
    Name,
    SignedDurationValue,
    TimeOfDay,
    Timestamp,
    TimeZoneName,
    exactly_one,
    one_of_schema,
)

TRIGGER_TYPES = ("behavior", "time", "api")


class Dedup(FormatModel):
    """Starts at most one execution per key and window (a webhook retried by its sender)."""

    key: CelSource = Field(
        description="CEL expression over event, contact and now whose value is the dedup key, "
        "e.g. event.messageId."
    )
    window: DurationValue = Field(description="How long a key is remembered.")


class TriggerBase(FormatModel):
    """Fields every trigger has."""

    type: str = Field(description="The kind of trigger.")
    name: Name | None = Field(
        None, description="Optional label, unique among this workflow's triggers."
    )
    condition: CelSource | None = Field(
        None,
        description="CEL boolean over event, contact and now; the trigger starts an execution "
        "only when it is true.",
    )
    dedup: Dedup | None = Field(None, description="Optional deduplication of starts.")


class BehaviorTrigger(TriggerBase):
    """Starts an execution when a contact's event arrives."""

    type: Literal["behavior"] = Field(description="Starts on an event.")
    event: EventName = Field(description="Name of the event, e.g. cart_updated.")


class RelativeTime(FormatModel):
    """A moment relative to a date stored on the contact (birthday, renewal date)."""

    attribute: Annotated[str, Field(pattern=ATTRIBUTE_PATTERN)] = Field(
        description="Contact attribute holding a date or timestamp, e.g. birthday."
    )
    offset: SignedDurationValue = Field(
        parse_duration("P0D"),
        description="Signed ISO-8601 duration added to the attribute; -P7D is a week before.",
    )
    time_of_day: TimeOfDay | None = Field(
        None,
        description="HH:MM in the contact's time zone (falling back to the trigger's timezone); "
        "omitted: the attribute's own time, or midnight for a date.",
    )
    recurrence: Literal["once", "yearly"] = Field(
        "once",
        description="once: the moment itself (attribute + offset), fired once; yearly: its "
        "anniversary every year (birthdays, contract anniversaries), with February 29 taken "
        "as February 28 in other years.",
    )


class TimeTrigger(TriggerBase):
    """Starts executions on a schedule, once at a moment, or relative to a contact's date."""

    model_config = ConfigDict(json_schema_extra=one_of_schema("cron", "at", "relativeTo"))

    type: Literal["time"] = Field(description="Starts at a time.")
    cron: CronExpression | None = Field(
        None,
        description="Five-field cron (minute hour day-of-month month day-of-week) or a macro "
        "such as @daily, evaluated in timezone.",
    )
    at: Timestamp | None = Field(
        None, description="One-off RFC 3339 timestamp; must carry Z or an offset."
    )
    relative_to: RelativeTime | None = Field(
        None, description="A moment relative to a date attribute of each contact."
    )
    timezone: TimeZoneName = Field(
        "UTC",
        description="IANA zone for cron, and the fallback zone for relativeTo when a contact "
        "has none; ignored for at.",
    )

    @model_validator(mode="after")
    def _one_schedule(self) -> Self:
        exactly_one(self, ("cron", "at", "relative_to"))
        return self


class ApiTrigger(TriggerBase):
    """Starts an execution when a client calls ``POST /api/v1/workflows/{id}/execute``."""

    type: Literal["api"] = Field(description="Starts on an API call.")


Trigger = Annotated[BehaviorTrigger | TimeTrigger | ApiTrigger, Field(discriminator="type")]

TRIGGER_ADAPTER: TypeAdapter[BehaviorTrigger | TimeTrigger | ApiTrigger] = TypeAdapter(Trigger)
"""Parses one trigger document (``/api/v1/triggers`` bodies and stored rows)."""
