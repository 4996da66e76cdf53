"""Who is calling: an API key or an OAuth access token becomes a :class:`Principal`.

Every request authenticates, so the lookups are cached in memory for ``cache_seconds`` (default 5):
a revoked key, a disabled principal or a changed role takes effect in this process at once (the
management service clears the cache) and in other processes within that time. Unknown keys are
cached too, so a flood of bad keys costs one query per key per period, not one per request.
``last_used_at`` is buffered and written at most once a minute per key.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from ipaddress import IPv4Address, IPv6Address
from typing import Protocol, TypeVar

from campaignflow.errors import AddressNotAllowed, Unauthenticated
from campaignflow.security.api_keys import hash_key
from campaignflow.security.network import IPNetwork, allowed, parse_cidrs
from campaignflow.security.principal import Credential, CredentialKind, Principal
from campaignflow.security.rbac import Permission, Role, parse_scopes
from campaignflow.store.access import AccessStore, KeyIdentity, PrincipalContext
from campaignflow.store.workflows import Clock, aware_now, utc_now

Address = IPv4Address | IPv6Address
_CACHE_LIMIT = 10_000
_TOUCH_EVERY = timedelta(minutes=1)
T = TypeVar("T")


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


@dataclass(frozen=True, slots=True)
class Authenticated:
    """A principal and the allowlists its request must pass."""

    principal: Principal
    credential_cidrs: tuple[IPNetwork, ...] | None
    workspace_cidrs: tuple[IPNetwork, ...] | None

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


class _TTLCache:
    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._entries: dict[object, tuple[float, object]] = {}

    async def get(self, key: object, load: Callable[[], Awaitable[T]]) -> T:
        now = time.monotonic()
        hit = self._entries.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]  # type: ignore[return-value]
        value = await load()
        if len(self._entries) >= _CACHE_LIMIT:
            self._entries.clear()
        self._entries[key] = (now + self._seconds, value)
        return value

    def clear(self) -> None:
        self._entries.clear()


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
        self._keys = _TTLCache(cache_seconds)
        self._contexts = _TTLCache(cache_seconds)
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
        scope = (claims.workspace_id, claims.subject, claims.client_id)
        context, client_cidrs = await self._contexts.get(scope, lambda: self._load(*scope))
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

    async def _load(
        self, workspace_id: str, subject: str, client_id: str
    ) -> tuple[PrincipalContext | None, list[str] | None]:
        context = await self._store.context(workspace_id, subject)
        return context, await self._store.client_cidrs(workspace_id, client_id)

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
            if len(self._touched) >= _CACHE_LIMIT:
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
    return Authenticated(
        principal,
        _networks(credential.allowed_cidrs),
        _networks(context.workspace_cidrs),
    )


def _networks(cidrs: tuple[str, ...] | list[str] | None) -> tuple[IPNetwork, ...] | None:
    return tuple(parse_cidrs(list(cidrs))) if cidrs is not None else None
