"""The worker's hot path on PostgreSQL: one statement per kind of row, whatever the batch size.

A batch of a thousand executions through SQLAlchemy Core costs more in building parameters
(expanding ``IN`` lists, one parameter set per row of an ``executemany``) than the database
spends on it. Here every statement takes *arrays*: ``unnest`` turns them into rows server-side,
so a batch is a handful of statements with a few parameters each, sent as driver SQL (no
compilation). SQLite keeps the portable statements in :mod:`engine_sql`; both paths are tested
by the same suite.

JSON goes in as text and is cast to ``jsonb`` by the statement; results come back decoded by the
connection's codec.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from campaignflow.store import engine_sql as sql

# The same columns as the portable statements read, so both paths build the same records.
_EXECUTION_FIELDS = tuple(column.name for column in sql.EXECUTION_COLUMNS)
TASK_FIELDS = tuple(column.name for column in sql.TASK_COLUMNS)

LOAD_EXECUTIONS = f"""
SELECT {", ".join(f"e.{name}" for name in _EXECUTION_FIELDS)}
FROM executions e
JOIN unnest($1::text[], $2::text[]) AS k(workspace_id, id)
  ON e.workspace_id = k.workspace_id AND e.id = k.id
"""  # noqa: S608 - built from the table's column names, no input
#: Claimed rows carry their execution's columns as ``x_<column>``.
EXECUTION_ALIASES = tuple(f"x_{name}" for name in _EXECUTION_FIELDS)

CLAIM_WITH_EXECUTIONS = f"""
WITH due AS (
  SELECT id FROM tasks WHERE run_at <= $1 ORDER BY run_at LIMIT $2 FOR UPDATE SKIP LOCKED
), claimed AS (
  UPDATE tasks SET run_at = $3, lease_owner = $4 FROM due WHERE tasks.id = due.id
  RETURNING {", ".join(f"tasks.{name}" for name in TASK_FIELDS)}
)
SELECT {", ".join(f"claimed.{name}" for name in TASK_FIELDS)},
       {", ".join(f"e.{name} AS x_{name}" for name in _EXECUTION_FIELDS)}
