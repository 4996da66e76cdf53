"""``GET /metrics``: this process's Prometheus metrics (text format 0.0.4).

Metrics are process-wide and cross tenants (workspace ids are labels), so only the operator may
read them: a principal of the operator's workspace (``settings.workspace_id``) holding
``metrics:read`` (admins), or Prometheus with the static scrape token
``CAMPAIGNFLOW_METRICS__TOKEN``, compared in constant time. An admin of any other workspace gets
403, like any caller without the permission.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from campaignflow.api.auth import Authorize, _bearer, require_principal
from campaignflow.api.schemas import problem_responses
from campaignflow.config import Settings
from campaignflow.errors import Forbidden
from campaignflow.observability.metrics import REGISTRY
from campaignflow.observability.metrics_server import scrape_token_matches
from campaignflow.security.rbac import Permission

router = APIRouter(tags=["health"])


class MetricsReader(Authorize):
    """The route's guard: the scrape token, or an operator's ``metrics:read``. An
    :class:`Authorize`, so the route table names its one permission."""

    def __init__(self) -> None:
        super().__init__(Permission.METRICS_READ)

    async def __call__(  # type: ignore[override]
        self,
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        settings: Settings = request.app.state.settings
        bearer = credentials is not None and credentials.scheme.lower() == "bearer"
        presented = credentials.credentials if credentials is not None and bearer else None
        if scrape_token_matches(settings.metrics.token, presented):
            return
        principal = await require_principal(request, credentials)
        if principal.workspace_id != settings.workspace_id:
            raise Forbidden("Metrics cover every workspace: only the operator's may read them.")
        if not principal.may(self.permission):
            raise Forbidden(f"This operation needs the {self.permission.value} permission.")


@router.get(
    "/metrics",
    response_class=Response,
    dependencies=[Depends(MetricsReader())],
    responses={
        200: {
            "content": {CONTENT_TYPE_PLAIN_0_0_4: {"schema": {"type": "string"}}},
            "description": "The metrics in the Prometheus text format 0.0.4.",
        },
        **problem_responses(401, 403, 429),
    },
)
async def metrics() -> Response:
    """This process's metrics, for Prometheus (see docs/metrics.md)."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_PLAIN_0_0_4)
