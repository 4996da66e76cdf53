"""Failures reach callers as campaignflow errors, never as driver exceptions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from campaignflow.errors import DatabaseUnavailable, NotFound, StorageError
from campaignflow.store.database import Database
from campaignflow.store.migrate import current_revision, downgrade, head_revision, upgrade
from campaignflow.store.workflows import WorkflowStore
from tests._support.servers import free_port


@pytest.fixture
async def closed_port_database() -> AsyncIterator[Database]:
    database = Database.from_url(f"postgresql://app:s3cret@127.0.0.1:{free_port()}/cf")
    yield database
    await database.dispose()


async def test_a_reachable_database_answers(database: Database) -> None:
    await database.ping()
    assert await current_revision(database) == head_revision()


async def test_nothing_listening_means_unavailable(closed_port_database: Database) -> None:
    with pytest.raises(DatabaseUnavailable, match=r"127\.0\.0\.1") as caught:
        await closed_port_database.ping()

    assert "s3cret" not in caught.value.message
    assert isinstance(caught.value.__cause__, OSError)


async def test_every_entry_point_reports_an_unreachable_database(
    closed_port_database: Database,
) -> None:
    with pytest.raises(DatabaseUnavailable):
        await current_revision(closed_port_database)
    with pytest.raises(DatabaseUnavailable):
        await upgrade(closed_port_database)
    with pytest.raises(DatabaseUnavailable):
        await WorkflowStore(closed_port_database).get("acme", "welcome")


async def test_an_unknown_postgres_database_is_unavailable(postgres_server_url: str) -> None:
    url = make_url(postgres_server_url).set(database="cf_does_not_exist")
    database = Database.from_url(url.render_as_string(hide_password=False))
    try:
        with pytest.raises(DatabaseUnavailable, match="cf_does_not_exist"):
            await database.ping()
    finally:
        await database.dispose()


async def test_an_unopenable_sqlite_file_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "not-a-directory").write_text("")
    database = Database.from_url(f"sqlite:///{tmp_path}/not-a-directory/campaignflow.db")
    try:
        with pytest.raises(DatabaseUnavailable):
            await database.ping()
    finally:
        await database.dispose()


async def test_sqlite_creates_its_directory_on_first_use(tmp_path: Path) -> None:
    path = tmp_path / "fresh" / "data" / "campaignflow.db"
    database = Database.from_url(f"sqlite:///{path}")
    try:
        await upgrade(database)
        assert await current_revision(database) == head_revision()
    finally:
        await database.dispose()
    assert path.is_file()


async def test_an_unmigrated_database_is_a_storage_error_not_a_driver_error(
    database: Database,
) -> None:
    await downgrade(database, "base")

    with pytest.raises(StorageError) as caught:
        await WorkflowStore(database).get("acme", "welcome")

    assert not isinstance(caught.value, DatabaseUnavailable)
    assert "workflows" in caught.value.message
    assert await current_revision(database) is None


@pytest.mark.postgres_only
async def test_connections_dropped_by_the_server_are_replaced(postgres_database: Database) -> None:
    store = WorkflowStore(postgres_database)
    await store.ensure_workspace("acme", "Acme")  # leaves a pooled connection behind
    terminate_others = text(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    killer = Database.from_url(postgres_database.url.render_as_string(hide_password=False))
    try:
        async with killer.connect() as connection:
            assert (await connection.execute(terminate_others)).scalar_one() >= 1
    finally:
        await killer.dispose()

    with pytest.raises(NotFound):
        await store.get("acme", "welcome")
