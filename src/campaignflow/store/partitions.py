"""Monthly partitions of the event log (PostgreSQL): created ahead of time, dropped when expired.

Migration 0011 made ``events`` a table partitioned by ``received_at``: ``events_pYYYYMM`` per
UTC month, ``events_p_legacy`` for everything before the migration's next month, and a DEFAULT
partition, ``events_default``, that catches rows no partition covers. Two jobs keep it so:

- :meth:`EventPartitions.ensure_ahead` creates the months up to three ahead (and any gap since
  the newest partition), so rows never pile up in DEFAULT. Should DEFAULT hold rows of a month
  being created, it is detached, the month created, its rows moved and DEFAULT attached again,
  all in one transaction, instead of the CREATE failing.
- :meth:`EventPartitions.drop_expired` drops every partition whose upper bound is at or before a
  cut-off (never DEFAULT): the space returns to the operating system at once, where deleted rows
  would only have been reused after VACUUM.

Both take an ACCESS EXCLUSIVE lock on ``events`` for a moment, which waits for the router's
transactions and holds up the ones after it. Each transaction therefore sets a short
``lock_timeout``: a lock not granted in time means "the next pass tries again", never an error,
and the engine's inserts wait at most that long. A transaction-scoped advisory lock keeps two
processes from doing the same maintenance at once (the second skips).

The pure helpers (month arithmetic, bounds, what to create or drop, the DDL) are tested without
a database.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from campaignflow.errors import StorageError
from campaignflow.store import pg_batch
from campaignflow.store.database import Database
from campaignflow.store.tables import events

logger = logging.getLogger(__name__)

PARENT: Final = "events"
DEFAULT_PARTITION: Final = "events_default"
MONTHS_AHEAD: Final = 3
LOCK_TIMEOUT: Final = "2s"
"""How long a partition change waits for its lock on ``events`` (see the module docstring)."""

_LOCK_NOT_AVAILABLE = "55P03"
_ADVISORY_KEY: Final = int.from_bytes(
    hashlib.sha256(b"campaignflow:event-partitions").digest()[:8], "big", signed=True
)
_COLUMNS: Final = ", ".join(f'"{column.name}"' for column in events.columns)
_BOUNDS = re.compile(r"^FOR VALUES FROM \((?P<lower>.+)\) TO \((?P<upper>.+)\)$")


@dataclass(frozen=True, slots=True)
class Partition:
    """One partition of ``events``; a ``None`` bound is MINVALUE/MAXVALUE."""

    name: str
    lower: datetime | None
    upper: datetime | None
    default: bool = False

    def overlaps(self, start: datetime, end: datetime) -> bool:
        if self.default:
            return False
        return (self.lower is None or self.lower < end) and (
            self.upper is None or start < self.upper
        )


@dataclass(frozen=True, slots=True)
class DroppedPartition:
    """What one drop removed: its rows per workspace (counted just before) and its size."""

    partition: Partition
    rows_by_workspace: dict[str, int] = field(default_factory=dict)
    bytes: int = 0

    @property
    def rows(self) -> int:
        return sum(self.rows_by_workspace.values())


DropHook = Callable[[AsyncConnection, DroppedPartition], Awaitable[None]]
"""Runs inside the dropping transaction, so what it writes commits with the drop."""


# --------------------------------------------------------------------------- pure helpers


def month_start(instant: datetime) -> datetime:
    """The first instant of ``instant``'s UTC month."""
    utc = instant.astimezone(UTC)
    return datetime(utc.year, utc.month, 1, tzinfo=UTC)


def add_months(month: datetime, count: int) -> datetime:
    """The first instant of the UTC month ``count`` months after ``month``'s."""
    index = month.year * 12 + month.month - 1 + count
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def partition_name(month: datetime) -> str:
    return f"{PARENT}_p{month:%Y%m}"


def parse_bound(name: str, expression: str) -> Partition:
    """A partition from ``pg_get_expr(relpartbound)``, rendered with TimeZone UTC and
    DateStyle ISO (``FOR VALUES FROM ('2026-12-01 00:00:00+00') TO (MAXVALUE)``, ``DEFAULT``)."""
    if expression == "DEFAULT":
        return Partition(name, None, None, default=True)
    match = _BOUNDS.match(expression)
    if match is None:
        raise ValueError(f"not a range partition bound: {expression!r}")
    return Partition(name, _bound_value(match["lower"]), _bound_value(match["upper"]))


