"""Signing-key rotation as a plan over time: no token is ever orphaned, no key signs unpublished."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from campaignflow.security.jwt_tokens import SigningKey
from campaignflow.security.oauth_settings import OAuthSettings
from campaignflow.security.signing_keys import (
    RotationPolicy,
    current_key,
    generate_key,
    plan_rotation,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)
POLICY = RotationPolicy.from_settings(
    OAuthSettings(signing_key_rotation_days=1, key_publish_seconds=600, token_lifetime_seconds=900)
)
DAY = timedelta(days=1)


def _key(created: datetime, signs_from: datetime | None = None) -> SigningKey:
    return generate_key("EdDSA", now=created, signs_from=signs_from or created)


def test_the_first_key_signs_at_once() -> None:
    plan = plan_rotation([], T0, POLICY)

    assert plan.create_signing_from == T0
    assert not plan.retire


def test_a_young_key_needs_nothing() -> None:
    key = _key(T0)

    assert not plan_rotation([key], T0 + DAY - timedelta(seconds=1), POLICY).changes
    assert current_key([key], T0 + DAY) == key


def test_an_old_key_gets_a_successor_that_is_published_before_it_signs() -> None:
    old = _key(T0)
    now = T0 + DAY

    plan = plan_rotation([old], now, POLICY)

    assert plan.create_signing_from == now + timedelta(seconds=600)
    successor = _key(now, plan.create_signing_from)
    assert current_key([old, successor], now + timedelta(seconds=599)) == old
    assert current_key([old, successor], now + timedelta(seconds=600)) == successor
    assert not plan_rotation([old, successor], now + timedelta(seconds=600), POLICY).changes


def test_the_superseded_key_retires_only_after_its_last_token_expired() -> None:
    old = _key(T0)
    successor = _key(T0 + DAY, T0 + DAY + timedelta(seconds=600))
    last_token_expiry = successor.signs_from + timedelta(seconds=900)

    assert not plan_rotation([old, successor], last_token_expiry, POLICY).retire
    assert plan_rotation([old, successor], last_token_expiry + POLICY.margin, POLICY).retire == {
        old.kid
    }


def test_of_two_keys_created_at_once_every_process_signs_with_the_same() -> None:
    first, second = _key(T0), _key(T0)

    assert current_key([first, second], T0) == current_key([second, first], T0)


@settings(max_examples=50, deadline=None)
@given(steps=st.lists(st.integers(1, 2 * 86_400), min_size=1, max_size=60))
def test_over_any_schedule_every_unexpired_token_keeps_a_live_published_key(
    steps: list[int],
) -> None:
    """Run the plan whenever a token is issued, at arbitrary intervals: a key never signs before
    it was published for the publish delay (unless it is the very first), and no key is retired
    while a token it signed is still valid."""
    keys: dict[str, SigningKey] = {}
    tokens: list[tuple[str, datetime]] = []  # (kid, expires_at)
    now = T0
    for step in steps:
        now += timedelta(seconds=step)
        plan = plan_rotation(list(keys.values()), now, POLICY)
        if plan.create_signing_from is not None:
            key = _key(now, plan.create_signing_from)
            keys[key.kid] = key
        for kid in plan.retire:
            keys[kid] = dataclasses.replace(keys[kid], retired_at=now)
        signer = current_key(keys.values(), now)
        assert signer is not None
        assert signer.signs_from == signer.created_at or (
            signer.signs_from - signer.created_at >= POLICY.publish
        )
        tokens.append((signer.kid, now + POLICY.token_lifetime))
        for kid, expires_at in tokens:
            if expires_at > now:
                assert keys[kid].verifies_at(now), "a live token lost its key"
