"""Contacts and their identities: the API's reads and writes, and the event router's batch
resolution (:meth:`ContactStore.resolve_events`).

Every statement filters by ``workspace_id``. An identity is claimed by inserting its row: the
primary key (workspace, kind, value) makes one identity belong to one contact, whoever gets
there first, without a read-then-write race.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from campaignflow.domain.contacts import (
    ContactChange,
    ContactRecord,
    IdentityKey,
    NewContact,
    apply_change,
    changed_identities,
)
from campaignflow.domain.events import Event
from campaignflow.domain.identity_resolution import BatchResolver, ResolutionPlan, identity_keys
from campaignflow.errors import AlreadyExists, NotFound, StorageError
from campaignflow.store import contact_sql as sql
from campaignflow.store import pg_batch as pg
from campaignflow.store.database import Database
from campaignflow.store.ids import new_id

# A batch retried because another router claimed one of its new identities first learns that
# owner on its next read, so a second attempt succeeds unless yet another race intervenes.
_RESOLVE_ATTEMPTS = 4
# SQLite binds at most 32,766 parameters per statement; a key takes three.
_SQLITE_KEYS_PER_LOOKUP = 5_000
_KIND_NAMES = {"user_id": "userId", "anonymous_id": "anonymousId", "email": "email"}


class _IdentityTaken(Exception):
    """Another transaction claimed an identity this batch meant to insert."""


class ContactStore:
    """Contacts on a :class:`Database`."""

    def __init__(self, database: Database) -> None:
        self._db = database

    # ------------------------------------------------------------------ the API

    async def create(self, new: NewContact, now: datetime) -> ContactRecord:
        """Insert a contact with its identities; :class:`AlreadyExists` if one is taken."""
        record = ContactRecord(
            new.workspace_id, new_id(), new.user_id, new.email, new.timezone,
            dict(new.traits), now, now, None,
        )  # fmt: skip
        async with self._db.transaction() as connection:
            await self._claim(connection, new.identities(), record.id, now)
            await connection.execute(sql.INSERT_CONTACTS, [_contact_row(record)])
        return record

    async def get(self, workspace_id: str, contact_id: str) -> ContactRecord:
        params = {"workspace": workspace_id, "contact": contact_id}
        async with self._db.read() as connection:
            row = (await connection.execute(sql.GET_CONTACT, params)).first()
        if row is None:
            raise _not_found(contact_id)
        return ContactRecord(**row._mapping)

    async def list(
        self,
        workspace_id: str,
        *,
        email: str | None = None,
        user_id: str | None = None,
        anonymous_id: str | None = None,
        before: str | None = None,
        limit: int = 50,
    ) -> builtins.list[ContactRecord]:
        """Newest first, starting after (older than) the id ``before``; each filter keeps the
        contact that has that identity (``email`` already normalised)."""
        statement = sql.list_contacts(
            email=email is not None,
            user_id=user_id is not None,
            anonymous_id=anonymous_id is not None,
            before=before is not None,
        )
        params = {
            "workspace": workspace_id,
            "email": email,
            "user_id": user_id,
            "anonymous_id": anonymous_id,
            "before": before,
            "limit": limit,
        }
        used = {key: value for key, value in params.items() if value is not None}
        async with self._db.read() as connection:
            rows = (await connection.execute(statement, used)).all()
        return [ContactRecord(**row._mapping) for row in rows]

    async def update(
        self, workspace_id: str, contact_id: str, change: ContactChange, now: datetime
    ) -> ContactRecord:
        """Apply ``change`` to the locked contact; a new userId or email replaces the old
        one's identity (:class:`AlreadyExists` if another contact has it)."""
        params = {"workspace": workspace_id, "contact": contact_id}
        async with self._db.transaction() as connection:
            row = (await connection.execute(sql.LOCK_CONTACT, params)).first()
            if row is None:
                raise _not_found(contact_id)
            before = ContactRecord(**row._mapping)
            after = apply_change(before, change, now)
            removed, added = changed_identities(before, after)
            if removed:
                await connection.execute(sql.DELETE_IDENTITY, [_key_params(k) for k in removed])
            await self._claim(connection, added, contact_id, now)
            await connection.execute(sql.UPDATE_CONTACTS, [_update_params(after)])
        return after

    async def delete(self, workspace_id: str, contact_id: str) -> None:
        """Delete the contact and its identities (its events stay; erasure is not this)."""
        params = {"workspace": workspace_id, "contact": contact_id}
        async with self._db.transaction() as connection:
            if not (await connection.execute(sql.DELETE_CONTACT, params)).rowcount:
                raise _not_found(contact_id)
            await connection.execute(sql.DELETE_IDENTITIES_OF_CONTACT, params)

    async def _claim(
        self,
        connection: AsyncConnection,
        keys: Sequence[IdentityKey],
        contact_id: str,
        now: datetime,
    ) -> None:
        if not keys:
            return
        rows = [_identity_row(key, contact_id, now) for key in keys]
        statement = sql.INSERT_IDENTITIES[self._db.dialect]
        inserted = {tuple(row) for row in (await connection.execute(statement, rows)).all()}
        taken = [key for key in keys if key not in inserted]
        if taken:
            _, kind, value = taken[0]
            raise AlreadyExists(f"Another contact already has the {_KIND_NAMES[kind]} {value!r}.")

    # ------------------------------------------------------------------ the event router

    async def resolve_events(
        self, connection: AsyncConnection, events: Sequence[Event], now: datetime
    ) -> builtins.list[ContactRecord]:
        """The contact of each event, in order, after applying the batch (see
        :class:`~campaignflow.domain.contacts.BatchResolver` for the rules).

        Runs in the caller's transaction (``connection`` from :meth:`Database.transaction`)
        in a constant number of statements: one read that locks the contacts the batch
        mentions, then one bulk statement per kind of change. An event whose contact a later
        event merged into another gets the survivor. Every event needs a userId or an
        anonymousId (an alias: userId and previousId).

        When a concurrent caller claims an identity this batch meant to create, the batch's
        writes are rolled back to a savepoint and it is resolved again with that owner.
        """
        if not events:
            return []
        keys = sorted(identity_keys(events))
        for _ in range(_RESOLVE_ATTEMPTS):
            contacts, owners = await self._load(connection, keys)
            resolver = BatchResolver(contacts, owners, looked_up=keys, now=now, new_id=new_id)
            for event in events:
                resolver.apply(event)
            plan = resolver.plan()
            try:
                async with connection.begin_nested():
                    await self._write(connection, plan, now)
            except _IdentityTaken:
                continue
            return plan.records
        raise StorageError(
            f"Contacts of {len(events)} events could not be resolved: other writers kept "
            f"claiming their identities ({_RESOLVE_ATTEMPTS} attempts)."
        )

    async def _load(
        self, connection: AsyncConnection, keys: Sequence[IdentityKey]
    ) -> tuple[builtins.list[ContactRecord], dict[IdentityKey, str]]:
        """The contacts owning ``keys`` (locked until the transaction ends) and the owners."""
        rows: builtins.list[Any] = []
        if self._db.dialect == "postgresql":
            rows = await pg.fetch(connection, sql.PG_LOOKUP, *_columns(keys, 3))
        else:
            for start in range(0, len(keys), _SQLITE_KEYS_PER_LOOKUP):
                chunk = builtins.list(keys[start : start + _SQLITE_KEYS_PER_LOOKUP])
                rows.extend((await connection.execute(sql.lookup(chunk))).all())
        contacts: dict[tuple[str, str], ContactRecord] = {}
        owners: dict[IdentityKey, str] = {}
        for kind, value, workspace, contact_id, *rest in rows:  # columns: see sql.lookup
            owners[(workspace, kind, value)] = contact_id
            if (workspace, contact_id) not in contacts:
                contacts[(workspace, contact_id)] = ContactRecord(workspace, contact_id, *rest)
        return builtins.list(contacts.values()), owners

    async def _write(
        self, connection: AsyncConnection, plan: ResolutionPlan, now: datetime
    ) -> None:
        """Merged identities move, dropped ones go, new ones are claimed (raising
        :class:`_IdentityTaken` if one was taken meanwhile), then the contacts are written."""
        write = _write_pg if self._db.dialect == "postgresql" else _write_portable
        await write(connection, plan, now)


