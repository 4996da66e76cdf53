"""OAuth 2.0 access tokens for connections whose connector authenticates with OAuth.

Client credentials (RFC 6749 §4.4) and refresh tokens (§6): a token is fetched once per
connection and kept in this process until a minute before it expires, and concurrent steps wait
for the one fetch instead of each asking the provider (single flight). A provider that rotates
refresh tokens returns a new one with the access token; it is written back to the secret store
at once, because the old one may already be invalid. A 401 from the provider makes the executor
:meth:`AccessTokens.forget` the token, so the next call fetches a fresh one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from campaignflow.engine.actions import ActionFailed
from campaignflow.engine.http_action import USER_AGENT, HttpExecutor
from campaignflow.integrations.connections import ResolvedConnection
from campaignflow.integrations.connector import (
    ConnectionSettings,
    Connector,
    OAuth2ClientCredentials,
    OAuth2RefreshToken,
    classify_status,
)
from campaignflow.security.secret_store import SecretStore
from campaignflow.store.connections import credential_id

EXPIRY_MARGIN_S = 60.0
DEFAULT_LIFETIME_S = 3600.0


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    expires_at: float


def token_url(connector: Connector, settings: ConnectionSettings) -> str:
    """The connector's token endpoint for this connection (Salesforce's sandbox has its own)."""
    if connector.token_url_for is not None:
        return connector.token_url_for(settings)
    auth = connector.auth
    if isinstance(auth, OAuth2ClientCredentials | OAuth2RefreshToken):
        return auth.token_url
    raise ValueError(f"{connector.provider} has no OAuth 2.0 token endpoint")


class AccessTokens:
    def __init__(
        self,
        http: HttpExecutor,
        secrets: SecretStore,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._secrets = secrets
        self._monotonic = monotonic
        self._tokens: dict[str, _Token] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def token_for(self, connection: ResolvedConnection) -> str | None:
        """The access token to send, or None when the connector does not use OAuth."""
        auth = connection.connector.resolved_auth(connection.credentials)
        if not isinstance(auth, OAuth2ClientCredentials | OAuth2RefreshToken):
            return None
        key = connection.record.id
        cached = self._tokens.get(key)
        if cached is not None and cached.expires_at > self._monotonic():
            return cached.value
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self._tokens.get(key)
            if cached is not None and cached.expires_at > self._monotonic():
                return cached.value
            token = await self._fetch(connection, auth)
            self._tokens[key] = token
            return token.value

    def forget(self, connection_id: str) -> None:
        self._tokens.pop(connection_id, None)

    async def _fetch(
        self, connection: ResolvedConnection, auth: OAuth2ClientCredentials | OAuth2RefreshToken
    ) -> _Token:
        provider = connection.connector.provider
        credentials = connection.credentials
        form = {
            "client_id": credentials.get("client_id", ""),
            "client_secret": credentials.get("client_secret", ""),
        }
        if isinstance(auth, OAuth2ClientCredentials):
            form["grant_type"] = "client_credentials"
            if auth.scopes:
                form["scope"] = " ".join(auth.scopes)
        else:
            form["grant_type"] = "refresh_token"
            form["refresh_token"] = credentials.get("refresh_token", "")
        missing = sorted(name for name, value in form.items() if not value)
        if missing:
            raise ActionFailed(
                f"{provider}: the connection lacks {', '.join(missing)} for OAuth 2.0"
                + (
                    "; authorize it with POST /api/v1/connections/{id}/authorize"
                    if connection.connector.authorization is not None
                    else ""
                ),
                retryable=False,
            )
        answer = await self._http.send(
            "POST",
            token_url(connection.connector, connection.settings),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
                "User-Agent": USER_AGENT,
            },
            body=urlencode(form).encode(),
            labels=(connection.connector.provider, "oauth.token"),
        )
        verdict = classify_status(answer.status)
        if not verdict.ok:
            raise ActionFailed(
                f"{provider}: the token endpoint answered HTTP {answer.status}",
                retryable=verdict.retryable,
                retry_after_s=self._http.retry_after(answer) if verdict.retryable else None,
            )
        body: Any = answer.body
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            message = f"{provider}: the token endpoint sent no access_token"
            raise ActionFailed(message, retryable=True)
        rotated = body.get("refresh_token")
        renewed = isinstance(rotated, str) and rotated != credentials.get("refresh_token")
        if isinstance(auth, OAuth2RefreshToken) and renewed:
            record = connection.record
            updated = {**credentials, "refresh_token": str(rotated)}
            await self._secrets.put(record.workspace_id, credential_id(record.id), updated)
        lifetime = body.get("expires_in")
        seconds = float(lifetime) if isinstance(lifetime, int | float) else DEFAULT_LIFETIME_S
        expires = self._monotonic() + max(0.0, seconds - EXPIRY_MARGIN_S)
        return _Token(body["access_token"], expires)
