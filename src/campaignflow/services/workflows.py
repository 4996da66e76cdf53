"""Workflow definitions as a use case: validate, version, publish, archive.

This is the one place where the rules of the workflows resource live — the REST routes, the
``apply`` command and (later) GraphQL are thin translations onto these methods. Storage and
validation are handed in, so the rules are tested against real databases without an HTTP layer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from campaignflow.domain.actions import ActionCatalog
from campaignflow.domain.problems import Problem, document_order
from campaignflow.domain.validation import (
    canonical_document,
    canonical_hash,
    validate_definition,
)
from campaignflow.domain.workflow import WorkflowDefinition
from campaignflow.errors import Conflict, InvalidDefinition, NotFound
from campaignflow.integrations.catalog import connector_catalog
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
    catalog: ActionCatalog = field(default_factory=connector_catalog)

    def validate(self, document: object, *, workflow_id: str | None = None) -> WorkflowDefinition:
        """Return the typed definition or raise :class:`InvalidDefinition` with every problem.

        With ``workflow_id`` (an update of that resource) the document's ``workflowId`` must
        match it: a workflow cannot be moved to another id.
        """
        result = validate_definition(document, catalog=self.catalog)
        problems = list(result.problems)
        if workflow_id is not None and _mismatched_id(document, workflow_id):
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

    async def create(self, workspace_id: str, document: object) -> WorkflowRecord:
        return await self._insert(workspace_id, self.validate(document))

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
        definition = self.validate(document, workflow_id=workflow_id)
        current = await self.store.get(workspace_id, workflow_id)
        return await self._publish(current, definition, expected_version)

    async def apply(self, workspace_id: str, document: object) -> ApplyOutcome:
        """Create or update from a file, idempotently (configuration as code)."""
        definition = self.validate(document)
        try:
            current = await self.store.get(workspace_id, definition.workflow_id)
        except NotFound:
            record = await self._insert(workspace_id, definition)
            return ApplyOutcome(record, ApplyAction.CREATED)
        if current.status == WorkflowStatus.ARCHIVED:
            raise Conflict(f"Workflow {current.id!r} is archived; choose another workflowId.")
        record, changed = await self._publish(current, definition, None)
        return ApplyOutcome(record, ApplyAction.UPDATED if changed else ApplyAction.UNCHANGED)

    async def _insert(self, workspace_id: str, definition: WorkflowDefinition) -> WorkflowRecord:
        canonical = canonical_document(definition)
        return await self.store.create(
            workspace_id,
            definition.workflow_id,
            name=definition.name,
            definition=canonical,
            content_hash=canonical_hash(canonical),
        )

    async def _publish(
        self,
        current: WorkflowRecord,
        definition: WorkflowDefinition,
        expected_version: int | None,
    ) -> tuple[WorkflowRecord, bool]:
        """Add ``definition`` as the next version of ``current`` unless it is the same content."""
        _refuse_archived(current, "update")
        canonical = canonical_document(definition)
        digest = canonical_hash(canonical)
        if digest == current.content_hash and expected_version in (None, current.version):
            return current, False
        record = await self.store.add_version(
            current.workspace_id,
            current.id,
            name=definition.name,
            definition=canonical,
            content_hash=digest,
            expected_version=expected_version,
        )
        return record, True

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


def _mismatched_id(document: object, workflow_id: str) -> bool:
    if not isinstance(document, Mapping):
        return False
    value = document.get("workflowId")
    return isinstance(value, str) and value != workflow_id


def _refuse_archived(record: WorkflowRecord, verb: str) -> None:
    if record.status == WorkflowStatus.ARCHIVED:
        raise Conflict(f"Workflow {record.id!r} is archived; it cannot {verb}.")
