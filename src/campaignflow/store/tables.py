"""The schema, declared once in SQLAlchemy Core; migrations must build exactly this.

Tenancy: every table carries ``workspace_id`` (``workspaces`` is the tenant table itself) and
every query the store runs filters by it.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Float,
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
IDENTITY_KINDS = ("user_id", "anonymous_id", "email")
EVENT_TYPES = ("track", "identify", "page", "screen", "group", "alias")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return "{} IN ({})".format(column, ", ".join(f"'{value}'" for value in values))


metadata = MetaData(naming_convention=NAMING_CONVENTION)

workspaces = Table(
    "workspaces",
    metadata,
    Column("id", identifier(), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("allowed_cidrs", JSONDocument(), nullable=True),  # null: any address (migration 0004)
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
    # Why a cancelled execution ended early: an exit criterion (with its event), the API, or the
    # in-flight policy of a new version. Null for every other ending.
    Column("exit_reason", JSONDocument(), nullable=True),
    # Migration 0007: the sensitive keys of contact, input and the started-by event
    # (security.sealed_records), sealed for the execution; key_id names the KEK wrapping it.
    Column("sealed", Text(), nullable=True),
    Column("key_id", String(64), nullable=True),
    # True on rows written before 0007 until store.record_sealing has sealed them.
    Column("needs_sealing", Boolean(), nullable=True),
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
Index(
    "ix_executions_needs_sealing",
    executions.c.workspace_id,
    executions.c.id,
    postgresql_where=executions.c.needs_sealing.is_(True),
    sqlite_where=executions.c.needs_sealing.is_(True),
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

# --------------------------------------------------------------------------- contacts and events

contacts = Table(
    "contacts",
    metadata,
    Column("workspace_id", identifier(), nullable=False),
    Column("id", identifier(), nullable=False),  # time-ordered (store.ids)
    Column("user_id", String(200), nullable=True),
    Column("email", String(320), nullable=True),
    Column("timezone", String(64), nullable=True),
    Column("traits", JSONDocument(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("last_seen_at", UTCDateTime(), nullable=True),
    # Migration 0006: the sensitive fields (security.contact_fields), sealed for the contact;
    # null when it has none. key_id names the KEK wrapping it (rotate-key selects by it).
    Column("sealed", Text(), nullable=True),
    Column("key_id", String(64), nullable=True),
    # True on rows written before 0006 (plaintext fields, address identities), until
    # store.contact_sealing has sealed them; null afterwards and on every new row.
    Column("needs_sealing", Boolean(), nullable=True),
    # Migration 0010: the contact's consent now, per purpose: {purpose: {"granted": bool,
    # "at": ISO instant, "source": str}}; null: none recorded. Written only by the consent
    # store (under the row's lock), so the identity writers never carry it; its history, with
    # the proof of each change, is in consent_records.
    Column("consent", JSONDocument(), nullable=True),
    PrimaryKeyConstraint("workspace_id", "id"),
)
# Only the rows still to seal: a start-up with nothing left to seal reads an empty index.
Index(
    "ix_contacts_needs_sealing",
    contacts.c.workspace_id,
    contacts.c.id,
    postgresql_where=contacts.c.needs_sealing.is_(True),
    sqlite_where=contacts.c.needs_sealing.is_(True),
)

# A CRM sync reads a workspace's contacts in the order they changed (migration 0009).
Index(
    "ix_contacts_workspace_id_updated_at_id",
    contacts.c.workspace_id,
    contacts.c.updated_at,
    contacts.c.id,
)

# Every way a contact is known: its userId, each anonymousId, its email (lower-cased). The key
# makes one identity belong to one contact; merging moves identities to the surviving contact.
contact_identities = Table(
    "contact_identities",
    metadata,
    Column("workspace_id", identifier(), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("value", String(320), nullable=False),
    Column("contact_id", identifier(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("workspace_id", "kind", "value"),
    CheckConstraint(_one_of("kind", IDENTITY_KINDS), name="kind"),
    Index(None, "workspace_id", "contact_id"),
)

# Accepted events, written by the router in the transaction that acts on them. The key is the
# sender's messageId, so a repeated message (a retried batch, a redelivered stream entry) is
# inserted once and acted on once.
events = Table(
    "events",
    metadata,
    Column("workspace_id", identifier(), nullable=False),
    Column("message_id", String(200), nullable=False),
    Column("type", String(16), nullable=False),
    Column("name", String(200), nullable=True),
    Column("contact_id", identifier(), nullable=True),
    Column("user_id", String(200), nullable=True),
    Column("anonymous_id", String(200), nullable=True),
    Column("payload", JSONDocument(), nullable=False),  # properties, traits, context, …
    Column("timestamp", UTCDateTime(), nullable=False),  # corrected for the sender's clock skew
    Column("received_at", UTCDateTime(), nullable=False),
    # The dedup key. On PostgreSQL (migration 0011) the table is partitioned by month of
    # received_at and its primary key, pk_events, is (workspace_id, message_id, received_at):
    # a partitioned table's unique index must hold the partition key (store/events.py says how
    # dedup still holds). Alembic does not compare primary keys; test_migrations checks it.
    PrimaryKeyConstraint("workspace_id", "message_id"),
    CheckConstraint(_one_of("type", EVENT_TYPES), name="type"),
    Index(None, "workspace_id", "contact_id", "timestamp"),
    # Migration 0009: a CRM sync reads a workspace's events in the order they arrived, to log
    # the ones its activityTypes name on the CRM (an index that grows at its right edge).
    Index(None, "workspace_id", "received_at"),
    # Migration 0011: erasure and export find a person's events by userId and anonymousId too.
    Index(None, "workspace_id", "user_id"),
    Index(None, "workspace_id", "anonymous_id"),
    # Migration 0007: the sensitive keys of properties, traits and context.traits
    # (security.sealed_records), sealed for the event; null when it had none.
    Column("sealed", Text(), nullable=True),
    Column("key_id", String(64), nullable=True),
    Column("needs_sealing", Boolean(), nullable=True),  # rows before 0007, until sealed
)
Index(
    "ix_events_needs_sealing",
    events.c.workspace_id,
    events.c.message_id,
    postgresql_where=events.c.needs_sealing.is_(True),
    sqlite_where=events.c.needs_sealing.is_(True),
)

# --------------------------------------------------------------------------- triggers

# Triggers managed through /api/v1/triggers (those declared in a definition live in it).
triggers = Table(
    "triggers",
    metadata,
    Column("workspace_id", identifier(), nullable=False),
    Column("id", identifier(), nullable=False),
    Column("workflow_id", identifier(), nullable=False),
    Column("type", String(16), nullable=False),
    Column("event_name", String(200), nullable=True),  # behavior triggers, for the index
    Column("definition", JSONDocument(), nullable=False),  # the trigger in the workflow format
    Column("enabled", Boolean(), nullable=False),
    Column("revision", Integer(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("workspace_id", "id"),
    ForeignKeyConstraint(
        ["workspace_id", "workflow_id"], ["workflows.workspace_id", "workflows.id"]
    ),
    Index(None, "workspace_id", "workflow_id"),
)

# Entry rules: one row per (workflow, contact) that has ever entered. Starting an execution is a
# conditional upsert of this row in the same transaction, so two routers cannot both let the
# same contact in.
entries = Table(
    "entries",
    metadata,
    Column("workspace_id", identifier(), nullable=False),
    Column("workflow_id", identifier(), nullable=False),
    Column("subject_id", String(200), nullable=False),
    Column("last_entered_at", UTCDateTime(), nullable=False),
    Column("active_execution_id", identifier(), nullable=True),
    Column("entry_count", Integer(), nullable=False),
    PrimaryKeyConstraint("workspace_id", "workflow_id", "subject_id"),
)

# Dedup keys of triggers, remembered until expires_at; and time-trigger ticks, one row per tick
# so a tick fires once across any number of workers.
trigger_dedup = Table(
    "trigger_dedup",
    metadata,
    Column("workspace_id", identifier(), nullable=False),
    Column("scope", String(300), nullable=False),  # the trigger's key
    Column("dedup_key", String(500), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("workspace_id", "scope", "dedup_key"),
    Index(None, "expires_at"),
)

# A tick's fan-out runs in pages of contacts (by id), each page committed with the executions it
# started and the new cursor. The worker that claimed the tick holds a lease, renewed by every
# page; once it lapses (the worker died) another takes the fan-out over from the cursor.
# A relativeTo trigger's tick is the UTC midnight of the day it plans.
trigger_ticks = Table(
    "trigger_ticks",
    metadata,
    Column("workspace_id", identifier(), nullable=False),
    Column("scope", String(300), nullable=False),
    Column("tick_at", UTCDateTime(), nullable=False),
    Column("fired_at", UTCDateTime(), nullable=False),  # when it was claimed
    Column("started", Integer(), nullable=False),  # executions the tick started so far
    Column("cursor", identifier(), nullable=True),  # last contact id fanned out; null: none yet
    Column("lease_owner", String(100), nullable=True),  # null once completed
    Column("lease_until", UTCDateTime(), nullable=True),  # null once completed
    Column("completed_at", UTCDateTime(), nullable=True),
    PrimaryKeyConstraint("workspace_id", "scope", "tick_at"),
    Index(None, "lease_until"),
)

# --- Security (migration 0004) ---------------------------------------------------------------
# Who may call: principals (people and services) hold a workspace role; API keys and OAuth
# clients are their credentials, narrowed by scopes. A credential's secret is stored only as its
# SHA-256 (secrets are 256-bit random, so a slow hash adds nothing); lookups go by that hash.

PRINCIPAL_KINDS = ("user", "service")
ROLES = ("owner", "admin", "editor", "operator", "viewer")

principals = Table(
    "principals",
    metadata,
    Column("workspace_id", identifier(), ForeignKey("workspaces.id"), nullable=False),
    Column("id", identifier(), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("name", String(200), nullable=False),
    Column("role", String(16), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("disabled_at", UTCDateTime(), nullable=True),
    PrimaryKeyConstraint("workspace_id", "id"),
    CheckConstraint(_one_of("kind", PRINCIPAL_KINDS), name="kind"),
    CheckConstraint(_one_of("role", ROLES), name="role"),
)

# A role on one workflow, above the principal's workspace role for that workflow's routes.
workflow_grants = Table(
    "workflow_grants",
    metadata,
    Column("workspace_id", identifier(), nullable=False),
    Column("workflow_id", identifier(), nullable=False),
    Column("principal_id", identifier(), nullable=False),
    Column("role", String(16), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("workspace_id", "workflow_id", "principal_id"),
    ForeignKeyConstraint(
        ["workspace_id", "workflow_id"], ["workflows.workspace_id", "workflows.id"]
    ),
    ForeignKeyConstraint(
        ["workspace_id", "principal_id"], ["principals.workspace_id", "principals.id"]
    ),
    CheckConstraint(_one_of("role", ROLES), name="role"),
    Index(None, "workspace_id", "principal_id"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("workspace_id", identifier(), nullable=False),
    Column("id", identifier(), nullable=False),
    Column("principal_id", identifier(), nullable=False),
    Column("name", String(200), nullable=False),
    Column("prefix", String(32), nullable=False),  # shown in lists and logs: "cf_live_Ab12Cd34"
    Column("key_hash", String(64), nullable=False),  # hex SHA-256 of the whole key
    Column("scopes", JSONDocument(), nullable=False),  # list of scope names
    Column("allowed_cidrs", JSONDocument(), nullable=True),  # null: any address
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=True),
    Column("revoked_at", UTCDateTime(), nullable=True),
    Column("last_used_at", UTCDateTime(), nullable=True),
    PrimaryKeyConstraint("workspace_id", "id"),
    ForeignKeyConstraint(
        ["workspace_id", "principal_id"], ["principals.workspace_id", "principals.id"]
    ),
    Index(None, "key_hash", unique=True),
)

# client_id is global: the token endpoint learns the workspace from the client.
oauth_clients = Table(
    "oauth_clients",
    metadata,
    Column("client_id", identifier(), primary_key=True),
    Column("workspace_id", identifier(), nullable=False),
    Column("principal_id", identifier(), nullable=False),
    Column("name", String(200), nullable=False),
    Column("secret_hash", String(64), nullable=False),  # hex SHA-256 of the secret
    Column("scopes", JSONDocument(), nullable=False),
    Column("allowed_cidrs", JSONDocument(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("revoked_at", UTCDateTime(), nullable=True),
    Column("last_used_at", UTCDateTime(), nullable=True),
    ForeignKeyConstraint(
        ["workspace_id", "principal_id"], ["principals.workspace_id", "principals.id"]
    ),
    Index(None, "workspace_id", "client_id"),
)

# Access tokens revoked before they expire (RFC 7009); a row can go once expires_at has passed.
revoked_tokens = Table(
    "revoked_tokens",
    metadata,
    Column("jti", identifier(), primary_key=True),
    Column("workspace_id", identifier(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("revoked_at", UTCDateTime(), nullable=False),
    Index(None, "expires_at"),
)

# The platform's JWT signing keys (platform-wide, so no workspace_id: the issuer is the
# platform). The private key is sealed with the envelope key ring; the public JWK is published
# from activated_at until retired_at.
signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", identifier(), primary_key=True),
    Column("algorithm", String(16), nullable=False),
    Column("private_key", Text(), nullable=False),  # sealed PEM
    Column("public_jwk", JSONDocument(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("signs_from", UTCDateTime(), nullable=False),  # published before it signs
    Column("retired_at", UTCDateTime(), nullable=True),
)

# Integration credentials in the built-in store, sealed (AES-256-GCM envelope); key_id names
# the key-encryption key that wraps the data key, so rotation finds what to re-wrap.
secrets = Table(
    "secrets",
    metadata,
    Column("workspace_id", identifier(), nullable=False),
    Column("id", identifier(), nullable=False),
    Column("sealed", Text(), nullable=False),
    Column("key_id", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("workspace_id", "id"),
    Index(None, "key_id"),
)

# The access log, append-only and hash-chained per workspace: hash = SHA-256(prev_hash ||
# canonical entry), so editing or deleting a row breaks every hash after it.
audit_log = Table(
    "audit_log",
    metadata,
    Column("workspace_id", identifier(), nullable=False),
    Column("seq", BigInteger(), nullable=False),  # 1, 2, 3, … per workspace
    Column("id", identifier(), nullable=False),
    Column("occurred_at", UTCDateTime(), nullable=False),
    Column("actor_id", String(200), nullable=True),  # principal id; null: not authenticated
    Column("credential", String(100), nullable=True),  # "api_key:<id>", "oauth:<client_id>"
    Column("action", String(100), nullable=False),  # "workflows.update", "contacts.read", …
    Column("resource_type", String(64), nullable=True),
    Column("resource_id", String(200), nullable=True),
    Column("method", String(10), nullable=False),
    Column("path", String(2000), nullable=False),
    Column("status", Integer(), nullable=False),
    Column("outcome", String(16), nullable=False),  # success | denied | failure
    Column("ip", String(64), nullable=True),
    Column("user_agent", String(500), nullable=True),
    Column("request_id", String(64), nullable=True),
    Column("details", JSONDocument(), nullable=True),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    PrimaryKeyConstraint("workspace_id", "seq"),
    Index(None, "workspace_id", "occurred_at"),
    # Migration 0005: "what did this actor do", "who touched this resource", newest first.
    Index(None, "workspace_id", "actor_id", "seq"),
    Index(None, "workspace_id", "resource_type", "resource_id", "seq"),
)

# --- Integrations (migration 0008) -----------------------------------------------------------
# A connection is one provider account a workspace connected. ``id`` is global (it appears in
# inbound webhook URLs, which carry no workspace); ``name`` is unique in the workspace and is
# what workflow files refer to, so a file moves between workspaces unchanged. The credentials
# are in the secret store under ``connection:<id>``, never in this row.
CONNECTION_TEST_OUTCOMES = ("ok", "failed")
connections = Table(
    "connections",
    metadata,
    Column("id", identifier(), primary_key=True),
    Column("workspace_id", identifier(), ForeignKey("workspaces.id"), nullable=False),
    Column("name", identifier(), nullable=False),
    Column("provider", String(64), nullable=False),
    Column("description", String(500), nullable=True),
    Column("settings", JSONDocument(), nullable=False),
    Column("created_by", String(200), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("tested_at", UTCDateTime(), nullable=True),
    Column("test_outcome", String(16), nullable=True),
    Column("test_message", String(500), nullable=True),
    # A CRM connection's sync configuration (domain/sync_config.py); null: the connection
    # does not sync. ``sync_due_at`` is when the scheduler next starts a run of it.
    Column("sync", JSONDocument(), nullable=True),
    Column("sync_due_at", UTCDateTime(), nullable=True),
    CheckConstraint(
        "test_outcome IS NULL OR " + _one_of("test_outcome", CONNECTION_TEST_OUTCOMES),
        name="test_outcome",
    ),
    Index(None, "workspace_id", "name", unique=True),
    Index(None, "sync_due_at"),
)

# Addresses no message may go to: a bounce, an unsubscribe or a spam report reported by a
# provider, or an entry made by hand. Only the blind index of the address is kept (the same
# keyed digest contact identities use), so the list answers "is this address suppressed?"
# without holding addresses.
SUPPRESSION_REASONS = ("bounce", "unsubscribe", "spam_report", "manual")
suppressions = Table(
    "suppressions",
    metadata,
    Column("workspace_id", identifier(), nullable=False),
    Column("email_digest", String(64), nullable=False),
    Column("reason", String(16), nullable=False),
    Column("source", String(64), nullable=False),  # provider name, or "api"
    Column("connection_id", identifier(), nullable=True),
    Column("provider_event_id", String(200), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("workspace_id", "email_digest"),
    CheckConstraint(_one_of("reason", SUPPRESSION_REASONS), name="reason"),
    Index(None, "workspace_id", "created_at"),
)

# One message a step sent, and how far it got by the provider's webhooks. ``send_id`` is the
# step's idempotency key (one per execution, branch, node, visit and replay group), which the
# connector passes to the provider as tracking metadata so its webhooks name the step.
DELIVERY_STATUSES = (
    "sent",
    "deferred",
    "delivered",
    "opened",
    "clicked",
    "bounced",
    "dropped",
    "unsubscribed",
    "spam_reported",
)
message_deliveries = Table(
    "message_deliveries",
    metadata,
    Column("workspace_id", identifier(), nullable=False),
    Column("send_id", identifier(), nullable=False),
    Column("execution_id", identifier(), nullable=False),
    Column("node_id", String(64), nullable=False),
    Column("token", String(1000), nullable=False),
    Column("connection_id", identifier(), nullable=False),
    Column("provider", String(64), nullable=False),
    Column("provider_message_id", String(200), nullable=True),
    Column("status", String(16), nullable=False),
    Column("events", JSONDocument(), nullable=False),  # [{"event", "at"}], oldest first, capped
    Column("sent_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("workspace_id", "send_id"),
    CheckConstraint(_one_of("status", DELIVERY_STATUSES), name="status"),
    Index(None, "workspace_id", "execution_id"),
    Index(None, "workspace_id", "provider", "provider_message_id"),
)

# CRM sync runs: one pass of pulling a CRM's changes and pushing the contacts' (trigger: the
# schedule, a contact change for real-time connections, or an API call). A worker holds a run
# by its lease; a run whose worker died is taken over at its ``cursor``, which is written in the
# same transaction as the records it covers, so a resumed run repeats no record it finished.
SYNC_TRIGGERS = ("scheduled", "real-time", "on-demand")
SYNC_RUN_STATUSES = ("queued", "running", "succeeded", "partial", "failed")
sync_runs = Table(
    "sync_runs",
    metadata,
    Column("id", identifier(), primary_key=True),
    Column("workspace_id", identifier(), nullable=False),
    Column("connection_id", identifier(), nullable=False),
    Column("trigger", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("requested_by", String(200), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("started_at", UTCDateTime(), nullable=True),
    Column("finished_at", UTCDateTime(), nullable=True),
    Column("lease_owner", String(200), nullable=True),
    Column("lease_until", UTCDateTime(), nullable=True),
    Column("attempts", Integer(), nullable=False),  # times a worker took it (1 + resumes)
    Column("cursor", JSONDocument(), nullable=False),
    Column("stats", JSONDocument(), nullable=False),
    Column("error", String(1000), nullable=True),
    CheckConstraint(_one_of("trigger", SYNC_TRIGGERS), name="trigger"),
    CheckConstraint(_one_of("status", SYNC_RUN_STATUSES), name="status"),
    Index(None, "workspace_id", "connection_id", "created_at"),
    Index(None, "status", "lease_until"),
)
# One run queued or running per connection: two would race on the same links.
Index(
    "ix_sync_runs_active_connection_id",
    sync_runs.c.connection_id,
    unique=True,
    postgresql_where=sync_runs.c.status.in_(("queued", "running")),
    sqlite_where=sync_runs.c.status.in_(("queued", "running")),
)

# The records a run could not sync, with the reason: its history. ``record`` is the contact id
# for a push, ``remote:<id>`` for a pull.
sync_run_errors = Table(
    "sync_run_errors",
    metadata,
    Column("workspace_id", identifier(), nullable=False),
    Column("run_id", identifier(), nullable=False),
    Column("record", String(200), nullable=False),
    Column("direction", String(8), nullable=False),
    Column("message", String(1000), nullable=False),
    Column("retryable", Boolean(), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("run_id", "record", "direction"),
    CheckConstraint(_one_of("direction", ("pull", "push")), name="direction"),
)

# A contact and its CRM record, per connection: the record's id and, per mapped field, the
# digest of the value both sides last agreed on with each side's change time (``fields``:
# local name → [digest, local_at, remote_at]). Digests are keyed (the blind index key): the
# values themselves are personal data and stay in the sealed contact. ``pending_push`` marks a
# contact whose last push failed: the next run retries it on its own.
sync_links = Table(
    "sync_links",
    metadata,
    Column("workspace_id", identifier(), nullable=False),
    Column("connection_id", identifier(), nullable=False),
    Column("contact_id", identifier(), nullable=False),
    Column("remote_id", String(200), nullable=True),
    Column("fields", JSONDocument(), nullable=False),
    Column("synced_at", UTCDateTime(), nullable=True),
    Column("pending_push", Boolean(), nullable=False),
    Column("push_attempts", Integer(), nullable=False),
    PrimaryKeyConstraint("connection_id", "contact_id"),
    Index(None, "connection_id", "remote_id", unique=True),
    Index(None, "connection_id", "pending_push"),
)

# Who last wrote a contact field, when a sync pulled it from a CRM: the source-priority mode
# ranks a contact's value by it, and its time is the field's own change time. ``digest`` is the
# value's when written; a later write in campaignflow no longer matches it, and the value is
# then campaignflow's own.
contact_field_sources = Table(
    "contact_field_sources",
    metadata,
    Column("workspace_id", identifier(), nullable=False),
    Column("contact_id", identifier(), nullable=False),
    Column("field", String(64), nullable=False),
    Column("source", String(64), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("changed_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("workspace_id", "contact_id", "field"),
)

# --- Privacy and compliance (migration 0010) -------------------------------------------------

# Every change of a contact's consent, with its proof: who or what said so (an API client, a
# form, an event's messageId), from which address and user agent. The contact's current state
# is ``contacts.consent``; this is its history (GDPR Art. 7(1): the controller must be able to
# show that the person consented).
consent_records = Table(
    "consent_records",
    metadata,
    Column("workspace_id", identifier(), nullable=False),
    Column("id", identifier(), nullable=False),  # time-ordered (store.ids)
    Column("contact_id", identifier(), nullable=False),
    Column("purpose", String(64), nullable=False),  # email_marketing, sms_marketing, tracking, …
    Column("granted", Boolean(), nullable=False),
    Column("source", String(64), nullable=False),  # api | event | import | …
    Column("proof", JSONDocument(), nullable=False),  # {ip, userAgent, form, apiClient, messageId}
    Column("occurred_at", UTCDateTime(), nullable=False),  # when the person said so
    Column("recorded_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("workspace_id", "id"),
    Index(None, "workspace_id", "contact_id", "purpose", "id"),
)

# A workspace's privacy settings: its send-time policy (consent per channel, frequency caps,
# quiet hours) and its retention per data class. Null: the defaults.
privacy_settings = Table(
    "privacy_settings",
    metadata,
    Column("workspace_id", identifier(), primary_key=True),
    Column("send_policy", JSONDocument(), nullable=True),
    Column("retention", JSONDocument(), nullable=True),
    Column("updated_by", String(200), nullable=True),
    Column("updated_at", UTCDateTime(), nullable=False),
)

# The messages counted against a contact's frequency caps: one row per message a step was let
# send (``send_id`` is the step's idempotency key, so a retried step counts once). A check and
# its row commit together under a lock on (workspace, contact, channel): two executions cannot
# both take the last slot of a cap.
frequency_ledger = Table(
    "frequency_ledger",
    metadata,
    Column("workspace_id", identifier(), nullable=False),
    Column("send_id", identifier(), nullable=False),
    Column("contact_id", identifier(), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("sent_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("workspace_id", "send_id"),
    Index(None, "workspace_id", "contact_id", "channel", "sent_at"),
)

# Right to erasure (GDPR Art. 17): one job per request, carried by a worker under a lease (as a
# sync run is) so a worker that dies mid-way leaves it to another. ``subject`` says how it was
# asked ({"contactId": …} or {"emailDigest": …} / {"userIdDigest": …}: never the address
# itself); ``contact_ids`` the contacts it resolved to; ``stats`` rows removed per store;
# ``propagation`` the outcome per connected provider.
ERASURE_STATUSES = ("queued", "running", "succeeded", "partial", "failed")
erasure_jobs = Table(
    "erasure_jobs",
    metadata,
    Column("workspace_id", identifier(), nullable=False),
    Column("id", identifier(), nullable=False),
    Column("status", String(16), nullable=False),
    Column("subject", JSONDocument(), nullable=False),
    Column("contact_ids", JSONDocument(), nullable=False),
    Column("options", JSONDocument(), nullable=False),  # {"propagate": bool, "suppress": bool}
    Column("stats", JSONDocument(), nullable=False),
    Column("propagation", JSONDocument(), nullable=False),
    Column("error", String(1000), nullable=True),
    Column("requested_by", String(200), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("started_at", UTCDateTime(), nullable=True),
    Column("finished_at", UTCDateTime(), nullable=True),
    Column("lease_owner", String(200), nullable=True),
    Column("lease_until", UTCDateTime(), nullable=True),
    Column("attempts", Integer(), nullable=False),
    PrimaryKeyConstraint("workspace_id", "id"),
    CheckConstraint(_one_of("status", ERASURE_STATUSES), name="status"),
    Index(None, "status", "lease_until"),
    Index(None, "workspace_id", "created_at"),
)

# Identities of erased people that must not come back: the keyed digest (blind index) of each,
# never the value. An event naming one is dropped at ingestion, and a message to an erased
# address is refused like a suppressed one.
ERASED_IDENTITY_KINDS = ("user_id", "anonymous_id", "email", "phone")
erased_identities = Table(
    "erased_identities",
    metadata,
    Column("workspace_id", identifier(), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("erasure_id", identifier(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("workspace_id", "kind", "digest"),
    CheckConstraint(_one_of("kind", ERASED_IDENTITY_KINDS), name="kind"),
)

# Records of processing (GDPR Art. 30), per person: each use of a contact's data — a step that
# sent it to a provider, an export, a sync to a CRM, an erasure's propagation — with its
# purpose, its legal basis (Art. 6(1)(a)-(f)) and who received it.
LEGAL_BASES = (
    "consent",
    "contract",
    "legal_obligation",
    "vital_interests",
    "public_task",
    "legitimate_interests",
)
processing_log = Table(
    "processing_log",
    metadata,
    Column("workspace_id", identifier(), nullable=False),
    Column("id", identifier(), nullable=False),  # time-ordered (store.ids)
    Column("contact_id", identifier(), nullable=False),
    Column("occurred_at", UTCDateTime(), nullable=False),
    Column("activity", String(64), nullable=False),  # message.sent, crm.sync, export, …
    Column("purpose", String(64), nullable=False),
    Column("legal_basis", String(32), nullable=False),
    Column("recipient", String(200), nullable=False),  # provider/connection, or "campaignflow"
    Column("details", JSONDocument(), nullable=True),  # execution, node, workflow, fields
    PrimaryKeyConstraint("workspace_id", "id"),
    CheckConstraint(_one_of("legal_basis", LEGAL_BASES), name="legal_basis"),
    Index(None, "workspace_id", "contact_id", "id"),
    Index(None, "workspace_id", "occurred_at"),
)

# One pass of the retention purger over one data class of one workspace: what it removed and
# up to when, so an operator can see that retention runs and what it costs.
retention_runs = Table(
    "retention_runs",
    metadata,
    Column("workspace_id", identifier(), nullable=False),
    Column("id", identifier(), nullable=False),
    Column("data_class", String(32), nullable=False),
    Column("cutoff", UTCDateTime(), nullable=False),  # rows older than this were due
    Column("started_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime(), nullable=True),
    Column("purged", BigInteger(), nullable=False),
    Column("details", JSONDocument(), nullable=True),  # batches, partitions dropped, …
    PrimaryKeyConstraint("workspace_id", "id"),
    Index(None, "workspace_id", "data_class", "id"),
)

# Where a workspace's audit chain starts once retention purged its oldest entries: entries up to
# ``purged_through_seq`` are gone, the last of them had ``anchor_hash``. The append-only triggers
# let a delete through only at or below it, and verification starts from it.
audit_anchors = Table(
    "audit_anchors",
    metadata,
    Column("workspace_id", identifier(), primary_key=True),
    Column("purged_through_seq", BigInteger(), nullable=False),
    Column("anchor_hash", String(64), nullable=False),
)

# --- Alerting (migration 0012) ---------------------------------------------------------------
# Where alerts go: a Slack incoming webhook, a signed webhook or e-mail through a connection.
# What is secret (the Slack URL, the signing secret, the recipients) is in the secret store
# under ``alert_channel:<id>``; ``config`` holds the rest and ``hint`` a masked reminder.
ALERT_CHANNEL_KINDS = ("slack", "webhook", "email")
ALERT_RULE_STATUSES = ("ok", "pending", "firing")
ALERT_INCIDENT_STATUSES = ("firing", "resolved")
ALERT_NOTIFICATION_KINDS = ("fire", "repeat", "resolve")
ALERT_NOTIFICATION_STATUSES = ("pending", "sent", "failed")
alert_channels = Table(
    "alert_channels",
    metadata,
    Column("workspace_id", identifier(), nullable=False),
    Column("id", identifier(), nullable=False),
    Column("name", String(100), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("config", JSONDocument(), nullable=False),
    Column("hint", String(200), nullable=False),
    Column("created_by", String(200), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("workspace_id", "id"),
    CheckConstraint(_one_of("kind", ALERT_CHANNEL_KINDS), name="kind"),
    Index(None, "workspace_id", "name", unique=True),
)

# A rule and its evaluation state. ``revision`` is bumped by every state change: an evaluator's
# write is a compare-and-set on it, so two workers evaluating at once change the state (and
# queue its notifications) once.
alert_rules = Table(
    "alert_rules",
    metadata,
    Column("workspace_id", identifier(), nullable=False),
    Column("id", identifier(), nullable=False),
    Column("name", String(100), nullable=False),
    Column("definition", JSONDocument(), nullable=False),
    Column("enabled", Boolean(), nullable=False),
    Column("state", String(16), nullable=False),
    Column("state_since", UTCDateTime(), nullable=True),
    Column("incident_id", identifier(), nullable=True),  # the open incident, while firing
    Column("last_value", Float(), nullable=True),  # null: the metric had no value
    Column("evaluated_at", UTCDateTime(), nullable=True),
    Column("revision", Integer(), nullable=False),
    Column("created_by", String(200), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("workspace_id", "id"),
    CheckConstraint(_one_of("state", ALERT_RULE_STATUSES), name="state"),
    Index(None, "workspace_id", "name", unique=True),
)

# One row per firing of a rule, from fire to resolve.
alert_incidents = Table(
    "alert_incidents",
    metadata,
    Column("workspace_id", identifier(), nullable=False),
    Column("id", identifier(), nullable=False),  # time-ordered: newest first by id
    Column("rule_id", identifier(), nullable=False),
    Column("rule_name", String(100), nullable=False),
    Column("metric", String(64), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("value", Float(), nullable=True),  # when it fired
    Column("last_value", Float(), nullable=True),
    Column("threshold", Float(), nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("resolved_at", UTCDateTime(), nullable=True),
    Column("notified_at", UTCDateTime(), nullable=False),
    Column("repeats", Integer(), nullable=False),
    PrimaryKeyConstraint("workspace_id", "id"),
    CheckConstraint(_one_of("status", ALERT_INCIDENT_STATUSES), name="status"),
    Index(None, "workspace_id", "status", "id"),
    Index(None, "workspace_id", "rule_id", "id"),
)

# The outbox: one notification per (incident, channel, kind, sequence), written in the
# transaction of the state change that calls for it. The unique key is the dedup: a second
# writer of the same notification inserts nothing. Drained across workspaces (like tasks) by
# ``next_attempt_at``; a claim pushes it ahead, so a crashed sender's row is due again.
alert_notifications = Table(
    "alert_notifications",
    metadata,
    Column("workspace_id", identifier(), nullable=False),
    Column("id", identifier(), nullable=False),
    Column("incident_id", identifier(), nullable=False),
    Column("channel_id", identifier(), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("sequence", Integer(), nullable=False),  # 0, or the repeat's number
    Column("payload", JSONDocument(), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer(), nullable=False),
    Column("next_attempt_at", UTCDateTime(), nullable=True),  # null once sent or failed
    Column("last_error", String(500), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("sent_at", UTCDateTime(), nullable=True),
    PrimaryKeyConstraint("workspace_id", "id"),
    CheckConstraint(_one_of("kind", ALERT_NOTIFICATION_KINDS), name="kind"),
    CheckConstraint(_one_of("status", ALERT_NOTIFICATION_STATUSES), name="status"),
    Index(
        conv("ix_alert_notifications_dedup"),  # the convention's name is over 63 chars
        "workspace_id",
        "incident_id",
        "channel_id",
        "kind",
        "sequence",
        unique=True,
    ),
    Index(None, "next_attempt_at"),
)

# The failure rate of a window counts executions by when they *finished* (an execution started
# days ago may fail now): without this, each evaluation scanned the workspace's executions.
Index("ix_executions_workspace_id_finished_at", executions.c.workspace_id, executions.c.finished_at)
