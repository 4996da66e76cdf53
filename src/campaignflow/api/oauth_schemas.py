"""Shapes of the OAuth 2.0 endpoints (RFC 6749, 7662, 7009, 7517: snake_case, as the RFCs
name them) and of the admin resource ``/api/v1/oauth-clients`` (camelCase, as the rest of the
API)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from campaignflow.api.access_schemas import Cidrs, Name
from campaignflow.api.schemas import ApiModel
from campaignflow.security.jwt_tokens import AccessClaims, TokenPolicy, scope_text
from campaignflow.security.rbac import Permission, Role
from campaignflow.store.oauth import ClientRecord

FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"

#: Members of the request body, to suggest a spelling for an unknown one.
FIELDS = ("name", "role", "scopes", "allowedCidrs")


def form_body(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    """``openapi_extra`` documenting a form body the route parses itself."""
    schema = {"type": "object", "properties": properties, "required": required}
    return {"requestBody": {"required": True, "content": {FORM_MEDIA_TYPE: {"schema": schema}}}}


_STRING = {"type": "string"}
CLIENT_AUTH_FIELDS = {
    "client_id": {**_STRING, "description": "client_secret_post: the client id."},
    "client_secret": {**_STRING, "description": "client_secret_post: the client secret."},
}


class TokenResponse(BaseModel):
    """RFC 6749 §5.1."""

    access_token: str = Field(description="A JWT (`typ: at+jwt`), verifiable with the JWKS.")
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 — the RFC's token type, no secret
    expires_in: int = Field(description="Seconds until the token expires.")
    scope: str = Field(description="Granted scopes (permission names), space-separated.")


class OAuthErrorBody(BaseModel):
    """RFC 6749 §5.2: the error format of the OAuth endpoints (not problem+json)."""

    error: str = Field(
        description="`invalid_request`, `invalid_client`, `unsupported_grant_type`, "
        "`invalid_scope`, …"
    )
    error_description: str | None = None


class Introspection(BaseModel):
    """RFC 7662 §2.2; only `active` when the token is not active for the caller."""

    model_config = ConfigDict(frozen=True)

    active: bool
    scope: str | None = None
    client_id: str | None = None
    sub: str | None = None
    exp: int | None = None
    iat: int | None = None
    nbf: int | None = None
    iss: str | None = None
    aud: str | None = None
    jti: str | None = None
    token_type: Literal["Bearer"] | None = None

    @classmethod
    def of(cls, claims: AccessClaims | None, policy: TokenPolicy) -> Introspection:
        if claims is None:
            return cls(active=False)
        return cls(
            active=True,
            scope=scope_text(claims.scopes),
            client_id=claims.client_id,
            sub=claims.subject,
            exp=int(claims.expires_at.timestamp()),
            iat=int(claims.issued_at.timestamp()),
            nbf=int(claims.not_before.timestamp()),
            iss=policy.issuer,
            aud=policy.audience,
            jti=claims.jti,
            token_type="Bearer",  # noqa: S106 — the RFC's token type, no secret
        )


class JsonWebKeySet(BaseModel):
    """RFC 7517 §5."""

    keys: list[dict[str, str]] = Field(
        description="Public keys (`kid`, `alg`, `use: sig`), including those about to sign."
    )


class OAuthClientCreate(ApiModel):
    """The body of `POST /oauth-clients`."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    role: Role = Field(description="Role of the client's service principal; at most your own.")
    scopes: list[Permission] | None = Field(
        None,
        description="What its tokens may ask for, within the role and your own permissions; "
        "default: all of that.",
    )
    allowed_cidrs: Cidrs = None


class OAuthClientOut(ApiModel):
    client_id: str
    name: str
    principal_id: str = Field(description="The service principal tokens are issued to (`sub`).")
    role: Role
    scopes: list[str]
    allowed_cidrs: list[str] | None
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None = Field(
        description="Last token issued (updated at most once a minute)."
    )

    @classmethod
    def from_record(cls, record: ClientRecord) -> OAuthClientOut:
        return cls(**_fields(record))


def _fields(record: ClientRecord) -> dict[str, Any]:
    cidrs = record.allowed_cidrs
    return {
        "client_id": record.client_id,
        "name": record.name,
        "principal_id": record.principal_id,
        "role": Role(record.role),
        "scopes": list(record.scopes),
        "allowed_cidrs": None if cidrs is None else list(cidrs),
        "created_at": record.created_at,
        "revoked_at": record.revoked_at,
        "last_used_at": record.last_used_at,
    }


class OAuthClientCreated(OAuthClientOut):
    client_secret: str = Field(
        description="The client secret. Shown only in this response: store it now."
    )

    @classmethod
    def with_secret(cls, record: ClientRecord, secret: str) -> OAuthClientCreated:
        return cls(**_fields(record), client_secret=secret)


class OAuthClientPage(ApiModel):
    items: list[OAuthClientOut]
    next_cursor: str | None
