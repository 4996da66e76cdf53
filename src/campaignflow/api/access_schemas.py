"""Request and response shapes of principals, API keys, workflow grants and the workspace."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from campaignflow.api.schemas import ApiModel
from campaignflow.security.rbac import Permission, Role
from campaignflow.store.access import ApiKeyRecord, GrantRecord, PrincipalRecord

#: Members of the request bodies, to suggest a spelling for an unknown one.
FIELDS = (
    "name",
    "kind",
    "role",
    "disabled",
    "principalId",
    "scopes",
    "allowedCidrs",
    "expiresAt",
)

Name = Annotated[str, Field(min_length=1, max_length=200)]
Cidrs = Annotated[
    list[Annotated[str, Field(max_length=64)]] | None,
    Field(
        max_length=100,
        description="CIDR blocks (IPv4 or IPv6) requests may come from; null: any address.",
        examples=[["203.0.113.0/24", "2001:db8::/32"]],
    ),
]


class PrincipalCreate(ApiModel):
    """The body of `POST /principals`."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    kind: Literal["user", "service"] = "user"
    role: Role = Field(description="Workspace role; at most your own.")


class PrincipalPatch(ApiModel):
    """The body of `PATCH /principals/{principalId}`: members left out stay."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    role: Role | None = None
    disabled: bool | None = Field(None, description="A disabled principal's credentials fail.")


class PrincipalOut(ApiModel):
    id: str
    kind: str
    name: str
    role: Role
    created_at: datetime
    disabled_at: datetime | None

    @classmethod
    def from_record(cls, record: PrincipalRecord) -> PrincipalOut:
        return cls(
            id=record.id,
            kind=record.kind,
            name=record.name,
            role=Role(record.role),
            created_at=record.created_at,
            disabled_at=record.disabled_at,
        )


class PrincipalPage(ApiModel):
    items: list[PrincipalOut]
    next_cursor: str | None


class ApiKeyCreate(ApiModel):
    """The body of `POST /api-keys`."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    principal_id: str | None = Field(
        None, max_length=64, description="Whose key it is; default: yours."
    )
    scopes: list[Permission] | None = Field(
        None,
        description="What the key may do, within its principal's role; default: all of it. "
        "A Segment write key needs only `events:write`.",
    )
    allowed_cidrs: Cidrs = None
    expires_at: datetime | None = None


class ApiKeyOut(ApiModel):
    id: str
    name: str
    principal_id: str
    prefix: str = Field(description="The visible start of the key, to recognise it.")
    scopes: list[str]
    allowed_cidrs: list[str] | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    @classmethod
    def from_record(cls, record: ApiKeyRecord) -> ApiKeyOut:
        return cls(
            id=record.id,
            name=record.name,
            principal_id=record.principal_id,
            prefix=record.prefix,
            scopes=record.scopes,
            allowed_cidrs=record.allowed_cidrs,
            created_at=record.created_at,
            expires_at=record.expires_at,
            revoked_at=record.revoked_at,
            last_used_at=record.last_used_at,
        )


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The key itself. Shown only in this response: store it now.")


class ApiKeyPage(ApiModel):
    items: list[ApiKeyOut]
    next_cursor: str | None


class GrantPut(ApiModel):
    """The body of `PUT /workflows/{workflowId}/grants/{principalId}`."""

    model_config = ConfigDict(extra="forbid")

    role: Role = Field(description="Role on this workflow; at most your own.")


class GrantOut(ApiModel):
    workflow_id: str
    principal_id: str
    role: Role
    created_at: datetime

    @classmethod
    def from_record(cls, record: GrantRecord) -> GrantOut:
        return cls(
            workflow_id=record.workflow_id,
            principal_id=record.principal_id,
            role=Role(record.role),
            created_at=record.created_at,
        )


class GrantList(ApiModel):
    items: list[GrantOut]


class WorkspaceAccess(ApiModel):
    """The workspace's IP allowlist: every credential's requests must come from it."""

    model_config = ConfigDict(extra="forbid")

    allowed_cidrs: Cidrs = None
