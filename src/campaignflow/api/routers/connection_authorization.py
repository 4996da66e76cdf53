"""Authorizing a connection on the provider's consent page (OAuth 2.0 authorization code + PKCE).

``POST /api/v1/connections/{id}/authorize`` answers the URL to send a person to; the provider
sends the person's browser back to ``GET /api/v1/connections/authorize/callback``, which carries
no credential of ours — the one-time ``state`` authenticates it (like a provider's signature on
a webhook), and a wrong one costs the caller's address a token of the anonymous rate limit.
"""

from __future__ import annotations

import html
from datetime import datetime
from http import HTTPStatus
from typing import Annotated, NoReturn

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import Field

from campaignflow.api.auth import CurrentPrincipal, authorize, provider_signature, refused_signature
from campaignflow.api.body import read_json, validate_body
from campaignflow.api.deps import AppSettings
from campaignflow.api.problems import ProblemError
from campaignflow.api.schemas import ApiModel, problem_responses, request_body
from campaignflow.integrations.oauth_authorize import CALLBACK_PATH, InvalidGrant
from campaignflow.security.rbac import Permission
from campaignflow.services.connection_authorization import (
    AuthorizationRefused,
    ConnectionAuthorization,
    TokenExchangeFailed,
)

router = APIRouter(prefix="/connections", tags=["connections"])

ConnectionId = Annotated[str, Path(max_length=64, description="The connection's `id`.")]


class AuthorizeRequest(ApiModel):
    redirect_uri: str = Field(
        max_length=2000,
        description=f"This server's callback as registered with the provider's app: "
        f"`https://<your host>{CALLBACK_PATH}`.",
    )


class AuthorizeAnswer(ApiModel):
    authorization_url: str = Field(description="Send the person who grants access here.")
    expires_at: datetime = Field(description="The grant must be completed by then.")


async def get_authorization(request: Request) -> ConnectionAuthorization:
    service: ConnectionAuthorization = request.app.state.connection_authorization
    return service


Authorization = Annotated[ConnectionAuthorization, Depends(get_authorization)]


@router.post(
    "/{connection_id}/authorize",
    response_model=AuthorizeAnswer,
    dependencies=[authorize(Permission.CONNECTIONS_WRITE)],
    openapi_extra=request_body(AuthorizeRequest, "application/json"),
    responses=problem_responses(400, 401, 403, 404, 409, 413, 415, 422),
)
async def start_authorization(
    connection_id: ConnectionId,
    request: Request,
    principal: CurrentPrincipal,
    service: Authorization,
    settings: AppSettings,
) -> AuthorizeAnswer:
    """Start granting an OAuth connection (Salesforce, Google Ads) its refresh token on the
    provider's consent page: the connection's credentials hold its app's `client_id` and
    `client_secret`; the answer is the URL to send the granting person to (valid 10 minutes,
    once). The provider then sends them back to the callback, which stores the refresh token
    with the connection. `409` for a connector without a consent page or a connection without
    its app's credentials; `422` for a `redirectUri` that is not this server's callback."""
    document = await read_json(request, limit=settings.api.max_body_bytes)
    body = validate_body(AuthorizeRequest, document, ("redirectUri",))
    started = await service.start(principal.workspace_id, connection_id, body.redirect_uri)
    return AuthorizeAnswer(authorization_url=started.url, expires_at=started.expires_at)


@router.get(
    "/authorize/callback",
    response_class=HTMLResponse,
    dependencies=[provider_signature()],
    responses={
        200: {"content": {"text/html": {}}, "description": "The connection is authorized."},
        **problem_responses(400, 429, 502),
    },
)
async def complete_authorization(
    request: Request,
    service: Authorization,
    *,
    state: Annotated[str, Query(max_length=200, description="The grant's one-time state.")],
    code: Annotated[str | None, Query(max_length=4096)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
    error_description: Annotated[str | None, Query(max_length=1000)] = None,
) -> HTMLResponse:
    """Where the provider sends the granting person back (authenticated by the one-time
    `state`, not by a credential). The code is exchanged for a refresh token, stored with the
    connection and never shown. `400` for a state that matches no grant in progress (unknown,
    used, expired) or a grant the person declined; `502` when the provider's token endpoint
    does not give a refresh token."""
    try:
        record = await service.complete(
            state=state, code=code, error=error, error_description=error_description
        )
    except InvalidGrant as exc:
        await _refuse(request, exc)
    except AuthorizationRefused as exc:
        raise ProblemError(HTTPStatus.BAD_REQUEST, "authorization-refused", exc.message) from exc
    except TokenExchangeFailed as exc:
        raise ProblemError(HTTPStatus.BAD_GATEWAY, "token-exchange-failed", exc.message) from exc
    name = html.escape(record.name)
    return HTMLResponse(
        "<!doctype html><meta charset=utf-8><title>Connected</title>"
        f"<p>The connection <strong>{name}</strong> is authorized. You can close this window.</p>"
    )


async def _refuse(request: Request, exc: InvalidGrant) -> NoReturn:
    await refused_signature(request)
    raise ProblemError(HTTPStatus.BAD_REQUEST, "invalid-grant", exc.message) from exc