async def _write_portable(connection: AsyncConnection, plan: ResolutionPlan, now: datetime) -> None:
    """The writes as SQLAlchemy Core statements, each executed many times (SQLite)."""
    if plan.absorbed:
        moves = [{"b_workspace": w, "b_absorbed": a, "b_survivor": s} for w, a, s in plan.absorbed]
        await connection.execute(sql.MOVE_IDENTITIES, moves)
    if plan.removed_identities:
        removed = [_key_params(key) for key in plan.removed_identities]
        await connection.execute(sql.DELETE_IDENTITY, removed)
    if plan.new_identities:
        rows = [_identity_row(key[:3], key[3], now) for key in plan.new_identities]
        result = await connection.execute(sql.INSERT_IDENTITIES["sqlite"], rows)
        if len(result.all()) < len(rows):
            raise _IdentityTaken
    if plan.inserts:
        await connection.execute(sql.INSERT_CONTACTS, [_contact_row(c) for c in plan.inserts])
    if plan.updates:
        await connection.execute(sql.UPDATE_CONTACTS, [_update_params(c) for c in plan.updates])
    if plan.absorbed:
        gone = [{"b_workspace": w, "b_id": a} for w, a, _ in plan.absorbed]
        await connection.execute(sql.DELETE_CONTACTS, gone)


