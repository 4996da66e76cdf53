"""Authentication and authorisation of every request, in one place.

:func:`require_principal` turns ``Authorization: Bearer <API key or access token>`` into a
:class:`Principal`, after the IP allowlists (workspace and credential) and the per-credential rate
limit; :func:`require_writer` also takes Segment's write key as HTTP Basic. Each route then declares
the one permission it needs with ``dependencies=[authorize(Permission.X)]``; a route without one
fails the route-table test. Under ``/workflows/{workflow_id}`` a per-workflow grant may raise the
caller's role for that workflow. Provider webhooks authenticate by the provider's signature
instead, and declare :func:`provider_signature`.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import (
    HTTPAuthorizationCredentials,
    HTTPBasic,
    HTTPBasicCredentials,
    HTTPBearer,
)

from campaignflow.errors import Forbidden, RateLimited, Unauthenticated
from campaignflow.security.network import client_address
from campaignflow.security.principal import Principal
from campaignflow.security.rbac import Permission
from campaignflow.services.authentication import Authenticated, Authenticator

_bearer = HTTPBearer(
    auto_error=False,
    description="An API key (`cf_…`) or an OAuth 2.0 access token from `POST /oauth/token`.",
)
_basic = HTTPBasic(
    auto_error=False,
    description="Segment-style write key: an API key with the `events:write` scope as the user "
    "name, an empty password.",
)

Address = IPv4Address | IPv6Address


def _looks_like_jwt(value: str) -> bool:
    """A JWS compact token: three base64url parts, the header a JSON object (``eyJ`` is
    ``{"``). Our API keys hold no dot; a configured bootstrap token with dots is still a key."""
    return value.startswith("eyJ") and value.count(".") == 2


def request_address(request: Request) -> Address | None:
    """The client's address, honouring ``X-Forwarded-For`` from trusted proxies only."""
    cached: Address | None = getattr(request.state, "client_ip", None)
    if cached is not None:
        return cached
    peer = request.client.host if request.client else None
    address = client_address(
        peer, request.headers.getlist("x-forwarded-for"), request.app.state.trusted_proxies
    )
    request.state.client_ip = address
    return address


async def _limit(request: Request, kind: str, key: str) -> None:
    """Take a token from the ``kind`` bucket (``api``, ``ingestion`` or ``anonymous``) of
    ``key``; 429 with Retry-After when it is empty."""
    limiters = request.app.state.rate_limiters
    if limiters is None:
        return
    decision = await getattr(limiters, kind).acquire(key)
    if not decision.allowed:
        raise RateLimited(decision.retry_after_seconds)


async def _authenticate(request: Request, presented: str | None, kind: str = "api") -> Principal:
    address = request_address(request)
    authenticator: Authenticator = request.app.state.authenticator
    try:
        if presented is None:
            raise Unauthenticated("Send 'Authorization: Bearer <API key or access token>'.")
        if _looks_like_jwt(presented):
            authenticated: Authenticated = await authenticator.access_token(presented)
        else:
            authenticated = await authenticator.api_key(presented)
    except Unauthenticated:
        await _limit(request, "anonymous", str(address))  # slows credential guessing
        raise
    principal = authenticated.principal
    request.state.principal = principal  # before the allowlist: a refusal is audited too
    authenticated.check_address(address)
    await _limit(request, kind, principal.credential.label)
    return principal


async def require_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    presented = None
    if credentials is not None and credentials.scheme.lower() == "bearer":
        presented = credentials.credentials
    return await _authenticate(request, presented)


async def require_writer(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    basic: Annotated[HTTPBasicCredentials | None, Depends(_basic)],
) -> Principal:
    """Who may send events: a bearer credential, or Segment's write key as HTTP Basic (the key
    as user name, as every Segment and RudderStack library sends it)."""
    presented = basic.username if basic is not None else None
    if presented is None and bearer is not None and bearer.scheme.lower() == "bearer":
        presented = bearer.credentials
    principal = await _authenticate(request, presented, "ingestion")
    if not principal.may(Permission.EVENTS_WRITE):
        raise Forbidden("This credential may not send events (scope events:write).")
    return principal


CurrentPrincipal = Annotated[Principal, Depends(require_principal)]
CurrentWriter = Annotated[Principal, Depends(require_writer)]


class Authorize:
    """The dependency a route declares: the caller must hold ``permission`` (for the workflow in
    the path, when there is one)."""

    def __init__(self, permission: Permission) -> None:
        self.permission = permission

    async def __call__(self, request: Request, principal: CurrentPrincipal) -> Principal:
        workflow_id = request.path_params.get("workflow_id")
        if not principal.may(self.permission, workflow_id):
            raise Forbidden(f"This operation needs the {self.permission.value} permission.")
        return principal


def authorize(permission: Permission) -> Any:
    """``dependencies=[authorize(Permission.WORKFLOWS_WRITE)]`` on a route."""
    return Depends(Authorize(permission))


class ProviderSignature:
    """The dependency of a route that a provider calls: it carries no credential of ours, but
    the provider's signature over the request (or a secret in its URL), which the route's
    service checks against the connection in the path. The route-table test admits such a
    route without a permission, under ``/api/v1/webhooks/`` only, and the OAuth consent page's
    callback (authenticated by its one-time state, which the provider's redirect carries)."""

    async def __call__(self, request: Request) -> None:
        request.state.signature_authenticated = True


def provider_signature() -> Any:
    """``dependencies=[provider_signature()]`` on a webhook route."""
    return Depends(ProviderSignature())


async def refused_signature(request: Request) -> None:
    """A webhook that failed authentication costs its address a token of the anonymous bucket,
    like a wrong credential (429 once it is empty): forging or guessing is slowed, while a
    provider's accepted webhooks are never limited by it."""
    await _limit(request, "anonymous", str(request_address(request)))
