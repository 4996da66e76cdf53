"""Workflow-wide policies: retries of failed actions, entry and re-entry, exit criteria."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import ConfigDict, Field, StrictBool, StrictInt, model_validator

from campaignflow.domain.durations import Duration, parse_duration
from campaignflow.domain.fields import (
    CelSource,
    DurationValue,
    EventName,
    FormatModel,
    domain_error,
)

RetryPolicyName = Literal["exponential", "linear", "none"]
Jitter = Annotated[float, Field(ge=0, le=1, strict=True)]
MaxRetries = Annotated[StrictInt, Field(ge=0, le=100)]


class ErrorHandling(FormatModel):
    """How failed actions are retried before their error path (``onError``) or the dead letters."""

    retry_policy: RetryPolicyName = Field(
        "exponential",
        description="How the wait between attempts grows: doubling, by a constant step, or no "
        "retries at all.",
    )
    max_retries: MaxRetries = Field(
        3, description="Retries after the first attempt (0..100); 0 means one attempt only."
    )
    initial_interval: DurationValue = Field(
        parse_duration("PT10S"), description="Wait before the first retry (ISO-8601 duration)."
    )
    max_interval: DurationValue = Field(
        parse_duration("PT1H"), description="Upper bound on the wait between attempts."
    )
    jitter: Jitter = Field(
        0.2,
        description="Random spread applied to each wait, as a fraction (0.2 = ±20%), so retries "
        "of many executions do not arrive at a provider in lockstep.",
    )

    @model_validator(mode="after")
    def _intervals_ordered(self) -> Self:
        _check_intervals(self.initial_interval, self.max_interval)
        return self

    def with_override(self, override: RetryOverride | None) -> ErrorHandling:
        """The workflow policy with a node's ``retry`` settings laid over it."""
        if override is None:
            return self
        changes = {
            name: value
            for name in RetryOverride.model_fields
            if (value := getattr(override, name)) is not None
        }
        return self.model_copy(update=changes) if changes else self


class RetryOverride(FormatModel):
    """A node's own retry settings; each field left out falls back to ``errorHandling``."""

    retry_policy: RetryPolicyName | None = Field(None, description="Overrides retryPolicy.")
    max_retries: MaxRetries | None = Field(None, description="Overrides maxRetries.")
    initial_interval: DurationValue | None = Field(None, description="Overrides initialInterval.")
    max_interval: DurationValue | None = Field(None, description="Overrides maxInterval.")
    jitter: Jitter | None = Field(None, description="Overrides jitter.")

    @model_validator(mode="after")
    def _intervals_ordered(self) -> Self:
        if self.initial_interval is not None and self.max_interval is not None:
            _check_intervals(self.initial_interval, self.max_interval)
        return self


def _check_intervals(initial: Duration, maximum: Duration) -> None:
    if maximum.approximate_seconds < initial.approximate_seconds:
        raise domain_error(
            "invalid_value",
            f"maxInterval ({maximum}) is shorter than initialInterval ({initial})",
            at=("maxInterval",),
        )


# --------------------------------------------------------------------------- entry and exit


class EntryRules(FormatModel):
    """Whether a contact may enter the workflow again, enforced by the engine for every trigger."""

    model_config = ConfigDict(
        json_schema_extra={
            "if": {"properties": {"reentry": {"const": "after"}}, "required": ["reentry"]},
            "then": {"required": ["reentryAfter"]},
            "else": {"not": {"required": ["reentryAfter"]}},
        }
    )

    reentry: Literal["never", "always", "after"] = Field(
        "never",
        description='"never": a contact enters once ever; "always": every trigger starts an '
        'execution; "after": again once reentryAfter has passed since the last entry.',
    )
    reentry_after: DurationValue | None = Field(
        None, description='Required when reentry is "after", not allowed otherwise.'
    )
    allow_concurrent: StrictBool = Field(
        False,
        description="Whether a contact may have two executions of this workflow at the same time.",
    )

    @model_validator(mode="after")
    def _after_needs_duration(self) -> Self:
        if self.reentry == "after" and self.reentry_after is None:
            raise domain_error(
                "required", 'reentryAfter is required when reentry is "after"', at=("reentryAfter",)
            )
        if self.reentry != "after" and self.reentry_after is not None:
            raise domain_error(
                "not_allowed",
                f'reentryAfter only applies when reentry is "after" (it is "{self.reentry}")',
                at=("reentryAfter",),
            )
        return self


class ExitCriterion(FormatModel):
    """An event that takes a contact out of the workflow at once, even while it waits."""

    event: EventName = Field(description="Name of the event that ends the execution.")
    condition: CelSource | None = Field(
        None,
        description="CEL boolean over event, contact and now; the criterion applies only when it "
        "is true.",
    )
    goal: StrictBool = Field(
        False, description="Whether leaving this way counts as a conversion in reports."
    )
