"""The routing table: every active behavior trigger and exit criterion, indexed for the router.

Built from the active workflows' latest definitions and the triggers managed through the API,
each condition compiled once (the definition was validated when it was saved). Rebuilt whole
when the catalog changes; matching an event never touches the database.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from campaignflow.domain.cel import CelContext, CompiledExpression, environment
from campaignflow.domain.durations import Duration
from campaignflow.domain.workflow import (
    BehaviorTrigger,
    EntryRules,
    ExitCriterion,
    Trigger,
)
from campaignflow.engine.compiled import CompiledWorkflow
from campaignflow.engine.interpreter import correlation_text
from campaignflow.store.admission import EntryRule
from campaignflow.triggers.index import IndexedTrigger, TriggerIndex
from campaignflow.triggers.prefilter import Prefilter, extract

MAX_DEDUP_KEY = 500  # trigger_dedup.dedup_key


@dataclass(frozen=True, slots=True)
class DedupSpec:
    key: CompiledExpression
    window: Duration

    def key_text(self, variables: Mapping[str, Any]) -> str:
        """The key's value as stored (text, at most the column's 500 characters). Raises
        :class:`CelEvaluationError` when it cannot be computed (a missing property): callers
        refuse the start then, since the trigger asked not to start twice and we cannot tell."""
        return correlation_text(self.key.evaluate(variables))[:MAX_DEDUP_KEY]


@dataclass(frozen=True, slots=True)
class StartSpec:
    """What a trigger starts, and the rules its starts obey."""

    workspace_id: str
    workflow_id: str
    version: int
    scope: str  # identifies the trigger for dedup keys: "<workflowId>#<index>" or "…#t:<id>"
    label: str  # the execution's ``trigger``
    start_node: str
    entry: EntryRules
    dedup: DedupSpec | None

    def entry_rule(self, now: datetime) -> EntryRule:
        cutoff = None
        if self.entry.reentry == "after" and self.entry.reentry_after is not None:
            cutoff = _subtract(now, self.entry.reentry_after)
        return EntryRule(self.entry.reentry, cutoff, self.entry.allow_concurrent)


@dataclass(frozen=True, slots=True)
class ExitSpec:
    workspace_id: str
    workflow_id: str
    index: int
    goal: bool


@dataclass(frozen=True, slots=True)
class SourceTrigger:
    """A trigger with where it came from."""

    scope: str
    trigger: Trigger
    condition: CompiledExpression | None
    dedup_key: CompiledExpression | None


class RoutingTable:
    """Behavior triggers and exit criteria of every active workflow, by (workspace, event)."""

    def __init__(
        self,
        starts: Iterable[IndexedTrigger[StartSpec]],
        exits: Iterable[IndexedTrigger[ExitSpec]],
    ) -> None:
        self.starts: TriggerIndex[StartSpec] = TriggerIndex(starts)
        self.exits: TriggerIndex[ExitSpec] = TriggerIndex(exits)

    @classmethod
    def empty(cls) -> RoutingTable:
        return cls((), ())

    @classmethod
    def build(
        cls, workflows: Sequence[tuple[str, int, CompiledWorkflow, Sequence[SourceTrigger]]]
    ) -> RoutingTable:
        """``workflows``: (workspace, version, compiled, extra triggers from the API)."""
        starts: list[IndexedTrigger[StartSpec]] = []
        exits: list[IndexedTrigger[ExitSpec]] = []
        for workspace_id, version, compiled, extra in workflows:
            for source in (*definition_triggers(compiled), *extra):
                indexed = _start(workspace_id, version, compiled, source)
                if indexed is not None:
                    starts.append(indexed)
            exits.extend(_exits(workspace_id, compiled))
        return cls(starts, exits)


def definition_triggers(compiled: CompiledWorkflow) -> list[SourceTrigger]:
    definition = compiled.definition
    found = []
    for index, trigger in enumerate(definition.triggers):
        found.append(
            SourceTrigger(
                scope=f"{definition.workflow_id}#{index}",
                trigger=trigger,
                condition=compiled.expressions.get(f"/triggers/{index}/condition"),
                dedup_key=compiled.expressions.get(f"/triggers/{index}/dedup/key"),
            )
        )
    return found


def compile_source(scope: str, trigger: Trigger) -> SourceTrigger:
    """A trigger from the API (validated when it was saved) with its expressions compiled."""
    env = environment(CelContext.TRIGGER)
    condition = env.compile(trigger.condition) if trigger.condition else None
    dedup_key = env.compile(trigger.dedup.key) if trigger.dedup else None
    return SourceTrigger(scope, trigger, condition, dedup_key)


def start_spec(
    workspace_id: str, version: int, compiled: CompiledWorkflow, source: SourceTrigger, label: str
) -> StartSpec:
    """What ``source`` starts in this workflow version (the router's and the scheduler's)."""
    definition = compiled.definition
    dedup = None
    if source.trigger.dedup is not None and source.dedup_key is not None:
        dedup = DedupSpec(source.dedup_key, source.trigger.dedup.window)
    return StartSpec(
        workspace_id=workspace_id,
        workflow_id=definition.workflow_id,
        version=version,
        scope=source.scope,
        label=label,
        start_node=definition.start_node_id,
        entry=definition.entry,
        dedup=dedup,
    )


def _start(
    workspace_id: str, version: int, compiled: CompiledWorkflow, source: SourceTrigger
) -> IndexedTrigger[StartSpec] | None:
    trigger = source.trigger
    if not isinstance(trigger, BehaviorTrigger):
        return None
    label = f"behavior:{trigger.name or trigger.event}"
    spec = start_spec(workspace_id, version, compiled, source, label)
    return IndexedTrigger(
        workspace_id=workspace_id,
        event_name=trigger.event,
        condition=source.condition,
        prefilter=extract(trigger.condition) if trigger.condition else Prefilter(()),
        value=spec,
    )


def _exits(workspace_id: str, compiled: CompiledWorkflow) -> list[IndexedTrigger[ExitSpec]]:
    found = []
    criteria: Sequence[ExitCriterion] = compiled.definition.exit_criteria
    for index, criterion in enumerate(criteria):
        condition = compiled.expressions.get(f"/exitCriteria/{index}/condition")
        found.append(
            IndexedTrigger(
                workspace_id=workspace_id,
                event_name=criterion.event,
                condition=condition,
                prefilter=extract(criterion.condition) if criterion.condition else Prefilter(()),
                value=ExitSpec(
                    workspace_id, compiled.definition.workflow_id, index, criterion.goal
                ),
            )
        )
    return found


def _subtract(moment: datetime, duration: Duration) -> datetime:
    """``moment - duration`` with calendar units honoured (a month back is a calendar month)."""
    return Duration(-duration.years, -duration.months, -duration.exact).add_to(moment)
