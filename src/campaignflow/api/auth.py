"""Who is calling: every ``/api/v1`` route depends on :func:`require_principal`.

Until the security issue brings workspaces, OAuth 2.0 and API keys, one configured bearer token
grants access to the configured workspace. The seam — a dependency that yields a
:class:`Principal` carrying the ``workspace_id`` every query is scoped by — is the one later
mechanisms plug into, so routes will not change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from fastapi.security import (
    HTTPAuthorizationCredentials,
    HTTPBasic,
    HTTPBasicCredentials,
    HTTPBearer,
)

from campaignflow.api.deps import AppSettings
from campaignflow.errors import Unauthenticated
from campaignflow.security.credentials import tokens_match

_bearer = HTTPBearer(auto_error=False, description="The API token (`CAMPAIGNFLOW_API_TOKEN`).")


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    workspace_id: str


async def require_principal(
    settings: AppSettings,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    expected = settings.api_token.get_secret_value() if settings.api_token else None
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthenticated("Send 'Authorization: Bearer <token>'.")
    if expected is None or not tokens_match(credentials.credentials, expected):
        raise Unauthenticated("The bearer token is not valid.")
    return Principal(subject="api-token", workspace_id=settings.workspace_id)


CurrentPrincipal = Annotated[Principal, Depends(require_principal)]


_basic = HTTPBasic(
    auto_error=False,
    description="Segment-style write key: the key as the user name, an empty password.",
)


async def require_writer(
    settings: AppSettings,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    basic: Annotated[HTTPBasicCredentials | None, Depends(_basic)],
) -> Principal:
    """Who may send events: a bearer token, or Segment's write key as HTTP Basic (the key as
    user name, as every Segment and RudderStack library sends it)."""
    expected = settings.api_token.get_secret_value() if settings.api_token else None
    presented = basic.username if basic is not None else None
    if presented is None and bearer is not None and bearer.scheme.lower() == "bearer":
        presented = bearer.credentials
    if presented is None:
        raise Unauthenticated("Send the write key as HTTP Basic user name, or a bearer token.")
    if expected is None or not tokens_match(presented, expected):
        raise Unauthenticated("The write key is not valid.")
    return Principal(subject="write-key", workspace_id=settings.workspace_id)


CurrentWriter = Annotated[Principal, Depends(require_writer)]