async def _write_pg(connection: AsyncConnection, plan: ResolutionPlan, now: datetime) -> None:
    """The same writes as the portable path, as array statements."""
    if plan.absorbed:
        await pg.execute(connection, sql.PG_MOVE_IDENTITIES, *_columns(plan.absorbed, 3))
    if plan.removed_identities:
        await pg.execute(
            connection, sql.PG_DELETE_IDENTITIES, *_columns(plan.removed_identities, 3)
        )
    if plan.new_identities:
        columns = _columns(plan.new_identities, 4)
        inserted = await pg.fetch(
            connection, sql.PG_INSERT_IDENTITIES, *columns, [now] * len(plan.new_identities)
        )
        if len(inserted) < len(plan.new_identities):
            raise _IdentityTaken
    if plan.inserts:
        await pg.execute(connection, sql.PG_INSERT_CONTACTS, *_contact_columns(plan.inserts))
    if plan.updates:
        await pg.execute(connection, sql.PG_UPDATE_CONTACTS, *_contact_columns(plan.updates))
    if plan.absorbed:
        workspaces, absorbed, _ = _columns(plan.absorbed, 3)
        await pg.execute(connection, sql.PG_DELETE_CONTACTS, workspaces, absorbed)


# --------------------------------------------------------------------------- rows


def _columns(rows: Iterable[Sequence[Any]], width: int) -> builtins.list[builtins.list[Any]]:
    """Tuples → one list per position (what ``unnest`` takes)."""
    columns: builtins.list[builtins.list[Any]] = [[] for _ in range(width)]
    for row in rows:
        for index in range(width):
            columns[index].append(row[index])
    return columns


def _contact_columns(contacts: Sequence[ContactRecord]) -> builtins.list[builtins.list[Any]]:
    return [
        [c.workspace_id for c in contacts],
        [c.id for c in contacts],
        [c.user_id for c in contacts],
        [c.email for c in contacts],
        [c.timezone for c in contacts],
        [pg.json_text(c.traits) for c in contacts],
        [c.created_at for c in contacts],
        [c.updated_at for c in contacts],
        [c.last_seen_at for c in contacts],
    ]


def _contact_row(record: ContactRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in sql.CONTACT_FIELDS}


def _update_params(record: ContactRecord) -> dict[str, Any]:
    row = _contact_row(record)
    row["b_workspace"] = row.pop("workspace_id")
    row["b_id"] = row.pop("id")
    return row


def _identity_row(key: IdentityKey, contact_id: str, now: datetime) -> dict[str, Any]:
    workspace, kind, value = key
    return {
        "workspace_id": workspace,
        "kind": kind,
        "value": value,
        "contact_id": contact_id,
        "created_at": now,
    }


def _key_params(key: IdentityKey) -> dict[str, str]:
    return {"b_workspace": key[0], "b_kind": key[1], "b_value": key[2]}


def _not_found(contact_id: str) -> NotFound:
    return NotFound(f"Contact {contact_id!r} does not exist.")
