"""The send-time policy's data: a workspace's policy, a contact's consent and time zone, and the
frequency ledger (one row per message let through against a cap).

The policy lives in ``privacy_settings.send_policy``; the row's ``retention`` belongs to the
retention settings, so a write here touches only its own columns and inserts ``retention`` as
NULL.

:meth:`SendPolicyStore.reserve` is the one place a cap is checked and a slot taken, in one
transaction, so two workers cannot both take the last slot: on PostgreSQL under a transaction
advisory lock on (workspace, contact, channel); on SQLite under the database's write lock, which
every transaction takes at ``BEGIN IMMEDIATE`` (``store/database.py``). Every statement filters
by ``workspace_id``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, select, text
from sqlalchemy.dialects import postgresql, sqlite

from campaignflow.domain.send_policy import Allow, Verdict
from campaignflow.store.database import Database
from campaignflow.store.tables import contacts, frequency_ledger, privacy_settings
from campaignflow.store.workflows import Clock, aware_now, utc_now

PURGE_BATCH = 1000
_LEDGER = frequency_ledger.c
_LOCK = text("SELECT pg_advisory_xact_lock(:key)")
_SENDS = select(_LEDGER.sent_at).where(
    _LEDGER.workspace_id == bindparam("workspace"),
    _LEDGER.contact_id == bindparam("contact"),
    _LEDGER.channel == bindparam("channel"),
    _LEDGER.sent_at > bindparam("since"),
)
_RESERVED = select(_LEDGER.send_id).where(
    _LEDGER.workspace_id == bindparam("workspace"), _LEDGER.send_id == bindparam("send_id")
)
_INSERT_SLOT = {
    "postgresql": postgresql.insert(frequency_ledger).on_conflict_do_nothing(),
    "sqlite": sqlite.insert(frequency_ledger).on_conflict_do_nothing(),
}
_SUBJECT = select(contacts.c.consent, contacts.c.timezone).where(
    contacts.c.workspace_id == bindparam("workspace"), contacts.c.id == bindparam("contact")
)


@dataclass(frozen=True, slots=True)
class Subject:
    """A contact's consent now (``contacts.consent``) and its time zone."""

    consent: Mapping[str, Any] | None
    timezone: str | None


@dataclass(frozen=True, slots=True)
class StoredPolicy:
    document: dict[str, Any]
    updated_by: str | None
    updated_at: datetime


