"""CRM sync as a use case: configure a connection's sync, start a run on demand, read the runs.

The configuration is checked twice before it is stored: against the sync format (every problem
with its pointer under ``/``) and against the connection's connector, which must be a CRM with a
sync declaration (``409`` otherwise). Storing it sets the connection's next due time, so a
scheduled or real-time sync starts without a restart.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from campaignflow.domain.problems import document_order
from campaignflow.domain.pydantic_problems import validated
from campaignflow.domain.sync_config import SyncConfig, consistency_problems
from campaignflow.errors import Conflict, InvalidBody, NotFound
from campaignflow.integrations.connector import Connector
from campaignflow.integrations.sync.worker import SyncWorkerOptions, next_due, start_cursor
from campaignflow.store.connections import ConnectionRecord, ConnectionStore
from campaignflow.store.crm_sync import RecordError, SyncRun, SyncStore

MAX_ERRORS_SHOWN = 500


@dataclass(frozen=True, slots=True)
class RunDetails:
    run: SyncRun
    errors: list[RecordError]


class SyncService:
    def __init__(
        self,
        connections: ConnectionStore,
        store: SyncStore,
        connectors: Mapping[str, Connector],
        now: Callable[[], datetime],
        options: SyncWorkerOptions | None = None,
    ) -> None:
        self._connections = connections
        self._store = store
        self._connectors = connectors
        self._now = now
        self._options = options or SyncWorkerOptions()

    async def configure(
        self, workspace_id: str, connection_id: str, document: Any
    ) -> ConnectionRecord:
        record = await self._connections.get(workspace_id, connection_id)
        self._require_sync(record)
        try:
            config = validated(SyncConfig, document)
        except InvalidBody as invalid:
            known = {problem.pointer for problem in invalid.problems}
            extra = [p for p in consistency_problems(document) if p.pointer not in known]
            raise InvalidBody(sorted([*invalid.problems, *extra], key=document_order)) from None
        stored = config.model_dump(by_alias=True, exclude_none=True, mode="json")
        due = next_due(config, self._now(), self._options)
        await self._store.configure(workspace_id, connection_id, stored, due)
        return await self._connections.get(workspace_id, connection_id)

    async def switch_off(self, workspace_id: str, connection_id: str) -> None:
        """No new runs (none is scheduled, and ``start`` refuses); one in progress finishes."""
        await self._connections.get(workspace_id, connection_id)
        await self._store.configure(workspace_id, connection_id, None, None)

    async def start(
        self, workspace_id: str, connection_id: str, requested_by: str | None
    ) -> SyncRun:
        """Queue an on-demand run; :class:`Conflict` when the connection has no sync or a run
        of it is already queued or running."""
        record = await self._connections.get(workspace_id, connection_id)
        self._require_sync(record)
        if not record.sync:
            raise Conflict(
                "the connection has no sync configuration; set one with "
                f"PUT /api/v1/connections/{connection_id}/sync"
            )
        cursor = await start_cursor(self._store, workspace_id, connection_id)
        return await self._store.queue(
            workspace_id,
            connection_id,
            trigger="on-demand",
            requested_by=requested_by,
            cursor=cursor.next_run().to_document(),
            now=self._now(),
        )

    async def runs(
        self, workspace_id: str, connection_id: str, *, before: str | None, limit: int
    ) -> builtins.list[SyncRun]:
        await self._connections.get(workspace_id, connection_id)
        return await self._store.list_runs(workspace_id, connection_id, before=before, limit=limit)

    async def run(self, workspace_id: str, connection_id: str, run_id: str) -> RunDetails:
        run = await self._store.get_run(workspace_id, run_id)
        if run.connection_id != connection_id:
            await self._connections.get(workspace_id, connection_id)  # 404 names the right thing
            raise NotFound(f"sync run {run_id!r} not found")
        errors = await self._store.run_errors(workspace_id, run_id, limit=MAX_ERRORS_SHOWN)
        return RunDetails(run, errors)

    def _require_sync(self, record: ConnectionRecord) -> Connector:
        connector = self._connectors.get(record.provider)
        if connector is None or connector.sync is None:
            syncing = sorted(name for name, c in self._connectors.items() if c.sync is not None)
            raise Conflict(
                f"{record.provider} connections do not sync; CRM connectors do: "
                + ", ".join(syncing)
            )
        return connector
