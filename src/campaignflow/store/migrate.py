"""Schema migrations (Alembic), configured in code and shipped inside the package.

The migration scripts live in ``campaignflow/store/migrations`` and are found through the
package, so an installed wheel migrates without an ``alembic.ini``. Alembic is synchronous; it
runs inside ``AsyncConnection.run_sync`` on a connection of the caller's :class:`Database`, so
these functions work inside a running event loop.
"""

from __future__ import annotations

from functools import cache

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from campaignflow.store.database import Database

SCRIPT_LOCATION = "campaignflow.store:migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic configuration for our scripts; ``env.py`` migrates ``connection``."""
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.attributes["connection"] = connection
    return config


@cache
def head_revision() -> str:
    """The revision this release's schema is at."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations found in {SCRIPT_LOCATION}")
    return head


async def upgrade(db: Database, revision: str = "head") -> None:
    """Migrate the schema up to ``revision``, in one transaction."""
    async with db.transaction() as connection:
        await connection.run_sync(_upgrade, revision)


async def downgrade(db: Database, revision: str) -> None:
    """Migrate the schema down to ``revision`` (``"base"``: drop everything), in one transaction."""
    async with db.transaction() as connection:
        await connection.run_sync(_downgrade, revision)


async def current_revision(db: Database) -> str | None:
    """The database's revision, or ``None`` if it has never been migrated."""
    async with db.connect() as connection:
        return await connection.run_sync(_current_revision)


async def schema_mismatch(db: Database) -> str | None:
    """Why the database's schema is not the one this release needs; ``None`` when it is."""
    revision = await current_revision(db)
    head = head_revision()
    if revision == head:
        return None
    return (
        f"The database schema is at {revision or 'no revision'}, this release needs {head}: "
        "run `campaignflow migrate`"
    )


def _upgrade(connection: Connection, revision: str) -> None:
    command.upgrade(alembic_config(connection), revision)


def _downgrade(connection: Connection, revision: str) -> None:
    command.downgrade(alembic_config(connection), revision)


def _current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()
