"""Triggers as a use case: validate, attach to a workflow, replace, delete, list.

Two kinds of trigger are visible here. Those created through ``/api/v1/triggers`` are stored
rows (``source`` ``api``), editable, each enabled or not on its own. Those declared in the
``triggers`` of a workflow's latest version (``source`` ``definition``) are shown read-only, with
the id ``"<workflowId>#<index>"``; they change only with the workflow, and are enabled exactly
when the workflow is active. Stored behavior triggers route events like declared ones, but only
while their workflow is active too (``triggers.router``).

Lists visit stored triggers first, in id order, then declared ones in (workflow id, index)
order; the last id seen is the whole cursor, since stored ids never contain ``#``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field, StrictBool, ValidationError

from campaignflow.domain.actions import ActionCatalog
from campaignflow.domain.cel import CelContext
from campaignflow.domain.content import ContentCheck
from campaignflow.domain.fields import FormatModel, WorkflowId
from campaignflow.domain.problems import Problem, document_order
from campaignflow.domain.pydantic_problems import json_type, problems_from_error
from campaignflow.domain.structure import field_vocabulary
from campaignflow.domain.triggers import (
    TRIGGER_ADAPTER,
    TRIGGER_TYPES,
    BehaviorTrigger,
    Trigger,
)
from campaignflow.errors import Conflict, InvalidDefinition, NotFound
from campaignflow.store.triggers import TriggerFields, TriggerRecord, TriggerStore
from campaignflow.store.workflows import WorkflowRecord

_DECLARED = "#"  # separates a workflow id from a trigger's index in the id of a declared trigger


class TriggerSource(StrEnum):
    API = "api"
    DEFINITION = "definition"


class TriggerType(StrEnum):
    BEHAVIOR = "behavior"
    TIME = "time"
    API = "api"


class TriggerDocument(FormatModel):
    """What a client sends to create or replace a trigger."""

    workflow_id: WorkflowId = Field(description="The workflow the trigger starts.")
    trigger: Trigger = Field(
        description="The trigger exactly as in a workflow's `triggers` (docs/workflow-format.md)."
    )
    enabled: StrictBool = Field(
        True, description="Whether it starts executions (while its workflow is active)."
    )


_VOCABULARY = field_vocabulary(TriggerDocument)
_TAG_CHOICES = {"trigger": TRIGGER_TYPES}


@dataclass(frozen=True, slots=True)
class TriggerView:
    """A trigger of either source, as the API shows it."""

    id: str
    workflow_id: str
    source: TriggerSource
    enabled: bool
    trigger: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    revision: int  # a stored trigger's revision; a declared one's workflow version


@dataclass(frozen=True, slots=True)
class TriggerFilters:
    workflow_id: str | None = None
    trigger_type: TriggerType | None = None
    enabled: bool | None = None
    source: TriggerSource | None = None


@dataclass(frozen=True, slots=True)
class TriggerService:
    """Rules of the triggers resource over a :class:`TriggerStore`."""

    store: TriggerStore

    def validate(self, document: object) -> TriggerDocument:
        """Return the typed document or raise :class:`InvalidDefinition` with every problem:
        its shape, and the CEL of ``condition`` and ``dedup.key`` (with line and column)."""
        problems, parsed = _structure(document)
        trigger = parsed.trigger if parsed is not None else _salvage(document, problems)
        if trigger is not None:
            problems += _cel_problems(trigger)
        if problems or parsed is None:
            ordered = sorted(problems, key=document_order)
            raise InvalidDefinition(ordered, f"The trigger has {len(ordered)} problem(s).")
        return parsed

    async def create(self, workspace_id: str, document: object) -> TriggerView:
        """Attach a new trigger to a workflow of the workspace (:class:`WorkflowNotFound` if
        it has no such workflow). An ``api`` trigger is stored as documentation only: any
        workflow can be started through its execute endpoint without one."""
        fields = _fields(self.validate(document))
        return _stored(await self.store.create(workspace_id, fields))

    async def get(self, workspace_id: str, trigger_id: str) -> TriggerView:
        if _is_declared(trigger_id):
            return await self._declared(workspace_id, trigger_id)
        return _stored(await self.store.get(workspace_id, trigger_id))

    async def replace(
        self,
        workspace_id: str,
        trigger_id: str,
        document: object,
        *,
        expected_revisions: Collection[int] | None = None,
    ) -> TriggerView:
        """Replace a stored trigger; ``expected_revisions`` is the If-Match guard. A declared
        trigger is a :class:`Conflict`: it changes with its workflow's definition."""
        await self._refuse_declared(workspace_id, trigger_id)
        fields = _fields(self.validate(document))
        record = await self.store.replace(
            workspace_id, trigger_id, fields, expected_revisions=expected_revisions
        )
        return _stored(record)

    async def delete(
        self,
        workspace_id: str,
        trigger_id: str,
        *,
        expected_revisions: Collection[int] | None = None,
    ) -> None:
        await self._refuse_declared(workspace_id, trigger_id)
        await self.store.delete(workspace_id, trigger_id, expected_revisions=expected_revisions)

    async def list_triggers(
        self,
        workspace_id: str,
        filters: TriggerFilters,
        *,
        after: str | None = None,
        limit: int = 50,
    ) -> list[TriggerView]:
        """Up to ``limit`` triggers after the id ``after``: stored ones by id, then declared
        ones by workflow id and index (see the module's docstring)."""
        in_declared = after is not None and _is_declared(after)
        declared_after = _declared_key(after) if after is not None else None
        found: list[TriggerView] = []
        if not in_declared and filters.source in (None, TriggerSource.API):
            records = await self.store.list(
                workspace_id,
                workflow_id=filters.workflow_id,
                trigger_type=filters.trigger_type,
                enabled=filters.enabled,
                after=after,
                limit=limit,
            )
            found = [_stored(record) for record in records]
        if len(found) < limit and filters.source in (None, TriggerSource.DEFINITION):
            found += await self._list_declared(
                workspace_id, filters, declared_after, limit - len(found)
            )
        return found

    async def _list_declared(
        self,
        workspace_id: str,
        filters: TriggerFilters,
        after: tuple[str, int] | None,
        limit: int,
    ) -> list[TriggerView]:
        found: list[TriggerView] = []
        start, inclusive = (after[0], True) if after else (None, False)
        while len(found) < limit:
            workflows = await self.store.declaring_workflows(
                workspace_id,
                workflow_id=filters.workflow_id,
                active=filters.enabled,
                start=start,
                inclusive=inclusive,
                limit=limit,
            )
            for workflow in workflows:
                found += [
                    view
                    for index, view in _declared_views(workflow)
                    if (after is None or (workflow.id, index) > after)
                    and filters.trigger_type in (None, view.trigger.get("type"))
                ]
            if len(workflows) < limit:
                break
            start, inclusive = workflows[-1].id, False
        return found[:limit]

    async def _declared(self, workspace_id: str, trigger_id: str) -> TriggerView:
        key = _declared_key(trigger_id)
        if key is not None:
            workflows = await self.store.declaring_workflows(
                workspace_id, workflow_id=key[0], limit=1
            )
            for index, view in _declared_views(*workflows[:1]):
                if index == key[1]:
                    return view
        raise NotFound(f"Trigger {trigger_id!r} does not exist.")

    async def _refuse_declared(self, workspace_id: str, trigger_id: str) -> None:
        if not _is_declared(trigger_id):
            return
        view = await self._declared(workspace_id, trigger_id)
        raise Conflict(
            f"Trigger {trigger_id!r} is declared in the definition of workflow "
            f"{view.workflow_id!r}; edit that workflow to change or remove it."
        )


