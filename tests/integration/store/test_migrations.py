"""The schema that migrations build is the schema the code declares, on both dialects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from campaignflow.domain.events import Event
from campaignflow.store.database import Database
from campaignflow.store.events import EventStore
from campaignflow.store.migrate import current_revision, downgrade, head_revision, upgrade
from campaignflow.store.partitions import add_months, partition_name
from campaignflow.store.tables import metadata
from tests._support.ciphers import contact_cipher


def _partitions(connection: Connection) -> set[str]:
    """The partitions of partitioned tables (the event log's months on PostgreSQL): the
    inspector lists them as tables, but they are the declared table's storage, not tables of
    the schema."""
    if connection.dialect.name != "postgresql":
        return set()
    return set(
        connection.execute(text("SELECT relname FROM pg_class WHERE relispartition")).scalars()
    )


def _differences(connection: Connection) -> list[Any]:
    partitions = _partitions(connection)

    def include_name(name: str | None, kind: str, parents: Any) -> bool:
        return not (kind == "table" and name in partitions)

    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "include_name": include_name}
    )
    return list(compare_metadata(context, metadata))


async def schema_differences(database: Database) -> list[Any]:
    async with database.connect() as connection:
        return await connection.run_sync(_differences)


async def table_names(database: Database) -> set[str]:
    def names(sync: Connection) -> set[str]:
        return set(inspect(sync).get_table_names()) - _partitions(sync)

    async with database.connect() as connection:
        found = await connection.run_sync(names)
    return found - {"alembic_version"}


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


# --- the event log's partitions (PostgreSQL, migration 0011) --------------------------------


async def rows(database: Database, sql: str) -> list[Any]:
    async with database.read() as connection:
        return list((await connection.execute(text(sql))).all())


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


async def test_events_are_partitioned_by_month_and_keyed_with_received_at(
    postgres_database: Database,
) -> None:
    strategy = await rows(
        postgres_database,
        "SELECT p.partstrat::text, a.attname::text FROM pg_partitioned_table p "
        "JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0] "
        "WHERE p.partrelid = 'events'::regclass",
    )
    assert strategy == [("r", "received_at")]
    async with postgres_database.connect() as connection:
        key = await connection.run_sync(lambda sync: inspect(sync).get_pk_constraint("events"))
    assert key["name"] == "pk_events"
    assert key["constrained_columns"] == ["workspace_id", "message_id", "received_at"]
    names = {name for (name,) in await rows(postgres_database, PARTITIONS)}
    month = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = [add_months(month, n) for n in (1, 2, 3)]
    assert names >= {"events_p_legacy", "events_default", *map(partition_name, following)}


PARTITIONS = (
    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
    "WHERE i.inhparent = 'events'::regclass"
)


async def test_upgrading_from_0010_keeps_the_events_and_their_dedup(
    postgres_database: Database,
) -> None:
    database = postgres_database
    now = datetime.now(UTC).replace(microsecond=0)
    await downgrade(database, "0010")
    assert await rows(database, PARTITIONS) == []  # one plain table again
    async with database.transaction() as connection:
        await connection.execute(
            text(
                "INSERT INTO events (workspace_id, message_id, type, payload, timestamp, "
                "received_at) VALUES ('w', 'm-recent', 'track', '{}', :recent, :recent), "
                "('w', 'm-old', 'track', '{}', :old, :old)"
            ),
            {"recent": now - timedelta(hours=1), "old": now - timedelta(days=400)},
        )

    await upgrade(database)

    stored = await rows(database, "SELECT message_id, tableoid::regclass::text FROM events")
    assert sorted(stored) == [("m-old", "events_p_legacy"), ("m-recent", "events_p_legacy")]
    store = EventStore("postgresql", contact_cipher())
    retry = event("m-recent", now)  # a sender's retry an hour later: found by the probe
    redelivered = event("m-recent", now - timedelta(hours=1))  # the same stream entry again
    async with database.transaction() as connection:
        assert await store.known(connection, [retry]) == {("w", "m-recent")}
        assert await store.insert(connection, [redelivered], [None]) == set()
        assert await store.known(connection, [event("m-old", now)]) == set()  # past the window

    await downgrade(database, "0010")
    back = await rows(database, "SELECT message_id FROM events ORDER BY message_id")
    assert back == [("m-old",), ("m-recent",)]
    async with database.connect() as connection:
        key = await connection.run_sync(lambda sync: inspect(sync).get_pk_constraint("events"))
    assert key["constrained_columns"] == ["workspace_id", "message_id"]
    await upgrade(database)
    assert await schema_differences(database) == []
