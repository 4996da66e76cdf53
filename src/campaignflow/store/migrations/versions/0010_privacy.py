"""Privacy and compliance: consent, send-time policy, erasure, processing log, retention runs.

The audit log stays append-only, with one way out for retention: a delete is let through only
for entries at or below the workspace's anchor (``audit_anchors``), which the purger moves up in
the same transaction (the triggers of 0005 are replaced by ones that read it).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_MESSAGE = "audit_log is append-only"

_POSTGRESQL_TRIGGERS_UP = (
    """
    CREATE OR REPLACE FUNCTION audit_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            IF OLD.seq <= COALESCE(
                (SELECT purged_through_seq FROM audit_anchors
                 WHERE workspace_id = OLD.workspace_id),
                0
            ) THEN
                RETURN OLD;
            END IF;
        END IF;
        RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP;
    END
    $$
    """,
)
_POSTGRESQL_TRIGGERS_DOWN = (
    f"""
    CREATE OR REPLACE FUNCTION audit_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '{_MESSAGE}: % refused', TG_OP;
    END
    $$
    """,
)
_SQLITE_TRIGGERS_UP = (
    "DROP TRIGGER audit_log_no_delete",
    """
    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    WHEN OLD.seq > COALESCE(
        (SELECT purged_through_seq FROM audit_anchors WHERE workspace_id = OLD.workspace_id), 0
    )
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: DELETE refused'); END
    """,
)
_SQLITE_TRIGGERS_DOWN = (
    "DROP TRIGGER audit_log_no_delete",
    f"""
    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    BEGIN SELECT RAISE(ABORT, '{_MESSAGE}: DELETE refused'); END
    """,
)

# Frozen copies of the column types in tables.py at this revision.
IDENTIFIER = sa.String(64).with_variant(sa.String(64, collation="C"), "postgresql")
INSTANT = sa.DateTime(timezone=True)
DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("contacts") as batch:
        batch.add_column(sa.Column("consent", DOCUMENT, nullable=True))
    op.create_table(
        "consent_records",
        sa.Column("workspace_id", IDENTIFIER, nullable=False),
        sa.Column("id", IDENTIFIER, nullable=False),
        sa.Column("contact_id", IDENTIFIER, nullable=False),
        sa.Column("purpose", sa.String(64), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("proof", DOCUMENT, nullable=False),
        sa.Column("occurred_at", INSTANT, nullable=False),
        sa.Column("recorded_at", INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "id", name="pk_consent_records"),
    )
    op.create_index(
        "ix_consent_records_workspace_id_contact_id_purpose_id",
        "consent_records",
        ["workspace_id", "contact_id", "purpose", "id"],
    )
    op.create_table(
        "privacy_settings",
        sa.Column("workspace_id", IDENTIFIER, nullable=False),
        sa.Column("send_policy", DOCUMENT, nullable=True),
        sa.Column("retention", DOCUMENT, nullable=True),
        sa.Column("updated_by", sa.String(200), nullable=True),
        sa.Column("updated_at", INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", name="pk_privacy_settings"),
    )
    op.create_table(
        "frequency_ledger",
        sa.Column("workspace_id", IDENTIFIER, nullable=False),
        sa.Column("send_id", IDENTIFIER, nullable=False),
        sa.Column("contact_id", IDENTIFIER, nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("sent_at", INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "send_id", name="pk_frequency_ledger"),
    )
    op.create_index(
        "ix_frequency_ledger_workspace_id_contact_id_channel_sent_at",
        "frequency_ledger",
        ["workspace_id", "contact_id", "channel", "sent_at"],
    )
    op.create_table(
        "erasure_jobs",
        sa.Column("workspace_id", IDENTIFIER, nullable=False),
        sa.Column("id", IDENTIFIER, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("subject", DOCUMENT, nullable=False),
        sa.Column("contact_ids", DOCUMENT, nullable=False),
        sa.Column("options", DOCUMENT, nullable=False),
        sa.Column("stats", DOCUMENT, nullable=False),
        sa.Column("propagation", DOCUMENT, nullable=False),
        sa.Column("error", sa.String(1000), nullable=True),
        sa.Column("requested_by", sa.String(200), nullable=True),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.Column("started_at", INSTANT, nullable=True),
        sa.Column("finished_at", INSTANT, nullable=True),
        sa.Column("lease_owner", sa.String(200), nullable=True),
        sa.Column("lease_until", INSTANT, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "id", name="pk_erasure_jobs"),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'partial', 'failed')",
            name="ck_erasure_jobs_status",
        ),
    )
    op.create_index("ix_erasure_jobs_status_lease_until", "erasure_jobs", ["status", "lease_until"])
    op.create_index(
        "ix_erasure_jobs_workspace_id_created_at", "erasure_jobs", ["workspace_id", "created_at"]
    )
    op.create_table(
        "erased_identities",
        sa.Column("workspace_id", IDENTIFIER, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("erasure_id", IDENTIFIER, nullable=False),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "kind", "digest", name="pk_erased_identities"),
        sa.CheckConstraint(
            "kind IN ('user_id', 'anonymous_id', 'email', 'phone')",
            name="ck_erased_identities_kind",
        ),
    )
    op.create_table(
        "processing_log",
        sa.Column("workspace_id", IDENTIFIER, nullable=False),
        sa.Column("id", IDENTIFIER, nullable=False),
        sa.Column("contact_id", IDENTIFIER, nullable=False),
        sa.Column("occurred_at", INSTANT, nullable=False),
        sa.Column("activity", sa.String(64), nullable=False),
        sa.Column("purpose", sa.String(64), nullable=False),
        sa.Column("legal_basis", sa.String(32), nullable=False),
        sa.Column("recipient", sa.String(200), nullable=False),
        sa.Column("details", DOCUMENT, nullable=True),
        sa.PrimaryKeyConstraint("workspace_id", "id", name="pk_processing_log"),
        sa.CheckConstraint(
            "legal_basis IN ('consent', 'contract', 'legal_obligation', 'vital_interests', "
            "'public_task', 'legitimate_interests')",
            name="ck_processing_log_legal_basis",
        ),
    )
    op.create_index(
        "ix_processing_log_workspace_id_contact_id_id",
        "processing_log",
        ["workspace_id", "contact_id", "id"],
    )
    op.create_index(
        "ix_processing_log_workspace_id_occurred_at",
        "processing_log",
        ["workspace_id", "occurred_at"],
    )
    op.create_table(
        "retention_runs",
        sa.Column("workspace_id", IDENTIFIER, nullable=False),
        sa.Column("id", IDENTIFIER, nullable=False),
        sa.Column("data_class", sa.String(32), nullable=False),
        sa.Column("cutoff", INSTANT, nullable=False),
        sa.Column("started_at", INSTANT, nullable=False),
        sa.Column("finished_at", INSTANT, nullable=True),
        sa.Column("purged", sa.BigInteger(), nullable=False),
        sa.Column("details", DOCUMENT, nullable=True),
        sa.PrimaryKeyConstraint("workspace_id", "id", name="pk_retention_runs"),
    )
    op.create_index(
        "ix_retention_runs_workspace_id_data_class_id",
        "retention_runs",
        ["workspace_id", "data_class", "id"],
    )

    op.create_table(
        "audit_anchors",
        sa.Column("workspace_id", IDENTIFIER, nullable=False),
        sa.Column("purged_through_seq", sa.BigInteger(), nullable=False),
        sa.Column("anchor_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", name="pk_audit_anchors"),
    )
    _execute(_POSTGRESQL_TRIGGERS_UP, _SQLITE_TRIGGERS_UP)


def _execute(postgresql: tuple[str, ...], sqlite: tuple[str, ...]) -> None:
    statements = postgresql if op.get_bind().dialect.name == "postgresql" else sqlite
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    _execute(_POSTGRESQL_TRIGGERS_DOWN, _SQLITE_TRIGGERS_DOWN)
    op.drop_table("audit_anchors")
    op.drop_index("ix_retention_runs_workspace_id_data_class_id", "retention_runs")
    op.drop_table("retention_runs")
    op.drop_index("ix_processing_log_workspace_id_occurred_at", "processing_log")
    op.drop_index("ix_processing_log_workspace_id_contact_id_id", "processing_log")
    op.drop_table("processing_log")
    op.drop_table("erased_identities")
    op.drop_index("ix_erasure_jobs_workspace_id_created_at", "erasure_jobs")
    op.drop_index("ix_erasure_jobs_status_lease_until", "erasure_jobs")
    op.drop_table("erasure_jobs")
    op.drop_index("ix_frequency_ledger_workspace_id_contact_id_channel_sent_at", "frequency_ledger")
    op.drop_table("frequency_ledger")
    op.drop_table("privacy_settings")
    op.drop_index("ix_consent_records_workspace_id_contact_id_purpose_id", "consent_records")
    op.drop_table("consent_records")
    with op.batch_alter_table("contacts") as batch:
        batch.drop_column("consent")
