"""Contacts and their identities: the API's reads and writes, and the event router's batch
resolution (:meth:`ContactStore.resolve_events`).

Every statement filters by ``workspace_id``. An identity is claimed by inserting its row: the
primary key (workspace, kind, value) makes one identity belong to one contact, whoever gets
there first, without a read-then-write race.

Sensitive fields go through the :class:`ContactCipher` handed in: every row read is opened,
every row written sealed, and an email identity is stored (and looked up) as its blind-index
digest. Records above this module never see a digest or a sealed value.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from campaignflow.domain.contacts import (
    ContactChange,
    ContactKey,
    ContactRecord,
    IdentityKey,
    NewContact,
    apply_change,
    changed_identities,
)
from campaignflow.domain.events import Event
from campaignflow.domain.identity_resolution import BatchResolver, ResolutionPlan, identity_keys
from campaignflow.errors import AlreadyExists, NotFound, StorageError
from campaignflow.security.contact_fields import ContactCipher, StoredContact
from campaignflow.store import contact_sql as sql
from campaignflow.store import pg_batch as pg
from campaignflow.store.database import Database
from campaignflow.store.ids import new_id

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# A batch retried because another router claimed one of its new identities first learns that
# owner on its next read, so a second attempt succeeds unless yet another race intervenes.
_RESOLVE_ATTEMPTS = 4
# SQLite binds at most 32,766 parameters per statement; a key takes three.
_SQLITE_KEYS_PER_LOOKUP = 5_000
_KIND_NAMES = {"user_id": "userId", "anonymous_id": "anonymousId", "email": "email"}


class _IdentityTaken(Exception):
    """Another transaction claimed an identity this batch meant to insert."""


@dataclass(frozen=True, slots=True)
class _Writes:
    """A resolution plan as stored: identities by stored value, contacts with their columns."""

    absorbed: builtins.list[tuple[str, str, str]]
    removed_identities: builtins.list[IdentityKey]
    new_identities: builtins.list[tuple[str, str, str, str]]
    inserts: builtins.list[tuple[ContactRecord, StoredContact]]
    updates: builtins.list[tuple[ContactRecord, StoredContact]]

    def survivors(self) -> dict[tuple[str, str], ContactRecord]:
        """The contacts that absorbed another, as written, by (workspace, id)."""
        wanted = {(workspace, survivor) for workspace, _, survivor in self.absorbed}
        written = [record for record, _ in (*self.inserts, *self.updates)]
        return {record.key: record for record in written if record.key in wanted}


class ContactStore:
    """Contacts on a :class:`Database`, their sensitive fields sealed by ``cipher``."""

    def __init__(self, database: Database, cipher: ContactCipher) -> None:
        self._db = database
        self._cipher = cipher

    @property
    def cipher(self) -> ContactCipher:
        return self._cipher

    # ------------------------------------------------------------------ the API

    async def create(self, new: NewContact, now: datetime) -> ContactRecord:
        """Insert a contact with its identities; :class:`AlreadyExists` if one is taken."""
        record = ContactRecord(
            new.workspace_id, new_id(), new.user_id, new.email, new.timezone,
            dict(new.traits), now, now, None,
        )  # fmt: skip
        stored = self._cipher.seal(record)
        async with self._db.transaction() as connection:
            await self._claim(connection, new.identities(), record.id, now)
            await connection.execute(sql.INSERT_CONTACTS, [_contact_row(record, stored)])
        return record

    async def get(self, workspace_id: str, contact_id: str) -> ContactRecord:
        params = {"workspace": workspace_id, "contact": contact_id}
        async with self._db.read() as connection:
            row = (await connection.execute(sql.GET_CONTACT, params)).first()
        if row is None:
            raise _not_found(contact_id)
        return self._open(row)[0]

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
            "email": None if email is None else self._cipher.email_digest(email),
            "user_id": user_id,
            "anonymous_id": anonymous_id,
            "before": before,
            "limit": limit,
        }
        used = {key: value for key, value in params.items() if value is not None}
        async with self._db.read() as connection:
            rows = (await connection.execute(statement, used)).all()
        return [self._open(row)[0] for row in rows]

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
            before, stored = self._open(row)
            after = apply_change(before, change, now)
            removed, added = changed_identities(before, after)
            if removed:
                gone = [_key_params(self._cipher.stored_key(key)) for key in removed]
                await connection.execute(sql.DELETE_IDENTITY, gone)
            await self._claim(connection, added, contact_id, now)
            written = self._cipher.seal(after, stored)
            await connection.execute(sql.UPDATE_CONTACTS, [_update_params(after, written)])
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
        stored = [self._cipher.stored_key(key) for key in keys]
        rows = [_identity_row(key, contact_id, now) for key in stored]
        statement = sql.INSERT_IDENTITIES[self._db.dialect]
        inserted = {tuple(row) for row in (await connection.execute(statement, rows)).all()}
        taken = [key for key, row in zip(keys, stored, strict=True) if row not in inserted]
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
        anonymousId (an alias: userId and previousId), or, for a ``track``, an address in
        ``context.traits.email`` (a provider webhook's recipient).

        When a concurrent caller claims an identity this batch meant to create, the batch's
        writes are rolled back to a savepoint and it is resolved again with that owner.
        """
        if not events:
            return []
        keys = sorted(identity_keys(events))
        for _ in range(_RESOLVE_ATTEMPTS):
            contacts, owners, stored = await self._load(connection, keys)
            resolver = BatchResolver(contacts, owners, looked_up=keys, now=now, new_id=new_id)
            for event in events:
                resolver.apply(event)
            plan = resolver.plan()
            try:
                async with connection.begin_nested():
                    await self._write(connection, self._stored_writes(plan, stored), now)
            except _IdentityTaken:
                continue
            return plan.records
        raise StorageError(
            f"Contacts of {len(events)} events could not be resolved: other writers kept "
            f"claiming their identities ({_RESOLVE_ATTEMPTS} attempts)."
        )

    async def _load(
        self, connection: AsyncConnection, keys: Sequence[IdentityKey]
    ) -> tuple[
        builtins.list[ContactRecord], dict[IdentityKey, str], dict[ContactKey, StoredContact]
    ]:
        """The contacts owning ``keys`` (locked until the transaction ends), the owners, and
        each contact's stored columns (so an unchanged sealed document is not sealed again)."""
        by_stored = {self._cipher.stored_key(key): key for key in keys}
        lookup = sorted(by_stored)
        rows: builtins.list[Any] = []
        if self._db.dialect == "postgresql":
            rows = await pg.fetch(connection, sql.PG_LOOKUP, *_columns(lookup, 3))
        else:
            for start in range(0, len(lookup), _SQLITE_KEYS_PER_LOOKUP):
                chunk = builtins.list(lookup[start : start + _SQLITE_KEYS_PER_LOOKUP])
                rows.extend((await connection.execute(sql.lookup(chunk))).all())
        contacts: dict[ContactKey, ContactRecord] = {}
        stored: dict[ContactKey, StoredContact] = {}
        owners: dict[IdentityKey, str] = {}
        for kind, value, workspace, contact_id, *rest in rows:  # columns: see sql.lookup
            owners[by_stored[(workspace, kind, value)]] = contact_id
            if (workspace, contact_id) not in contacts:
                record = sql.record_of((workspace, contact_id, *rest[:-1]))
                contacts[record.key], stored[record.key] = self._cipher.open(record, rest[-1])
        return builtins.list(contacts.values()), owners, stored

    def _stored_writes(
        self, plan: ResolutionPlan, stored: dict[ContactKey, StoredContact]
    ) -> _Writes:
        cipher = self._cipher
        return _Writes(
            absorbed=plan.absorbed,
            removed_identities=[cipher.stored_key(key) for key in plan.removed_identities],
            new_identities=[
                (workspace, kind, cipher.identity_value(kind, value), contact_id)
                for workspace, kind, value, contact_id in plan.new_identities
            ],
            inserts=[(record, cipher.seal(record)) for record in plan.inserts],
            updates=[(c, cipher.seal(c, stored.get(c.key))) for c in plan.updates],
        )

    async def _write(self, connection: AsyncConnection, writes: _Writes, now: datetime) -> None:
        """Merged identities move, dropped ones go, new ones are claimed (raising
        :class:`_IdentityTaken` if one was taken meanwhile), then the contacts are written."""
        write = _write_pg if self._db.dialect == "postgresql" else _write_portable
        await write(connection, writes, now)
        if writes.absorbed:
            await _move_absorbed_rows(connection, writes)

    # ------------------------------------------------------------------ time triggers

    async def page_after(
        self, connection: AsyncConnection, workspace_id: str, cursor: str | None, limit: int
    ) -> builtins.list[ContactRecord]:
        """A time trigger's audience: up to ``limit`` contacts after ``cursor``, in id order."""
        params = {"workspace": workspace_id, "after": cursor or "", "limit": limit}
        rows = (await connection.execute(sql.CONTACT_PAGE, params)).all()
        return [self._open(row)[0] for row in rows]

    # ------------------------------------------------------------------ CRM sync

    async def changed_since(
        self, workspace_id: str, after: tuple[datetime, str] | None, limit: int
    ) -> builtins.list[ContactRecord]:
        """Up to ``limit`` contacts changed after the (updated_at, id) position ``after``,
        oldest change first (a CRM sync pushes them in that order and keeps the position)."""
        after_at, after_id = after or (_EPOCH, "")
        params = {
            "workspace": workspace_id,
            "after_at": after_at,
            "after_id": after_id,
            "limit": limit,
        }
        async with self._db.read() as connection:
            rows = (await connection.execute(sql.CHANGED_SINCE, params)).all()
        return [self._open(row)[0] for row in rows]

    async def get_many(
        self, workspace_id: str, contact_ids: Iterable[str]
    ) -> dict[str, ContactRecord]:
        """The contacts with these ids that exist, by id."""
        ids = sorted(set(contact_ids))
        if not ids:
            return {}
        async with self._db.read() as connection:
            rows = (
                await connection.execute(
                    sql.CONTACTS_BY_ID, {"workspace": workspace_id, "ids": ids}
                )
            ).all()
        records = [self._open(row)[0] for row in rows]
        return {record.id: record for record in records}

    async def find_by_email(self, workspace_id: str, email: str) -> ContactRecord | None:
        """The contact with this (normalised) address, if any."""
        found = await self.list(workspace_id, email=email, limit=1)
        return found[0] if found else None

    def _open(self, row: Any) -> tuple[ContactRecord, StoredContact]:
        """A row of :data:`sql.STORED_COLUMNS` as its record (sealed fields put back)."""
        return self._cipher.open(sql.record_of(row[:-1]), row[-1])