def lock_key(workspace_id: str, contact_id: str, channel: str) -> int:
    """A signed 64-bit key for ``pg_advisory_xact_lock`` (collisions only serialise more)."""
    digest = hashlib.blake2b(
        f"{workspace_id}\x1f{contact_id}\x1f{channel}".encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big", signed=True)


class SendPolicyStore:
    def __init__(self, database: Database, *, clock: Clock = utc_now) -> None:
        self._db = database
        self._clock = clock

    @property
    def database(self) -> Database:
        return self._db

    # ------------------------------------------------------------------------------ policy

    async def policy(self, workspace_id: str) -> StoredPolicy | None:
        """The stored policy document, None when the workspace never set one."""
        columns = privacy_settings.c
        query = select(columns.send_policy, columns.updated_by, columns.updated_at).where(
            columns.workspace_id == workspace_id
        )
        async with self._db.read() as connection:
            row = (await connection.execute(query)).first()
        if row is None or row.send_policy is None:
            return None
        return StoredPolicy(row.send_policy, row.updated_by, row.updated_at)

    async def save_policy(
        self, workspace_id: str, document: Mapping[str, Any], updated_by: str | None
    ) -> None:
        """Upsert the policy alone: an existing row keeps its ``retention``."""
        now = aware_now(self._clock)
        values = {"send_policy": dict(document), "updated_by": updated_by, "updated_at": now}
        row = {"workspace_id": workspace_id, "retention": None, **values}
        key = [privacy_settings.c.workspace_id]
        statement = (
            postgresql.insert(privacy_settings)
            .values(row)
            .on_conflict_do_update(index_elements=key, set_=values)
            if self._db.dialect == "postgresql"
            else sqlite.insert(privacy_settings)
            .values(row)
            .on_conflict_do_update(index_elements=key, set_=values)
        )
        async with self._db.transaction() as connection:
            await connection.execute(statement)

    # ----------------------------------------------------------------------------- subject

    async def subject(self, workspace_id: str, contact_id: str) -> Subject | None:
        """The contact's consent and time zone (one query); None for no such contact."""
        params = {"workspace": workspace_id, "contact": contact_id}
        async with self._db.read() as connection:
            row = (await connection.execute(_SUBJECT, params)).first()
        return None if row is None else Subject(row.consent, row.timezone)

    # ------------------------------------------------------------------------------ ledger

    async def reserve(
        self,
        workspace_id: str,
        contact_id: str,
        channel: str,
        send_id: str,
        *,
        now: datetime,
        since: datetime,
        decide: Callable[[Sequence[datetime]], Verdict],
    ) -> tuple[Verdict, bool]:
        """Decide on one message and, when it is allowed, take its slot, atomically.

        ``decide`` gets the contact's sends of the channel after ``since`` (the longest cap
        window) and runs under the lock. A ``send_id`` already in the ledger (a retried step)
        counts once: ``decide`` then gets no sends (its slot is taken already; quiet hours still
        apply). The row counts from ``now``. Returns the verdict and whether this call wrote a
        row."""
        params = {
            "workspace": workspace_id,
            "contact": contact_id,
            "channel": channel,
            "send_id": send_id,
            "since": since,
        }
        async with self._db.transaction() as connection:
            if self._db.dialect == "postgresql":
                await connection.execute(
                    _LOCK, {"key": lock_key(workspace_id, contact_id, channel)}
                )
            if (await connection.execute(_RESERVED, params)).first() is not None:
                return decide(()), False
            sends = list((await connection.execute(_SENDS, params)).scalars())
            verdict = decide(sends)
            if not isinstance(verdict, Allow):
                return verdict, False
            await connection.execute(
                _INSERT_SLOT[self._db.dialect].values(
                    workspace_id=workspace_id,
                    send_id=send_id,
                    contact_id=contact_id,
                    channel=channel,
                    sent_at=now,
                )
            )
        return verdict, True

    async def release(self, workspace_id: str, send_id: str) -> bool:
        """Give a slot back (the message was not sent after all); whether there was one."""
        statement = delete(frequency_ledger).where(
            _LEDGER.workspace_id == workspace_id, _LEDGER.send_id == send_id
        )
        async with self._db.transaction() as connection:
            result = await connection.execute(statement)
        return bool(result.rowcount)

    async def sends(
        self, workspace_id: str, contact_id: str, channel: str, *, since: datetime
    ) -> list[datetime]:
        """The contact's counted sends of the channel after ``since``, oldest first."""
        params = {"workspace": workspace_id, "contact": contact_id, "channel": channel}
        async with self._db.read() as connection:
            result = await connection.execute(_SENDS, {**params, "since": since})
            return sorted(result.scalars())

    async def purge(self, workspace_id: str, before: datetime, *, limit: int = PURGE_BATCH) -> int:
        """Delete up to ``limit`` ledger rows sent before ``before``; how many went."""
        oldest = (
            select(_LEDGER.send_id)
            .where(_LEDGER.workspace_id == workspace_id, _LEDGER.sent_at < before)
            .order_by(_LEDGER.sent_at)
            .limit(limit)
        )
        statement = delete(frequency_ledger).where(
            _LEDGER.workspace_id == workspace_id, _LEDGER.send_id.in_(oldest.scalar_subquery())
        )
        async with self._db.transaction() as connection:
            result = await connection.execute(statement)
        return int(result.rowcount or 0)
