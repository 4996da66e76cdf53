"""Contacts, events, triggers: identities, the event log, entry rules, dedup keys and time ticks.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Frozen copies of the column types in tables.py at this revision.
IDENTIFIER = sa.String(64).with_variant(sa.String(64, collation="C"), "postgresql")
INSTANT = sa.DateTime(timezone=True)
DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.add_column("executions", sa.Column("exit_reason", DOCUMENT, nullable=True))
    _contacts()
    _events()
    _triggers()
    _entries_and_keys()


def _contacts() -> None:
    op.create_table(
        "contacts",
        sa.Column("workspace_id", IDENTIFIER, nullable=False),
        sa.Column("id", IDENTIFIER, nullable=False),
        sa.Column("user_id", sa.String(200), nullable=True),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("timezone", sa.String(64), nullable=True),
        sa.Column("traits", DOCUMENT, nullable=False),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.Column("updated_at", INSTANT, nullable=False),
        sa.Column("last_seen_at", INSTANT, nullable=True),
        sa.PrimaryKeyConstraint("workspace_id", "id", name="pk_contacts"),
    )
    op.create_table(
        "contact_identities",
        sa.Column("workspace_id", IDENTIFIER, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("value", sa.String(320), nullable=False),
        sa.Column("contact_id", IDENTIFIER, nullable=False),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "kind", "value", name="pk_contact_identities"),
        sa.CheckConstraint(
            "kind IN ('user_id', 'anonymous_id', 'email')", name="ck_contact_identities_kind"
        ),
    )
    op.create_index(
        "ix_contact_identities_workspace_id_contact_id",
        "contact_identities",
        ["workspace_id", "contact_id"],
    )


def _events() -> None:
    op.create_table(
        "events",
        sa.Column("workspace_id", IDENTIFIER, nullable=False),
        sa.Column("message_id", sa.String(200), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("contact_id", IDENTIFIER, nullable=True),
        sa.Column("user_id", sa.String(200), nullable=True),
        sa.Column("anonymous_id", sa.String(200), nullable=True),
        sa.Column("payload", DOCUMENT, nullable=False),
        sa.Column("timestamp", INSTANT, nullable=False),
        sa.Column("received_at", INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "message_id", name="pk_events"),
        sa.CheckConstraint(
            "type IN ('track', 'identify', 'page', 'screen', 'group', 'alias')",
            name="ck_events_type",
        ),
    )
    op.create_index(
        "ix_events_workspace_id_contact_id_timestamp",
        "events",
        ["workspace_id", "contact_id", "timestamp"],
    )


def _triggers() -> None:
    op.create_table(
        "triggers",
        sa.Column("workspace_id", IDENTIFIER, nullable=False),
        sa.Column("id", IDENTIFIER, nullable=False),
        sa.Column("workflow_id", IDENTIFIER, nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("event_name", sa.String(200), nullable=True),
        sa.Column("definition", DOCUMENT, nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.Column("updated_at", INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "id", name="pk_triggers"),
        sa.ForeignKeyConstraint(
            ["workspace_id", "workflow_id"],
            ["workflows.workspace_id", "workflows.id"],
            name="fk_triggers_workspace_id_workflow_id_workflows",
        ),
    )
    op.create_index(
        "ix_triggers_workspace_id_workflow_id", "triggers", ["workspace_id", "workflow_id"]
    )


def _entries_and_keys() -> None:
    op.create_table(
        "entries",
        sa.Column("workspace_id", IDENTIFIER, nullable=False),
        sa.Column("workflow_id", IDENTIFIER, nullable=False),
        sa.Column("subject_id", sa.String(200), nullable=False),
        sa.Column("last_entered_at", INSTANT, nullable=False),
        sa.Column("active_execution_id", IDENTIFIER, nullable=True),
        sa.Column("entry_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "workflow_id", "subject_id", name="pk_entries"),
    )
    op.create_table(
        "trigger_dedup",
        sa.Column("workspace_id", IDENTIFIER, nullable=False),
        sa.Column("scope", sa.String(300), nullable=False),
        sa.Column("dedup_key", sa.String(500), nullable=False),
        sa.Column("expires_at", INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "scope", "dedup_key", name="pk_trigger_dedup"),
    )
    op.create_index("ix_trigger_dedup_expires_at", "trigger_dedup", ["expires_at"])
    op.create_table(
        "trigger_ticks",
        sa.Column("workspace_id", IDENTIFIER, nullable=False),
        sa.Column("scope", sa.String(300), nullable=False),
        sa.Column("tick_at", INSTANT, nullable=False),
        sa.Column("fired_at", INSTANT, nullable=False),
        sa.Column("started", sa.Integer(), nullable=False),
        sa.Column("cursor", IDENTIFIER, nullable=True),
        sa.Column("lease_owner", sa.String(100), nullable=True),
        sa.Column("lease_until", INSTANT, nullable=True),
        sa.Column("completed_at", INSTANT, nullable=True),
        sa.PrimaryKeyConstraint("workspace_id", "scope", "tick_at", name="pk_trigger_ticks"),
    )
    op.create_index("ix_trigger_ticks_lease_until", "trigger_ticks", ["lease_until"])


def downgrade() -> None:
    for table in (
        "trigger_ticks",
        "trigger_dedup",
        "entries",
        "triggers",
        "events",
        "contact_identities",
        "contacts",
    ):
        op.drop_table(table)
    with op.batch_alter_table("executions") as batch:
        batch.drop_column("exit_reason")
