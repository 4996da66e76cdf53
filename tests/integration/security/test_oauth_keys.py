"""The signing-key ring on a real database (SQLite and PostgreSQL): first key, rotation without
downtime, retirement, several processes at once, and the cache in front of the table."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from campaignflow.security.envelope import KeyRing, generate_key
from campaignflow.security.jwt_tokens import (
    TokenGrant,
    TokenPolicy,
    sign_access_token,
    verify_access_token,
)
from campaignflow.security.oauth_settings import OAuthSettings
from campaignflow.security.rbac import Permission
from campaignflow.security.signing_keys import (
    RELOAD_SECONDS,
    UNKNOWN_KID_RELOAD_SECONDS,
    RotationPolicy,
    SigningKeys,
)
from campaignflow.store.database import Database
from campaignflow.store.oauth import OAuthStore, SigningKeyRow

T0 = datetime(2025, 1, 1, tzinfo=UTC)
SETTINGS = OAuthSettings(signing_key_rotation_days=30, key_publish_seconds=600)
POLICY = RotationPolicy.from_settings(SETTINGS)
TOKENS = TokenPolicy("campaignflow", "campaignflow-api", timedelta(seconds=900))
GRANT = TokenGrant("acme", "p1", "cfc_1", frozenset({Permission.WORKFLOWS_READ}))
SEALER = KeyRing({"kek1": generate_key()}, "kek1")


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.value = 0.0

    def __call__(self) -> float:
        return self.value


class CountingStore(OAuthStore):
    """The real store, counting how often the ring reads the table (a spy, not a fake)."""

    reads = 0

    async def live_signing_keys(self) -> list[SigningKeyRow]:
        self.reads += 1
        return await super().live_signing_keys()


@pytest.fixture
def ticks() -> Ticks:
    return Ticks()


def _ring(database: Database, ticks: Ticks, policy: RotationPolicy = POLICY) -> SigningKeys:
    return SigningKeys(CountingStore(database), SEALER, policy, monotonic=ticks)


async def test_the_first_key_is_created_once_and_signs_at_once(
    database: Database, ticks: Ticks
) -> None:
    ring = _ring(database, ticks)

    first = await ring.ensure_current(T0)
    again = await ring.ensure_current(T0 + timedelta(minutes=5))

    assert again.kid == first.kid
    assert first.signs_from == T0
    assert [key.kid for key in await ring.published(T0)] == [first.kid]


async def test_the_private_key_is_stored_sealed_and_opens_in_another_process(
    database: Database, ticks: Ticks
) -> None:
    key = await _ring(database, ticks).ensure_current(T0)
    rows = await OAuthStore(database).live_signing_keys()

    assert "PRIVATE KEY" not in rows[0].private_key
    assert SEALER.key_id_of(rows[0].private_key) == "kek1"
    reopened = await _ring(database, Ticks()).signing_key(T0)
    assert reopened.kid == key.kid
    token, _ = sign_access_token(GRANT, reopened, TOKENS, now=T0, jti="j1")
    assert verify_access_token(token, key, TOKENS, now=T0).jti == "j1", "same key material"


async def test_rotation_publishes_first_switches_later_and_retires_after_the_last_token(
    database: Database, ticks: Ticks
) -> None:
    ring = _ring(database, ticks)
    old = await ring.ensure_current(T0)
    rotate_at = T0 + timedelta(days=30)
    old_token, _ = sign_access_token(GRANT, old, TOKENS, now=rotate_at, jti="old")

    still_old = await ring.signing_key(rotate_at)  # rotation happens here, lazily
    published = await ring.published(rotate_at)

    assert still_old.kid == old.kid
    assert len(published) == 2, "the successor is in the JWKS before it signs"
    successor = published[-1]
    assert successor.signs_from == rotate_at + timedelta(seconds=600)

    switch = successor.signs_from
    assert (await ring.signing_key(switch - timedelta(seconds=1))).kid == old.kid
    assert (await ring.signing_key(switch)).kid == successor.kid
    old_again = await ring.verification_key(old.kid, switch)
    assert old_again is not None
    assert verify_access_token(old_token, old_again, TOKENS, now=switch).jti == "old"
    assert {key.kid for key in await ring.published(switch)} == {old.kid, successor.kid}

    retire_at = switch + timedelta(seconds=900) + POLICY.margin
    assert (await ring.signing_key(retire_at)).kid == successor.kid
    assert await ring.verification_key(old.kid, retire_at) is None
    assert [key.kid for key in await ring.published(retire_at)] == [successor.kid]
    other_process = _ring(database, Ticks())
    assert await other_process.verification_key(old.kid, retire_at) is None


async def test_two_processes_starting_at_once_verify_each_others_tokens(
    database: Database,
) -> None:
    first_ticks, second_ticks = Ticks(), Ticks()
    first, second = _ring(database, first_ticks), _ring(database, second_ticks)

    keys = await asyncio.gather(first.ensure_current(T0), second.ensure_current(T0))

    for signer, verifier, verifier_ticks in ((0, second, second_ticks), (1, first, first_ticks)):
        verifier_ticks.value += UNKNOWN_KID_RELOAD_SECONDS
        assert await verifier.verification_key(keys[signer].kid, T0) is not None
    first_ticks.value += RELOAD_SECONDS
    second_ticks.value += RELOAD_SECONDS
    assert (await first.signing_key(T0)).kid == (await second.signing_key(T0)).kid


async def test_unknown_kids_reload_the_ring_at_most_every_few_seconds(
    database: Database, ticks: Ticks
) -> None:
    ring = _ring(database, ticks)
    await ring.ensure_current(T0)
    store = ring._store  # the spy handed in above
    assert isinstance(store, CountingStore)
    reads = store.reads

    for attempt in range(50):
        assert await ring.verification_key(f"forged-{attempt}", T0) is None
    assert store.reads == reads, "a flood of forged kids costs no query"

    ticks.value += UNKNOWN_KID_RELOAD_SECONDS
    assert await ring.verification_key("forged", T0) is None
    assert store.reads == reads + 1


async def test_a_key_created_by_another_process_is_found_on_first_sight(
    database: Database, ticks: Ticks
) -> None:
    reader = _ring(database, ticks)
    await reader.ensure_current(T0)
    writer = _ring(database, Ticks())
    rotate_at = T0 + timedelta(days=30)
    await writer.signing_key(rotate_at)
    new_kid = [key.kid for key in await writer.published(rotate_at)][-1]

    ticks.value += UNKNOWN_KID_RELOAD_SECONDS
    assert await reader.verification_key(new_kid, rotate_at) is not None


async def test_rs256_keys_rotate_the_same_way(database: Database, ticks: Ticks) -> None:
    policy = RotationPolicy.from_settings(SETTINGS.model_copy(update={"algorithm": "RS256"}))
    ring = _ring(database, ticks, policy)

    key = await ring.ensure_current(T0)

    assert key.algorithm == "RS256"
    assert key.public_jwk()["kty"] == "RSA"
