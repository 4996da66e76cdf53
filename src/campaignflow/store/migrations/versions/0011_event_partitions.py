"""The event log in monthly partitions on PostgreSQL, so retention drops whole months.

Deleting rows only frees space for VACUUM to reuse; dropping a partition returns it to the
operating system at once. ``events`` becomes a table ``PARTITION BY RANGE (received_at)`` with
partitions ``events_pYYYYMM`` (UTC months) and a DEFAULT one, ``events_default``.

Existing rows are not copied. The old table becomes the partition ``events_p_legacy``, for
everything received before the first day of the month after this migration: it gets the new key
(``workspace_id, message_id, received_at``: a unique index of a partitioned table must hold the
partition key) and a CHECK on ``received_at`` that proves its bound, so the ATTACH does not scan
it a second time. Its indexes are renamed and adopted by the parent's partitioned indexes
instead of being rebuilt; only the new key is built (one pass over the table). The next three
months get their partitions here; later ones come from ``store.partitions.EventPartitions``,
run at start-up and by the retention purger.

SQLite keeps a plain table and deletes rows in batches.

Both dialects get two indexes, ``(workspace_id, user_id)`` and ``(workspace_id, anonymous_id)``:
an erasure and an export find a person's events by those identities too (events an absorbed
contact sent before a merge carry its old contact id), and without them each batch and each
page scanned the workspace's whole event log (246 ms a page at a million events; 6 ms with).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_MONTHS_AHEAD = 3
# The indexes of 0003, 0007 and 0009, as the parent declares them (tables.py at this revision).
_INDEXES = (
    "CREATE INDEX ix_events_workspace_id_contact_id_timestamp ON {table} "
    '(workspace_id, contact_id, "timestamp")',
    "CREATE INDEX ix_events_workspace_id_received_at ON {table} (workspace_id, received_at)",
    "CREATE INDEX ix_events_needs_sealing ON {table} (workspace_id, message_id) "
    "WHERE needs_sealing IS true",
)
_LEGACY_INDEX_NAMES = {
    "ix_events_workspace_id_contact_id_timestamp": "events_p_legacy_contact_idx",
    "ix_events_workspace_id_received_at": "events_p_legacy_received_at_idx",
    "ix_events_needs_sealing": "events_p_legacy_needs_sealing_idx",
}


def _month_start(year: int, month: int) -> datetime:
    """The first instant of a UTC month; ``month`` may run past 12."""
    year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
    return datetime(year, month, 1, tzinfo=UTC)


def _literal(instant: datetime) -> str:
    return f"'{instant.isoformat()}'"


def _upgrade_statements(now: datetime) -> list[str]:
    """The legacy partition ends with ``now``'s month; three monthly partitions follow."""
    bound = _month_start(now.year, now.month + 1)
    statements = [
        "ALTER TABLE events RENAME TO events_p_legacy",
        "ALTER TABLE events_p_legacy DROP CONSTRAINT pk_events",
        "ALTER TABLE events_p_legacy ADD CONSTRAINT events_p_legacy_pkey "
        "PRIMARY KEY (workspace_id, message_id, received_at)",
        *(f"ALTER INDEX {old} RENAME TO {new}" for old, new in _LEGACY_INDEX_NAMES.items()),
        "ALTER TABLE events_p_legacy ADD CONSTRAINT events_p_legacy_bound "
        f"CHECK (received_at < {_literal(bound)})",
        # Columns (types, collations, NOT NULL) and ck_events_type as they are at 0010.
        "CREATE TABLE events (LIKE events_p_legacy INCLUDING DEFAULTS INCLUDING CONSTRAINTS) "
        "PARTITION BY RANGE (received_at)",
        "ALTER TABLE events DROP CONSTRAINT events_p_legacy_bound",
        "ALTER TABLE events ADD CONSTRAINT pk_events "
        "PRIMARY KEY (workspace_id, message_id, received_at)",
        *(index.format(table="events") for index in _INDEXES),
        "ALTER TABLE events ATTACH PARTITION events_p_legacy "
        f"FOR VALUES FROM (MINVALUE) TO ({_literal(bound)})",
        "ALTER TABLE events_p_legacy DROP CONSTRAINT events_p_legacy_bound",
    ]
    for ahead in range(_MONTHS_AHEAD):
        start = _month_start(bound.year, bound.month + ahead)
        end = _month_start(start.year, start.month + 1)
        statements.append(
            f"CREATE TABLE events_p{start:%Y%m} PARTITION OF events "
            f"FOR VALUES FROM ({_literal(start)}) TO ({_literal(end)})"
        )
    statements.append("CREATE TABLE events_default PARTITION OF events DEFAULT")
    return statements


# Back to one plain table keyed by (workspace_id, message_id): where a messageId was stored
# twice (received more than the dedup window apart), the first copy is kept.
_DOWNGRADE = (
    "CREATE TABLE events_unpartitioned (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)",
    "INSERT INTO events_unpartitioned SELECT DISTINCT ON (workspace_id, message_id) * "
    "FROM events ORDER BY workspace_id, message_id, received_at",
    "DROP TABLE events",
    "ALTER TABLE events_unpartitioned RENAME TO events",
    "ALTER TABLE events ADD CONSTRAINT pk_events PRIMARY KEY (workspace_id, message_id)",
    *(index.format(table="events") for index in _INDEXES),
)


def _on_postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


# The latest event of each workspace, by a backward probe of (workspace_id, received_at).
_LATEST = sa.text(
    "SELECT max(latest) FROM workspaces w CROSS JOIN LATERAL "
    "(SELECT max(received_at) AS latest FROM events WHERE workspace_id = w.id) e"
)


_IDENTITY_INDEXES = {
    "ix_events_workspace_id_user_id": ["workspace_id", "user_id"],
    "ix_events_workspace_id_anonymous_id": ["workspace_id", "anonymous_id"],
}


def upgrade() -> None:
    if _on_postgresql():
        now = datetime.now(UTC)
        # A row stamped in the future (a clock once set wrong) still fits the legacy bound.
        latest = op.get_bind().execute(_LATEST).scalar()
        for statement in _upgrade_statements(max(now, latest or now)):
            op.execute(statement)
    for name, columns in _IDENTITY_INDEXES.items():
        op.create_index(name, "events", columns)


def downgrade() -> None:
    for name in _IDENTITY_INDEXES:
        op.drop_index(name, table_name="events")
    if _on_postgresql():
        for statement in _DOWNGRADE:
            op.execute(statement)
