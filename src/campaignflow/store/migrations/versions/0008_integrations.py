"""Integrations: connections, the suppression list and message delivery status.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# Frozen copies of the column types in tables.py at this revision.
IDENTIFIER = sa.String(64).with_variant(sa.String(64, collation="C"), "postgresql")
INSTANT = sa.DateTime(timezone=True)
DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "connections",
        sa.Column("id", IDENTIFIER, nullable=False),
        sa.Column("workspace_id", IDENTIFIER, nullable=False),
        sa.Column("name", IDENTIFIER, nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("description", sa.String(500), nullable=True),
        sa.Column("settings", DOCUMENT, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=True),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.Column("updated_at", INSTANT, nullable=False),
        sa.Column("tested_at", INSTANT, nullable=True),
        sa.Column("test_outcome", sa.String(16), nullable=True),
        sa.Column("test_message", sa.String(500), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_connections"),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name="fk_connections_workspace_id_workspaces"
        ),
        sa.CheckConstraint(
            "test_outcome IS NULL OR test_outcome IN ('ok', 'failed')",
            name="ck_connections_test_outcome",
        ),
    )
    op.create_index(
        "ix_connections_workspace_id_name", "connections", ["workspace_id", "name"], unique=True
    )
    op.create_table(
        "suppressions",
        sa.Column("workspace_id", IDENTIFIER, nullable=False),
        sa.Column("email_digest", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("connection_id", IDENTIFIER, nullable=True),
        sa.Column("provider_event_id", sa.String(200), nullable=True),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "email_digest", name="pk_suppressions"),
        sa.CheckConstraint(
            "reason IN ('bounce', 'unsubscribe', 'spam_report', 'manual')",
            name="ck_suppressions_reason",
        ),
    )
    op.create_index(
        "ix_suppressions_workspace_id_created_at", "suppressions", ["workspace_id", "created_at"]
    )
    op.create_table(
        "message_deliveries",
        sa.Column("workspace_id", IDENTIFIER, nullable=False),
        sa.Column("send_id", IDENTIFIER, nullable=False),
        sa.Column("execution_id", IDENTIFIER, nullable=False),
        sa.Column("node_id", sa.String(64), nullable=False),
        sa.Column("token", sa.String(1000), nullable=False),
        sa.Column("connection_id", IDENTIFIER, nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("provider_message_id", sa.String(200), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("events", DOCUMENT, nullable=False),
        sa.Column("sent_at", INSTANT, nullable=False),
        sa.Column("updated_at", INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "send_id", name="pk_message_deliveries"),
        sa.CheckConstraint(
            "status IN ('sent', 'deferred', 'delivered', 'opened', 'clicked', 'bounced', "
            "'dropped', 'unsubscribed', 'spam_reported')",
            name="ck_message_deliveries_status",
        ),
    )
    op.create_index(
        "ix_message_deliveries_workspace_id_execution_id",
        "message_deliveries",
        ["workspace_id", "execution_id"],
    )
    op.create_index(
        "ix_message_deliveries_workspace_id_provider_provider_message_id",
        "message_deliveries",
        ["workspace_id", "provider", "provider_message_id"],
    )


def downgrade() -> None:
    op.drop_table("message_deliveries")
    op.drop_table("suppressions")
    op.drop_index("ix_connections_workspace_id_name", "connections")
    op.drop_table("connections")
