"""Managing who may call: principals, API keys, per-workflow grants, the workspace allowlist.

The rules that keep access from escalating live here, whichever interface calls: nobody assigns
a role above their own or scopes beyond their own permissions; nobody changes their own role or
disables themselves; an allowlist that would shut out the caller's own address is refused.
Every change clears the authenticator's cache, so it takes effect in this process at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from ipaddress import IPv4Address, IPv6Address

from campaignflow.errors import Forbidden, InvalidField
from campaignflow.security.api_keys import NewKey, generate_key, hash_key, visible_prefix
from campaignflow.security.network import IPNetwork, allowed, parse_cidrs
from campaignflow.security.principal import Principal
from campaignflow.security.rbac import (
    ALL_SCOPES,
    ROLE_PERMISSIONS,
    UNRESTRICTED,
    Permission,
    Role,
    may_assign,
    parse_scopes,
    rank,
)
from campaignflow.services.authentication import Authenticator
from campaignflow.store.access import AccessStore, ApiKeyRecord, GrantRecord, PrincipalRecord

Address = IPv4Address | IPv6Address
BOOTSTRAP_NAME = "bootstrap"


@dataclass(frozen=True, slots=True)
class CreatedKey:
    record: ApiKeyRecord
    value: str  # shown once


@dataclass(frozen=True, slots=True)
class KeyRequest:
    name: str
    principal_id: str | None = None  # default: the caller
    scopes: Sequence[str] | None = None  # default: all the principal's role allows
    allowed_cidrs: Sequence[str] | None = None
    expires_at: datetime | None = None


class AccessService:
    def __init__(self, store: AccessStore, authenticator: Authenticator) -> None:
        self._store = store
        self._authenticator = authenticator

    @property
    def store(self) -> AccessStore:
        return self._store

    # --- principals ---------------------------------------------------------------------

    async def create_principal(
        self, caller: Principal, *, kind: str, name: str, role: Role
    ) -> PrincipalRecord:
        _require_assignable(caller, role)
        return await self._store.create_principal(
            caller.workspace_id, kind=kind, name=name, role=role.value
        )

    async def update_principal(
        self,
        caller: Principal,
        principal_id: str,
        *,
        name: str | None = None,
        role: Role | None = None,
        disabled: bool | None = None,
    ) -> PrincipalRecord:
        target = await self._store.get_principal(caller.workspace_id, principal_id)
        if principal_id == caller.subject and (role is not None or disabled):
            raise Forbidden("You cannot change your own role or disable yourself.")
        if rank(Role(target.role)) > rank(caller.role):
            raise Forbidden("You cannot change a principal whose role is above yours.")
        if role is not None:
            _require_assignable(caller, role)
        changes: dict[str, object] = {}
        if name is not None:
            changes["name"] = name
        if role is not None:
            changes["role"] = role.value
        if disabled is not None:
            changes["disabled"] = disabled
        record = await self._store.update_principal(caller.workspace_id, principal_id, changes)
        self._authenticator.invalidate()
        return record

    # --- API keys -----------------------------------------------------------------------

    async def create_key(self, caller: Principal, request: KeyRequest) -> CreatedKey:
        owner_id = request.principal_id or caller.subject
        owner = await self._store.get_principal(caller.workspace_id, owner_id)
        owner_role = Role(owner.role)
        if owner_id != caller.subject:
            _require_assignable(caller, owner_role)
        scopes = grantable_scopes(
            request.scopes, ROLE_PERMISSIONS[owner_role] & caller.permissions()
        )
        unrestricted = request.scopes is None and caller.credential.scopes == ALL_SCOPES
        checked_cidrs(request.allowed_cidrs)
        key = generate_key()
        record = await self._store.create_key(
            caller.workspace_id,
            owner_id,
            key,
            name=request.name,
            scopes=[UNRESTRICTED] if unrestricted else sorted(scope.value for scope in scopes),
            allowed_cidrs=request.allowed_cidrs,
            expires_at=request.expires_at,
        )
        return CreatedKey(record, key.value)

    async def revoke_key(self, caller: Principal, key_id: str) -> ApiKeyRecord:
        record = await self._store.revoke_key(caller.workspace_id, key_id)
        self._authenticator.invalidate()
        return record

    # --- grants and the workspace allowlist ---------------------------------------------

    async def put_grant(
        self, caller: Principal, workflow_id: str, principal_id: str, role: Role
    ) -> GrantRecord:
        _require_assignable(caller, role)
        record = await self._store.put_grant(
            caller.workspace_id, workflow_id, principal_id, role.value
        )
        self._authenticator.invalidate()
        return record

    async def delete_grant(self, caller: Principal, workflow_id: str, principal_id: str) -> None:
        await self._store.delete_grant(caller.workspace_id, workflow_id, principal_id)
        self._authenticator.invalidate()

    async def set_workspace_cidrs(
        self, caller: Principal, cidrs: Sequence[str] | None, caller_address: Address | None
    ) -> list[str] | None:
        networks = checked_cidrs(cidrs)
        if networks is not None and (
            caller_address is None or not allowed(caller_address, networks)
        ):
            raise InvalidField(
                f"This allowlist does not include your own address ({caller_address}); "
                "it would lock you out.",
                "/allowedCidrs",
            )
        await self._store.set_workspace_cidrs(caller.workspace_id, cidrs)
        self._authenticator.invalidate()
        return list(cidrs) if cidrs is not None else None

    # --- bootstrap ----------------------------------------------------------------------

    async def bootstrap(self, workspace_id: str, token: str | None = None) -> CreatedKey | None:
        """The first owner credential of a workspace. With ``token`` (a configured secret, e.g.
        ``CAMPAIGNFLOW_API_TOKEN``) that value becomes an owner key, once; without, a key is
        generated when the workspace has no principal yet. Returns what was created, if any."""
        if token is not None:
            if await self._store.find_key(hash_key(token)) is not None:
                return None
            key = NewKey(value=token, prefix=visible_prefix(token)[:32], key_hash=hash_key(token))
        elif await self._store.list_principals(workspace_id, limit=1):
            return None
        else:
            key = generate_key()
        owner = await self._store.create_principal(
            workspace_id, kind="user", name=BOOTSTRAP_NAME, role=Role.OWNER.value
        )
        record = await self._store.create_key(
            workspace_id,
            owner.id,
            key,
            name=BOOTSTRAP_NAME,
            scopes=[UNRESTRICTED],
            allowed_cidrs=None,
            expires_at=None,
        )
        return CreatedKey(record, key.value)


def _require_assignable(caller: Principal, role: Role) -> None:
    if not may_assign(caller.role, role):
        raise Forbidden(f"You cannot assign the role {role.value}, which is above yours.")


def grantable_scopes(
    requested: Sequence[str] | None, limit: frozenset[Permission]
) -> frozenset[Permission]:
    """The scopes a new credential gets: ``requested`` (default: all of ``limit``), refused
    with a pointer when a name is unknown, and with 403 when one is beyond ``limit`` (what the
    credential's role and its creator both hold) — for API keys and OAuth clients alike."""
    if requested is None:
        return limit
    try:
        scopes = parse_scopes(requested)
    except ValueError as exc:
        raise InvalidField(str(exc), "/scopes") from exc
    beyond = sorted(scope.value for scope in scopes - limit)
    if beyond:
        raise Forbidden(
            "These scopes exceed what you and the credential's role hold: " + ", ".join(beyond)
        )
    return scopes


def checked_cidrs(cidrs: Sequence[str] | None) -> tuple[IPNetwork, ...] | None:
    """An allowlist as networks (``None``: any address), or 422 at ``/allowedCidrs``."""
    if cidrs is None:
        return None
    try:
        return tuple(parse_cidrs(list(cidrs)))
    except ValueError as exc:
        raise InvalidField(str(exc), "/allowedCidrs") from exc
