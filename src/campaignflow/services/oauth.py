"""OAuth 2.0 as a use case: clients, the client-credentials grant, verification, introspection
(RFC 7662) and revocation (RFC 7009). No HTTP here; the routers translate.

A verified token still needs two facts that can change after it was signed: its client is not
revoked, its ``jti`` is not revoked. Both are cached in memory for ``STATUS_CACHE_SECONDS`` so a
busy API does not query per request; a revocation made by this process takes effect here at once
and in other processes within that time. Introspection always asks the database.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from campaignflow.errors import ClientError, Forbidden, NotFound, Unauthenticated
from campaignflow.security.api_keys import hash_key
from campaignflow.security.jwt_tokens import (
    AccessClaims,
    TokenGrant,
    TokenPolicy,
    sign_access_token,
    token_kid,
    verify_access_token,
)
from campaignflow.security.oauth_settings import OAuthSettings
from campaignflow.security.principal import Principal
from campaignflow.security.rbac import ROLE_PERMISSIONS, Permission, Role, may_assign, parse_scopes
from campaignflow.security.sealing import Sealer
from campaignflow.security.signing_keys import RotationPolicy, SigningKeys
from campaignflow.security.ttl_cache import TTLCache
from campaignflow.services.access import checked_cidrs, grantable_scopes
from campaignflow.store.database import Database
from campaignflow.store.ids import new_id
from campaignflow.store.oauth import ClientRecord, OAuthStore
from campaignflow.store.workflows import Clock, aware_now, utc_now

CLIENT_ID_PREFIX = "cfc_"
SECRET_PREFIX = "cfs_"  # noqa: S105 — a visible prefix that makes leaked secrets greppable
GRANT_TYPE = "client_credentials"
STATUS_CACHE_SECONDS = 5.0
_CACHE_LIMIT = 10_000
_TOUCH_EVERY = timedelta(minutes=1)
# Compared against when the client id is unknown, so the answer takes as long either way.
_NO_SECRET_HASH = hash_key(SECRET_PREFIX)


class OAuthError(ClientError):
    """The OAuth request was refused."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error  # RFC 6749 §5.2 code: invalid_client, invalid_scope, …


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    client_id: str
    secret: str


@dataclass(frozen=True, slots=True)
class IssuedToken:
    access_token: str
    expires_in: int
    claims: AccessClaims


@dataclass(frozen=True, slots=True)
class ClientRequest:
    name: str
    role: Role
    scopes: Sequence[str] | None = None  # default: all the role allows
    allowed_cidrs: Sequence[str] | None = None


@dataclass(frozen=True, slots=True)
class CreatedClient:
    client: ClientRecord
    secret: str  # shown once


