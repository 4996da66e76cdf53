"""The ring of JWT signing keys: generate, load, rotate, retire — without downtime.

A new key is published in the JWKS ``key_publish_seconds`` before it signs, so resource servers
that cache the JWKS already know it when its first token arrives. The key that signs is the
newest whose ``signs_from`` has come (ordered by ``signs_from`` then ``kid``), so processes that
rotated at the same moment still agree. An older key is retired only once every token it can have
signed has expired. Private keys are stored sealed (:class:`Sealer`, context ``signing-key:<kid>``).

:func:`plan_rotation` decides (pure); :class:`SigningKeys` carries it out and caches the ring.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from campaignflow.errors import SecurityError
from campaignflow.security.jwt_tokens import LEEWAY, PrivateKey, SigningKey
from campaignflow.security.oauth_settings import Algorithm, OAuthSettings
from campaignflow.security.sealing import Sealer
from campaignflow.store.ids import new_id
from campaignflow.store.oauth import SigningKeyRow

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The cached ring is re-read this often (must stay well below key_publish_seconds, so every
# process sees a new key before it signs) ...
RELOAD_SECONDS = 60.0
# ... and on an unknown kid, at most this often, so a flood of forged kids costs no queries.
UNKNOWN_KID_RELOAD_SECONDS = 5.0
RSA_KEY_BITS = 2048


@dataclass(frozen=True, slots=True)
class RotationPolicy:
    algorithm: Algorithm
    rotation: timedelta
    publish: timedelta
    token_lifetime: timedelta
    # Beyond a token's life: clock leeway, plus a process's stale cache signing a little longer.
    margin: timedelta = LEEWAY + timedelta(seconds=RELOAD_SECONDS)

    @classmethod
    def from_settings(cls, settings: OAuthSettings) -> RotationPolicy:
        return cls(
            algorithm=settings.algorithm,
            rotation=timedelta(days=settings.signing_key_rotation_days),
            publish=timedelta(seconds=settings.key_publish_seconds),
            token_lifetime=timedelta(seconds=settings.token_lifetime_seconds),
        )


@dataclass(frozen=True, slots=True)
class RotationPlan:
    create_signing_from: datetime | None  # a new key, signing from then
    unless_created_after: datetime  # ... unless another process created one since
    retire: frozenset[str]

    @property
    def changes(self) -> bool:
        return self.create_signing_from is not None or bool(self.retire)


def _order(key: SigningKey) -> tuple[datetime, str]:
    return key.signs_from, key.kid


def current_key(keys: Iterable[SigningKey], now: datetime) -> SigningKey | None:
    """The key that signs at ``now``: the newest live one whose ``signs_from`` has come."""
    ready = [key for key in keys if key.signs_from <= now and key.verifies_at(now)]
    return max(ready, key=_order, default=None)


def plan_rotation(
    keys: Collection[SigningKey], now: datetime, policy: RotationPolicy
) -> RotationPlan:
    """What the ring needs at ``now``: a first key (signing at once), a successor for a key
    older than the rotation period (signing after the publish delay), retirements of keys
    superseded for longer than a token lives."""
    live = [key for key in keys if key.verifies_at(now)]
    if not live:
        return RotationPlan(now, EPOCH, frozenset())
    newest = max(live, key=lambda key: (key.created_at, key.kid))
    successor = now + policy.publish if now - newest.created_at >= policy.rotation else None
    current = current_key(live, now)
    retire: frozenset[str] = frozenset()
    if current is not None and current.signs_from + policy.token_lifetime + policy.margin <= now:
        retire = frozenset(key.kid for key in live if _order(key) < _order(current))
    return RotationPlan(successor, now - policy.rotation, retire)


def generate_key(algorithm: Algorithm, *, now: datetime, signs_from: datetime) -> SigningKey:
    private: PrivateKey
    if algorithm == "EdDSA":
        private = ed25519.Ed25519PrivateKey.generate()
    else:
        private = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
    return SigningKey(new_id(), algorithm, private.public_key(), private, now, signs_from)


def _context(kid: str) -> str:
    return "signing-key:" + kid


def seal_key(key: SigningKey, sealer: Sealer) -> SigningKeyRow:
    """The row that stores ``key``: its private key as sealed PKCS#8 PEM, its public JWK."""
    assert key.private_key is not None
    pem = key.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    sealed = sealer.seal(pem, context=_context(key.kid))
    return SigningKeyRow(
        key.kid, key.algorithm, sealed, key.public_jwk(), key.created_at, key.signs_from, None
    )


