"""Nodes: the steps of a workflow, one model per node type, with their configuration.

Node types are discriminated on ``type``, so a node's ``config`` is checked against the model of
its own type and an unknown key in it is an error.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import ConfigDict, Field, JsonValue, model_validator

from campaignflow.domain.fields import (
    ATTRIBUTE_PATTERN,
    CONNECTION_NAME_PATTERN,
    CelSource,
    Description,
    DurationValue,
    EventName,
    FormatModel,
    Name,
    NodeId,
    PositiveNumber,
    TimeOfDay,
    Timestamp,
    ZoneOrContact,
    domain_error,
    exactly_one,
    one_of_schema,
)
from campaignflow.domain.policies import RetryOverride

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]  # = schedules.WEEKDAYS
MessagePurpose = Literal["marketing", "transactional"]


class ActionConfig(FormatModel):
    """Which action to run and its parameters (checked against the action catalog)."""

    action: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)?$")] = Field(
        description="A built-in action (http, set, log) or connector.operation, e.g. "
        "hubspot.upsert_contact."
    )
    connection: Annotated[str, Field(pattern=CONNECTION_NAME_PATTERN)] | None = Field(
        None,
        description="For a connector operation: the name of the workspace's connection (the "
        "provider account, with its credentials) to call it through.",
    )
    params: dict[str, JsonValue] = Field(
        default_factory=dict,
        description="Parameters of the action; every string is a Liquid template unless the "
        "action says otherwise.",
    )
    purpose: MessagePurpose = Field(
        "marketing",
        description="Why this step uses the contact's data. For a message action, marketing "
        "messages meet the workspace's whole send-time policy (consent for the channel, "
        "frequency caps, quiet hours); transactional ones (a receipt, a password reset) only the "
        "suppression list. The processing log records it, with its legal basis: consent for "
        "marketing, contract for transactional.",
    )


class ConditionBranch(FormatModel):
    """One guarded way out of a condition node."""

    when: CelSource = Field(description="CEL boolean; the first branch whose when is true wins.")
    next: NodeId = Field(description="Node to go to when this branch is taken.")


class ConditionConfig(FormatModel):
    """Branches tried in order, and where to go when none matches."""

    branches: tuple[ConditionBranch, ...] = Field(
        min_length=1, description="Tried in order; the first true one is taken."
    )
    default: NodeId = Field(description="Node to go to when no branch matches.")


class DelayUntilTimeOfDay(FormatModel):
    """Wait until the next occurrence of a local time, optionally only on some weekdays."""

    time: TimeOfDay = Field(description="HH:MM, 24-hour.")
    timezone: ZoneOrContact = Field(
        "contact",
        description='"contact" for the contact\'s own time zone (UTC when unknown), or an IANA '
        "zone.",
    )
    days: tuple[Weekday, ...] | None = Field(
        None, min_length=1, description="Allowed weekdays (mon..sun); omitted means every day."
    )

    @model_validator(mode="after")
    def _days_unique(self) -> Self:
        if self.days is not None and len(set(self.days)) != len(self.days):
            raise domain_error("duplicate", "lists a weekday twice", at=("days",))
        return self


class DelayConfig(FormatModel):
    """How long to wait: exactly one of duration, until or timeOfDay."""

    model_config = ConfigDict(json_schema_extra=one_of_schema("duration", "until", "timeOfDay"))

    duration: DurationValue | None = Field(None, description="Wait this long (PT0S is allowed).")
    until: Timestamp | None = Field(
        None, description="Wait until this RFC 3339 timestamp (continue at once if it has passed)."
    )
    time_of_day: DelayUntilTimeOfDay | None = Field(
        None, description="Wait until the next matching local time of day."
    )

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        exactly_one(self, ("duration", "until", "time_of_day"))
        return self


class ParallelConfig(FormatModel):
    """Fan out: every branch runs; a join (if any) waits for them."""

    branches: tuple[NodeId, ...] = Field(
        min_length=2, description="First node of each branch; at least two, all different."
    )
    join: NodeId | None = Field(
        None,
        description="The join node where the branches meet; omitted: the branches run "
        "independently and the parallel node has no continuation.",
    )

    @model_validator(mode="after")
    def _branches_unique(self) -> Self:
        seen: set[str] = set()
        for index, branch in enumerate(self.branches):
            if branch in seen:
                raise domain_error(
                    "duplicate", f"branch {branch!r} is listed twice", at=("branches", index)
                )
            seen.add(branch)
        return self


class JoinConfig(FormatModel):
    """How a join completes."""

    mode: Literal["all", "any"] = Field(
        "all",
        description='"all": continue when every branch arrived; "any": continue with the first '
        "and cancel the others.",
    )


class WaitForEventConfig(FormatModel):
    """Wait for a contact's event, optionally correlated with the entry event, with a timeout."""

    model_config = ConfigDict(
        json_schema_extra={
            "dependentRequired": {"timeout": ["onTimeout"], "onTimeout": ["timeout"]}
        }
    )

    event: EventName = Field(description="Name of the awaited event.")
    condition: CelSource | None = Field(
        None, description="CEL boolean; only a matching event ends the wait (event = awaited one)."
    )
    correlation_key: Annotated[str, Field(pattern=ATTRIBUTE_PATTERN)] | None = Field(
        None,
        description="A key present in the execution input and in the awaited event's properties; "
        "the event must carry the same value (e.g. cartId).",
    )
    timeout: DurationValue | None = Field(
        None, description="Give up after this long; requires onTimeout."
    )
    on_timeout: NodeId | None = Field(
        None, description="Node to go to on timeout; requires timeout."
    )

    @model_validator(mode="after")
    def _timeout_pair(self) -> Self:
        if self.timeout is not None and self.on_timeout is None:
            raise domain_error("required", "onTimeout is required with timeout", at=("onTimeout",))
        if self.on_timeout is not None and self.timeout is None:
            raise domain_error("required", "timeout is required with onTimeout", at=("timeout",))
        return self


