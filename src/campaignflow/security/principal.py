"""The authenticated caller of one request, as every route and the audit log see it."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from campaignflow.security.rbac import Permission, Role, effective_permissions


class CredentialKind(StrEnum):
    API_KEY = "api_key"
    OAUTH = "oauth"  # a JWT access token issued to an OAuth client


@dataclass(frozen=True, slots=True)
class Credential:
    """What the caller presented: its kind, its id (API key id or OAuth client id), its scopes
    and, for access tokens, the token's ``jti``."""

    kind: CredentialKind
    id: str
    scopes: frozenset[Permission]
    allowed_cidrs: tuple[str, ...] | None = None
    token_id: str | None = None

    @property
    def label(self) -> str:
        """How the audit log names it: ``api_key:<id>`` or ``oauth:<client_id>``."""
        return f"{self.kind.value}:{self.id}"


@dataclass(frozen=True, slots=True)
class Principal:
    """A user or service of one workspace, with the credential it called with."""

    workspace_id: str
    subject: str  # the principal id
    role: Role
    credential: Credential
    grants: dict[str, Role] = field(default_factory=dict)  # workflow id -> role

    def permissions(self, workflow_id: str | None = None) -> frozenset[Permission]:
        grant = self.grants.get(workflow_id) if workflow_id is not None else None
        return effective_permissions(self.role, self.credential.scopes, grant)

    def may(self, permission: Permission, workflow_id: str | None = None) -> bool:
        return permission in self.permissions(workflow_id)
