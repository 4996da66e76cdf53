"""Sensitive values sealed in execution rows and in the event log: ``executions.sealed``,
``key_id``, ``needs_sealing`` and the same three on ``events``.

As in 0006, a migration cannot reach the keys: it marks the rows it finds (``needs_sealing``)
and ``seal_plaintext_records`` (``store.record_sealing``), run at start-up, seals them in
resumable batches. On PostgreSQL the mark is a column default dropped straight after (both
catalog-only changes), so neither table is rewritten here.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_TABLES = {"executions": ("workspace_id", "id"), "events": ("workspace_id", "message_id")}


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, key in _TABLES.items():
        op.add_column(table, sa.Column("sealed", sa.Text(), nullable=True))
        op.add_column(table, sa.Column("key_id", sa.String(64), nullable=True))
        if postgres:
            op.execute(f"ALTER TABLE {table} ADD COLUMN needs_sealing boolean DEFAULT true")
            op.execute(f"ALTER TABLE {table} ALTER COLUMN needs_sealing DROP DEFAULT")
        else:
            op.add_column(table, sa.Column("needs_sealing", sa.Boolean(), nullable=True))
            op.execute(f"UPDATE {table} SET needs_sealing = 1")  # noqa: S608 - constant names
        pending = sa.column("needs_sealing").is_(True)
        op.create_index(
            f"ix_{table}_needs_sealing",
            table,
            list(key),
            postgresql_where=pending,
            sqlite_where=pending,
        )


def downgrade() -> None:
    """Refused once a row holds a sealed value: the schema before 0007 cannot hold it."""
    bind = op.get_bind()
    for table in _TABLES:
        check = f"SELECT 1 FROM {table} WHERE sealed IS NOT NULL"  # noqa: S608 - constant
        if bind.execute(sa.text(check)).first() is not None:
            raise RuntimeError(f"{table} hold sealed values; downgrading below 0007 loses them")
    for table in _TABLES:
        op.drop_index(f"ix_{table}_needs_sealing", table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("needs_sealing")
            batch.drop_column("key_id")
            batch.drop_column("sealed")