class SplitVariant(FormatModel):
    """One arm of a weighted random split."""

    name: Name = Field(description="Variant name, unique in the split; reported in analytics.")
    weight: PositiveNumber = Field(
        description="Relative weight (> 0); the chance is weight / sum of weights."
    )
    next: NodeId = Field(description="Node that contacts in this variant go to.")


class SplitConfig(FormatModel):
    """Weighted random assignment, for A/B tests and holdout groups."""

    variants: tuple[SplitVariant, ...] = Field(
        min_length=2, description="At least two variants with unique names."
    )

    @model_validator(mode="after")
    def _names_unique(self) -> Self:
        seen: set[str] = set()
        for index, variant in enumerate(self.variants):
            if variant.name in seen:
                raise domain_error(
                    "duplicate",
                    f"variant name {variant.name!r} is used twice",
                    at=("variants", index, "name"),
                )
            seen.add(variant.name)
        return self

    @property
    def total_weight(self) -> float:
        return float(sum(variant.weight for variant in self.variants))


class EmptyConfig(FormatModel):
    """End nodes take no configuration; ``{}`` is accepted for uniformity."""


_NEXT = "Node to continue with; omitted: this path ends here."


class NodeBase(FormatModel):
    """Fields every node has."""

    id: NodeId = Field(description="Unique id of the node, referenced by next and friends.")
    type: str = Field(description="The kind of node.")
    name: Name | None = Field(None, description="Human-readable label.")
    description: Description | None = Field(None, description="Notes for people.")


class ActionNode(NodeBase):
    """Runs an action (HTTP call, variable assignment, connector operation)."""

    type: Literal["action"] = Field(description="Runs an action.")
    config: ActionConfig = Field(description="The action and its parameters.")
    next: NodeId | None = Field(None, description=_NEXT)
    retry: RetryOverride | None = Field(
        None, description="Overrides the workflow's errorHandling for this node."
    )
    on_error: NodeId | None = Field(
        None,
        description="Node to go to once retries are exhausted; omitted: the execution fails and "
        "goes to the dead-letter queue.",
    )


class ConditionNode(NodeBase):
    """Routes to the first branch whose CEL condition is true."""

    type: Literal["condition"] = Field(description="Branches on CEL conditions.")
    config: ConditionConfig = Field(description="Branches and default.")


class DelayNode(NodeBase):
    """Waits for a duration, until a moment, or until a local time of day."""

    type: Literal["delay"] = Field(description="Waits.")
    config: DelayConfig = Field(description="What to wait for.")
    next: NodeId | None = Field(None, description=_NEXT)


class ParallelNode(NodeBase):
    """Runs several branches at once."""

    type: Literal["parallel"] = Field(description="Fans out.")
    config: ParallelConfig = Field(description="Branches and their join.")


class JoinNode(NodeBase):
    """Where the branches of one parallel node meet."""

    type: Literal["join"] = Field(description="Waits for parallel branches.")
    config: JoinConfig = Field(default_factory=JoinConfig, description="Completion mode.")
    next: NodeId | None = Field(None, description=_NEXT)


class WaitForEventNode(NodeBase):
    """Waits for an event from the same contact."""

    type: Literal["wait_for_event"] = Field(description="Waits for an event.")
    config: WaitForEventConfig = Field(description="The awaited event and the timeout.")
    next: NodeId | None = Field(None, description=_NEXT + " Taken when the event arrives.")


class SplitNode(NodeBase):
    """Assigns the contact to a random variant by weight."""

    type: Literal["split"] = Field(description="Weighted random split.")
    config: SplitConfig = Field(description="The variants.")


class EndNode(NodeBase):
    """Ends the path explicitly."""

    type: Literal["end"] = Field(description="Ends the path.")
    config: EmptyConfig = Field(default_factory=EmptyConfig, description="Always empty.")


Node = Annotated[
    ActionNode
    | ConditionNode
    | DelayNode
    | ParallelNode
    | JoinNode
    | WaitForEventNode
    | SplitNode
    | EndNode,
    Field(discriminator="type"),
]
NODE_TYPES = (
    "action",
    "condition",
    "delay",
    "parallel",
    "join",
    "wait_for_event",
    "split",
    "end",
)
WAIT_NODE_TYPES = frozenset({"delay", "wait_for_event"})
