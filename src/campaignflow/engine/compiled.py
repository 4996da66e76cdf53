"""A workflow version made ready to run: validated once, expressions compiled once, per process.

Workers see the same few versions again and again; compiling a definition costs milliseconds
(CEL, Liquid, graph checks), running a step microseconds. :class:`CompiledWorkflows` keeps the
compiled form of every version a worker has met, bounded, keyed by (workspace, workflow,
version) — versions are immutable, so an entry never goes stale.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from liquid import BoundTemplate

from campaignflow.domain.cel import CompiledExpression
from campaignflow.domain.problems import PathPart, to_pointer
from campaignflow.domain.validation import validate_definition
from campaignflow.domain.workflow import (
    ActionNode,
    ErrorHandling,
    JoinNode,
    Node,
    ParallelNode,
    WorkflowDefinition,
)
from campaignflow.errors import InvalidDefinition

VersionKey = tuple[str, str, int]
Loader = Callable[[str, str, int], Awaitable[Mapping[str, Any]]]


@dataclass(frozen=True, slots=True)
class TemplateSlot:
    """Where a Liquid template sits inside an action's params."""

    path: tuple[PathPart, ...]
    template: BoundTemplate


@dataclass(frozen=True, slots=True)
class CompiledWorkflow:
    definition: WorkflowDefinition
    expressions: Mapping[str, CompiledExpression]
    node_index: Mapping[str, int]
    join_of_parallel: Mapping[str, str]
    template_slots: Mapping[str, tuple[TemplateSlot, ...]]
    retry_policies: Mapping[str, ErrorHandling]

    def node(self, node_id: str) -> Node:
        return self.definition.nodes_by_id[node_id]

    def expression(self, node_id: str, *path: PathPart) -> CompiledExpression:
        """The compiled CEL at ``/nodes/<index of node_id>/<path…>``."""
        return self.expressions[to_pointer(("nodes", self.node_index[node_id], *path))]

    def parallel_of_join(self, join_id: str) -> str | None:
        for parallel, join in self.join_of_parallel.items():
            if join == join_id:
                return parallel
        return None


def compile_workflow(document: Mapping[str, Any]) -> CompiledWorkflow:
    """Validate ``document`` (a stored version) and keep what running it needs.

    A stored version was valid when it was saved; if it is not any more (a newer release
    tightened a rule), :class:`InvalidDefinition` says why instead of running it half.
    """
    result = validate_definition(document)
    definition = result.definition
    if definition is None or not result.ok:
        raise InvalidDefinition(result.problems)
    index = {node.id: position for position, node in enumerate(definition.nodes)}
    joins = {
        node.id: node.config.join
        for node in definition.nodes
        if isinstance(node, ParallelNode) and node.config.join is not None
    }
    slots: dict[str, tuple[TemplateSlot, ...]] = {}
    policies: dict[str, ErrorHandling] = {}
    for node in definition.nodes:
        if isinstance(node, ActionNode):
            prefix = ("nodes", index[node.id], "config", "params")
            slots[node.id] = tuple(_template_slots(prefix, node.config.params, result.templates))
            policies[node.id] = definition.error_handling.with_override(node.retry)
    return CompiledWorkflow(definition, result.expressions, index, joins, slots, policies)


def _template_slots(
    prefix: tuple[PathPart, ...], params: object, templates: Mapping[str, BoundTemplate]
) -> Iterator[TemplateSlot]:
    pending: list[tuple[tuple[PathPart, ...], object]] = [((), params)]
    while pending:
        path, value = pending.pop()
        if isinstance(value, str):
            template = templates.get(to_pointer((*prefix, *path)))
            if template is not None:
                yield TemplateSlot(path, template)
        elif isinstance(value, Mapping):
            pending.extend(((*path, key), child) for key, child in value.items())
        elif isinstance(value, list):
            pending.extend(((*path, position), child) for position, child in enumerate(value))


def join_node(compiled: CompiledWorkflow, join_id: str) -> JoinNode:
    node = compiled.node(join_id)
    if not isinstance(node, JoinNode):
        raise TypeError(f"{join_id!r} is not a join node")
    return node


class CompiledWorkflows:
    """A bounded, process-wide cache of compiled versions, filled through ``loader``."""

    def __init__(self, loader: Loader, *, capacity: int = 1000) -> None:
        self._loader = loader
        self._capacity = capacity
        self._entries: OrderedDict[VersionKey, CompiledWorkflow] = OrderedDict()
        self._lock = asyncio.Lock()

    async def get(self, workspace_id: str, workflow_id: str, version: int) -> CompiledWorkflow:
        key = (workspace_id, workflow_id, version)
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
            return found
        async with self._lock:  # one compile per version, even when a batch asks many times
            found = self._entries.get(key)
            if found is None:
                found = compile_workflow(await self._loader(*key))
                self._entries[key] = found
                while len(self._entries) > self._capacity:
                    self._entries.popitem(last=False)
        return found