def _bound_value(value: str) -> datetime | None:
    if value in ("MINVALUE", "MAXVALUE"):
        return None
    return datetime.fromisoformat(value.strip("'")).astimezone(UTC)


def months_to_create(existing: Sequence[Partition], now: datetime, months: int) -> list[datetime]:
    """The months from ``now``'s to ``months`` ahead that no partition covers yet, starting
    earlier where the newest partition ends before ``now``'s month (a gap DEFAULT fills)."""
    first = month_start(now)
    last = add_months(first, months)
    uppers = [p.upper for p in existing if not p.default and p.upper is not None]
    if uppers and max(uppers) < first:
        first = month_start(max(uppers))
    wanted: list[datetime] = []
    month = first
    while month <= last:
        end = add_months(month, 1)
        if not any(p.overlaps(month, end) for p in existing):
            wanted.append(month)
        month = end
    return wanted


def expired(existing: Sequence[Partition], cutoff: datetime) -> list[Partition]:
    """The partitions holding only rows received before ``cutoff``, oldest first; never
    DEFAULT, which may hold rows of any age."""
    due = [p for p in existing if not p.default and p.upper is not None and p.upper <= cutoff]
    return sorted(due, key=lambda p: p.upper or cutoff)


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(instant: datetime) -> str:
    return f"'{instant.astimezone(UTC).isoformat()}'"


def create_sql(month: datetime) -> str:
    end = add_months(month, 1)
    return (
        f"CREATE TABLE {quote(partition_name(month))} PARTITION OF {PARENT} "
        f"FOR VALUES FROM ({_literal(month)}) TO ({_literal(end)})"
    )


def move_from_default_sql(month: datetime) -> tuple[str, str]:
    """Copy a month's rows out of the (detached) DEFAULT partition, then delete them there."""
    where = f"received_at >= {_literal(month)} AND received_at < {_literal(add_months(month, 1))}"
    target = quote(partition_name(month))
    return (
        f"INSERT INTO {target} ({_COLUMNS}) SELECT {_COLUMNS} FROM {DEFAULT_PARTITION} "  # noqa: S608 - names and instants we built
        f"WHERE {where}",
        f"DELETE FROM {DEFAULT_PARTITION} WHERE {where}",  # noqa: S608 - as above
    )


def default_rows_sql(month: datetime) -> str:
    where = f"received_at >= {_literal(month)} AND received_at < {_literal(add_months(month, 1))}"
    return f"SELECT EXISTS (SELECT 1 FROM {DEFAULT_PARTITION} WHERE {where})"  # noqa: S608


# --------------------------------------------------------------------------- on the database

_LIST = text(
    """
    SELECT c.relname, pg_get_expr(c.relpartbound, c.oid)
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'events'::regclass AND c.relkind IN ('r', 'p')
    ORDER BY c.relname
    """
)
_SIZE = text("SELECT pg_total_relation_size(to_regclass(:name))")
_LOCK_TIMEOUT = text("SELECT set_config('lock_timeout', :timeout, true)")
_TRY_LOCK = text("SELECT pg_try_advisory_xact_lock(:key)")
_DETACH_DEFAULT = f"ALTER TABLE {PARENT} DETACH PARTITION {DEFAULT_PARTITION}"
_ATTACH_DEFAULT = f"ALTER TABLE {PARENT} ATTACH PARTITION {DEFAULT_PARTITION} DEFAULT"


class MaintenanceSkipped(Exception):
    """Another process holds the maintenance lock, or ``events`` stayed locked past the
    timeout: the next pass tries again."""


