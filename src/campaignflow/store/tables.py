"""The schema, declared once in SQLAlchemy Core; migrations must build exactly this.

Tenancy: every table carries ``workspace_id`` (``workspaces`` is the tenant table itself) and
every query the store runs filters by it.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
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
from sqlalchemy.sql.elements import conv

from campaignflow.store.types import JSONDocument, UTCDateTime, identifier

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

WORKFLOW_STATUSES = ("draft", "active", "paused", "archived")
EXECUTION_STATUSES = ("pending", "running", "waiting", "completed", "failed", "cancelled")
TASK_KINDS = ("run", "timer", "timeout", "event")
DEAD_LETTER_STATUSES = ("open", "replayed", "discarded")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return "{} IN ({})".format(column, ", ".join(f"'{value}'" for value in values))


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
    CheckConstraint(_one_of("status", WORKFLOW_STATUSES), name="status"),
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

executions = Table(
    "executions",
    metadata,
    Column("workspace_id", identifier(), nullable=False),
    Column("id", identifier(), nullable=False),  # time-ordered (store.ids), so id order = age
    Column("workflow_id", identifier(), nullable=False),
    Column("workflow_version", Integer(), nullable=False),
    Column("subject_id", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("trigger", String(200), nullable=False),
    Column("input", JSONDocument(), nullable=False),
    Column("contact", JSONDocument(), nullable=False),
    # Engine state: variables, step outputs, join arrivals, live-token count, next step number.
    Column("state", JSONDocument(), nullable=False),
    # Bumped by every write; a worker's commit is a compare-and-set on it.
    Column("revision", Integer(), nullable=False),
    Column("idempotency_key", String(200), nullable=True),
    Column("error", JSONDocument(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime(), nullable=True),
    PrimaryKeyConstraint("workspace_id", "id"),
    ForeignKeyConstraint(
        ["workspace_id", "workflow_id", "workflow_version"],
        [
            "workflow_versions.workspace_id",
            "workflow_versions.workflow_id",
            "workflow_versions.version",
        ],
        name=conv("fk_executions_workflow_versions"),  # the convention's name is over 63 chars
    ),
    CheckConstraint(_one_of("status", EXECUTION_STATUSES), name="status"),
    Index(None, "workspace_id", "workflow_id", "id"),
    Index(None, "workspace_id", "status", "id"),
    Index(None, "workspace_id", "subject_id", "id"),
    Index(None, "workspace_id", "workflow_id", "idempotency_key", unique=True),
)

execution_steps = Table(
    "execution_steps",
    metadata,
    Column("workspace_id", identifier(), nullable=False),
    Column("execution_id", identifier(), nullable=False),
    Column("seq", Integer(), nullable=False),  # 1, 2, 3 … per execution, in the order logged
    Column("node_id", String(64), nullable=False),
    Column("node_type", String(32), nullable=False),
    Column("token", String(1000), nullable=False),  # the parallel branch path ("" = main path)
    Column("attempt", Integer(), nullable=False),
    Column("status", String(16), nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime(), nullable=False),
    Column("output", JSONDocument(), nullable=True),
    Column("error", JSONDocument(), nullable=True),
    PrimaryKeyConstraint("workspace_id", "execution_id", "seq"),
)

# The queue of ready work and timers. Workers claim across workspaces (a claim is not a tenant's
# query), so the key is a plain sequence; every row still carries its workspace_id.
tasks = Table(
    "tasks",
    metadata,
    Column(
        "id",
        BigInteger().with_variant(Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column("workspace_id", identifier(), nullable=False),
    Column("execution_id", identifier(), nullable=False),
    Column("node_id", String(64), nullable=False),
    Column("token", String(1000), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("attempt", Integer(), nullable=False),
    # Due time; while leased, the lease expiry (so an expired lease is simply due again).
    Column("run_at", UTCDateTime(), nullable=False),
    Column("lease_owner", String(100), nullable=True),
    Column("payload", JSONDocument(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    CheckConstraint(_one_of("kind", TASK_KINDS), name="kind"),
    Index(None, "run_at"),
    Index(None, "workspace_id", "execution_id"),
)

waits = Table(
    "waits",
    metadata,
    Column("workspace_id", identifier(), nullable=False),
    Column("execution_id", identifier(), nullable=False),
    Column("token", String(1000), nullable=False),
    Column("node_id", String(64), nullable=False),
    Column("subject_id", String(200), nullable=False),
    Column("event_name", String(200), nullable=False),
    Column("correlation_value", Text(), nullable=True),
    Column("expires_at", UTCDateTime(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("workspace_id", "execution_id", "token"),
    Index(None, "workspace_id", "subject_id", "event_name"),
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("workspace_id", identifier(), nullable=False),
    Column("id", identifier(), nullable=False),
    Column("execution_id", identifier(), nullable=False),
    Column("workflow_id", identifier(), nullable=False),
    Column("workflow_version", Integer(), nullable=False),
    Column("node_id", String(64), nullable=False),
    Column("token", String(1000), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer(), nullable=False),
    Column("errors", JSONDocument(), nullable=False),
    Column("input", JSONDocument(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("resolved_at", UTCDateTime(), nullable=True),
    PrimaryKeyConstraint("workspace_id", "id"),
    CheckConstraint(_one_of("status", DEAD_LETTER_STATUSES), name="status"),
    Index(None, "workspace_id", "status", "id"),
    Index(None, "workspace_id", "execution_id"),
)
