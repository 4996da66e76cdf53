"""Response shapes of the REST API (they are what the OpenAPI document publishes)."""

from __future__ import annotations

from datetime import datetime
from http import HTTPStatus
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from campaignflow.services.workflows import WorkflowStatus
from campaignflow.store.workflows import VersionRecord, WorkflowRecord, WorkflowSummaryRecord


class ApiModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


def request_body(model: type[BaseModel], *media_types: str) -> dict[str, Any]:
    """``openapi_extra`` documenting a body the route reads itself (not through FastAPI's
    binding): the model's schema, self-contained (nested models in ``$defs``), per media type."""
    schema = model.model_json_schema(by_alias=True)
    content = {media_type: {"schema": schema} for media_type in media_types}
    return {"requestBody": {"required": True, "content": content}}


def etag_for(version: int) -> str:
    """Strong ETag of a definition. Versions are immutable and ids are never reused, so the
    version number alone identifies the content."""
    return f'"v{version}"'


class WorkflowSummary(ApiModel):
    workflow_id: str = Field(description="The workflow's id (its `workflowId`).")
    name: str
    status: WorkflowStatus
    version: int = Field(description="The latest version; executions start on it when active.")
    etag: str = Field(description="Send as If-Match on PUT to update only this version.")
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None = None

    @classmethod
    def from_summary(cls, record: WorkflowSummaryRecord) -> WorkflowSummary:
        return cls(**_summary_fields(record))


class Workflow(WorkflowSummary):
    definition: dict[str, Any] = Field(description="The latest version's definition.")

    @classmethod
    def from_record(cls, record: WorkflowRecord) -> Workflow:
        definition = {**record.definition, "version": record.version}
        return cls(**_summary_fields(record), definition=definition)


def _summary_fields(record: WorkflowSummaryRecord) -> dict[str, Any]:
    return {
        "workflow_id": record.id,
        "name": record.name,
        "status": WorkflowStatus(record.status),
        "version": record.version,
        "etag": etag_for(record.version),
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "archived_at": record.archived_at,
    }


class WorkflowPage(ApiModel):
    items: list[WorkflowSummary]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` to get the next page; absent on the last page."
    )


class WorkflowVersion(ApiModel):
    workflow_id: str
    version: int
    name: str
    content_hash: str = Field(description="sha256 of the canonical definition.")
    created_at: datetime
    definition: dict[str, Any]

    @classmethod
    def from_record(cls, record: VersionRecord) -> WorkflowVersion:
        return cls(
            workflow_id=record.workflow_id,
            version=record.version,
            name=record.name,
            content_hash=record.content_hash,
            created_at=record.created_at,
            definition={**record.definition, "version": record.version},
        )


class VersionPage(ApiModel):
    items: list[WorkflowVersion]
    next_cursor: str | None = None


class Health(ApiModel):
    status: str = Field(
        description="`ok` when the process (healthz) or its dependencies (readyz) are fine."
    )
    checks: dict[str, str] = Field(default_factory=dict)


class ProblemDetail(BaseModel):
    """RFC 9457 problem document (``application/problem+json``)."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[dict[str, Any]] | None = Field(
        None,
        description="Each entry has `pointer` (into the body) or `parameter`, `detail`, `code`.",
    )


def problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries: each status answered with a problem document."""
    problem = {"model": ProblemDetail, "content": {"application/problem+json": {}}}
    return {code: {**problem, "description": HTTPStatus(code).phrase} for code in codes}
