"""Roles, permissions and scopes: who may do what, decided in one place.

A permission is a resource and a verb (``workflows:write``); scopes are permission names, so an
API key or an OAuth client is narrowed by listing the permissions it may use. What a request may
do is the intersection of its principal's role (raised for one workflow by a grant) and its
credential's scopes. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum


class Permission(StrEnum):
    WORKFLOWS_READ = "workflows:read"
    WORKFLOWS_WRITE = "workflows:write"
    WORKFLOWS_EXECUTE = "workflows:execute"
    TRIGGERS_READ = "triggers:read"
    TRIGGERS_WRITE = "triggers:write"
    EXECUTIONS_READ = "executions:read"
    EXECUTIONS_WRITE = "executions:write"
    DEAD_LETTERS_READ = "dead_letters:read"
    DEAD_LETTERS_WRITE = "dead_letters:write"
    CONTACTS_READ = "contacts:read"
    CONTACTS_WRITE = "contacts:write"
    EVENTS_WRITE = "events:write"
    SUPPRESSIONS_READ = "suppressions:read"
    SUPPRESSIONS_WRITE = "suppressions:write"
    ACCESS_READ = "access:read"
    ACCESS_WRITE = "access:write"
    AUDIT_READ = "audit:read"
    CONNECTIONS_READ = "connections:read"
    CONNECTIONS_WRITE = "connections:write"
    CONNECTIONS_SYNC = "connections:sync"  # start a CRM sync run
    WORKSPACE_WRITE = "workspace:write"
    # Privacy (issue 8): erasing a person and exporting all their data reach every store, so
    # they are admin rights of their own; privacy settings (send policy, retention) and the
    # records of processing are read and written by admins (the data protection officer).
    CONTACTS_ERASE = "contacts:erase"
    CONTACTS_EXPORT = "contacts:export"
    PRIVACY_READ = "privacy:read"
    PRIVACY_WRITE = "privacy:write"
    # Observability (issue 9): alerts are seen by operators and ruled by editors; a channel
    # holds a credential (a Slack URL, a signing secret), so writing one is an admin right, as
    # for connections. /metrics is process-wide, so it is read only by admins of the operator's
    # workspace (a Prometheus scrape key carries just this scope).
    ALERTS_READ = "alerts:read"
    ALERTS_WRITE = "alerts:write"
    ALERT_CHANNELS_WRITE = "alert_channels:write"
    METRICS_READ = "metrics:read"


class Role(StrEnum):
    """Workspace roles, from the most to the least powerful."""

    OWNER = "owner"
    ADMIN = "admin"
    EDITOR = "editor"
    OPERATOR = "operator"
    VIEWER = "viewer"


P = Permission
_VIEWER = frozenset({P.WORKFLOWS_READ, P.TRIGGERS_READ, P.EXECUTIONS_READ})
_OPERATOR = _VIEWER | {
    P.WORKFLOWS_EXECUTE,
    P.EXECUTIONS_WRITE,
    P.DEAD_LETTERS_READ,
    P.DEAD_LETTERS_WRITE,
    P.CONTACTS_READ,
    P.EVENTS_WRITE,
    P.CONNECTIONS_READ,
    P.CONNECTIONS_SYNC,  # run a configured sync now, as an operator reruns a workflow
    P.SUPPRESSIONS_READ,  # like contacts: whether a person's address may be mailed
    P.ALERTS_READ,
}
_EDITOR = _OPERATOR | {
    P.WORKFLOWS_WRITE,
    P.TRIGGERS_WRITE,
    P.CONTACTS_WRITE,
    P.SUPPRESSIONS_WRITE,
    P.ALERTS_WRITE,
}
_ADMIN = _EDITOR | {
    P.ACCESS_READ,
    P.ACCESS_WRITE,
    P.AUDIT_READ,
    P.CONNECTIONS_WRITE,
    P.CONTACTS_ERASE,
    P.CONTACTS_EXPORT,
    P.PRIVACY_READ,
    P.PRIVACY_WRITE,
    P.ALERT_CHANNELS_WRITE,
    P.METRICS_READ,
}
_OWNER = _ADMIN | {P.WORKSPACE_WRITE}

ROLE_PERMISSIONS: Mapping[Role, frozenset[Permission]] = {
    Role.OWNER: _OWNER,
    Role.ADMIN: _ADMIN,
    Role.EDITOR: _EDITOR,
    Role.OPERATOR: _OPERATOR,
    Role.VIEWER: _VIEWER,
}

# What a per-workflow grant can raise: only the permissions about that workflow.
WORKFLOW_PERMISSIONS = frozenset({P.WORKFLOWS_READ, P.WORKFLOWS_WRITE, P.WORKFLOWS_EXECUTE})

ALL_SCOPES = frozenset(Permission)
#: The scope of a credential that may do whatever its principal may (its role and grants,
#: as they are when it is used): what API keys created without scopes get.
UNRESTRICTED = "*"

_RANK = {role: rank for rank, role in enumerate(reversed(list(Role)))}


def rank(role: Role) -> int:
    """Higher is more powerful; used so nobody hands out more than they hold."""
    return _RANK[role]


def parse_scopes(names: Iterable[str]) -> frozenset[Permission]:
    """Scope names to permissions; unknown names raise ``ValueError`` naming them."""
    values = list(names)
    if UNRESTRICTED in values:
        return ALL_SCOPES
    unknown = sorted({name for name in values if name not in ALL_SCOPES})
    if unknown:
        raise ValueError("unknown scope(s): " + ", ".join(unknown))
    return frozenset(Permission(name) for name in values)


def effective_permissions(
    role: Role, scopes: frozenset[Permission], grant: Role | None = None
) -> frozenset[Permission]:
    """What a credential may do: its role's permissions (raised for one workflow by ``grant``)
    within its scopes."""
    allowed = ROLE_PERMISSIONS[role]
    if grant is not None:
        allowed = allowed | (ROLE_PERMISSIONS[grant] & WORKFLOW_PERMISSIONS)
    return allowed & scopes


def may_assign(assigner: Role, role: Role) -> bool:
    """A principal can give a role up to its own, never above."""
    return rank(role) <= rank(assigner)
