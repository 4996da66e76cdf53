"""Alerting: channels, rules with their evaluation state, incidents and the notification outbox.

Also an index on ``executions (workspace_id, finished_at)``: an alert rule on the failure rate
counts the executions that finished within its window, whatever their age, which the existing
indexes (by id, i.e. by start time) cannot answer without scanning the workspace's executions.
On a large PostgreSQL ``executions`` table, build it beforehand with ``CREATE INDEX
CONCURRENTLY ix_executions_workspace_id_finished_at ...`` to avoid holding writes during the
migration; this migration then finds it and leaves it.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

# Frozen copies of the column types in tables.py at this revision.
IDENTIFIER = sa.String(64).with_variant(sa.String(64, collation="C"), "postgresql")
INSTANT = sa.DateTime(timezone=True)
DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_FINISHED_INDEX = "ix_executions_workspace_id_finished_at"


def upgrade() -> None:
    op.create_table(
        "alert_channels",
        sa.Column("workspace_id", IDENTIFIER, nullable=False),
        sa.Column("id", IDENTIFIER, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("config", DOCUMENT, nullable=False),
        sa.Column("hint", sa.String(200), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=True),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.Column("updated_at", INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "id", name="pk_alert_channels"),
        sa.CheckConstraint("kind IN ('slack', 'webhook', 'email')", name="ck_alert_channels_kind"),
    )
    op.create_index(
        "ix_alert_channels_workspace_id_name",
        "alert_channels",
        ["workspace_id", "name"],
        unique=True,
    )
    op.create_table(
        "alert_rules",
        sa.Column("workspace_id", IDENTIFIER, nullable=False),
        sa.Column("id", IDENTIFIER, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("definition", DOCUMENT, nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("state_since", INSTANT, nullable=True),
        sa.Column("incident_id", IDENTIFIER, nullable=True),
        sa.Column("last_value", sa.Float(), nullable=True),
        sa.Column("evaluated_at", INSTANT, nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=True),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.Column("updated_at", INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "id", name="pk_alert_rules"),
        sa.CheckConstraint("state IN ('ok', 'pending', 'firing')", name="ck_alert_rules_state"),
    )
    op.create_index(
        "ix_alert_rules_workspace_id_name", "alert_rules", ["workspace_id", "name"], unique=True
    )
    op.create_table(
        "alert_incidents",
        sa.Column("workspace_id", IDENTIFIER, nullable=False),
        sa.Column("id", IDENTIFIER, nullable=False),
        sa.Column("rule_id", IDENTIFIER, nullable=False),
        sa.Column("rule_name", sa.String(100), nullable=False),
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("last_value", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("started_at", INSTANT, nullable=False),
        sa.Column("resolved_at", INSTANT, nullable=True),
        sa.Column("notified_at", INSTANT, nullable=False),
        sa.Column("repeats", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "id", name="pk_alert_incidents"),
        sa.CheckConstraint("status IN ('firing', 'resolved')", name="ck_alert_incidents_status"),
    )
    op.create_index(
        "ix_alert_incidents_workspace_id_status_id",
        "alert_incidents",
        ["workspace_id", "status", "id"],
    )
    op.create_index(
        "ix_alert_incidents_workspace_id_rule_id_id",
        "alert_incidents",
        ["workspace_id", "rule_id", "id"],
    )
    op.create_table(
        "alert_notifications",
        sa.Column("workspace_id", IDENTIFIER, nullable=False),
        sa.Column("id", IDENTIFIER, nullable=False),
        sa.Column("incident_id", IDENTIFIER, nullable=False),
        sa.Column("channel_id", IDENTIFIER, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("payload", DOCUMENT, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", INSTANT, nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.Column("sent_at", INSTANT, nullable=True),
        sa.PrimaryKeyConstraint("workspace_id", "id", name="pk_alert_notifications"),
        sa.CheckConstraint(
            "kind IN ('fire', 'repeat', 'resolve')", name="ck_alert_notifications_kind"
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'sent', 'failed')", name="ck_alert_notifications_status"
        ),
    )
    op.create_index(
        "ix_alert_notifications_dedup",
        "alert_notifications",
        ["workspace_id", "incident_id", "channel_id", "kind", "sequence"],
        unique=True,
    )
    op.create_index(
        "ix_alert_notifications_next_attempt_at", "alert_notifications", ["next_attempt_at"]
    )
    if op.get_bind().dialect.name == "postgresql":  # one built CONCURRENTLY beforehand stays
        op.execute(
            f"CREATE INDEX IF NOT EXISTS {_FINISHED_INDEX} "
            "ON executions (workspace_id, finished_at)"
        )
    else:
        op.create_index(_FINISHED_INDEX, "executions", ["workspace_id", "finished_at"])


def downgrade() -> None:
    op.drop_index(_FINISHED_INDEX, "executions")
    op.drop_index("ix_alert_notifications_next_attempt_at", "alert_notifications")
    op.drop_index(
        "ix_alert_notifications_dedup",
        "alert_notifications",
    )
    op.drop_table("alert_notifications")
    op.drop_index("ix_alert_incidents_workspace_id_rule_id_id", "alert_incidents")
    op.drop_index("ix_alert_incidents_workspace_id_status_id", "alert_incidents")
    op.drop_table("alert_incidents")
    op.drop_index("ix_alert_rules_workspace_id_name", "alert_rules")
    op.drop_table("alert_rules")
    op.drop_index("ix_alert_channels_workspace_id_name", "alert_channels")
    op.drop_table("alert_channels")
