"""Workflow definitions as a use case: validate, version, publish, archive.

This is the one place where the rules of the workflows resource live — the REST routes, the
``apply`` command and (later) GraphQL are thin translations onto these methods. Storage and
validation are handed in, so the rules are tested against real databases without an HTTP layer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from campaignflow.domain.actions import ActionCatalog
from campaignflow.domain.problems import Problem, document_order
from campaignflow.domain.validation import (
    ValidationResult,
    canonical_document,
    content_hash,
    validate_definition,
)
from campaignflow.domain.workflow import WorkflowDefinition
from campaignflow.errors import Conflict, InvalidDefinition, NotFound
from campaignflow.store.workflows import (
    VersionRecord,
    WorkflowRecord,
    WorkflowStore,
    WorkflowSummaryRecord,
)


class WorkflowStatus(StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    PAUSED = "paused"
    ARCHIVED = "archived"


class ApplyAction(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@dataclass(frozen=True, slots=True)
class ApplyOutcome:
    record: WorkflowRecord
    action: ApplyAction


_ACTIVATABLE = frozenset({WorkflowStatus.DRAFT, WorkflowStatus.PAUSED, WorkflowStatus.ACTIVE})
_PAUSABLE = frozenset({WorkflowStatus.ACTIVE, WorkflowStatus.PAUSED})
_ARCHIVABLE = frozenset(WorkflowStatus)


@dataclass(frozen=True, slots=True)
class WorkflowService:
    """Rules of the workflows resource over a :class:`WorkflowStore`."""

    store: WorkflowStore
    catalog: ActionCatalog | None = None

    def validate(self, document: object) -> WorkflowDefinition:
        """Return the typed definition or raise :class:`InvalidDefinition` with every problem."""
        result: ValidationResult = validate_definition(document, catalog=self.catalog)
        if result.definition is None or not result.ok:
            raise InvalidDefinition(result.problems)
        return result.definition

    async def create(self, workspace_id: str, document: object) -> WorkflowRecord:
        definition = self.validate(document)
        return await self.store.create(
            workspace_id,
            definition.workflow_id,
            name=definition.name,
            definition=canonical_document(definition),
            content_hash=content_hash(definition),
        )

    async def update(
        self,
        workspace_id: str,
        workflow_id: str,
        document: object,
        *,
        expected_version: int | None = None,
    ) -> tuple[WorkflowRecord, bool]:
        """Store the document as a new version; an identical document makes none.

        Returns the record and whether a new version was created. ``expected_version`` is the
        optimistic-concurrency guard (the API's ``If-Match``): a stale value raises
        :class:`PreconditionFailed` even when the content is unchanged, so a client never
        mistakes someone else's edit for its own.
        """
        definition = self._validate_for_path(workflow_id, document)
        current = await self.store.get(workspace_id, workflow_id)
        _refuse_archived(current, "update")
        digest = content_hash(definition)
        if digest == current.content_hash and expected_version in (None, current.version):
            return current, False
        record = await self.store.add_version(
            workspace_id,
            workflow_id,
            name=definition.name,
            definition=canonical_document(definition),
            content_hash=digest,
            expected_version=expected_version,
        )
        return record, True

    async def apply(self, workspace_id: str, document: object) -> ApplyOutcome:
        """Create or update from a file, idempotently (configuration as code)."""
        definition = self.validate(document)
        try:
            current = await self.store.get(workspace_id, definition.workflow_id)
        except NotFound:
            record = await self.create(workspace_id, document)
            return ApplyOutcome(record, ApplyAction.CREATED)
        if current.status == WorkflowStatus.ARCHIVED:
            raise Conflict(f"Workflow {current.id!r} is archived; choose another workflowId.")
        record, changed = await self.update(workspace_id, current.id, document)
        return ApplyOutcome(record, ApplyAction.UPDATED if changed else ApplyAction.UNCHANGED)

    async def get(self, workspace_id: str, workflow_id: str) -> WorkflowRecord:
        return await self.store.get(workspace_id, workflow_id)

    async def list_workflows(
        self,
        workspace_id: str,
        *,
        status: WorkflowStatus | None = None,
        name_contains: str | None = None,
        after: str | None = None,
        limit: int = 50,
    ) -> list[WorkflowSummaryRecord]:
        return await self.store.list(
            workspace_id,
            status=status.value if status else None,
            name_contains=name_contains,
            after=after,
            limit=limit,
        )

    async def versions(
        self, workspace_id: str, workflow_id: str, *, after: int | None = None, limit: int = 50
    ) -> list[VersionRecord]:
        return await self.store.list_versions(workspace_id, workflow_id, after=after, limit=limit)

    async def activate(self, workspace_id: str, workflow_id: str) -> WorkflowRecord:
        return await self._transition(
            workspace_id, workflow_id, WorkflowStatus.ACTIVE, _ACTIVATABLE
        )

    async def pause(self, workspace_id: str, workflow_id: str) -> WorkflowRecord:
        return await self._transition(workspace_id, workflow_id, WorkflowStatus.PAUSED, _PAUSABLE)

    async def archive(self, workspace_id: str, workflow_id: str) -> WorkflowRecord:
        """Archive: no new executions start; running ones finish on their pinned version."""
        return await self._transition(
            workspace_id, workflow_id, WorkflowStatus.ARCHIVED, _ARCHIVABLE
        )

    async def _transition(
        self,
        workspace_id: str,
        workflow_id: str,
        target: WorkflowStatus,
        allowed_from: frozenset[WorkflowStatus],
    ) -> WorkflowRecord:
        return await self.store.set_status(
            workspace_id,
            workflow_id,
            target.value,
            allowed_from=[status.value for status in allowed_from],
        )

    def _validate_for_path(self, workflow_id: str, document: object) -> WorkflowDefinition:
        """Validate, and require the document's ``workflowId`` to match the resource's id."""
        result = validate_definition(document, catalog=self.catalog)
        problems = list(result.problems)
        if isinstance(document, Mapping) and _mismatched_id(document, workflow_id):
            problems.append(
                Problem(
                    ("workflowId",),
                    f"must equal the id in the URL ({workflow_id!r}); "
                    "a workflow cannot be renamed to another id",
                    "id_mismatch",
                )
            )
        if problems or result.definition is None:
            raise InvalidDefinition(sorted(problems, key=document_order))
        return result.definition


def _mismatched_id(document: Mapping[str, Any], workflow_id: str) -> bool:
    value = document.get("workflowId")
    return isinstance(value, str) and value != workflow_id


def _refuse_archived(record: WorkflowRecord, verb: str) -> None:
    if record.status == WorkflowStatus.ARCHIVED:
        raise Conflict(f"Workflow {record.id!r} is archived; it cannot {verb}.")