class OAuthService:
    def __init__(
        self,
        store: OAuthStore,
        keys: SigningKeys,
        settings: OAuthSettings,
        *,
        clock: Clock = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._keys = keys
        self._clock = clock
        self._monotonic = monotonic
        self.policy = TokenPolicy(
            settings.issuer, settings.audience, timedelta(seconds=settings.token_lifetime_seconds)
        )
        self._clients: TTLCache[tuple[str, str], ClientRecord | None] = TTLCache(
            STATUS_CACHE_SECONDS, monotonic=monotonic, limit=_CACHE_LIMIT
        )
        self._jti_revoked: TTLCache[str, bool] = TTLCache(
            STATUS_CACHE_SECONDS, monotonic=monotonic, limit=_CACHE_LIMIT
        )
        self._touched: dict[str, float] = {}

    def _now(self) -> datetime:
        return aware_now(self._clock)

    @classmethod
    def build(cls, database: Database, settings: OAuthSettings, sealer: Sealer) -> OAuthService:
        store = OAuthStore(database)
        keys = SigningKeys(store, sealer, RotationPolicy.from_settings(settings))
        return cls(store, keys, settings)

    async def start(self) -> None:
        """Make sure a signing key exists (and rotate if due) before the first request."""
        await self._keys.ensure_current(self._now())

    # --- the token endpoint -------------------------------------------------------------

    async def authenticate_client(self, credentials: ClientCredentials) -> ClientRecord:
        """The client, if the secret is right and neither it nor its principal is disabled."""
        found = await self._store.client_with_secret_hash(credentials.client_id)
        expected = found[1] if found is not None else _NO_SECRET_HASH
        if not hmac.compare_digest(hash_key(credentials.secret), expected) or found is None:
            raise OAuthError("invalid_client", "Unknown client or wrong secret.")
        client = found[0]
        if client.revoked_at is not None:
            raise OAuthError("invalid_client", "This client was revoked.")
        if client.principal_disabled_at is not None:
            raise OAuthError("invalid_client", "This client's principal is disabled.")
        return client

    async def issue_token(
        self, client: ClientRecord, grant_type: str | None, scope: str | None
    ) -> IssuedToken:
        """RFC 6749 §4.4: a client-credentials grant, for an authenticated client."""
        if grant_type is None:
            raise OAuthError("invalid_request", "The grant_type parameter is missing.")
        if grant_type != GRANT_TYPE:
            raise OAuthError("unsupported_grant_type", f"Only {GRANT_TYPE} is supported.")
        scopes = _granted_scopes(client, scope)
        now = self._now()
        key = await self._keys.signing_key(now)
        grant = TokenGrant(client.workspace_id, client.principal_id, client.client_id, scopes)
        token, claims = sign_access_token(
            grant, key, self.policy, now=now, jti=secrets.token_urlsafe(18)
        )
        await self._note_use(client.client_id)
        return IssuedToken(token, int(self.policy.lifetime.total_seconds()), claims)

    async def _note_use(self, client_id: str) -> None:
        last = self._touched.get(client_id)
        moment = self._monotonic()
        if last is not None and moment - last < _TOUCH_EVERY.total_seconds():
            return
        if len(self._touched) >= _CACHE_LIMIT:
            self._touched.clear()
        self._touched[client_id] = moment
        await self._store.touch_client(client_id, self._now(), _TOUCH_EVERY)

    # --- resource servers ---------------------------------------------------------------

    async def verify_access_token(self, token: str, *, fresh: bool = False) -> AccessClaims:
        """The claims of a valid, unrevoked token of an active client; ``Unauthenticated``
        saying why otherwise. ``fresh``: ask the database, not the few-seconds cache."""
        now = self._now()
        key = await self._keys.verification_key(token_kid(token), now)
        if key is None:
            raise Unauthenticated("The access token's signing key (kid) is unknown or retired.")
        claims = verify_access_token(token, key, self.policy, now=now)
        if not await self._client_active(claims, fresh=fresh):
            raise Unauthenticated("The access token's client was revoked or disabled.")
        if await self._revoked(claims.jti, fresh=fresh):
            raise Unauthenticated("The access token was revoked.")
        return claims

    async def _client_active(self, claims: AccessClaims, *, fresh: bool) -> bool:
        key = (claims.workspace_id, claims.client_id)
        if fresh:
            self._clients.forget(key)
        client = await self._client(*key)
        return client is not None and client.active and client.principal_id == claims.subject

    async def _client(self, workspace_id: str, client_id: str) -> ClientRecord | None:
        """The client as the status cache knows it (at most a few seconds old)."""
        return await self._clients.get(
            (workspace_id, client_id), lambda: self._store.get_client(workspace_id, client_id)
        )

    async def client_allowlist(self, workspace_id: str, client_id: str) -> tuple[str, ...] | None:
        """The client's IP allowlist (``None``: any address), for the resource server."""
        client = await self._client(workspace_id, client_id)
        return client.allowed_cidrs if client is not None else None

    async def _revoked(self, jti: str, *, fresh: bool) -> bool:
        if fresh:
            self._jti_revoked.forget(jti)
        return await self._jti_revoked.get(jti, lambda: self._store.is_token_revoked(jti))

    async def introspect(self, caller: ClientRecord, token: str) -> AccessClaims | None:
        """RFC 7662: the claims of an active token of the caller's workspace, else ``None``."""
        return await self._claims_for(caller, token)

    async def _claims_for(self, caller: ClientRecord, token: str) -> AccessClaims | None:
        try:
            claims = await self.verify_access_token(token, fresh=True)
        except Unauthenticated:
            return None
        return claims if claims.workspace_id == caller.workspace_id else None

    async def revoke_token(self, caller: ClientRecord, token: str) -> None:
        """RFC 7009: revoke a token of the caller's workspace; anything else is ignored."""
        claims = await self._claims_for(caller, token)
        if claims is None:
            return
        await self._store.revoke_token(
            claims.jti, claims.workspace_id, claims.expires_at, self._now()
        )
        self._jti_revoked.forget(claims.jti)

    async def purge_revoked_tokens(self) -> int:
        """Forget revocations of tokens that have expired anyway."""
        return await self._store.purge_revoked_tokens(self._now())

    async def jwks(self) -> dict[str, Any]:
        """RFC 7517 key set: every published key, including those about to sign."""
        keys = await self._keys.published(self._now())
        return {"keys": [key.public_jwk() for key in keys]}

    # --- managing clients -----------------------------------------------------------------

    async def create_client(self, caller: Principal, request: ClientRequest) -> CreatedClient:
        """A client and its service principal in the caller's workspace; the secret is
        returned here only. Its role is at most the caller's, its scopes at most what both
        that role and the caller's credential allow."""
        if not may_assign(caller.role, request.role):
            raise Forbidden(f"You cannot assign the role {request.role.value}, above yours.")
        scopes = grantable_scopes(
            request.scopes, ROLE_PERMISSIONS[request.role] & caller.permissions()
        )
        networks = checked_cidrs(request.allowed_cidrs)
        cidrs = None if networks is None else tuple(str(network) for network in networks)
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        client = ClientRecord(
            client_id=CLIENT_ID_PREFIX + new_id(),
            workspace_id=caller.workspace_id,
            principal_id=new_id(),
            name=request.name,
            role=request.role.value,
            scopes=tuple(sorted(scope.value for scope in scopes)),
            allowed_cidrs=cidrs,
            created_at=self._now(),
        )
        await self._store.create_client(client, hash_key(secret))
        return CreatedClient(client, secret)

    async def list_clients(
        self, workspace_id: str, *, after: str | None, limit: int
    ) -> Sequence[ClientRecord]:
        return await self._store.list_clients(workspace_id, after=after, limit=limit)

    async def get_client(self, workspace_id: str, client_id: str) -> ClientRecord:
        client = await self._store.get_client(workspace_id, client_id)
        if client is None:
            raise NotFound(f"No OAuth client {client_id!r} in this workspace.")
        return client

    async def revoke_client(self, workspace_id: str, client_id: str) -> None:
        """Revoke the client (idempotent): no new tokens, and its tokens stop verifying."""
        if not await self._store.revoke_client(workspace_id, client_id, self._now()):
            raise NotFound(f"No OAuth client {client_id!r} in this workspace.")


def _granted_scopes(client: ClientRecord, requested: str | None) -> frozenset[Permission]:
    allowed = frozenset(Permission(name) for name in client.scopes)
    if not requested:
        return allowed
    try:
        scopes = parse_scopes(requested.split())
    except ValueError as exc:
        raise OAuthError("invalid_scope", str(exc).capitalize() + ".") from exc
    beyond = sorted(scopes - allowed)
    if beyond:
        raise OAuthError("invalid_scope", "Not granted to this client: " + " ".join(beyond))
    return scopes