def open_key(row: SigningKeyRow, sealer: Sealer) -> SigningKey:
    """The key of a stored row; raises ``SealedDataError`` if the sealer cannot open it."""
    pem = sealer.open(row.private_key, context=_context(row.kid))
    private = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(private, ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey):
        raise SecurityError(f"Signing key {row.kid} is of an unsupported type.")
    algorithm: Algorithm = "EdDSA" if row.algorithm == "EdDSA" else "RS256"
    return SigningKey(
        row.kid,
        algorithm,
        private.public_key(),
        private,
        row.created_at,
        row.signs_from,
        row.retired_at,
    )


class KeyStore(Protocol):
    async def live_signing_keys(self) -> list[SigningKeyRow]: ...

    async def add_signing_key(
        self, row: SigningKeyRow, *, unless_created_after: datetime
    ) -> bool: ...

    async def retire_signing_keys(self, kids: Collection[str], now: datetime) -> None: ...


class SigningKeys:
    """The key ring of one process: cached, re-read every minute and on an unknown kid."""

    def __init__(
        self,
        store: KeyStore,
        sealer: Sealer,
        policy: RotationPolicy,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._sealer = sealer
        self._policy = policy
        self._monotonic = monotonic
        self._keys: dict[str, SigningKey] = {}
        self._loaded_at: float | None = None
        self._lock = asyncio.Lock()

    async def ensure_current(self, now: datetime) -> SigningKey:
        """Create, rotate and retire as :func:`plan_rotation` says; return the signing key.
        Safe to run in several processes at once (the worst case is one spare key)."""
        async with self._lock:
            keys = await self._load()
            plan = plan_rotation(list(keys.values()), now, self._policy)
            if plan.create_signing_from is not None:
                key = generate_key(
                    self._policy.algorithm, now=now, signs_from=plan.create_signing_from
                )
                row = seal_key(key, self._sealer)
                await self._store.add_signing_key(
                    row, unless_created_after=plan.unless_created_after
                )
            if plan.retire:
                await self._store.retire_signing_keys(plan.retire, now)
            if plan.changes:
                keys = await self._load()
        current = current_key(keys.values(), now)
        if current is None:
            raise SecurityError("No signing key is ready yet.")
        return current

    async def signing_key(self, now: datetime) -> SigningKey:
        """The key to sign with at ``now``, rotating first when the ring needs it."""
        keys = await self._fresh()
        current = current_key(keys.values(), now)
        if current is None or plan_rotation(list(keys.values()), now, self._policy).changes:
            return await self.ensure_current(now)
        return current

    async def verification_key(self, kid: str, now: datetime) -> SigningKey | None:
        """Our key named ``kid``, if it exists and is not retired."""
        keys = await self._fresh()
        if kid not in keys:
            keys = await self._reload_after(UNKNOWN_KID_RELOAD_SECONDS)
        key = keys.get(kid)
        return key if key is not None and key.verifies_at(now) else None

    async def published(self, now: datetime) -> Sequence[SigningKey]:
        """The keys a JWKS lists: every live key, including those not signing yet."""
        keys = await self._fresh()
        return sorted((key for key in keys.values() if key.verifies_at(now)), key=_order)

    def _since_load(self) -> float:
        return float("inf") if self._loaded_at is None else self._monotonic() - self._loaded_at

    async def _fresh(self) -> dict[str, SigningKey]:
        if self._since_load() < RELOAD_SECONDS:
            return self._keys
        return await self._reload_after(RELOAD_SECONDS)

    async def _reload_after(self, seconds: float) -> dict[str, SigningKey]:
        """Re-read the ring unless it was read less than ``seconds`` ago (by anyone)."""
        async with self._lock:
            if self._since_load() < seconds:
                return self._keys
            return await self._load()

    async def _load(self) -> dict[str, SigningKey]:
        rows = await self._store.live_signing_keys()
        # An already opened key is reused: opening one costs a key unwrap.
        cached = self._keys
        self._keys = {row.kid: cached.get(row.kid) or open_key(row, self._sealer) for row in rows}
        self._loaded_at = self._monotonic()
        return self._keys
