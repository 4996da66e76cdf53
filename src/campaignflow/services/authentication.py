"""Who is calling: an API key or an OAuth access token becomes a :class:`Principal`.

Every request authenticates, so the lookups are cached in memory for ``cache_seconds`` (default 5):
a revoked key, a disabled principal or a changed role takes effect in this process at once (the
management service clears the cache) and in other processes within that time. Unknown keys are
cached too, so a flood of bad keys costs one query per key per period, not one per request.
``last_used_at`` is buffered and written at most once a minute per key.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from ipaddress import IPv4Address, IPv6Address
from typing import Protocol

from campaignflow.errors import AddressNotAllowed, Unauthenticated
from campaignflow.security.api_keys import hash_key
from campaignflow.security.network import IPNetwork, allowed, parse_cidrs
from campaignflow.security.principal import Credential, CredentialKind, Principal
from campaignflow.security.rbac import Permission, Role, parse_scopes
from campaignflow.security.ttl_cache import DEFAULT_LIMIT, TTLCache
from campaignflow.store.access import AccessStore, KeyIdentity, PrincipalContext
from campaignflow.store.workflows import Clock, aware_now, utc_now

Address = IPv4Address | IPv6Address
_TOUCH_EVERY = timedelta(minutes=1)


class AccessClaimsLike(Protocol):
    @property
    def workspace_id(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def client_id(self) -> str: ...
    @property
    def scopes(self) -> frozenset[Permission]: ...
    @property
    def jti(self) -> str: ...


class TokenVerifier(Protocol):
    async def verify_access_token(self, token: str) -> AccessClaimsLike: ...

    async def client_allowlist(
        self, workspace_id: str, client_id: str
    ) -> tuple[str, ...] | None: ...


@dataclass(frozen=True, slots=True)
class Authenticated:
    """A principal and the allowlists its request must pass."""

    principal: Principal
    credential_cidrs: tuple[IPNetwork, ...] | None
    workspace_cidrs: tuple[IPNetwork, ...] | None

    @classmethod
    def of(cls, principal: Principal, workspace_cidrs: Sequence[str] | None) -> Authenticated:
        """The principal with its credential's and its workspace's allowlists."""
        allowlist = principal.credential.allowed_cidrs
        return cls(principal, _networks(allowlist), _networks(workspace_cidrs))

    def check_address(self, address: Address | None) -> None:
        for cidrs, whose in (
            (self.workspace_cidrs, "workspace"),
            (self.credential_cidrs, "credential"),
        ):
            if cidrs is not None and (address is None or not allowed(address, cidrs)):
                raise AddressNotAllowed(
                    f"Requests from {address or 'an unknown address'} are not allowed by the "
                    f"{whose}'s IP allowlist."
                )


class Authenticator:
    def __init__(
        self,
        store: AccessStore,
        tokens: TokenVerifier | None = None,
        *,
        cache_seconds: float = 5.0,
        clock: Clock = utc_now,
    ) -> None:
        self._store = store
        self._tokens = tokens
        self._clock = clock
        self._keys: TTLCache[str, KeyIdentity | None] = TTLCache(cache_seconds)
        self._contexts: TTLCache[tuple[str, str], PrincipalContext | None] = TTLCache(cache_seconds)
        self._used: dict[tuple[str, str], datetime] = {}
        self._touched: dict[tuple[str, str], datetime] = {}

    def use_tokens(self, tokens: TokenVerifier) -> None:
        self._tokens = tokens

    def invalidate(self) -> None:
        """Forget cached lookups (after a key, principal, grant or allowlist changed)."""
        self._keys.clear()
        self._contexts.clear()

    async def api_key(self, presented: str) -> Authenticated:
        digest = hash_key(presented)
        identity = await self._keys.get(digest, lambda: self._store.find_key(digest))
        if identity is None:
            raise Unauthenticated("The API key is not valid.")
        self._refuse_unusable_key(identity)
        key = identity.key
        credential = Credential(
            CredentialKind.API_KEY,
            key.id,
            parse_scopes(key.scopes),
            tuple(key.allowed_cidrs) if key.allowed_cidrs is not None else None,
        )
        self._note_use(key.workspace_id, key.id)
        return _authenticated(identity.context, credential)

    async def access_token(self, token: str) -> Authenticated:
        if self._tokens is None:
            raise Unauthenticated("Access tokens are not accepted by this server.")
        claims = await self._tokens.verify_access_token(token)
        workspace, subject = claims.workspace_id, claims.subject
        context = await self._contexts.get(
            (workspace, subject), lambda: self._store.context(workspace, subject)
        )
        client_cidrs = await self._tokens.client_allowlist(workspace, claims.client_id)
        if context is None or context.principal.disabled_at is not None:
            raise Unauthenticated("The token's principal is disabled or no longer exists.")
        credential = Credential(
            CredentialKind.OAUTH,
            claims.client_id,
            claims.scopes,
            tuple(client_cidrs) if client_cidrs is not None else None,
            token_id=claims.jti,
        )
        return _authenticated(context, credential)

    async def flush_usage(self) -> None:
        """Write buffered last-used times (called periodically and at shutdown)."""
        used, self._used = self._used, {}
        await self._store.touch_keys(used)

    def _refuse_unusable_key(self, identity: KeyIdentity) -> None:
        key = identity.key
        if key.revoked_at is not None:
            raise Unauthenticated("The API key was revoked.")
        if key.expires_at is not None and key.expires_at <= aware_now(self._clock):
            raise Unauthenticated("The API key has expired.")
        if identity.context.principal.disabled_at is not None:
            raise Unauthenticated("The API key's principal is disabled.")

    def _note_use(self, workspace_id: str, key_id: str) -> None:
        now = aware_now(self._clock)
        last = self._touched.get((workspace_id, key_id))
        if last is None or now - last >= _TOUCH_EVERY:
            if len(self._touched) >= DEFAULT_LIMIT:
                self._touched.clear()
            self._touched[(workspace_id, key_id)] = now
            self._used[(workspace_id, key_id)] = now


def _authenticated(context: PrincipalContext, credential: Credential) -> Authenticated:
    principal = Principal(
        workspace_id=context.principal.workspace_id,
        subject=context.principal.id,
        role=Role(context.principal.role),
        credential=credential,
        grants={workflow: Role(role) for workflow, role in context.grants.items()},
    )
    return Authenticated.of(principal, context.workspace_cidrs)


def _networks(cidrs: Sequence[str] | None) -> tuple[IPNetwork, ...] | None:
    return _parsed(tuple(cidrs)) if cidrs is not None else None


@functools.lru_cache(maxsize=1024)
def _parsed(cidrs: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    """Allowlists are few and stored already checked: parsed once per process, not per request."""
    return parse_cidrs(cidrs)
