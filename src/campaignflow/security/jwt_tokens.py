"""Access tokens: JWTs (RFC 9068 profile, ``typ: at+jwt``) signed with EdDSA or RS256.

Pure apart from the key objects: the clock and the token id are handed in. Verification never
trusts the token's header to pick an algorithm — the ``kid`` selects one of *our* keys, and that
key's algorithm is the only one allowed, which closes ``alg: none`` and the HS256-with-a-public-key
confusion. Every failure is an :class:`Unauthenticated` saying precisely what was wrong.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from campaignflow.errors import Unauthenticated
from campaignflow.security.oauth_settings import Algorithm
from campaignflow.security.rbac import ALL_SCOPES, Permission

PublicKey = Ed25519PublicKey | RSAPublicKey
PrivateKey = Ed25519PrivateKey | RSAPrivateKey

TOKEN_TYPE = "at+jwt"  # noqa: S105 — RFC 9068: an access token cannot pass for an ID token or vice versa
LEEWAY = timedelta(seconds=30)
REQUIRED_CLAIMS = ("exp", "iat", "nbf", "iss", "aud", "sub", "jti")


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One key of the ring. ``private_key`` is ``None`` where only verification is needed."""

    kid: str
    algorithm: Algorithm
    public_key: PublicKey
    private_key: PrivateKey | None
    created_at: datetime
    signs_from: datetime  # published earlier than this, so caches of the JWKS know it
    retired_at: datetime | None = None

    def verifies_at(self, now: datetime) -> bool:
        return self.retired_at is None or now < self.retired_at

    def public_jwk(self) -> dict[str, Any]:
        """The RFC 7517 public key as the JWKS publishes it."""
        algorithm = jwt.get_algorithm_by_name(self.algorithm)
        fields = algorithm.to_jwk(self.public_key, as_dict=True)
        return {**fields, "kid": self.kid, "alg": self.algorithm, "use": "sig"}


@dataclass(frozen=True, slots=True)
class TokenPolicy:
    """What every token carries and every verification demands."""

    issuer: str
    audience: str
    lifetime: timedelta
    leeway: timedelta = LEEWAY


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """Who a token is for: a service principal of a workspace, through one OAuth client."""

    workspace_id: str
    subject: str
    client_id: str
    scopes: frozenset[Permission]


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """A verified access token, as the resource server uses it."""

    workspace_id: str
    subject: str
    client_id: str
    scopes: frozenset[Permission]
    jti: str
    expires_at: datetime
    issued_at: datetime
    not_before: datetime


def scope_text(scopes: Iterable[Permission]) -> str:
    """Scopes as the ``scope`` claim and parameter write them: sorted, space-separated."""
    return " ".join(sorted(str(scope) for scope in scopes))


def known_scopes(text: str) -> frozenset[Permission]:
    """The permissions named in a ``scope`` claim; names no longer known are dropped, which can
    only narrow what the token allows."""
    return frozenset(Permission(name) for name in text.split() if name in ALL_SCOPES)


def sign_access_token(
    grant: TokenGrant, key: SigningKey, policy: TokenPolicy, *, now: datetime, jti: str
) -> tuple[str, AccessClaims]:
    """Sign a token for ``grant``; returns it with the claims it carries."""
    if key.private_key is None:
        raise ValueError(f"signing key {key.kid} has no private key in this process")
    issued = now.astimezone(UTC).replace(microsecond=0)
    expires = issued + policy.lifetime
    payload = {
        "iss": policy.issuer,
        "aud": policy.audience,
        "sub": grant.subject,
        "ws": grant.workspace_id,
        "client_id": grant.client_id,
        "scope": scope_text(grant.scopes),
        "jti": jti,
        "iat": int(issued.timestamp()),
        "nbf": int(issued.timestamp()),
        "exp": int(expires.timestamp()),
    }
    headers = {"kid": key.kid, "typ": TOKEN_TYPE}
    token = jwt.encode(payload, key.private_key, algorithm=key.algorithm, headers=headers)
    claims = AccessClaims(
        grant.workspace_id,
        grant.subject,
        grant.client_id,
        grant.scopes,
        jti,
        expires,
        issued,
        issued,
    )
    return token, claims


