"""The workflow definition format as typed, frozen pydantic models.

These models are the single source of the format: the validator parses with them, the JSON Schema
in ``docs/`` is generated from them, and the engine reads them. Keys are camelCase on the wire and
snake_case in Python. Rules that need the whole document (references between nodes, CEL, Liquid,
the action catalog) live in :mod:`campaignflow.domain.validation`, not here, so one broken node
does not hide the problems of the others.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Annotated

from pydantic import Field, StrictInt

from campaignflow.domain.fields import Description, FormatModel, Name, NodeId, WorkflowId
from campaignflow.domain.nodes import (
    NODE_TYPES,
    WAIT_NODE_TYPES,
    ActionConfig,
    ActionNode,
    ConditionBranch,
    ConditionConfig,
    ConditionNode,
    DelayConfig,
    DelayNode,
    DelayUntilTimeOfDay,
    EmptyConfig,
    EndNode,
    JoinConfig,
    JoinNode,
    Node,
    NodeBase,
    ParallelConfig,
    ParallelNode,
    SplitConfig,
    SplitNode,
    SplitVariant,
    WaitForEventConfig,
    WaitForEventNode,
    Weekday,
)
from campaignflow.domain.policies import (
    EntryRules,
    ErrorHandling,
    ExitCriterion,
    RetryOverride,
    RetryPolicyName,
)
from campaignflow.domain.triggers import (
    TRIGGER_TYPES,
    ApiTrigger,
    BehaviorTrigger,
    Dedup,
    RelativeTime,
    TimeTrigger,
    Trigger,
    TriggerBase,
)

MAX_NODES = 500

__all__ = [
    "MAX_NODES",
    "NODE_TYPES",
    "TRIGGER_TYPES",
    "WAIT_NODE_TYPES",
    "ActionConfig",
    "ActionNode",
    "ApiTrigger",
    "BehaviorTrigger",
    "ConditionBranch",
    "ConditionConfig",
    "ConditionNode",
    "Dedup",
    "DelayConfig",
    "DelayNode",
    "DelayUntilTimeOfDay",
    "EmptyConfig",
    "EndNode",
    "EntryRules",
    "ErrorHandling",
    "ExitCriterion",
    "JoinConfig",
    "JoinNode",
    "Node",
    "NodeBase",
    "ParallelConfig",
    "ParallelNode",
    "RelativeTime",
    "RetryOverride",
    "RetryPolicyName",
    "SplitConfig",
    "SplitNode",
    "SplitVariant",
    "TimeTrigger",
    "Trigger",
    "TriggerBase",
    "WaitForEventConfig",
    "WaitForEventNode",
    "Weekday",
    "WorkflowDefinition",
]


class WorkflowDefinition(FormatModel):
    """A campaignflow workflow: triggers that start it and the graph of nodes it runs."""

    schema_uri: str | None = Field(
        None,
        alias="$schema",
        description="Optional URI of this JSON Schema, for editors; not part of the content.",
    )
    workflow_id: WorkflowId = Field(
        description="Stable slug identifying the workflow (the id in the API path)."
    )
    name: Name = Field(description="Human-readable name, 1..200 characters.")
    description: Description | None = Field(None, description="What the workflow is for.")
    version: Annotated[StrictInt, Field(ge=1)] | None = Field(
        None,
        description="Assigned by the server on every change; accepted in input and ignored "
        "(it is not part of the content and not compared).",
    )
    triggers: tuple[Trigger, ...] = Field(min_length=1, description="What starts an execution.")
    entry: EntryRules = Field(default_factory=EntryRules, description="Entry and re-entry rules.")
    exit_criteria: tuple[ExitCriterion, ...] = Field(
        (), description="Events that end an execution early (goals)."
    )
    error_handling: ErrorHandling = Field(
        description="Retry policy for actions; {} takes every default."
    )
    start: NodeId | None = Field(None, description="Id of the first node; default: nodes[0].")
    nodes: tuple[Node, ...] = Field(
        min_length=1, max_length=MAX_NODES, description="The graph, 1..500 nodes."
    )

    @property
    def start_node_id(self) -> str:
        return self.start if self.start is not None else self.nodes[0].id

    @cached_property
    def nodes_by_id(self) -> Mapping[str, Node]:
        """Nodes by id (ids are unique in a valid definition)."""
        return {node.id: node for node in self.nodes}
