"""Workspaces, workflows and their immutable versions.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Frozen copies of the column types in tables.py at this revision.
IDENTIFIER = sa.String(64).with_variant(sa.String(64, collation="C"), "postgresql")
INSTANT = sa.DateTime(timezone=True)
DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "workspaces",
        sa.Column("id", IDENTIFIER, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_workspaces"),
    )
    op.create_table(
        "workflows",
        sa.Column("workspace_id", IDENTIFIER, nullable=False),
        sa.Column("id", IDENTIFIER, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("name_search", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("latest_version", sa.Integer(), nullable=False),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.Column("updated_at", INSTANT, nullable=False),
        sa.Column("archived_at", INSTANT, nullable=True),
        sa.PrimaryKeyConstraint("workspace_id", "id", name="pk_workflows"),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name="fk_workflows_workspace_id_workspaces"
        ),
        sa.CheckConstraint(
            "status IN ('draft', 'active', 'paused', 'archived')", name="ck_workflows_status"
        ),
        sa.CheckConstraint("latest_version >= 1", name="ck_workflows_latest_version_positive"),
    )
    op.create_index(
        "ix_workflows_workspace_id_status_id", "workflows", ["workspace_id", "status", "id"]
    )
    op.create_table(
        "workflow_versions",
        sa.Column("workspace_id", IDENTIFIER, nullable=False),
        sa.Column("workflow_id", IDENTIFIER, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("definition", DOCUMENT, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.PrimaryKeyConstraint(
            "workspace_id", "workflow_id", "version", name="pk_workflow_versions"
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id", "workflow_id"],
            ["workflows.workspace_id", "workflows.id"],
            name="fk_workflow_versions_workspace_id_workflow_id_workflows",
        ),
        sa.CheckConstraint("version >= 1", name="ck_workflow_versions_version_positive"),
    )


def downgrade() -> None:
    op.drop_table("workflow_versions")
    op.drop_index("ix_workflows_workspace_id_status_id", table_name="workflows")
    op.drop_table("workflows")
    op.drop_table("workspaces")
