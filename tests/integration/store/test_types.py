"""Instants are stored as UTC and come back aware, on both dialects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import insert, select

from campaignflow.errors import StorageError
from campaignflow.store.database import Database
from campaignflow.store.tables import workspaces
from campaignflow.store.workflows import WorkflowStore

KOLKATA = timezone(timedelta(hours=5, minutes=30))
NEW_YORK = timezone(timedelta(hours=-5))


async def created_at_in_order(database: Database) -> list[tuple[str, datetime]]:
    statement = select(workspaces.c.id, workspaces.c.created_at).order_by(workspaces.c.created_at)
    async with database.connect() as connection:
        return [(row.id, row.created_at) for row in await connection.execute(statement)]


async def test_instants_round_trip_as_utc_and_sort_by_instant(database: Database) -> None:
    # Local wall-clock strings would sort these the other way round.
    earlier = datetime(2025, 6, 1, 20, 0, 0, 250000, tzinfo=NEW_YORK)  # 2025-06-02 01:00 UTC
    later = datetime(2025, 6, 2, 7, 0, 0, tzinfo=KOLKATA)  # 2025-06-02 01:30 UTC
    async with database.transaction() as connection:
        await connection.execute(
            insert(workspaces),
            [
                {"id": "later", "name": "Later", "created_at": later},
                {"id": "earlier", "name": "Earlier", "created_at": earlier},
            ],
        )

    rows = await created_at_in_order(database)

    assert rows == [("earlier", earlier), ("later", later)]
    assert all(value.tzinfo is UTC for _, value in rows)


async def test_naive_datetimes_are_refused(database: Database) -> None:
    naive = datetime(2025, 6, 1, 12, 0)  # the point of the test
    with pytest.raises(StorageError, match="naive datetime"):
        async with database.transaction() as connection:
            await connection.execute(
                insert(workspaces), {"id": "acme", "name": "Acme", "created_at": naive}
            )
    with pytest.raises(ValueError, match="aware"):
        await WorkflowStore(database, clock=lambda: naive).ensure_workspace("acme", "Acme")


async def test_the_store_reports_times_in_utc_whatever_the_clock_zone(database: Database) -> None:
    local = datetime(2025, 3, 30, 3, 30, tzinfo=KOLKATA)
    store = WorkflowStore(database, clock=lambda: local)
    await store.ensure_workspace("acme", "Acme")

    created = await store.create("acme", "welcome", name="W", definition={}, content_hash="h")

    assert created.created_at == local
    assert created.created_at.tzinfo is UTC
    assert await store.get("acme", "welcome") == created
