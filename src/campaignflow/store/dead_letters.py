"""Dead letters: the steps that failed for good, kept for inspection, replay or discard.

They are written by the worker's commit (:mod:`task_queue`) and resolved by a replay
(:meth:`ExecutionStore.reopen`) or a discard here.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from campaignflow.errors import Conflict, NotFound
from campaignflow.store import engine_sql as sql
from campaignflow.store.database import Database


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    workspace_id: str
    id: str
    execution_id: str
    workflow_id: str
    workflow_version: int
    node_id: str
    token: str
    status: str
    attempts: int
    errors: list[dict[str, Any]]
    input: dict[str, Any]
    created_at: datetime
    resolved_at: datetime | None


class DeadLetterStore:
    """The dead-letter queue on a :class:`Database`."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def get(self, workspace_id: str, dead_letter_id: str) -> DeadLetterRecord:
        params = {"workspace": workspace_id, "dead_letter": dead_letter_id}
        async with self._db.read() as connection:
            row = (await connection.execute(sql.GET_DEAD_LETTER, params)).first()
        if row is None:
            raise NotFound(f"Dead letter {dead_letter_id!r} does not exist.")
        return DeadLetterRecord(**row._mapping)

    async def list(
        self,
        workspace_id: str,
        *,
        status: str | None = None,
        workflow_id: str | None = None,
        before: str | None = None,
        limit: int = 50,
    ) -> builtins.list[DeadLetterRecord]:
        statement = sql.list_dead_letters(status=status, workflow=workflow_id, before=before)
        params = {
            "workspace": workspace_id,
            "status": status,
            "workflow": workflow_id,
            "before": before,
            "limit": limit,
        }
        used = {key: value for key, value in params.items() if value is not None}
        async with self._db.read() as connection:
            rows = (await connection.execute(statement, used)).all()
        return [DeadLetterRecord(**row._mapping) for row in rows]

    async def discard(
        self, workspace_id: str, dead_letter_id: str, now: datetime
    ) -> DeadLetterRecord:
        params = {
            "workspace": workspace_id,
            "dead_letter": dead_letter_id,
            "status": "discarded",
            "now": now,
        }
        async with self._db.transaction() as connection:
            changed = await connection.execute(sql.RESOLVE_DEAD_LETTER, params)
            row = (await connection.execute(sql.GET_DEAD_LETTER, params)).first()
        if row is None:
            raise NotFound(f"Dead letter {dead_letter_id!r} does not exist.")
        if changed.rowcount != 1:
            raise Conflict(f"Dead letter {dead_letter_id!r} is already {row.status}.")
        return DeadLetterRecord(**row._mapping)
