"""Alembic environment: runs on the connection that :mod:`campaignflow.store.migrate` hands in.

There is no ``alembic.ini`` and no URL here: ``campaignflow migrate`` (or the test fixtures) open
the database with :class:`campaignflow.store.database.Database` and pass the connection through
``config.attributes["connection"]``, so migrations run inside the caller's transaction.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from campaignflow.store.tables import metadata


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    connection = context.config.attributes.get("connection")
    if context.is_offline_mode() or not isinstance(connection, Connection):
        raise RuntimeError(
            "campaignflow's migrations run through campaignflow.store.migrate (or `campaignflow "
            "migrate`), which hands in a live connection; offline SQL is not supported."
        )
    run_migrations(connection)


main()
