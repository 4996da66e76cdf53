"""Time-trigger ticks: claimed once, fanned out in pages, taken over when abandoned.

A tick is claimed by inserting its row (``ON CONFLICT DO NOTHING``): of any number of schedulers
that see the same tick, one inserts it and fans out; the others skip it. Every page of the
fan-out runs in one transaction that first *holds* the row — a guarded update that locks it
(PostgreSQL) or runs under SQLite's single writer — and reads the cursor from it, then starts
that page's executions and moves the cursor. A page is therefore done once or not at all, and
whoever holds the row continues exactly where the last committed page ended.

The statements span workspaces on purpose (a scheduler serves them all); each names the
workspace of the row it touches.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from campaignflow.store.database import Database
from campaignflow.store.tables import trigger_ticks as ticks


@dataclass(frozen=True, slots=True, order=True)
class TickKey:
    workspace_id: str
    scope: str
    tick_at: datetime

    def params(self) -> dict[str, Any]:
        return {"workspace": self.workspace_id, "trigger_scope": self.scope, "tick": self.tick_at}


_THIS_TICK = (
    ticks.c.workspace_id == bindparam("workspace"),
    ticks.c.scope == bindparam("trigger_scope"),
    ticks.c.tick_at == bindparam("tick"),
)
_OPEN = ticks.c.completed_at.is_(None)

# Columns of trigger_ticks; only the inserting scheduler gets its row back.
CLAIM = {
    "postgresql": postgresql.insert(ticks).on_conflict_do_nothing().returning(ticks.c.tick_at),
    "sqlite": sqlite.insert(ticks).on_conflict_do_nothing().returning(ticks.c.tick_at),
}
LAST_TICK = select(func.max(ticks.c.tick_at)).where(
    ticks.c.workspace_id == bindparam("workspace"), ticks.c.scope == bindparam("trigger_scope")
)
# Renew the lease of an open tick this owner holds, returning the cursor. Parameters: owner,
# until.
HOLD = (
    update(ticks)
    .where(*_THIS_TICK, _OPEN, ticks.c.lease_owner == bindparam("owner"))
    .values(lease_until=bindparam("until"))
    .returning(ticks.c.cursor)
)
# After a page. Parameters: next_cursor, added, until.
ADVANCE = (
    update(ticks)
    .where(*_THIS_TICK)
    .values(
        cursor=bindparam("next_cursor"),
        started=ticks.c.started + bindparam("added"),
        lease_until=bindparam("until"),
    )
)
# After the last page. Parameters: next_cursor, added, done.
COMPLETE = (
    update(ticks)
    .where(*_THIS_TICK)
    .values(
        cursor=bindparam("next_cursor"),
        started=ticks.c.started + bindparam("added"),
        completed_at=bindparam("done"),
        lease_owner=None,
        lease_until=None,
    )
)
# Open ticks whose lease lapsed, oldest lease first. Parameters: now, limit.
ABANDONED = (
    select(ticks.c.workspace_id, ticks.c.scope, ticks.c.tick_at)
    .where(ticks.c.lease_until < bindparam("now"))
    .order_by(ticks.c.lease_until)
    .limit(bindparam("limit"))
)
_LAPSED = (*_THIS_TICK, _OPEN, ticks.c.lease_until < bindparam("now"))
# Parameters: now, owner, until.
TAKE_OVER = (
    update(ticks)
    .where(*_LAPSED)
    .values(lease_owner=bindparam("owner"), lease_until=bindparam("until"))
    .returning(ticks.c.tick_at)
)
# An abandoned fan-out whose trigger is off now (paused, disabled): it ends here. Parameter: now.
CLOSE = (
    update(ticks)
    .where(*_LAPSED)
    .values(lease_owner=None, lease_until=None, completed_at=bindparam("now"))
)
# Parameter: before.
PRUNE = delete(ticks).where(
    ticks.c.completed_at.is_not(None), ticks.c.tick_at < bindparam("before")
)


@dataclass(frozen=True, slots=True)
class Held:
    """A tick this scheduler holds for one page: where the fan-out continues."""

    cursor: str | None


class TickStore:
    """``trigger_ticks`` on a :class:`Database`."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def claim(self, key: TickKey, *, owner: str, now: datetime, until: datetime) -> bool:
        """Insert the tick with this owner's lease; ``False`` when another scheduler has it."""
        row = {
            "workspace_id": key.workspace_id,
            "scope": key.scope,
            "tick_at": key.tick_at,
            "fired_at": now,
            "started": 0,
            "cursor": None,
            "lease_owner": owner,
            "lease_until": until,
            "completed_at": None,
        }
        async with self._db.transaction() as connection:
            result = await connection.execute(CLAIM[self._db.dialect], row)
            return result.first() is not None

    async def last_tick(self, workspace_id: str, scope: str) -> datetime | None:
        params = {"workspace": workspace_id, "trigger_scope": scope}
        async with self._db.read() as connection:
            value: datetime | None = (await connection.execute(LAST_TICK, params)).scalar()
        return value

    async def abandoned(self, now: datetime, limit: int = 100) -> list[TickKey]:
        async with self._db.read() as connection:
            rows = (await connection.execute(ABANDONED, {"now": now, "limit": limit})).all()
        return [TickKey(row[0], row[1], row[2]) for row in rows]

    async def take_over(self, key: TickKey, *, owner: str, now: datetime, until: datetime) -> bool:
        """Hold an abandoned tick; ``False`` if it completed or someone else took it first."""
        params = {**key.params(), "now": now, "owner": owner, "until": until}
        async with self._db.transaction() as connection:
            return (await connection.execute(TAKE_OVER, params)).first() is not None

    async def close(self, key: TickKey, now: datetime) -> bool:
        """End an abandoned fan-out without finishing it."""
        async with self._db.transaction() as connection:
            result = await connection.execute(CLOSE, {**key.params(), "now": now})
            return bool(result.rowcount)

    async def prune(self, before: datetime) -> int:
        """Delete completed ticks older than ``before``."""
        async with self._db.transaction() as connection:
            return int((await connection.execute(PRUNE, {"before": before})).rowcount)

    # ------------------------------------------------------------------ inside a page

    @staticmethod
    async def hold(
        connection: AsyncConnection, key: TickKey, *, owner: str, until: datetime
    ) -> Held | None:
        """Lock the tick for this page and renew the lease; ``None`` if it is no longer this
        owner's (completed, or taken over after the lease lapsed)."""
        params = {**key.params(), "owner": owner, "until": until}
        row = (await connection.execute(HOLD, params)).first()
        return None if row is None else Held(row[0])

    @staticmethod
    async def advance(
        connection: AsyncConnection,
        key: TickKey,
        *,
        cursor: str | None,
        started: int,
        until: datetime,
        done: datetime | None,
    ) -> None:
        """Record a page: the new cursor and how many it started; ``done`` completes the tick."""
        params: dict[str, Any] = {**key.params(), "next_cursor": cursor, "added": started}
        if done is None:
            await connection.execute(ADVANCE, {**params, "until": until})
        else:
            await connection.execute(COMPLETE, {**params, "done": done})
