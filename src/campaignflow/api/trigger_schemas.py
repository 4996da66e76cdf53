"""Request and response shapes of the triggers resource."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from campaignflow.api.schemas import ApiModel, etag_for
from campaignflow.services.triggers import TriggerDocument, TriggerSource, TriggerView

_COMPONENTS = "#/components/schemas/{model}"


def _request_schema() -> dict[str, Any]:
    """The body's schema; the trigger models it refers to are the ``WorkflowDefinition``'s
    components (``BehaviorTrigger``, …), published once by ``api.openapi``."""
    schema = TriggerDocument.model_json_schema(
        by_alias=True, mode="validation", ref_template=_COMPONENTS
    )
    schema.pop("$defs", None)
    schema.pop("title", None)
    return schema


TRIGGER_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": _request_schema()}},
    }
}


class Trigger(ApiModel):
    id: str = Field(
        description="A stored trigger's id, or `<workflowId>#<index>` for a trigger declared "
        "in a workflow's definition (send `#` as `%23` in a URL)."
    )
    workflow_id: str = Field(description="The workflow it starts.")
    source: TriggerSource = Field(
        description="`api`: created here, editable. `definition`: declared in the workflow's "
        "latest version, read-only (edit the workflow)."
    )
    enabled: bool = Field(
        description="Whether it starts executions. A declared trigger is enabled exactly when "
        "its workflow is active; a stored one also needs its workflow active."
    )
    trigger: dict[str, Any] = Field(
        description="The trigger in the workflow format (BehaviorTrigger, TimeTrigger or "
        "ApiTrigger), with defaults filled in."
    )
    created_at: datetime
    updated_at: datetime
    etag: str = Field(
        description="Send as If-Match on PUT or DELETE to change only this revision. For a "
        "declared trigger, the ETag of its workflow's version."
    )

    @classmethod
    def from_view(cls, view: TriggerView) -> Trigger:
        return cls(
            id=view.id,
            workflow_id=view.workflow_id,
            source=view.source,
            enabled=view.enabled,
            trigger=view.trigger,
            created_at=view.created_at,
            updated_at=view.updated_at,
            etag=etag_for(view.revision),
        )


class TriggerPage(ApiModel):
    items: list[Trigger]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` to get the next page; absent on the last page."
    )
