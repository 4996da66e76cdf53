"""CRM sync: sync configuration on connections, runs with their errors, links, field sources.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# Frozen copies of the column types in tables.py at this revision.
IDENTIFIER = sa.String(64).with_variant(sa.String(64, collation="C"), "postgresql")
INSTANT = sa.DateTime(timezone=True)
DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("connections") as batch:
        batch.add_column(sa.Column("sync", DOCUMENT, nullable=True))
        batch.add_column(sa.Column("sync_due_at", INSTANT, nullable=True))
    op.create_index("ix_connections_sync_due_at", "connections", ["sync_due_at"])
    op.create_index(
        "ix_contacts_workspace_id_updated_at_id", "contacts", ["workspace_id", "updated_at", "id"]
    )
    op.create_index("ix_events_workspace_id_received_at", "events", ["workspace_id", "received_at"])
    op.create_table(
        "sync_runs",
        sa.Column("id", IDENTIFIER, nullable=False),
        sa.Column("workspace_id", IDENTIFIER, nullable=False),
        sa.Column("connection_id", IDENTIFIER, nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("requested_by", sa.String(200), nullable=True),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.Column("started_at", INSTANT, nullable=True),
        sa.Column("finished_at", INSTANT, nullable=True),
        sa.Column("lease_owner", sa.String(200), nullable=True),
        sa.Column("lease_until", INSTANT, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("cursor", DOCUMENT, nullable=False),
        sa.Column("stats", DOCUMENT, nullable=False),
        sa.Column("error", sa.String(1000), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_sync_runs"),
        sa.CheckConstraint(
            "trigger IN ('scheduled', 'real-time', 'on-demand')", name="ck_sync_runs_trigger"
        ),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'partial', 'failed')",
            name="ck_sync_runs_status",
        ),
    )
    op.create_index(
        "ix_sync_runs_workspace_id_connection_id_created_at",
        "sync_runs",
        ["workspace_id", "connection_id", "created_at"],
    )
    op.create_index("ix_sync_runs_status_lease_until", "sync_runs", ["status", "lease_until"])
    active = sa.text("status IN ('queued', 'running')")
    op.create_index(
        "ix_sync_runs_active_connection_id",
        "sync_runs",
        ["connection_id"],
        unique=True,
        postgresql_where=active,
        sqlite_where=active,
    )
    op.create_table(
        "sync_run_errors",
        sa.Column("workspace_id", IDENTIFIER, nullable=False),
        sa.Column("run_id", IDENTIFIER, nullable=False),
        sa.Column("record", sa.String(200), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("message", sa.String(1000), nullable=False),
        sa.Column("retryable", sa.Boolean(), nullable=False),
        sa.Column("at", INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "record", "direction", name="pk_sync_run_errors"),
        sa.CheckConstraint("direction IN ('pull', 'push')", name="ck_sync_run_errors_direction"),
    )
    op.create_table(
        "sync_links",
        sa.Column("workspace_id", IDENTIFIER, nullable=False),
        sa.Column("connection_id", IDENTIFIER, nullable=False),
        sa.Column("contact_id", IDENTIFIER, nullable=False),
        sa.Column("remote_id", sa.String(200), nullable=True),
        sa.Column("fields", DOCUMENT, nullable=False),
        sa.Column("synced_at", INSTANT, nullable=True),
        sa.Column("pending_push", sa.Boolean(), nullable=False),
        sa.Column("push_attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("connection_id", "contact_id", name="pk_sync_links"),
    )
    op.create_index(
        "ix_sync_links_connection_id_remote_id",
        "sync_links",
        ["connection_id", "remote_id"],
        unique=True,
    )
    op.create_index(
        "ix_sync_links_connection_id_pending_push", "sync_links", ["connection_id", "pending_push"]
    )
    op.create_table(
        "contact_field_sources",
        sa.Column("workspace_id", IDENTIFIER, nullable=False),
        sa.Column("contact_id", IDENTIFIER, nullable=False),
        sa.Column("field", sa.String(64), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("changed_at", INSTANT, nullable=False),
        sa.PrimaryKeyConstraint(
            "workspace_id", "contact_id", "field", name="pk_contact_field_sources"
        ),
    )


def downgrade() -> None:
    op.drop_table("contact_field_sources")
    op.drop_index("ix_sync_links_connection_id_pending_push", "sync_links")
    op.drop_index("ix_sync_links_connection_id_remote_id", "sync_links")
    op.drop_table("sync_links")
    op.drop_table("sync_run_errors")
    op.drop_index("ix_sync_runs_active_connection_id", "sync_runs")
    op.drop_index("ix_sync_runs_status_lease_until", "sync_runs")
    op.drop_index("ix_sync_runs_workspace_id_connection_id_created_at", "sync_runs")
    op.drop_table("sync_runs")
    op.drop_index("ix_events_workspace_id_received_at", "events")
    op.drop_index("ix_contacts_workspace_id_updated_at_id", "contacts")
    op.drop_index("ix_connections_sync_due_at", "connections")
    with op.batch_alter_table("connections") as batch:
        batch.drop_column("sync_due_at")
        batch.drop_column("sync")
