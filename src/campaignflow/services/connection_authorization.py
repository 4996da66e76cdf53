"""Connecting an account on the provider's consent page, as a use case (see
:mod:`campaignflow.integrations.oauth_authorize` for the protocol's values).

``start`` makes a pending grant for a connection whose credentials hold its app's ``client_id``
and ``client_secret``, keeps it in the secret store (``connection:<id>:authorize``) and answers
the provider's authorization URL. ``complete`` is the callback the provider sends the person's
browser to: it finds the pending grant by the state, uses it up (once, even when the rest
fails), exchanges the code with the PKCE verifier at the connector's token endpoint, and stores
the refresh token with the connection's credentials — never returning it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from campaignflow.engine.actions import ActionFailed
from campaignflow.engine.http_action import USER_AGENT, HttpExecutor
from campaignflow.errors import ClientError, Conflict, NotFound
from campaignflow.integrations.connections import ConnectionResolver, stored_settings
from campaignflow.integrations.connector import Connector, OAuthAuthorization
from campaignflow.integrations.oauth_authorize import (
    InvalidGrant,
    authorization_url,
    check_pending,
    check_redirect_uri,
    code_exchange_form,
    connection_of,
    new_grant,
)
from campaignflow.integrations.oauth_tokens import AccessTokens, token_url
from campaignflow.security.secret_store import SecretStore
from campaignflow.store.connections import ConnectionRecord, ConnectionStore, credential_id


class AuthorizationRefused(ClientError):
    """The person (or the provider) declined the grant: the provider's own error code."""


class TokenExchangeFailed(ClientError):
    """The provider's token endpoint did not turn the code into a refresh token."""


def pending_id(connection_id: str) -> str:
    """The secret-store id of a connection's authorization in progress."""
    return f"{credential_id(connection_id)}:authorize"


@dataclass(frozen=True, slots=True)
class AuthorizationStart:
    url: str
    expires_at: datetime


class ConnectionAuthorization:
    def __init__(
        self,
        *,
        connections: ConnectionStore,
        secrets: SecretStore,
        connectors: Mapping[str, Connector],
        resolver: ConnectionResolver,
        tokens: AccessTokens,
        http: HttpExecutor,
        now: Callable[[], datetime],
    ) -> None:
        self._connections = connections
        self._secrets = secrets
        self._connectors = connectors
        self._resolver = resolver
        self._tokens = tokens
        self._http = http
        self._now = now

    async def start(
        self, workspace_id: str, connection_id: str, redirect_uri: str
    ) -> AuthorizationStart:
        record = await self._connections.get(workspace_id, connection_id)
        connector, authorization = self._authorization(record)
        redirect = check_redirect_uri(redirect_uri)
        credentials = await self._secrets.get(workspace_id, credential_id(connection_id))
        client_id = credentials.get("client_id")
        if not client_id or not credentials.get("client_secret"):
            raise Conflict(
                "the connection needs its app's client_id and client_secret to be authorized"
            )
        grant = new_grant(connection_id, redirect, self._now())
        await self._secrets.put(workspace_id, pending_id(connection_id), grant.stored())
        settings = stored_settings(connector, record.settings)
        url = authorization_url(authorization, settings, client_id, grant)
        return AuthorizationStart(url, grant.expires_at)

    async def complete(
        self, *, state: str, code: str | None, error: str | None, error_description: str | None
    ) -> ConnectionRecord:
        """Finish the grant ``state`` names; the connection it authorized."""
        connection_id = connection_of(state)
        try:
            record = await self._connections.find(connection_id)
            pending = await self._secrets.get(record.workspace_id, pending_id(connection_id))
        except NotFound as exc:
            raise InvalidGrant("the state matches no authorization in progress") from exc
        verifier, redirect = check_pending(pending, state, self._now())
        with contextlib.suppress(NotFound):  # used once, whatever happens next
            await self._secrets.delete(record.workspace_id, pending_id(connection_id))
        connector, _ = self._authorization(record)
        if error is not None:
            detail = f": {error_description[:200]}" if error_description else ""
            raise AuthorizationRefused(f"{connector.title} answered {error[:64]}{detail}")
        if not code:
            raise InvalidGrant("the callback carries no code")
        credentials = await self._secrets.get(record.workspace_id, credential_id(connection_id))
        form = code_exchange_form(credentials, code, verifier, redirect)
        refresh_token = await self._exchange(connector, record, form)
        updated = {**credentials, "refresh_token": refresh_token}
        await self._secrets.put(record.workspace_id, credential_id(connection_id), updated)
        self._tokens.forget(connection_id)
        self._resolver.forget(record.workspace_id, record.name)
        return record

    async def _exchange(
        self, connector: Connector, record: ConnectionRecord, form: Mapping[str, str]
    ) -> str:
        settings = stored_settings(connector, record.settings)
        try:
            answer = await self._http.send(
                "POST",
                token_url(connector, settings),
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "Accept": "application/json",
                    "User-Agent": USER_AGENT,
                },
                body=urlencode(form).encode(),
            )
        except ActionFailed as exc:
            raise TokenExchangeFailed(f"{connector.title}'s token endpoint: {exc}") from exc
        body: Any = answer.body
        if not 200 <= answer.status < 300:
            reason = body.get("error") if isinstance(body, dict) else None
            suffix = f" ({str(reason)[:64]})" if reason else ""
            raise TokenExchangeFailed(
                f"{connector.title}'s token endpoint answered HTTP {answer.status}{suffix}"
            )
        token = body.get("refresh_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise TokenExchangeFailed(
                f"{connector.title} granted no refresh token; the app must be allowed offline "
                "access (the connector asks for it)"
            )
        return token

    def _authorization(self, record: ConnectionRecord) -> tuple[Connector, OAuthAuthorization]:
        connector = self._connectors.get(record.provider)
        if connector is None or connector.authorization is None:
            able = sorted(n for n, c in self._connectors.items() if c.authorization is not None)
            raise Conflict(
                f"{record.provider} connections are not authorized on a consent page; give "
                f"their credentials instead (consent pages: {', '.join(able)})"
            )
        return connector, connector.authorization
