"""OAuth clients, revoked access tokens and JWT signing keys.

Client ids are global (the token endpoint learns the workspace from the client); every other
client statement filters by ``workspace_id`` too. A client and its service principal are created
in one transaction. Secrets are stored as their SHA-256 only (hex); this module never sees one.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, delete, exists, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from campaignflow.store.database import Database
from campaignflow.store.tables import oauth_clients, principals, revoked_tokens, signing_keys


@dataclass(frozen=True, slots=True)
class ClientRecord:
    """An OAuth client with what matters of its service principal (role, disabled)."""

    client_id: str
    workspace_id: str
    principal_id: str
    name: str
    role: str
    scopes: tuple[str, ...]
    allowed_cidrs: tuple[str, ...] | None
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None
    principal_disabled_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None and self.principal_disabled_at is None


@dataclass(frozen=True, slots=True)
class SigningKeyRow:
    kid: str
    algorithm: str
    private_key: str  # sealed PEM
    public_jwk: dict[str, Any]
    created_at: datetime
    signs_from: datetime
    retired_at: datetime | None


# --- SQL ----------------------------------------------------------------------------------

_CLIENT = select(
    oauth_clients.c.client_id,
    oauth_clients.c.workspace_id,
    oauth_clients.c.principal_id,
    oauth_clients.c.name,
    principals.c.role,
    oauth_clients.c.scopes,
    oauth_clients.c.allowed_cidrs,
    oauth_clients.c.created_at,
    oauth_clients.c.revoked_at,
    oauth_clients.c.last_used_at,
    principals.c.disabled_at,
    oauth_clients.c.secret_hash,
).join(
    principals,
    and_(
        principals.c.workspace_id == oauth_clients.c.workspace_id,
        principals.c.id == oauth_clients.c.principal_id,
    ),
)
GET_CLIENT = _CLIENT.where(oauth_clients.c.client_id == bindparam("client"))
GET_WORKSPACE_CLIENT = GET_CLIENT.where(oauth_clients.c.workspace_id == bindparam("workspace"))
LIST_CLIENTS = (
    _CLIENT.where(
        oauth_clients.c.workspace_id == bindparam("workspace"),
        oauth_clients.c.client_id > bindparam("after"),
    )
    .order_by(oauth_clients.c.client_id)
    .limit(bindparam("limit"))
)
REVOKE_CLIENT = (
    update(oauth_clients)
    .where(
        oauth_clients.c.workspace_id == bindparam("workspace"),
        oauth_clients.c.client_id == bindparam("client"),
        oauth_clients.c.revoked_at.is_(None),
    )
    .values(revoked_at=bindparam("now"))
)
# last_used_at moves in steps of at least ``min_age``: a busy client costs one write a minute.
TOUCH_CLIENT = (
    update(oauth_clients)
    .where(
        oauth_clients.c.client_id == bindparam("client"),
        or_(
            oauth_clients.c.last_used_at.is_(None),
            oauth_clients.c.last_used_at < bindparam("stale_before"),
        ),
    )
    .values(last_used_at=bindparam("now"))
)

INSERT_REVOKED = {
    "postgresql": postgresql.insert(revoked_tokens).on_conflict_do_nothing(),
    "sqlite": sqlite.insert(revoked_tokens).on_conflict_do_nothing(),
}
IS_REVOKED = select(revoked_tokens.c.jti).where(revoked_tokens.c.jti == bindparam("jti"))
PURGE_REVOKED = delete(revoked_tokens).where(revoked_tokens.c.expires_at <= bindparam("now"))

LIVE_KEYS = select(signing_keys).where(signing_keys.c.retired_at.is_(None))
_NEWER_LIVE_KEY = exists().where(
    signing_keys.c.retired_at.is_(None), signing_keys.c.created_at > bindparam("since")
)
# A new key unless a live key was created after ``since`` (another process rotating too).
ADD_KEY = insert(signing_keys).from_select(
    [column.name for column in signing_keys.c],
    select(*(bindparam(column.name, type_=column.type) for column in signing_keys.c)).where(
        ~_NEWER_LIVE_KEY
    ),
)
RETIRE_KEYS = (
    update(signing_keys)
    .where(
        signing_keys.c.kid.in_(bindparam("kids", expanding=True)),
        signing_keys.c.retired_at.is_(None),
    )
    .values(retired_at=bindparam("now"))
)


def _client(row: Any) -> ClientRecord:
    """A row of ``_CLIENT`` (client joined with its principal)."""
    cidrs = row.allowed_cidrs
    return ClientRecord(
        client_id=row.client_id,
        workspace_id=row.workspace_id,
        principal_id=row.principal_id,
        name=row.name,
        role=row.role,
        scopes=tuple(row.scopes),
        allowed_cidrs=None if cidrs is None else tuple(cidrs),
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
        principal_disabled_at=row.disabled_at,
    )


class OAuthStore:
    """The OAuth tables on a :class:`Database`."""

    def __init__(self, database: Database) -> None:
        self._db = database

    # --- clients ----------------------------------------------------------------------------

    async def create_client(self, client: ClientRecord, secret_hash: str) -> None:
        """Insert the client and its service principal (named and ranked as the client)."""
        principal = {
            "workspace_id": client.workspace_id,
            "id": client.principal_id,
            "kind": "service",
            "name": client.name,
            "role": client.role,
            "created_at": client.created_at,
            "disabled_at": None,
        }
        row = {
            "client_id": client.client_id,
            "workspace_id": client.workspace_id,
            "principal_id": client.principal_id,
            "name": client.name,
            "secret_hash": secret_hash,
            "scopes": list(client.scopes),
            "allowed_cidrs": None if client.allowed_cidrs is None else list(client.allowed_cidrs),
            "created_at": client.created_at,
            "revoked_at": None,
            "last_used_at": None,
        }
        async with self._db.transaction() as connection:
            await connection.execute(insert(principals), principal)
            await connection.execute(insert(oauth_clients), row)

    async def client_with_secret_hash(self, client_id: str) -> tuple[ClientRecord, str] | None:
        """A client (any workspace) and its secret's hash, to authenticate it."""
        async with self._db.read() as connection:
            row = (await connection.execute(GET_CLIENT, {"client": client_id})).first()
        return None if row is None else (_client(row), row.secret_hash)

    async def get_client(self, workspace_id: str, client_id: str) -> ClientRecord | None:
        params = {"workspace": workspace_id, "client": client_id}
        async with self._db.read() as connection:
            row = (await connection.execute(GET_WORKSPACE_CLIENT, params)).first()
        return None if row is None else _client(row)

    async def list_clients(
        self, workspace_id: str, *, after: str | None, limit: int
    ) -> Sequence[ClientRecord]:
        """Clients in ``client_id`` order, starting after ``after`` (keyset pagination)."""
        params = {"workspace": workspace_id, "after": after or "", "limit": limit}
        async with self._db.read() as connection:
            rows = (await connection.execute(LIST_CLIENTS, params)).all()
        return [_client(row) for row in rows]

    async def revoke_client(self, workspace_id: str, client_id: str, now: datetime) -> bool:
        """Mark the client revoked (idempotent); ``False`` if it is not in the workspace."""
        params = {"workspace": workspace_id, "client": client_id, "now": now}
        async with self._db.transaction() as connection:
            await connection.execute(REVOKE_CLIENT, params)
            found = await connection.execute(GET_WORKSPACE_CLIENT, params)
            return found.first() is not None

    async def touch_client(self, client_id: str, now: datetime, min_age: timedelta) -> None:
        params = {"client": client_id, "now": now, "stale_before": now - min_age}
        async with self._db.transaction() as connection:
            await connection.execute(TOUCH_CLIENT, params)

    # --- revoked access tokens --------------------------------------------------------------

    async def revoke_token(
        self, jti: str, workspace_id: str, expires_at: datetime, now: datetime
    ) -> None:
        row = {
            "jti": jti,
            "workspace_id": workspace_id,
            "expires_at": expires_at,
            "revoked_at": now,
        }
        async with self._db.transaction() as connection:
            await connection.execute(INSERT_REVOKED[self._db.dialect], row)

    async def is_token_revoked(self, jti: str) -> bool:
        async with self._db.read() as connection:
            return (await connection.execute(IS_REVOKED, {"jti": jti})).first() is not None

    async def purge_revoked_tokens(self, now: datetime) -> int:
        """Forget revocations of tokens that have expired anyway; returns how many."""
        async with self._db.transaction() as connection:
            result = await connection.execute(PURGE_REVOKED, {"now": now})
        return int(result.rowcount)

    # --- signing keys -----------------------------------------------------------------------

    async def live_signing_keys(self) -> list[SigningKeyRow]:
        async with self._db.read() as connection:
            rows = (await connection.execute(LIVE_KEYS)).all()
        return [SigningKeyRow(**row._mapping) for row in rows]

    async def add_signing_key(self, row: SigningKeyRow, *, unless_created_after: datetime) -> bool:
        """Insert ``row`` unless a live key was created after ``unless_created_after``."""
        params = {
            "kid": row.kid,
            "algorithm": row.algorithm,
            "private_key": row.private_key,
            "public_jwk": row.public_jwk,
            "created_at": row.created_at,
            "signs_from": row.signs_from,
            "retired_at": row.retired_at,
            "since": unless_created_after,
        }
        async with self._db.transaction() as connection:
            result = await connection.execute(ADD_KEY, params)
        return bool(result.rowcount)

    async def retire_signing_keys(self, kids: Collection[str], now: datetime) -> None:
        async with self._db.transaction() as connection:
            await connection.execute(RETIRE_KEYS, {"kids": list(kids), "now": now})
