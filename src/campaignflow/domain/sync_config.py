"""A CRM connection's sync configuration (DESIGN's "CRM connector shape"), as a pydantic model.

.. code-block:: json

    {
      "syncStrategy": "scheduled",
      "schedule": "*/15 * * * *",
      "conflictResolution": "source-priority",
      "sourcePriority": ["salesforce", "campaignflow"],
      "dataMapping": {
        "contactFields": {
          "email": "Email",
          "firstName": {"remote": "FirstName", "transform": "trim"},
          "lifecycle": {"remote": "Status__c", "valueMap": {"lead": "Open"}},
          "score": {"remote": "Score__c", "direction": "push"}
        },
        "activityTypes": {"email.opened": "Email", "demo_booked": "Call"}
      }
    }

Local names are the contact's ``email`` or a top-level trait; remote names are the CRM's own
field names. ``direction`` says which way a field flows (``both`` by default); ``transform``
names a simple conversion and ``valueMap`` translates values one to one (local → CRM), see
:mod:`campaignflow.domain.field_transforms`. ``activityTypes``
maps event names to the CRM's activity types: those events are logged on the CRM record.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Literal, Self

from pydantic import BeforeValidator, Field, field_validator, model_validator

from campaignflow.domain.durations import Duration
from campaignflow.domain.field_merge import ConflictMode, MergePolicy
from campaignflow.domain.field_transforms import NAMED, Transform, value_map
from campaignflow.domain.fields import (
    CronExpression,
    DurationValue,
    EventName,
    FormatModel,
    Identifier,
    TimeZoneName,
    domain_error,
)
from campaignflow.domain.problems import Problem

SyncStrategy = Literal["real-time", "scheduled", "on-demand"]
Direction = Literal["both", "push", "pull"]
RemoteField = Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$")]
SourceName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$")]
MAX_FIELDS = 200


TransformName = Literal[
    "none", "trim", "lowercase", "uppercase", "string", "number", "boolean", "date"
]


class FieldMapping(FormatModel):
    remote: RemoteField
    direction: Direction = "both"
    transform: TransformName = "none"
    value_map: dict[str, str] | None = Field(None, min_length=1, max_length=1000)

    @field_validator("value_map")
    @classmethod
    def _one_to_one(cls, pairs: dict[str, str] | None) -> dict[str, str] | None:
        if pairs is not None:
            value_map(pairs)  # raises ValueError when two local values map to one CRM value
        return pairs

    @model_validator(mode="after")
    def _one_conversion(self) -> Self:
        if self.value_map is not None and self.transform != "none":
            raise domain_error(
                "invalid_value", "a field has a transform or a valueMap, not both", at=("valueMap",)
            )
        return self

    def resolved_transform(self) -> Transform:
        if self.value_map is not None:
            return value_map(self.value_map)
        return NAMED[self.transform]


def _expand(value: object) -> object:
    """The shorthand ``"local": "Remote"`` is ``{"remote": "Remote"}``."""
    return {"remote": value} if isinstance(value, str) else value


ContactField = Annotated[
    FieldMapping, BeforeValidator(_expand, json_schema_input_type=RemoteField | FieldMapping)
]


class DataMapping(FormatModel):
    contact_fields: dict[Identifier, ContactField] = Field(min_length=1, max_length=MAX_FIELDS)
    activity_types: dict[EventName, Annotated[str, Field(min_length=1, max_length=80)]] = Field(
        default_factory=dict, max_length=100
    )

    @field_validator("contact_fields")
    @classmethod
    def _one_local_per_remote(cls, fields: dict[str, FieldMapping]) -> dict[str, FieldMapping]:
        seen: dict[str, str] = {}
        for local, mapping in fields.items():
            remote = mapping.remote
            if remote in seen:
                raise domain_error(
                    "duplicate",
                    f"{seen[remote]!r} and {local!r} both map to the CRM field {remote!r}",
                    at=(local,),
                )
            seen[remote] = local
        return fields

    def mappings(self) -> dict[str, FieldMapping]:
        """Local field → its mapping."""
        return dict(self.contact_fields)


class SyncConfig(FormatModel):
    sync_strategy: SyncStrategy
    schedule: CronExpression | None = Field(
        None, description="Five-field cron expression; required for the scheduled strategy."
    )
    timezone: TimeZoneName = Field("UTC", description="The IANA time zone the schedule is read in.")
    conflict_resolution: ConflictMode = "last-write-wins"
    source_priority: list[SourceName] = Field(
        default_factory=list,
        max_length=20,
        description="Sources in order of precedence (campaignflow, or a CRM provider's name).",
    )
    tie_window: DurationValue = Field(
        Duration(source="PT0S"),
        description="Changes on both sides closer than this are a tie (won by the CRM).",
    )
    data_mapping: DataMapping

    @field_validator("tie_window")
    @classmethod
    def _window(cls, value: Duration) -> Duration:
        if value.years or value.months or value.exact > timedelta(hours=1):
            raise ValueError("the tie window is at most PT1H")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.sync_strategy == "scheduled" and self.schedule is None:
            raise domain_error(
                "required", "the scheduled strategy needs a schedule", at=("schedule",)
            )
        if self.sync_strategy != "scheduled" and self.schedule is not None:
            raise domain_error(
                "invalid_value",
                f"a schedule applies to the scheduled strategy, not {self.sync_strategy}",
                at=("schedule",),
            )
        if self.conflict_resolution == "source-priority" and not self.source_priority:
            raise domain_error(
                "required", "source-priority needs a sourcePriority list", at=("sourcePriority",)
            )
        if len(set(self.source_priority)) != len(self.source_priority):
            raise domain_error("duplicate", "a source is listed twice", at=("sourcePriority",))
        return self

    def merge_policy(self, remote_skew: timedelta = timedelta(0)) -> MergePolicy:
        return MergePolicy(
            mode=self.conflict_resolution,
            priority=tuple(self.source_priority),
            tie_window=self.tie_window.exact,
            remote_skew=remote_skew,
        )


def consistency_problems(document: object) -> list[Problem]:
    """The cross-field rules of :class:`SyncConfig`, checked on the raw document.

    Pydantic runs a model's own cross-field check only once every field is valid, so a
    document with a bad field would hide these until fixed; the API adds them to the field
    problems, so one answer lists everything wrong."""
    if not isinstance(document, Mapping):
        return []
    found: list[Problem] = []
    strategy = document.get("syncStrategy")
    if strategy == "scheduled" and document.get("schedule") is None:
        found.append(Problem(("schedule",), "the scheduled strategy needs a schedule", "required"))
    if strategy in ("real-time", "on-demand") and document.get("schedule") is not None:
        found.append(
            Problem(
                ("schedule",),
                f"a schedule applies to the scheduled strategy, not {strategy}",
                "invalid_value",
            )
        )
    if document.get("conflictResolution") == "source-priority" and not document.get(
        "sourcePriority"
    ):
        found.append(
            Problem(("sourcePriority",), "source-priority needs a sourcePriority list", "required")
        )
    return found
