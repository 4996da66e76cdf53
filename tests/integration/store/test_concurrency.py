"""Concurrent writers: the database decides, exactly one wins, nobody's write is lost."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import pytest
from sqlalchemy import text

from campaignflow.errors import AlreadyExists, PreconditionFailed
from campaignflow.store.database import Database
from campaignflow.store.workflows import WorkflowRecord, WorkflowStore
from tests.integration.store.conftest import WORKSPACE, StepClock, create


async def publish(store: WorkflowStore, n: int, expected: int) -> WorkflowRecord:
    return await store.add_version(
        WORKSPACE, "welcome", name=f"Edit {n}", definition={"edit": n}, content_hash=f"h{n}",
        expected_version=expected,
    )  # fmt: skip


def outcome(
    results: Sequence[WorkflowRecord | BaseException],
) -> tuple[list[WorkflowRecord], list[BaseException]]:
    won = [r for r in results if isinstance(r, WorkflowRecord)]
    lost = [r for r in results if isinstance(r, BaseException)]
    return won, lost


async def test_of_concurrent_edits_from_one_version_exactly_one_wins(store: WorkflowStore) -> None:
    await create(store, "welcome")

    results = await asyncio.gather(
        *(publish(store, n, expected=1) for n in range(6)), return_exceptions=True
    )

    won, lost = outcome(results)
    assert len(won) == 1
    assert all(isinstance(error, PreconditionFailed) for error in lost)
    versions = await store.list_versions(WORKSPACE, "welcome")
    assert [v.version for v in versions] == [1, 2]
    assert await store.get(WORKSPACE, "welcome") == won[0]


async def test_of_concurrent_creates_of_one_id_exactly_one_wins(store: WorkflowStore) -> None:
    results = await asyncio.gather(
        *(create(store, "welcome", f"Name {n}") for n in range(6)), return_exceptions=True
    )

    won, lost = outcome(results)
    assert len(won) == 1
    assert all(isinstance(error, AlreadyExists) for error in lost)
    assert await store.get(WORKSPACE, "welcome") == won[0]


LOCK_WELCOME = text(
    "SELECT 1 FROM workflows WHERE workspace_id = 'acme' AND id = 'welcome' FOR UPDATE"
)


async def blocked_on_locks(database: Database, count: int) -> None:
    """Wait until ``count`` other sessions of this database wait for a row lock.

    Each look clears the statistics snapshot: inside one transaction PostgreSQL would otherwise
    keep answering from the first snapshot, and a look taken before the writers queued would
    never see them."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    deadline = time.monotonic() + 10
    async with database.connect() as connection:
        while True:
            await connection.execute(text("SELECT pg_stat_clear_snapshot()"))
            if (await connection.execute(query)).scalar_one() >= count:
                return
            assert time.monotonic() < deadline, f"{count} writers never blocked"
            await asyncio.sleep(0.01)


@pytest.mark.postgres_only
async def test_writers_queued_behind_a_lock_recheck_the_version(
    postgres_database: Database,
) -> None:
    store = WorkflowStore(postgres_database, clock=StepClock())
    await store.ensure_workspace(WORKSPACE, "Acme")
    await create(store, "welcome")

    # Hold the row so both writers are inside their UPDATE at the same time, then let go.
    async with postgres_database.transaction() as holder:
        await holder.execute(LOCK_WELCOME)
        writers = [asyncio.create_task(publish(store, n, expected=1)) for n in (1, 2)]
        await blocked_on_locks(postgres_database, 2)
    results = await asyncio.gather(*writers, return_exceptions=True)

    won, lost = outcome(results)
    assert len(won) == 1
    assert len(lost) == 1
    assert isinstance(lost[0], PreconditionFailed)
    assert (await store.get(WORKSPACE, "welcome")).version == 2