def token_kid(token: str) -> str:
    """The ``kid`` in the token's header (unverified: it only selects which of our keys to try)."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise Unauthenticated("The access token is not a well-formed JWT.") from exc
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise Unauthenticated("The access token names no signing key (kid).")
    return kid


def verify_access_token(
    token: str, key: SigningKey, policy: TokenPolicy, *, now: datetime
) -> AccessClaims:
    """Verify signature, header and claims of ``token`` with ``key`` (chosen by its kid)."""
    if not key.verifies_at(now):
        raise Unauthenticated("The access token was signed by a retired key.")
    decoded = _decode(token, key, policy)
    if decoded["header"].get("typ") != TOKEN_TYPE:
        raise Unauthenticated(f"The token is not an access token (typ must be {TOKEN_TYPE}).")
    claims: dict[str, Any] = decoded["payload"]
    times = {name: _instant(claims, name) for name in ("iat", "nbf", "exp")}
    _check_times(times, now, policy.leeway)
    return AccessClaims(
        workspace_id=_text(claims, "ws"),
        subject=_text(claims, "sub"),
        client_id=_text(claims, "client_id"),
        scopes=known_scopes(_text(claims, "scope", allow_empty=True)),
        jti=_text(claims, "jti"),
        expires_at=times["exp"],
        issued_at=times["iat"],
        not_before=times["nbf"],
    )


def _decode(token: str, key: SigningKey, policy: TokenPolicy) -> dict[str, Any]:
    options: Any = {
        "require": list(REQUIRED_CLAIMS),
        # Time is checked against the clock handed in (see _check_times), not the system's.
        "verify_exp": False,
        "verify_nbf": False,
        "verify_iat": False,
    }
    try:
        decoded: dict[str, Any] = jwt.decode_complete(
            token,
            key.public_key,
            algorithms=[key.algorithm],
            audience=policy.audience,
            issuer=policy.issuer,
            options=options,
        )
    except jwt.PyJWTError as exc:
        raise Unauthenticated(_reason(exc, key)) from exc
    return decoded


_REASONS: Mapping[type[jwt.PyJWTError], str] = {
    jwt.InvalidSignatureError: "The access token's signature is invalid.",
    jwt.InvalidIssuerError: "The access token was issued by another issuer.",
    jwt.InvalidAudienceError: "The access token is meant for another audience.",
    jwt.DecodeError: "The access token is not a well-formed JWT.",
}


def _reason(exc: jwt.PyJWTError, key: SigningKey) -> str:
    if isinstance(exc, jwt.InvalidAlgorithmError):
        return f"The access token's algorithm is not {key.algorithm}, the one of its key."
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"The access token lacks the {exc.claim!r} claim."
    for error_type, reason in _REASONS.items():
        if isinstance(exc, error_type):
            return reason
    return f"The access token is invalid: {exc}."


def _check_times(times: Mapping[str, datetime], now: datetime, leeway: timedelta) -> None:
    if times["exp"] <= now - leeway:
        raise Unauthenticated("The access token has expired.")
    if times["nbf"] > now + leeway:
        raise Unauthenticated("The access token is not valid yet (nbf).")
    if times["iat"] > now + leeway:
        raise Unauthenticated("The access token claims to be issued in the future (iat).")


def _instant(claims: Mapping[str, Any], name: str) -> datetime:
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Unauthenticated(f"The access token's {name!r} claim is not a number.")
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise Unauthenticated(f"The access token's {name!r} claim is out of range.") from exc


def _text(claims: Mapping[str, Any], name: str, *, allow_empty: bool = False) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not (value or allow_empty):
        raise Unauthenticated(f"The access token lacks the {name!r} claim.")
    return value
