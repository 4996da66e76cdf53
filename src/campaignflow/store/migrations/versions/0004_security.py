"""Security: principals, grants, API keys, OAuth clients, signing keys, secrets, the audit log.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Frozen copies of the column types in tables.py at this revision.
IDENTIFIER = sa.String(64).with_variant(sa.String(64, collation="C"), "postgresql")
INSTANT = sa.DateTime(timezone=True)
DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
ROLE_CHECK = "role IN ('owner', 'admin', 'editor', 'operator', 'viewer')"


def upgrade() -> None:
    with op.batch_alter_table("workspaces") as batch:
        batch.add_column(sa.Column("allowed_cidrs", DOCUMENT, nullable=True))
    _principals()
    _credentials()
    _platform_keys_and_secrets()
    _audit_log()


def _principals() -> None:
    op.create_table(
        "principals",
        sa.Column("workspace_id", IDENTIFIER, nullable=False),
        sa.Column("id", IDENTIFIER, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.Column("disabled_at", INSTANT, nullable=True),
        sa.PrimaryKeyConstraint("workspace_id", "id", name="pk_principals"),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name="fk_principals_workspace_id_workspaces"
        ),
        sa.CheckConstraint("kind IN ('user', 'service')", name="ck_principals_kind"),
        sa.CheckConstraint(ROLE_CHECK, name="ck_principals_role"),
    )
    op.create_table(
        "workflow_grants",
        sa.Column("workspace_id", IDENTIFIER, nullable=False),
        sa.Column("workflow_id", IDENTIFIER, nullable=False),
        sa.Column("principal_id", IDENTIFIER, nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.PrimaryKeyConstraint(
            "workspace_id", "workflow_id", "principal_id", name="pk_workflow_grants"
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id", "workflow_id"],
            ["workflows.workspace_id", "workflows.id"],
            name="fk_workflow_grants_workspace_id_workflow_id_workflows",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id", "principal_id"],
            ["principals.workspace_id", "principals.id"],
            name="fk_workflow_grants_workspace_id_principal_id_principals",
        ),
        sa.CheckConstraint(ROLE_CHECK, name="ck_workflow_grants_role"),
    )
    op.create_index(
        "ix_workflow_grants_workspace_id_principal_id",
        "workflow_grants",
        ["workspace_id", "principal_id"],
    )


def _credentials() -> None:
    op.create_table(
        "api_keys",
        sa.Column("workspace_id", IDENTIFIER, nullable=False),
        sa.Column("id", IDENTIFIER, nullable=False),
        sa.Column("principal_id", IDENTIFIER, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("prefix", sa.String(32), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("scopes", DOCUMENT, nullable=False),
        sa.Column("allowed_cidrs", DOCUMENT, nullable=True),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.Column("expires_at", INSTANT, nullable=True),
        sa.Column("revoked_at", INSTANT, nullable=True),
        sa.Column("last_used_at", INSTANT, nullable=True),
        sa.PrimaryKeyConstraint("workspace_id", "id", name="pk_api_keys"),
        sa.ForeignKeyConstraint(
            ["workspace_id", "principal_id"],
            ["principals.workspace_id", "principals.id"],
            name="fk_api_keys_workspace_id_principal_id_principals",
        ),
    )
    op.create_index("ix_api_keys_key_hash", "api_keys", ["key_hash"], unique=True)
    op.create_table(
        "oauth_clients",
        sa.Column("client_id", IDENTIFIER, nullable=False),
        sa.Column("workspace_id", IDENTIFIER, nullable=False),
        sa.Column("principal_id", IDENTIFIER, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("scopes", DOCUMENT, nullable=False),
        sa.Column("allowed_cidrs", DOCUMENT, nullable=True),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.Column("revoked_at", INSTANT, nullable=True),
        sa.Column("last_used_at", INSTANT, nullable=True),
        sa.PrimaryKeyConstraint("client_id", name="pk_oauth_clients"),
        sa.ForeignKeyConstraint(
            ["workspace_id", "principal_id"],
            ["principals.workspace_id", "principals.id"],
            name="fk_oauth_clients_workspace_id_principal_id_principals",
        ),
    )
    op.create_index(
        "ix_oauth_clients_workspace_id_client_id", "oauth_clients", ["workspace_id", "client_id"]
    )
    op.create_table(
        "revoked_tokens",
        sa.Column("jti", IDENTIFIER, nullable=False),
        sa.Column("workspace_id", IDENTIFIER, nullable=False),
        sa.Column("expires_at", INSTANT, nullable=False),
        sa.Column("revoked_at", INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("jti", name="pk_revoked_tokens"),
    )
    op.create_index("ix_revoked_tokens_expires_at", "revoked_tokens", ["expires_at"])


def _platform_keys_and_secrets() -> None:
    op.create_table(
        "signing_keys",
        sa.Column("kid", IDENTIFIER, nullable=False),
        sa.Column("algorithm", sa.String(16), nullable=False),
        sa.Column("private_key", sa.Text(), nullable=False),
        sa.Column("public_jwk", DOCUMENT, nullable=False),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.Column("signs_from", INSTANT, nullable=False),
        sa.Column("retired_at", INSTANT, nullable=True),
        sa.PrimaryKeyConstraint("kid", name="pk_signing_keys"),
    )
    op.create_table(
        "secrets",
        sa.Column("workspace_id", IDENTIFIER, nullable=False),
        sa.Column("id", IDENTIFIER, nullable=False),
        sa.Column("sealed", sa.Text(), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.Column("updated_at", INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "id", name="pk_secrets"),
    )
    op.create_index("ix_secrets_key_id", "secrets", ["key_id"])


def _audit_log() -> None:
    op.create_table(
        "audit_log",
        sa.Column("workspace_id", IDENTIFIER, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("id", IDENTIFIER, nullable=False),
        sa.Column("occurred_at", INSTANT, nullable=False),
        sa.Column("actor_id", sa.String(200), nullable=True),
        sa.Column("credential", sa.String(100), nullable=True),
        sa.Column("action", sa.String(100), nullable=False),
        sa.Column("resource_type", sa.String(64), nullable=True),
        sa.Column("resource_id", sa.String(200), nullable=True),
        sa.Column("method", sa.String(10), nullable=False),
        sa.Column("path", sa.String(2000), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("ip", sa.String(64), nullable=True),
        sa.Column("user_agent", sa.String(500), nullable=True),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.Column("details", DOCUMENT, nullable=True),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "seq", name="pk_audit_log"),
    )
    op.create_index(
        "ix_audit_log_workspace_id_occurred_at", "audit_log", ["workspace_id", "occurred_at"]
    )


def downgrade() -> None:
    for table in (
        "audit_log",
        "secrets",
        "signing_keys",
        "revoked_tokens",
        "oauth_clients",
        "api_keys",
        "workflow_grants",
        "principals",
    ):
        op.drop_table(table)
    with op.batch_alter_table("workspaces") as batch:
        batch.drop_column("allowed_cidrs")
