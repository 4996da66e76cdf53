"""Sensitive contact fields sealed at rest: ``contacts.sealed``, ``key_id``, ``needs_sealing``.

A migration cannot reach the encryption keys, so it only marks the rows it finds
(``needs_sealing``); ``seal_plaintext_contacts`` (``store.contact_sealing``), run at start-up,
seals their fields, clears the plaintext and turns their email identities into blind-index
digests, in resumable batches. The plaintext ``email`` column stays (nullable) for rows not yet
sealed and for deployments that do not list ``email`` as sensitive.

On PostgreSQL the mark is a column default dropped straight after (both catalog-only changes),
so no row is rewritten here.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_INDEX = "ix_contacts_needs_sealing"


def upgrade() -> None:
    op.add_column("contacts", sa.Column("sealed", sa.Text(), nullable=True))
    op.add_column("contacts", sa.Column("key_id", sa.String(64), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE contacts ADD COLUMN needs_sealing boolean DEFAULT true")
        op.execute("ALTER TABLE contacts ALTER COLUMN needs_sealing DROP DEFAULT")
    else:
        op.add_column("contacts", sa.Column("needs_sealing", sa.Boolean(), nullable=True))
        op.execute("UPDATE contacts SET needs_sealing = 1")
    pending = sa.column("needs_sealing").is_(True)
    op.create_index(
        _INDEX,
        "contacts",
        ["workspace_id", "id"],
        postgresql_where=pending,
        sqlite_where=pending,
    )


def downgrade() -> None:
    """Refused once a contact holds sealed fields or a digest identity: the schema before
    0006 can neither hold the one nor look up the other."""
    bind = op.get_bind()
    for check in (
        "SELECT 1 FROM contacts WHERE sealed IS NOT NULL",
        "SELECT 1 FROM contact_identities WHERE kind = 'email' AND value NOT LIKE '%@%'",
    ):
        if bind.execute(sa.text(check)).first() is not None:
            raise RuntimeError("contacts hold sealed fields; downgrading below 0006 loses them")
    op.drop_index(_INDEX, "contacts")
    with op.batch_alter_table("contacts") as batch:
        batch.drop_column("needs_sealing")
        batch.drop_column("key_id")
        batch.drop_column("sealed")
