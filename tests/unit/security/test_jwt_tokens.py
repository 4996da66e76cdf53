"""Access tokens: what verification accepts, and every forged or stale token it must refuse."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import given, settings
from hypothesis import strategies as st

from campaignflow.errors import Unauthenticated
from campaignflow.security.jwt_tokens import (
    REQUIRED_CLAIMS,
    SigningKey,
    TokenGrant,
    TokenPolicy,
    sign_access_token,
    token_kid,
    verify_access_token,
)
from campaignflow.security.rbac import Permission
from campaignflow.security.signing_keys import generate_key

T0 = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
POLICY = TokenPolicy("campaignflow", "campaignflow-api", timedelta(seconds=900))
GRANT = TokenGrant("acme", "principal-1", "cfc_client", frozenset({Permission.WORKFLOWS_READ}))
EDDSA = generate_key("EdDSA", now=T0, signs_from=T0)
RSA = generate_key("RS256", now=T0, signs_from=T0)
OTHER = generate_key("EdDSA", now=T0, signs_from=T0)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _segment(document: dict[str, Any]) -> str:
    return _b64(json.dumps(document).encode())


def _payload(**changes: Any) -> dict[str, Any]:
    issued = int(T0.timestamp())
    payload = {
        "iss": "campaignflow",
        "aud": "campaignflow-api",
        "sub": "principal-1",
        "ws": "acme",
        "client_id": "cfc_client",
        "scope": "workflows:read",
        "jti": "jti-1",
        "iat": issued,
        "nbf": issued,
        "exp": issued + 900,
    }
    payload.update(changes)
    return {name: value for name, value in payload.items() if value is not None}


def _signed(payload: dict[str, Any], key: SigningKey = EDDSA, **headers: Any) -> str:
    header = {"kid": key.kid, "typ": "at+jwt", **headers}
    return jwt.encode(payload, key.private_key, algorithm=key.algorithm, headers=header)


def _refused(token: str, key: SigningKey = EDDSA, now: datetime = T0) -> str:
    with pytest.raises(Unauthenticated) as caught:
        verify_access_token(token, key, POLICY, now=now)
    return caught.value.message


@pytest.mark.parametrize("key", [EDDSA, RSA], ids=["EdDSA", "RS256"])
def test_a_signed_token_verifies_with_the_claims_it_was_issued_with(key: SigningKey) -> None:
    token, issued = sign_access_token(GRANT, key, POLICY, now=T0, jti="jti-1")

    claims = verify_access_token(token, key, POLICY, now=T0 + timedelta(seconds=60))

    assert claims == issued
    assert claims.expires_at == T0 + timedelta(seconds=900)
    assert (claims.workspace_id, claims.subject, claims.client_id) == (
        "acme",
        "principal-1",
        "cfc_client",
    )
    assert claims.scopes == {Permission.WORKFLOWS_READ}
    header = jwt.get_unverified_header(token)
    assert header == {"alg": key.algorithm, "kid": key.kid, "typ": "at+jwt"}
    assert token_kid(token) == key.kid


def test_alg_none_is_refused() -> None:
    header = _segment({"alg": "none", "kid": EDDSA.kid, "typ": "at+jwt"})
    token = f"{header}.{_segment(_payload())}."

    assert "algorithm" in _refused(token)


@pytest.mark.parametrize("key", [EDDSA, RSA], ids=["EdDSA", "RS256"])
def test_hs256_signed_with_the_public_key_is_refused(key: SigningKey) -> None:
    """The classic confusion: an HMAC keyed with the (public) verification key."""
    public_pem = key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = (
        f"{_segment({'alg': 'HS256', 'kid': key.kid, 'typ': 'at+jwt'})}.{_segment(_payload())}"
    )
    for secret in (public_pem, public_pem.strip()):
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()

        assert "algorithm" in _refused(f"{signing_input}.{_b64(mac)}", key)


def test_a_token_signed_by_another_key_under_our_kid_is_refused() -> None:
    forged = _signed(_payload(), OTHER, kid=EDDSA.kid)

    assert _refused(forged) == "The access token's signature is invalid."


def test_an_rs256_token_is_refused_by_an_eddsa_key_of_the_same_kid() -> None:
    forged = _signed(_payload(), RSA, kid=EDDSA.kid)

    assert "algorithm" in _refused(forged)


@settings(max_examples=60, deadline=None)
@given(segment=st.sampled_from([1, 2]), position=st.integers(0, 10_000), mask=st.integers(1, 255))
def test_any_flipped_byte_in_payload_or_signature_is_refused(
    segment: int, position: int, mask: int
) -> None:
    parts = _signed(_payload()).split(".")
    raw = bytearray(_unb64(parts[segment]))
    raw[position % len(raw)] ^= mask
    parts[segment] = _b64(bytes(raw))

    _refused(".".join(parts))


def test_a_payload_swapped_under_a_valid_signature_is_refused() -> None:
    header, _payload_part, signature = _signed(_payload()).split(".")
    wider = _segment(_payload(scope="workflows:read workflows:write", ws="other"))

    assert _refused(f"{header}.{wider}.{signature}") == "The access token's signature is invalid."


def test_wrong_issuer_and_wrong_audience_are_refused() -> None:
    assert "issuer" in _refused(_signed(_payload(iss="someone-else")))
    assert "audience" in _refused(_signed(_payload(aud="another-api")))


@pytest.mark.parametrize("claim", [*REQUIRED_CLAIMS, "ws", "client_id", "scope"])
def test_a_token_without_a_required_claim_is_refused(claim: str) -> None:
    token = _signed(_payload(**{claim: None}))

    assert repr(claim) in _refused(token)


@settings(max_examples=200, deadline=None)
@given(offset=st.integers(-200, 1200))
def test_validity_window_is_nbf_to_exp_with_30_seconds_leeway(offset: int) -> None:
    token, _ = sign_access_token(GRANT, EDDSA, POLICY, now=T0, jti="j")
    now = T0 + timedelta(seconds=offset)

    valid = -30 <= offset < 900 + 30

    if valid:
        assert verify_access_token(token, EDDSA, POLICY, now=now).jti == "j"
    else:
        message = _refused(token, now=now)
        assert ("expired" in message) == (offset >= 930)


def test_nbf_in_the_future_is_refused_even_when_iat_is_now() -> None:
    issued = int(T0.timestamp())
    token = _signed(_payload(nbf=issued + 120))

    assert "not valid yet" in _refused(token)
    assert verify_access_token(token, EDDSA, POLICY, now=T0 + timedelta(seconds=90)).jti


def test_non_numeric_times_are_refused() -> None:
    assert "'exp'" in _refused(_signed(_payload(exp="tomorrow")))
    assert "'nbf'" in _refused(_signed(_payload(nbf=True)))


def test_a_token_of_another_type_is_refused() -> None:
    """An ID token or any other JWT we might sign must not pass as an access token."""
    assert "typ" in _refused(_signed(_payload(), typ="JWT"))


def test_a_retired_keys_tokens_are_refused_even_before_they_expire() -> None:
    retired = SigningKey(
        EDDSA.kid,
        "EdDSA",
        EDDSA.public_key,
        None,
        T0,
        T0,
        retired_at=T0 + timedelta(seconds=10),
    )
    token, _ = sign_access_token(GRANT, EDDSA, POLICY, now=T0, jti="j")

    assert verify_access_token(token, retired, POLICY, now=T0 + timedelta(seconds=9)).jti == "j"
    assert "retired" in _refused(token, retired, now=T0 + timedelta(seconds=10))


def test_scope_names_no_longer_known_are_dropped_not_trusted() -> None:
    token = _signed(_payload(scope="workflows:read root:everything"))

    assert verify_access_token(token, EDDSA, POLICY, now=T0).scopes == {Permission.WORKFLOWS_READ}


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("not-a-jwt", "well-formed"),
        (f"{_segment({'alg': 'EdDSA', 'typ': 'at+jwt'})}.{_segment({})}.", "kid"),
        (f"{_segment({'alg': 'EdDSA', 'kid': 7})}.{_segment({})}.", "well-formed"),
    ],
    ids=["garbage", "no-kid", "numeric-kid"],
)
def test_the_kid_is_read_only_from_a_well_formed_header(token: str, reason: str) -> None:
    with pytest.raises(Unauthenticated, match=reason):
        token_kid(token)


def test_a_key_without_its_private_half_cannot_sign() -> None:
    public_only = SigningKey(EDDSA.kid, "EdDSA", EDDSA.public_key, None, T0, T0)

    with pytest.raises(ValueError, match="no private key"):
        sign_access_token(GRANT, public_only, POLICY, now=T0, jti="j")
