"""The triggers of every active workflow, as the router and the scheduler load them.

One loader for both: the active workflows' latest versions (compiled through the shared cache)
and the enabled triggers managed through the API, each with its expressions compiled and its
scope (``"<workflowId>#<index>"`` for a definition's trigger, ``"<workflowId>#t:<id>"`` for a
stored one). A workflow that no longer validates, or a stored trigger that no longer parses,
turns its own triggers off and nothing else.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from campaignflow.domain.triggers import TRIGGER_ADAPTER, Trigger
from campaignflow.engine.compiled import CompiledWorkflow, CompiledWorkflows
from campaignflow.errors import InvalidDefinition
from campaignflow.store.catalog import load_active
from campaignflow.store.database import Database
from campaignflow.triggers.routing import SourceTrigger, compile_source, definition_triggers

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CatalogWorkflow:
    """An active workflow's latest version with the triggers managed through the API."""

    workspace_id: str
    version: int
    compiled: CompiledWorkflow
    extra: list[SourceTrigger]
    updated_at: datetime
    # When each stored trigger (by scope) last changed.
    extra_updated_at: dict[str, datetime] = field(default_factory=dict)

    @property
    def sources(self) -> list[SourceTrigger]:
        """Every trigger: the definition's, then the API's."""
        return [*definition_triggers(self.compiled), *self.extra]

    def since(self, scope: str) -> datetime:
        """When this trigger last changed: its workflow was activated or published, or (for a
        stored trigger) the trigger itself was edited or enabled."""
        stored = self.extra_updated_at.get(scope)
        return self.updated_at if stored is None else max(self.updated_at, stored)


async def load_catalog(database: Database, compiled: CompiledWorkflows) -> list[CatalogWorkflow]:
    workflows, stored = await load_active(database)
    extra: dict[tuple[str, str], list[tuple[SourceTrigger, datetime]]] = {}
    for trigger in stored:
        parsed = parse_stored_trigger(trigger.definition)
        if parsed is not None:
            scope = f"{trigger.workflow_id}#t:{trigger.id}"
            key = (trigger.workspace_id, trigger.workflow_id)
            extra.setdefault(key, []).append((compile_source(scope, parsed), trigger.updated_at))
    entries = []
    for workflow in workflows:
        try:
            version = await compiled.get(
                workflow.workspace_id, workflow.workflow_id, workflow.version
            )
        except InvalidDefinition as exc:
            logger.error(
                "workflow %s v%s no longer validates; its triggers are off: %s",
                workflow.workflow_id,
                workflow.version,
                exc,
            )
            continue
        sources = extra.get((workflow.workspace_id, workflow.workflow_id), [])
        entries.append(
            CatalogWorkflow(
                workflow.workspace_id,
                workflow.version,
                version,
                [source for source, _ in sources],
                workflow.updated_at,
                {source.scope: updated_at for source, updated_at in sources},
            )
        )
    return entries


def parse_stored_trigger(document: dict[str, Any]) -> Trigger | None:
    """A stored trigger (validated when it was saved); ``None`` if a newer release no longer
    accepts it, so one bad row turns one trigger off, not the router."""
    try:
        return TRIGGER_ADAPTER.validate_python(document)
    except ValidationError:
        logger.exception("a stored trigger no longer validates; it is off")
        return None