# --- views --------------------------------------------------------------------------------


def _stored(record: TriggerRecord) -> TriggerView:
    return TriggerView(
        id=record.id,
        workflow_id=record.workflow_id,
        source=TriggerSource.API,
        enabled=record.enabled,
        trigger=record.definition,
        created_at=record.created_at,
        updated_at=record.updated_at,
        revision=record.revision,
    )


def _declared_views(*workflows: WorkflowRecord) -> Iterator[tuple[int, TriggerView]]:
    """The triggers declared in each workflow's latest version, with their index."""
    for workflow in workflows:
        declared = workflow.definition.get("triggers") or []
        for index, trigger in enumerate(declared):
            yield (
                index,
                TriggerView(
                    id=f"{workflow.id}{_DECLARED}{index}",
                    workflow_id=workflow.id,
                    source=TriggerSource.DEFINITION,
                    enabled=workflow.status == "active",
                    trigger=trigger,
                    created_at=workflow.created_at,
                    updated_at=workflow.updated_at,
                    revision=workflow.version,
                ),
            )


def _is_declared(trigger_id: str) -> bool:
    """Whether the id names a declared trigger (stored ids never contain the separator)."""
    return _DECLARED in trigger_id


def _declared_key(trigger_id: str) -> tuple[str, int] | None:
    """``(workflow id, index)`` of a declared trigger's id; ``None`` if it is not one."""
    workflow_id, separator, index = trigger_id.partition(_DECLARED)
    if not (separator and index.isascii() and index.isdecimal() and len(index) <= 6):
        return None
    return (workflow_id, int(index)) if str(int(index)) == index else None


# --- validation ---------------------------------------------------------------------------


def _structure(document: object) -> tuple[list[Problem], TriggerDocument | None]:
    if not isinstance(document, Mapping):
        problem = Problem((), f"must be a JSON object, not {json_type(document)}", "type")
        return [problem], None
    try:
        return [], TriggerDocument.model_validate(document)
    except ValidationError as exc:
        problems = problems_from_error(
            exc, document, vocabulary=_VOCABULARY, tag_choices=_TAG_CHOICES
        )
        return problems, None


def _salvage(document: object, problems: list[Problem]) -> Trigger | None:
    """The trigger of a document whose other members have problems, so its CEL is still
    checked (every problem is reported at once)."""
    if not isinstance(document, Mapping) or any(p.path[:1] == ("trigger",) for p in problems):
        return None
    try:
        return TRIGGER_ADAPTER.validate_python(document.get("trigger"))
    except ValidationError:
        return None


def _cel_problems(trigger: Trigger) -> list[Problem]:
    """The same checks a workflow's triggers get (``domain.content``), located in the body."""
    check = ContentCheck(ActionCatalog())
    check.condition(("trigger", "condition"), trigger.condition, CelContext.TRIGGER)
    if trigger.dedup is not None:
        check.expression(("trigger", "dedup", "key"), trigger.dedup.key, CelContext.TRIGGER)
    return check.problems


def _fields(document: TriggerDocument) -> TriggerFields:
    trigger = document.trigger
    return TriggerFields(
        workflow_id=document.workflow_id,
        type=trigger.type,
        event_name=trigger.event if isinstance(trigger, BehaviorTrigger) else None,
        definition=TRIGGER_ADAPTER.dump_python(
            trigger, mode="json", by_alias=True, exclude_none=True
        ),
        enabled=document.enabled,
    )
