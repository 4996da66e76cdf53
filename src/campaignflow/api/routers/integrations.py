"""``/api/v1/integrations``: the connector catalog (static: what this version can talk to)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import Field

from campaignflow.api.auth import authorize
from campaignflow.api.schemas import ApiModel, problem_responses
from campaignflow.security.rbac import Permission

router = APIRouter(
    prefix="/integrations", tags=["integrations"], responses=problem_responses(401, 403)
)


class IntegrationCatalog(ApiModel):
    items: list[dict[str, Any]] = Field(
        description="Every connector: provider, auth, base URL, rate limits, the JSON Schemas of "
        "its credentials and settings, and its operations with their parameter schemas "
        "(the action `provider.operation` of an `action` node)."
    )


@router.get(
    "",
    response_model=IntegrationCatalog,
    dependencies=[authorize(Permission.WORKFLOWS_READ)],
)
async def list_integrations(request: Request) -> IntegrationCatalog:
    """Every connector with its operations and parameter schemas."""
    catalog: list[dict[str, Any]] = request.app.state.integration_catalog
    return IntegrationCatalog(items=catalog)
