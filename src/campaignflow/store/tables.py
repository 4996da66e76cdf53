"""The schema, declared once in SQLAlchemy Core; migrations must build exactly this.

Tenancy: every table carries ``workspace_id`` (``workspaces`` is the tenant table itself) and
every query the store runs filters by it.
"""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

from campaignflow.store.types import JSONDocument, UTCDateTime, identifier

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

WORKFLOW_STATUSES = ("draft", "active", "paused", "archived")

metadata = MetaData(naming_convention=NAMING_CONVENTION)

workspaces = Table(
    "workspaces",
    metadata,
    Column("id", identifier(), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

workflows = Table(
    "workflows",
    metadata,
    Column("workspace_id", identifier(), ForeignKey("workspaces.id"), nullable=False),
    Column("id", identifier(), nullable=False),  # the definition's workflowId
    Column("name", String(200), nullable=False),
    # casefold(name), written by the store: case-insensitive search that is Unicode-correct on
    # both dialects (SQLite's lower() and LIKE only fold ASCII).
    Column("name_search", Text(), nullable=False),
    Column("status", String(16), nullable=False),
    Column("latest_version", Integer(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("archived_at", UTCDateTime(), nullable=True),
    PrimaryKeyConstraint("workspace_id", "id"),
    CheckConstraint(
        "status IN ({})".format(", ".join(f"'{status}'" for status in WORKFLOW_STATUSES)),
        name="status",
    ),
    CheckConstraint("latest_version >= 1", name="latest_version_positive"),
    Index(None, "workspace_id", "status", "id"),
)

workflow_versions = Table(
    "workflow_versions",
    metadata,
    Column("workspace_id", identifier(), nullable=False),
    Column("workflow_id", identifier(), nullable=False),
    Column("version", Integer(), nullable=False),
    Column("name", String(200), nullable=False),
    Column("definition", JSONDocument(), nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("workspace_id", "workflow_id", "version"),
    ForeignKeyConstraint(
        ["workspace_id", "workflow_id"], ["workflows.workspace_id", "workflows.id"]
    ),
    CheckConstraint("version >= 1", name="version_positive"),
)
