"""What every resolver gets: the caller, authenticated once per request (or per websocket
connection), and the services ``create_app`` built — the same ones the REST routers use.

Authentication is lazy: an operation that touches no protected field (introspection) needs no
credential, while the first protected field authenticates exactly as REST does
(:func:`~campaignflow.api.auth.require_principal`: API key or access token, the IP allowlists,
the per-credential rate limit) and the result is kept for the rest of the operation.
"""

from __future__ import annotations

from typing import Any

import strawberry
from fastapi.security import HTTPAuthorizationCredentials
from fastapi.security.utils import get_authorization_scheme_param
from starlette.requests import HTTPConnection, Request
from strawberry.fastapi import BaseContext

from campaignflow.api.auth import require_principal
from campaignflow.config import Settings
from campaignflow.errors import Forbidden
from campaignflow.security.principal import Principal
from campaignflow.security.rbac import Permission
from campaignflow.services.contacts import ContactService
from campaignflow.services.executions import ExecutionService
from campaignflow.services.triggers import TriggerService
from campaignflow.services.workflows import WorkflowService


def bearer_of(value: object) -> HTTPAuthorizationCredentials | None:
    """``Authorization: Bearer …`` as :class:`HTTPBearer` would parse it (``None`` if absent or
    another scheme)."""
    if not isinstance(value, str):
        return None
    scheme, token = get_authorization_scheme_param(value)
    if scheme.lower() != "bearer" or not token:
        return None
    return HTTPAuthorizationCredentials(scheme=scheme, credentials=token)


class GraphQLContext(BaseContext):
    """Per HTTP request, or per websocket connection (Strawberry builds it once for all the
    operations a connection runs)."""

    def __init__(self) -> None:
        super().__init__()
        self._principal: Principal | None = None

    @property
    def connection(self) -> HTTPConnection:
        if self.request is None:
            raise RuntimeError("the GraphQL context has no connection")  # Strawberry sets it
        return self.request

    @property
    def app_state(self) -> Any:
        return self.connection.app.state

    @property
    def settings(self) -> Settings:
        settings: Settings = self.app_state.settings
        return settings

    async def principal(self) -> Principal:
        """The caller; :class:`Unauthenticated` (and the other refusals REST gives) if none."""
        if self._principal is None:
            self._principal = await self.authenticate(self._presented())
        return self._principal

    async def authenticate(self, credentials: HTTPAuthorizationCredentials | None) -> Principal:
        """Authenticate with ``credentials`` as REST does. A websocket's scope is read as a
        request's (a shallow copy: the client address, headers, app and the state dict are the
        same objects, so what authentication notes on the state stays with the connection)."""
        scope = self.connection.scope
        request = Request(scope if scope["type"] == "http" else {**scope, "type": "http"})
        self._principal = await require_principal(request, credentials)
        return self._principal

    def _presented(self) -> HTTPAuthorizationCredentials | None:
        params = self.connection_params
        if isinstance(params, dict):  # a websocket's connection_init payload
            given = params.get("Authorization", params.get("authorization"))
            if given is not None:
                return bearer_of(given)
        return bearer_of(self.connection.headers.get("authorization"))

    async def require(self, permission: Permission, workflow_id: str | None = None) -> Principal:
        """The caller, if it holds ``permission`` (for ``workflow_id``, where a grant may raise
        its role): the check each REST route declares with ``authorize``."""
        principal = await self.principal()
        if not principal.may(permission, workflow_id):
            raise Forbidden(f"This operation needs the {permission.value} permission.")
        return principal

    @property
    def workflows(self) -> WorkflowService:
        service: WorkflowService = self.app_state.workflows
        return service

    @property
    def executions(self) -> ExecutionService:
        service: ExecutionService = self.app_state.executions
        return service

    @property
    def triggers(self) -> TriggerService:
        service: TriggerService = self.app_state.triggers
        return service

    @property
    def contacts(self) -> ContactService:
        """As REST builds it: over the engine's contact store, which seals sensitive fields."""
        return ContactService(self.app_state.contacts)


async def get_context() -> GraphQLContext:
    """The router's ``context_getter``: Strawberry fills in the request afterwards."""
    return GraphQLContext()


Info = strawberry.Info[GraphQLContext, None]
