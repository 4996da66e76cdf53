"""The audit log is append-only in the database too; indexes for its usual questions.

Triggers refuse UPDATE and DELETE of ``audit_log`` rows (and TRUNCATE on PostgreSQL), so even a
bug or a hand-written statement through the application's role cannot rewrite history; the hash
chain shows what someone with the rights to drop the trigger did. Indexes serve "what did this
actor do" and "who touched this resource", newest first.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_MESSAGE = "audit_log is append-only"

_POSTGRESQL_UP = (
    f"""
    CREATE FUNCTION audit_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '{_MESSAGE}: % refused', TG_OP;
    END
    $$
    """,
    """
    CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change()
    """,
    """
    CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change()
    """,
)
_POSTGRESQL_DOWN = (
    "DROP TRIGGER audit_log_no_truncate ON audit_log",
    "DROP TRIGGER audit_log_append_only ON audit_log",
    "DROP FUNCTION audit_log_refuse_change()",
)
_SQLITE_UP = tuple(
    f"""
    CREATE TRIGGER audit_log_no_{verb.lower()} BEFORE {verb} ON audit_log
    BEGIN SELECT RAISE(ABORT, '{_MESSAGE}: {verb} refused'); END
    """
    for verb in ("UPDATE", "DELETE")
)
_SQLITE_DOWN = ("DROP TRIGGER audit_log_no_update", "DROP TRIGGER audit_log_no_delete")


def upgrade() -> None:
    op.create_index(
        "ix_audit_log_workspace_id_actor_id_seq", "audit_log", ["workspace_id", "actor_id", "seq"]
    )
    op.create_index(
        "ix_audit_log_workspace_id_resource_type_resource_id_seq",
        "audit_log",
        ["workspace_id", "resource_type", "resource_id", "seq"],
    )
    postgresql = op.get_bind().dialect.name == "postgresql"
    for statement in _POSTGRESQL_UP if postgresql else _SQLITE_UP:
        op.execute(statement)


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for statement in _POSTGRESQL_DOWN if postgresql else _SQLITE_DOWN:
        op.execute(statement)
    op.drop_index("ix_audit_log_workspace_id_resource_type_resource_id_seq", "audit_log")
    op.drop_index("ix_audit_log_workspace_id_actor_id_seq", "audit_log")