async def _move_absorbed_rows(connection: AsyncConnection, writes: _Writes) -> None:
    """What belonged to an absorbed contact moves to its survivor: the consent history and the
    records of processing and frequency caps (so the person's erasure and export find them),
    and the merged consent (the contact writers never write that column; merges are rare, so
    plain statements do)."""
    moves = [
        {"b_workspace": workspace, "b_absorbed": absorbed, "b_survivor": survivor}
        for workspace, absorbed, survivor in writes.absorbed
    ]
    for statement in sql.MOVE_ABSORBED_ROWS:
        await connection.execute(statement, moves)
    consents = [
        {"b_workspace": record.workspace_id, "b_id": record.id, "consent": dict(record.consent)}
        for record in writes.survivors().values()
        if record.consent
    ]
    if consents:
        await connection.execute(sql.SET_CONSENT, consents)


async def _write_portable(connection: AsyncConnection, plan: _Writes, now: datetime) -> None:
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
        await connection.execute(sql.INSERT_CONTACTS, [_contact_row(*c) for c in plan.inserts])
    if plan.updates:
        await connection.execute(sql.UPDATE_CONTACTS, [_update_params(*c) for c in plan.updates])
    if plan.absorbed:
        gone = [{"b_workspace": w, "b_id": a} for w, a, _ in plan.absorbed]
        await connection.execute(sql.DELETE_CONTACTS, gone)


async def _write_pg(connection: AsyncConnection, plan: _Writes, now: datetime) -> None:
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


def _contact_columns(
    contacts: Sequence[tuple[ContactRecord, StoredContact]],
) -> builtins.list[builtins.list[Any]]:
    return [
        [c.workspace_id for c, _ in contacts],
        [c.id for c, _ in contacts],
        [c.user_id for c, _ in contacts],
        [s.email for _, s in contacts],
        [c.timezone for c, _ in contacts],
        [pg.json_text(s.traits) for _, s in contacts],
        [c.created_at for c, _ in contacts],
        [c.updated_at for c, _ in contacts],
        [c.last_seen_at for c, _ in contacts],
        [s.sealed for _, s in contacts],
        [s.key_id for _, s in contacts],
    ]


def _contact_row(record: ContactRecord, stored: StoredContact) -> dict[str, Any]:
    row = {name: getattr(record, name) for name in sql.RECORD_WRITTEN}
    row.update(email=stored.email, traits=stored.traits, sealed=stored.sealed)
    row["key_id"] = stored.key_id
    return row


def _update_params(record: ContactRecord, stored: StoredContact) -> dict[str, Any]:
    row = _contact_row(record, stored)
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