class EventPartitions:
    """Creates and drops the monthly partitions of ``events`` on a PostgreSQL :class:`Database`."""

    def __init__(self, database: Database, *, lock_timeout: str = LOCK_TIMEOUT) -> None:
        if database.dialect != "postgresql":
            raise ValueError("the event log is partitioned on PostgreSQL only")
        self._db = database
        self._lock_timeout = lock_timeout

    async def partitions(self) -> list[Partition]:
        async with self._db.transaction() as connection:
            await _render_in_utc(connection)
            return await _partitions(connection)

    async def ensure_ahead(self, now: datetime, months: int = MONTHS_AHEAD) -> list[str]:
        """Create the missing months up to ``months`` ahead of ``now``; their names (none when
        the maintenance was skipped: see :class:`MaintenanceSkipped`)."""
        try:
            async with self._maintenance() as connection:
                missing = months_to_create(await _partitions(connection), now, months)
                await _create(connection, missing)
        except MaintenanceSkipped as skipped:
            logger.info("event partitions not created this pass: %s", skipped)
            return []
        return [partition_name(month) for month in missing]

    async def drop_expired(
        self, cutoff: datetime, on_dropped: DropHook | None = None
    ) -> list[DroppedPartition]:
        """Drop every partition whose rows were all received before ``cutoff``, oldest first,
        each in its own transaction (``on_dropped`` runs in it); what was dropped. A drop that
        could not get its lock is left, with the newer ones, for the next pass."""
        dropped: list[DroppedPartition] = []
        for partition in expired(await self.partitions(), cutoff):
            try:
                async with self._maintenance() as connection:
                    gone = await _drop(connection, partition)
                    if gone is not None and on_dropped is not None:
                        await on_dropped(connection, gone)
            except MaintenanceSkipped as skipped:
                logger.info("event partition %s not dropped this pass: %s", partition.name, skipped)
                break
            if gone is not None:
                dropped.append(gone)
        return dropped

    @asynccontextmanager
    async def _maintenance(self) -> AsyncIterator[AsyncConnection]:
        """A transaction with a short lock timeout, under the maintenance advisory lock; a
        lock timeout or the lock held elsewhere become :class:`MaintenanceSkipped`."""
        try:
            async with self._db.transaction() as connection:
                await _render_in_utc(connection)
                await connection.execute(_LOCK_TIMEOUT, {"timeout": self._lock_timeout})
                if not await connection.scalar(_TRY_LOCK, {"key": _ADVISORY_KEY}):
                    raise MaintenanceSkipped("another process is maintaining the partitions")
                yield connection
        except StorageError as error:
            if _lock_not_available(error):
                timeout = self._lock_timeout
                raise MaintenanceSkipped(f"events stayed locked past {timeout}") from error
            raise


async def _render_in_utc(connection: AsyncConnection) -> None:
    """Bounds as ``pg_get_expr`` renders them: in UTC, ISO style (this transaction only)."""
    await connection.execute(
        text("SELECT set_config('TimeZone', 'UTC', true), set_config('DateStyle', 'ISO', true)")
    )


async def _partitions(connection: AsyncConnection) -> list[Partition]:
    rows = await connection.execute(_LIST)
    return [parse_bound(name, expression) for name, expression in rows]


async def _create(connection: AsyncConnection, months: Sequence[datetime]) -> None:
    """Create ``months``; when DEFAULT holds rows of one, move them in the same transaction."""
    detached = False
    for month in months:
        if not detached and (await connection.exec_driver_sql(default_rows_sql(month))).scalar():
            await connection.exec_driver_sql(_DETACH_DEFAULT)
            detached = True
        await connection.exec_driver_sql(create_sql(month))
        if detached:
            for statement in move_from_default_sql(month):
                await connection.exec_driver_sql(statement)
    if detached:
        await connection.exec_driver_sql(_ATTACH_DEFAULT)


async def _drop(connection: AsyncConnection, partition: Partition) -> DroppedPartition | None:
    """Count the partition's rows per workspace, measure it, drop it; ``None`` if another
    process dropped it since it was listed."""
    name = quote(partition.name)
    size = await connection.scalar(_SIZE, {"name": name})
    if size is None:
        return None
    # Every workspace's rows at once: the partition goes whole, whoever's rows it holds.
    count = f"SELECT workspace_id, count(*) FROM {name} GROUP BY workspace_id"  # noqa: S608
    rows = {row[0]: int(row[1]) for row in await pg_batch.fetch(connection, count)}
    await connection.exec_driver_sql(f"DROP TABLE {name}")
    return DroppedPartition(partition, rows, int(size))


def _lock_not_available(error: StorageError) -> bool:
    cause = getattr(error.__cause__, "orig", None)
    return getattr(cause, "sqlstate", None) == _LOCK_NOT_AVAILABLE
