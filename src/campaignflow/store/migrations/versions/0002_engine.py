"""The engine: executions, their step log, the task queue, event waits and dead letters.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Frozen copies of the column types in tables.py at this revision.
IDENTIFIER = sa.String(64).with_variant(sa.String(64, collation="C"), "postgresql")
INSTANT = sa.DateTime(timezone=True)
DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TOKEN = sa.String(1000)


def upgrade() -> None:
    _executions()
    _execution_steps()
    _tasks()
    _waits()
    _dead_letters()


def _executions() -> None:
    op.create_table(
        "executions",
        sa.Column("workspace_id", IDENTIFIER, nullable=False),
        sa.Column("id", IDENTIFIER, nullable=False),
        sa.Column("workflow_id", IDENTIFIER, nullable=False),
        sa.Column("workflow_version", sa.Integer(), nullable=False),
        sa.Column("subject_id", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("trigger", sa.String(200), nullable=False),
        sa.Column("input", DOCUMENT, nullable=False),
        sa.Column("contact", DOCUMENT, nullable=False),
        sa.Column("state", DOCUMENT, nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("error", DOCUMENT, nullable=True),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.Column("updated_at", INSTANT, nullable=False),
        sa.Column("finished_at", INSTANT, nullable=True),
        sa.PrimaryKeyConstraint("workspace_id", "id", name="pk_executions"),
        sa.ForeignKeyConstraint(
            ["workspace_id", "workflow_id", "workflow_version"],
            [
                "workflow_versions.workspace_id",
                "workflow_versions.workflow_id",
                "workflow_versions.version",
            ],
            name="fk_executions_workflow_versions",
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'waiting', 'completed', 'failed', 'cancelled')",
            name="ck_executions_status",
        ),
    )
    for columns in (
        ("workspace_id", "workflow_id", "id"),
        ("workspace_id", "status", "id"),
        ("workspace_id", "subject_id", "id"),
    ):
        op.create_index(f"ix_executions_{'_'.join(columns)}", "executions", list(columns))
    op.create_index(
        "ix_executions_workspace_id_workflow_id_idempotency_key",
        "executions",
        ["workspace_id", "workflow_id", "idempotency_key"],
        unique=True,
    )


def _execution_steps() -> None:
    op.create_table(
        "execution_steps",
        sa.Column("workspace_id", IDENTIFIER, nullable=False),
        sa.Column("execution_id", IDENTIFIER, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.String(64), nullable=False),
        sa.Column("node_type", sa.String(32), nullable=False),
        sa.Column("token", TOKEN, nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", INSTANT, nullable=False),
        sa.Column("finished_at", INSTANT, nullable=False),
        sa.Column("output", DOCUMENT, nullable=True),
        sa.Column("error", DOCUMENT, nullable=True),
        sa.PrimaryKeyConstraint("workspace_id", "execution_id", "seq", name="pk_execution_steps"),
    )


def _tasks() -> None:
    op.create_table(
        "tasks",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("workspace_id", IDENTIFIER, nullable=False),
        sa.Column("execution_id", IDENTIFIER, nullable=False),
        sa.Column("node_id", sa.String(64), nullable=False),
        sa.Column("token", TOKEN, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("run_at", INSTANT, nullable=False),
        sa.Column("lease_owner", sa.String(100), nullable=True),
        sa.Column("payload", DOCUMENT, nullable=True),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tasks"),
        sa.CheckConstraint("kind IN ('run', 'timer', 'timeout', 'event')", name="ck_tasks_kind"),
    )
    op.create_index("ix_tasks_run_at", "tasks", ["run_at"])
    op.create_index("ix_tasks_workspace_id_execution_id", "tasks", ["workspace_id", "execution_id"])


def _waits() -> None:
    op.create_table(
        "waits",
        sa.Column("workspace_id", IDENTIFIER, nullable=False),
        sa.Column("execution_id", IDENTIFIER, nullable=False),
        sa.Column("token", TOKEN, nullable=False),
        sa.Column("node_id", sa.String(64), nullable=False),
        sa.Column("subject_id", sa.String(200), nullable=False),
        sa.Column("event_name", sa.String(200), nullable=False),
        sa.Column("correlation_value", sa.Text(), nullable=True),
        sa.Column("expires_at", INSTANT, nullable=True),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "execution_id", "token", name="pk_waits"),
    )
    op.create_index(
        "ix_waits_workspace_id_subject_id_event_name",
        "waits",
        ["workspace_id", "subject_id", "event_name"],
    )


def _dead_letters() -> None:
    op.create_table(
        "dead_letters",
        sa.Column("workspace_id", IDENTIFIER, nullable=False),
        sa.Column("id", IDENTIFIER, nullable=False),
        sa.Column("execution_id", IDENTIFIER, nullable=False),
        sa.Column("workflow_id", IDENTIFIER, nullable=False),
        sa.Column("workflow_version", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.String(64), nullable=False),
        sa.Column("token", TOKEN, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("errors", DOCUMENT, nullable=False),
        sa.Column("input", DOCUMENT, nullable=False),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.Column("resolved_at", INSTANT, nullable=True),
        sa.PrimaryKeyConstraint("workspace_id", "id", name="pk_dead_letters"),
        sa.CheckConstraint(
            "status IN ('open', 'replayed', 'discarded')", name="ck_dead_letters_status"
        ),
    )
    op.create_index(
        "ix_dead_letters_workspace_id_status_id", "dead_letters", ["workspace_id", "status", "id"]
    )
    op.create_index(
        "ix_dead_letters_workspace_id_execution_id",
        "dead_letters",
        ["workspace_id", "execution_id"],
    )


def downgrade() -> None:
    for table in ("dead_letters", "waits", "tasks", "execution_steps", "executions"):
        op.drop_table(table)
