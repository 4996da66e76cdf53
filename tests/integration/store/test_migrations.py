"""The schema that migrations build is the schema the code declares, on both dialects."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from campaignflow.store.database import Database
from campaignflow.store.migrate import current_revision, downgrade, head_revision, upgrade
from campaignflow.store.tables import metadata


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def schema_differences(database: Database) -> list[Any]:
    async with database.connect() as connection:
        return await connection.run_sync(_differences)


async def table_names(database: Database) -> set[str]:
    async with database.connect() as connection:
        names = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
    return set(names) - {"alembic_version"}


async def test_migrations_build_exactly_the_declared_schema(database: Database) -> None:
    assert await current_revision(database) == head_revision()
    assert await schema_differences(database) == []


async def test_downgrade_to_base_and_back_rebuilds_the_schema(database: Database) -> None:
    await downgrade(database, "base")

    assert await current_revision(database) is None
    assert await table_names(database) == set()

    await upgrade(database)

    assert await current_revision(database) == head_revision()
    assert await table_names(database) == set(metadata.tables)
    assert await schema_differences(database) == []


async def test_upgrading_a_current_database_changes_nothing(database: Database) -> None:
    await upgrade(database)

    assert await current_revision(database) == head_revision()
    assert await schema_differences(database) == []
