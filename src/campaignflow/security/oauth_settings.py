"""Settings of the OAuth 2.0 authorization server (``CAMPAIGNFLOW_OAUTH__*``).

Kept apart from the token code so that reading the settings tree does not import PyJWT and
``cryptography`` (every CLI command builds settings; only the API signs tokens).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Algorithm = Literal["EdDSA", "RS256"]

MAX_TOKEN_LIFETIME_SECONDS = 3600


class OAuthSettings(BaseModel):
    """Access tokens issued at ``POST /oauth/token`` and the keys that sign them."""

    issuer: str = Field(
        "campaignflow", min_length=1, description="`iss` of every access token issued here."
    )
    audience: str = Field(
        "campaignflow-api",
        min_length=1,
        description="`aud` of every access token; a token for another audience is refused.",
    )
    token_lifetime_seconds: int = Field(
        900,
        ge=60,
        le=MAX_TOKEN_LIFETIME_SECONDS,
        description="How long an access token is valid (`exp` - `iat`).",
    )
    algorithm: Algorithm = Field(
        "EdDSA",
        description="Algorithm of newly created signing keys (Ed25519 or RSA 2048 with "
        "SHA-256); existing keys keep theirs until they are retired.",
    )
    signing_key_rotation_days: float = Field(
        30, gt=0, le=365, description="Age at which the signing key is replaced by a new one."
    )
    key_publish_seconds: int = Field(
        600,
        ge=10,
        le=86_400,
        description="How long a new signing key is published in the JWKS before it signs, so "
        "resource servers that cache the JWKS know it before they meet its first token.",
    )