FROM claimed
LEFT JOIN executions e ON e.workspace_id = claimed.workspace_id AND e.id = claimed.execution_id
"""  # noqa: S608 - built from the constant column names above, no input
"""One round trip: lease due tasks and read their executions (the worker's next step anyway)."""

LOCK_REVISIONS = """
SELECT e.workspace_id, e.id, e.revision
FROM executions e
JOIN unnest($1::text[], $2::text[]) AS k(workspace_id, id)
  ON e.workspace_id = k.workspace_id AND e.id = k.id
ORDER BY e.workspace_id, e.id
FOR UPDATE OF e
"""

UPDATE_EXECUTIONS = """
UPDATE executions AS e
SET status = v.status, state = v.state::jsonb, revision = e.revision + 1,
    error = v.error::jsonb, updated_at = v.updated_at, finished_at = v.finished_at
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
            $6::timestamptz[], $7::timestamptz[])
     AS v(workspace_id, id, status, state, error, updated_at, finished_at)
WHERE e.workspace_id = v.workspace_id AND e.id = v.id
"""

INSERT_STEPS = """
INSERT INTO execution_steps (workspace_id, execution_id, seq, node_id, node_type, token,
                             attempt, status, started_at, finished_at, output, error)
SELECT workspace_id, execution_id, seq, node_id, node_type, token, attempt, status,
       started_at, finished_at, output::jsonb, error::jsonb
FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[], $6::text[], $7::int[],
            $8::text[], $9::timestamptz[], $10::timestamptz[], $11::text[], $12::text[])
     AS s(workspace_id, execution_id, seq, node_id, node_type, token, attempt, status,
          started_at, finished_at, output, error)
"""

INSERT_TASKS = """
INSERT INTO tasks (workspace_id, execution_id, node_id, token, kind, attempt, run_at,
                   payload, created_at)
SELECT workspace_id, execution_id, node_id, token, kind, attempt, run_at, payload::jsonb,
       created_at
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[],
            $7::timestamptz[], $8::text[], $9::timestamptz[])
     AS t(workspace_id, execution_id, node_id, token, kind, attempt, run_at, payload,
          created_at)
"""

DELETE_TASKS = "DELETE FROM tasks WHERE id = ANY($1::bigint[])"

#: New executions (the router's and the scheduler's starts): one statement per batch.
INSERT_EXECUTIONS = """
INSERT INTO executions (workspace_id, id, workflow_id, workflow_version, subject_id, status,
                        trigger, input, contact, state, revision, idempotency_key,
                        created_at, updated_at, sealed, key_id)
SELECT workspace_id, id, workflow_id, workflow_version, subject_id, status, trigger,
       input::jsonb, contact::jsonb, state::jsonb, revision, idempotency_key, created_at,
       updated_at, sealed, key_id
FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::text[], $6::text[], $7::text[],
            $8::text[], $9::text[], $10::text[], $11::int[], $12::text[],
            $13::timestamptz[], $14::timestamptz[], $15::text[], $16::text[])
     AS x(workspace_id, id, workflow_id, workflow_version, subject_id, status, trigger, input,
          contact, state, revision, idempotency_key, created_at, updated_at, sealed, key_id)
"""
NEW_EXECUTION_COLUMNS = (
    "workspace_id", "id", "workflow_id", "workflow_version", "subject_id", "status", "trigger",
    "input", "contact", "state", "revision", "idempotency_key", "created_at", "updated_at",
    "sealed", "key_id",
)  # fmt: skip
NEW_TASK_COLUMNS = (
    "workspace_id", "execution_id", "node_id", "token", "kind", "attempt", "run_at",
    "payload", "created_at",
)  # fmt: skip

WAITS_OF_SUBJECTS = """
SELECT w.workspace_id, w.execution_id, w.token, w.node_id, w.subject_id, w.event_name,
       w.correlation_value, w.expires_at, w.created_at
FROM unnest($2::text[]) AS s(subject_id)
CROSS JOIN LATERAL (
  SELECT * FROM waits
  WHERE workspace_id = $1 AND subject_id = s.subject_id AND event_name = ANY($3::text[])
) w
"""
"""Index probes on (workspace, subject, event name), whatever the statistics say."""


def json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


def json_or_null(value: Any) -> str | None:
    return None if value is None else json_text(value)


def columns(rows: Sequence[dict[str, Any]], names: Sequence[str]) -> tuple[list[Any], ...]:
    """Row dicts → one list per column, in ``names`` order (what ``unnest`` takes)."""
    return tuple([row[name] for row in rows] for name in names)


async def fetch(connection: AsyncConnection, statement: str, *params: Any) -> list[Any]:
    result = await connection.exec_driver_sql(statement, params)
    return list(result.all())


async def execute(connection: AsyncConnection, statement: str, *params: Any) -> None:
    await connection.exec_driver_sql(statement, params)


PREFER_INDEX_PROBES = (
    "SELECT set_config('enable_hashjoin', 'off', true), "
    "set_config('enable_mergejoin', 'off', true), set_config('enable_seqscan', 'off', true)"
)


async def prefer_index_probes(connection: AsyncConnection) -> None:
    """For the rest of this transaction, join by index probes only.

    The router's statements touch a few hundred rows by key in tables of millions, but for a
    batch of 500 keys in a table of 20,000 rows (or one whose statistics are stale) PostgreSQL
    prefers hashing the whole table: 30-40 ms a batch, growing with the table. A transaction
    made only of key lookups loses nothing by ruling hash and merge joins and sequential scans
    out (``SET LOCAL``: the connection's next transaction plans normally again)."""
    await connection.exec_driver_sql(PREFER_INDEX_PROBES)
