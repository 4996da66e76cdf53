"""Sealed values at rest: the built-in secret store, and re-wrapping after a key rotation.

A secret row holds the credential sealed for ``secret:<workspace>/<id>`` and the id of the KEK
that wraps its data key (``key_id``), so rotation selects exactly the rows still under an older
key. Every statement of the store filters by ``workspace_id``; re-wrapping is maintenance and
walks all workspaces (like the worker's task claim).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

import orjson
from sqlalchemy import and_, bindparam, delete, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import Insert

from campaignflow.errors import NotFound, SealedDataError
from campaignflow.security.envelope import RewrappingSealer
from campaignflow.store.database import Database
from campaignflow.store.tables import secrets, signing_keys
from campaignflow.store.workflows import Clock, aware_now, utc_now

SIGNING_KEY_CONTEXT = "signing-key:"


def secret_context(workspace_id: str, secret_id: str) -> str:
    """What a secret is sealed for: its workspace and id, each percent-encoded so that no two
    (workspace, id) pairs share a context."""
    return f"secret:{quote(workspace_id, safe='')}/{quote(secret_id, safe='')}"


_IS_SECRET = and_(
    secrets.c.workspace_id == bindparam("workspace"), secrets.c.id == bindparam("secret")
)
GET_SECRET = select(secrets.c.sealed).where(_IS_SECRET)
DELETE_SECRET = delete(secrets).where(_IS_SECRET)


_REPLACED = ("sealed", "key_id", "updated_at")  # created_at stays the first put's
_POSTGRES_INSERT = postgres_insert(secrets)
_SQLITE_INSERT = sqlite_insert(secrets)
UPSERT_SECRET: dict[str, Insert] = {
    "postgresql": _POSTGRES_INSERT.on_conflict_do_update(
        index_elements=[secrets.c.workspace_id, secrets.c.id],
        set_={name: _POSTGRES_INSERT.excluded[name] for name in _REPLACED},
    ),
    "sqlite": _SQLITE_INSERT.on_conflict_do_update(
        index_elements=[secrets.c.workspace_id, secrets.c.id],
        set_={name: _SQLITE_INSERT.excluded[name] for name in _REPLACED},
    ),
}

# Rows not under the active key, in key order after a cursor: (workspace, id) > (after_ws, after).
STALE_SECRETS = (
    select(secrets.c.workspace_id, secrets.c.id, secrets.c.sealed)
    .where(
        secrets.c.key_id != bindparam("active"),
        tuple_(secrets.c.workspace_id, secrets.c.id)
        > tuple_(bindparam("after_workspace"), bindparam("after_id")),
    )
    .order_by(secrets.c.workspace_id, secrets.c.id)
    .limit(bindparam("limit"))
)
# Compare-and-set: a row written meanwhile (by a put) is left as that put wrote it.
REWRAP_SECRET = (
    update(secrets)
    .where(_IS_SECRET, secrets.c.sealed == bindparam("old"))
    .values(sealed=bindparam("new"), key_id=bindparam("new_key_id"))
)

ALL_SIGNING_KEYS = select(signing_keys.c.kid, signing_keys.c.private_key).order_by(
    signing_keys.c.kid
)
REWRAP_SIGNING_KEY = (
    update(signing_keys)
    .where(
        signing_keys.c.kid == bindparam("signing_kid"),
        signing_keys.c.private_key == bindparam("old"),
    )
    .values(private_key=bindparam("new"))
)


@dataclass(frozen=True, slots=True)
class _Stale:
    workspace_id: str
    id: str
    sealed: str


class DatabaseSecretStore:
    """Integration credentials sealed into the ``secrets`` table (the default backend)."""

    def __init__(
        self, database: Database, sealer: RewrappingSealer, *, clock: Clock = utc_now
    ) -> None:
        self._db = database
        self._sealer = sealer
        self._clock = clock

    async def put(self, workspace_id: str, secret_id: str, value: Mapping[str, str]) -> None:
        plaintext = orjson.dumps(dict(value), option=orjson.OPT_SORT_KEYS)
        sealed = self._sealer.seal(plaintext, context=secret_context(workspace_id, secret_id))
        now = aware_now(self._clock)
        row = {
            "workspace_id": workspace_id,
            "id": secret_id,
            "sealed": sealed,
            "key_id": self._sealer.key_id_of(sealed),
            "created_at": now,
            "updated_at": now,
        }
        async with self._db.transaction() as connection:
            await connection.execute(UPSERT_SECRET[self._db.dialect], row)

    async def get(self, workspace_id: str, secret_id: str) -> dict[str, str]:
        params = {"workspace": workspace_id, "secret": secret_id}
        async with self._db.read() as connection:
            sealed = (await connection.execute(GET_SECRET, params)).scalar_one_or_none()
        if sealed is None:
            raise NotFound(f"Secret {secret_id!r} does not exist.")
        plaintext = self._sealer.open(sealed, context=secret_context(workspace_id, secret_id))
        value: dict[str, str] = orjson.loads(plaintext)
        return value

    async def delete(self, workspace_id: str, secret_id: str) -> None:
        params = {"workspace": workspace_id, "secret": secret_id}
        async with self._db.transaction() as connection:
            if not (await connection.execute(DELETE_SECRET, params)).rowcount:
                raise NotFound(f"Secret {secret_id!r} does not exist.")

    async def rewrap_all(self, batch_size: int = 500) -> int:
        """Re-wrap every row not under the active KEK, ``batch_size`` rows per transaction;
        the number of rows re-wrapped.

        Resumable and idempotent: a run that stops half-way has committed whole batches, every
        row opens (under its old key or the new one), and the next run selects what is left.
        A row whose key is not in the ring stops the run with :class:`SealedDataError`.
        """
        total, after = 0, ("", "")
        while True:
            async with self._db.transaction() as connection:
                batch = await self._stale_batch(connection, after, batch_size)
                for row in batch:
                    await self._rewrap_row(connection, row)
            total += len(batch)
            if len(batch) < batch_size:
                return total
            after = (batch[-1].workspace_id, batch[-1].id)

    async def _stale_batch(
        self, connection: AsyncConnection, after: tuple[str, str], limit: int
    ) -> list[_Stale]:
        params = {
            "active": self._sealer.active_id,
            "after_workspace": after[0],
            "after_id": after[1],
            "limit": limit,
        }
        result = await connection.execute(STALE_SECRETS, params)
        return [_Stale(*row) for row in result]

    async def _rewrap_row(self, connection: AsyncConnection, row: _Stale) -> None:
        context = secret_context(row.workspace_id, row.id)
        try:
            new = self._sealer.rewrap(row.sealed, context=context)
        except SealedDataError as exc:
            raise SealedDataError(
                f"Secret {row.id!r} of workspace {row.workspace_id!r} cannot be re-wrapped: "
                f"{exc.message}"
            ) from exc
        params = {
            "workspace": row.workspace_id,
            "secret": row.id,
            "old": row.sealed,
            "new": new,
            "new_key_id": self._sealer.active_id,
        }
        await connection.execute(REWRAP_SECRET, params)


async def rewrap_signing_keys(database: Database, sealer: RewrappingSealer) -> int:
    """Re-wrap every JWT signing key's sealed private key not under the active KEK (there are
    a handful, so one transaction); the number re-wrapped."""
    count = 0
    async with database.transaction() as connection:
        rows = (await connection.execute(ALL_SIGNING_KEYS)).all()
        for kid, sealed in rows:
            if sealer.key_id_of(sealed) == sealer.active_id:
                continue
            new = sealer.rewrap(sealed, context=SIGNING_KEY_CONTEXT + kid)
            await connection.execute(
                REWRAP_SIGNING_KEY, {"signing_kid": kid, "old": sealed, "new": new}
            )
            count += 1
    return count
