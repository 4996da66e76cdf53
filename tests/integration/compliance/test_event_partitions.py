"""The event log's monthly partitions (PostgreSQL): rows land in their month, retention drops
whole months once every workspace is done with them (and the space goes), DEFAULT rows move
into a month created later, and deduplication holds across partitions."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select, text

from campaignflow.api.retention_schemas import RetentionRunOut
from campaignflow.compliance.retention import RetentionPurger
from campaignflow.domain.events import Event
from campaignflow.domain.retention import DEFAULT_POLICY, PurgeLimits, RetentionPolicy
from campaignflow.services.retention import RetentionService
from campaignflow.store import tables as t
from campaignflow.store.database import Database
from campaignflow.store.events import DEDUP_WINDOW, EventStore
from campaignflow.store.partitions import (
    DEFAULT_PARTITION,
    EventPartitions,
    add_months,
    partition_name,
)
from campaignflow.store.retention import RetentionStore
from tests._support.ciphers import contact_cipher

LEGACY = "events_p_legacy"
DAY = timedelta(days=1)


@pytest.fixture
def partitions(postgres_database: Database) -> EventPartitions:
    return EventPartitions(postgres_database)


@pytest.fixture
async def first_month(partitions: EventPartitions) -> datetime:
    """The first month after the legacy partition (the migration created it and two more)."""
    (legacy,) = [p for p in await partitions.partitions() if p.name == LEGACY]
    assert legacy.upper is not None
    return legacy.upper


def month(first: datetime, n: int) -> datetime:
    return add_months(first, n)


def row(workspace: str, message_id: str, received: datetime, *, webhook: bool = False) -> Any:
    properties: dict[str, Any] = {"providerEventId": "p1"} if webhook else {"plan": "pro"}
    return {
        "workspace_id": workspace, "message_id": message_id, "type": "track", "name": "x",
        "contact_id": "c1", "user_id": None, "anonymous_id": "a1",
        "payload": {"properties": properties}, "timestamp": received, "received_at": received,
    }  # fmt: skip


async def store_rows(db: Database, rows: list[Any]) -> None:
    async with db.transaction() as connection:
        await connection.execute(insert(t.events), rows)


async def seed_workspaces(db: Database, *names: str, at: datetime) -> None:
    async with db.transaction() as connection:
        await connection.execute(
            insert(t.workspaces), [{"id": name, "name": name, "created_at": at} for name in names]
        )


async def where_stored(db: Database) -> dict[str, str]:
    """message_id → the partition holding it."""
    async with db.read() as connection:
        found = await connection.execute(
            text("SELECT message_id, tableoid::regclass::text FROM events")
        )
        return {row[0]: row[1] for row in found.all()}


async def exists(db: Database, relation: str) -> bool:
    async with db.read() as connection:
        return bool(await connection.scalar(text(f"SELECT to_regclass('{relation}') IS NOT NULL")))


async def tree_bytes(db: Database) -> int:
    async with db.read() as connection:
        total = await connection.scalar(
            text("SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree('events')")
        )
    return int(total)


async def test_events_land_in_the_partition_of_their_month(
    postgres_database: Database, first_month: datetime
) -> None:
    await store_rows(
        postgres_database,
        [
            row("w", "before", first_month - DAY),
            *(row("w", f"m{n}", month(first_month, n) + DAY) for n in range(3)),
            row("w", "unplanned", month(first_month, 5)),  # no partition yet
        ],
    )

    assert await where_stored(postgres_database) == {
        "before": LEGACY,
        "m0": partition_name(first_month),
        "m1": partition_name(month(first_month, 1)),
        "m2": partition_name(month(first_month, 2)),
        "unplanned": DEFAULT_PARTITION,
    }


async def test_drop_expired_drops_exactly_the_months_past_the_cutoff_and_frees_their_space(
    postgres_database: Database, partitions: EventPartitions, first_month: datetime
) -> None:
    db = postgres_database
    second = month(first_month, 1)
    await store_rows(
        db,
        [
            row("a", "legacy-a", first_month - 40 * DAY),
            *(row("a", f"m0-a{n}", first_month + n * DAY, webhook=n % 2 == 0) for n in range(20)),
            *(row("b", f"m0-b{n}", first_month + n * DAY) for n in range(3)),
            row("a", "m1-a", second),  # received exactly at the cutoff: not past it
            row("a", "m2-a", month(first_month, 2) + DAY),
        ],
    )
    before = await tree_bytes(db)

    # The cutoff is the second month's first instant: the first month ends there, so it goes.
    dropped = await partitions.drop_expired(second)

    assert [gone.partition.name for gone in dropped] == [LEGACY, partition_name(first_month)]
    assert [gone.rows_by_workspace for gone in dropped] == [{"a": 1}, {"a": 20, "b": 3}]
    assert set(await where_stored(db)) == {"m1-a", "m2-a"}
    assert not await exists(db, LEGACY)
    assert not await exists(db, partition_name(first_month))
    assert all(gone.bytes > 0 for gone in dropped)
    assert await tree_bytes(db) == before - sum(gone.bytes for gone in dropped)
    # Nothing more is due at the same cutoff; DEFAULT is never dropped, whatever the cutoff.
    assert await partitions.drop_expired(second) == []
    far = await partitions.drop_expired(month(first_month, 100))
    assert DEFAULT_PARTITION not in [gone.partition.name for gone in far]
    assert await exists(db, DEFAULT_PARTITION)


async def test_a_drop_that_cannot_get_its_lock_waits_for_the_next_pass(
    postgres_database: Database, first_month: datetime
) -> None:
    db = postgres_database
    await store_rows(db, [row("a", "old", first_month - DAY)])
    impatient = EventPartitions(db, lock_timeout="100ms")
    async with db.transaction() as holder:
        await holder.execute(text("SELECT count(*) FROM events"))  # a reader holds its lock
        assert await impatient.drop_expired(first_month) == []
        assert await impatient.ensure_ahead(month(first_month, 10)) == []

    assert await exists(db, LEGACY)
    assert [gone.partition.name for gone in await impatient.drop_expired(first_month)] == [LEGACY]


async def test_ensure_ahead_moves_rows_out_of_default_into_the_new_month(
    postgres_database: Database, partitions: EventPartitions, first_month: datetime
) -> None:
    db = postgres_database
    late, later = month(first_month, 4), month(first_month, 5)
    await store_rows(db, [row("w", "late", late + 3 * DAY), row("w", "later", later + DAY)])
    assert set((await where_stored(db)).values()) == {DEFAULT_PARTITION}

    # Workers were down past the planned months: the gap (month 3) is filled too.
    created = await partitions.ensure_ahead(late, months=0)

    assert created == [partition_name(month(first_month, 3)), partition_name(late)]
    assert await where_stored(db) == {"late": partition_name(late), "later": DEFAULT_PARTITION}
    async with db.read() as connection:
        moved = (
            await connection.execute(
                select(t.events.c.payload, t.events.c.received_at).where(
                    t.events.c.message_id == "late"
                )
            )
        ).one()
    assert moved.payload == {"properties": {"plan": "pro"}}
    assert moved.received_at == late + 3 * DAY
    # DEFAULT is attached again and takes what no month covers.
    await store_rows(db, [row("w", "far", month(first_month, 30))])
    assert (await where_stored(db))["far"] == DEFAULT_PARTITION
    assert await partitions.ensure_ahead(late, months=0) == []  # nothing left to create


def event(message_id: str, received_at: datetime) -> Event:
    return Event(
        workspace_id="w",
        message_id=message_id,
        type="track",
        name="Bought",
        anonymous_id="a1",
        timestamp=received_at,
        received_at=received_at,
    )


async def test_a_duplicate_messageid_is_known_across_partitions_within_the_window(
    postgres_database: Database, first_month: datetime
) -> None:
    db = postgres_database
    store = EventStore("postgresql", contact_cipher())
    first = event("m1", first_month - timedelta(hours=2))  # the legacy partition's last hours
    async with db.transaction() as connection:
        assert await store.insert(connection, [first], [None]) == {("w", "m1")}

    retry = event("m1", first_month + timedelta(hours=3))  # a sender's retry, next partition
    stale = event("m1", first.received_at + DEDUP_WINDOW + timedelta(seconds=1))
    async with db.transaction() as connection:
        assert await store.known(connection, [retry]) == {("w", "m1")}
        # The same stream entry delivered again carries the same received_at: it conflicts.
        assert await store.insert(connection, [first], [None]) == set()
        # A copy past the window is not found: it would be stored and acted on again.
        assert await store.known(connection, [stale]) == set()

    assert await where_stored(db) == {"m1": LEGACY}


def purger(db: Database, policies: dict[str, RetentionPolicy], now: datetime) -> RetentionPurger:
    async def policy_of(workspace: str) -> RetentionPolicy:
        return policies.get(workspace, DEFAULT_POLICY)

    return RetentionPurger(
        RetentionStore(db),
        policy_of,
        lambda: now,
        PurgeLimits(pause_seconds=0),
        EventPartitions(db),
    )


SHORT = RetentionPolicy.model_validate({"events": 30, "webhookPayloads": 7})
LONGER = RetentionPolicy.model_validate({"events": 60, "webhookPayloads": 60})


async def test_a_workspace_with_a_longer_policy_keeps_the_partition(
    postgres_database: Database, first_month: datetime
) -> None:
    db = postgres_database
    now = month(first_month, 2) + 15 * DAY  # SHORT's cutoff is in month 1, LONGER's in month 0
    await seed_workspaces(db, "short", "long", at=now)
    await store_rows(
        db, [row("short", "s0", first_month + DAY), row("long", "l0", first_month + 25 * DAY)]
    )

    await purger(db, {"short": SHORT, "long": LONGER}, now).run_once()

    assert await exists(db, partition_name(first_month))
    assert not await exists(db, LEGACY)  # past everyone's cutoff
    # The rows batches removed what SHORT no longer keeps; LONGER's row stays.
    assert await where_stored(db) == {"l0": partition_name(first_month)}


async def test_a_purger_pass_drops_expired_months_and_records_each_workspaces_rows(
    postgres_database: Database, first_month: datetime
) -> None:
    db = postgres_database
    now = month(first_month, 2) + 15 * DAY
    await seed_workspaces(db, "short", "quiet", at=now)
    await store_rows(
        db,
        [
            *(row("short", f"s{n}", first_month + n * DAY, webhook=n == 0) for n in range(4)),
            row("short", "kept", now - DAY),
        ],
    )

    outcomes = await purger(db, {"short": SHORT, "quiet": SHORT}, now).run_once()

    assert not await exists(db, partition_name(first_month))
    assert await where_stored(db) == {"kept": partition_name(month(first_month, 2))}
    drops = [(w, o.purged, o.partitions_dropped) for w, o in outcomes if o.partitions_dropped]
    assert drops == [("short", 4, (partition_name(first_month),))]
    runs = await RetentionService(RetentionStore(db), lambda: now).runs("short")
    (run,) = [run for run in runs if (run["details"] or {}).get("partition")]
    assert run["data_class"] == "events"
    assert run["purged"] == 4
    assert run["details"]["partition"] == partition_name(first_month)
    assert run["details"]["receivedBefore"] == month(first_month, 1).isoformat()
    assert RetentionRunOut.from_row(run).partition == partition_name(first_month)  # in the API
    assert run["cutoff"] == now - 30 * DAY  # the earliest cut-off of every workspace
    assert await RetentionService(RetentionStore(db), lambda: now).runs("quiet") == []
    # The months ahead of the pass's now exist.
    assert await exists(db, partition_name(month(first_month, 5)))
