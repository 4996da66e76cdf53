"""Writing the audit log with group commit, reading it, and checking its chain.

An audited request answers only once its entry is durable, so every entry costs a commit. One
transaction per request would serialise API processes on each workspace's chain lock; instead
:class:`AuditWriter` queues entries and one task commits whatever has queued up while the
previous batch was committing (group commit): under load, one transaction carries many entries.
Each caller awaits the commit of the batch that holds its entry; a failed batch fails them all.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from campaignflow.config import Settings
from campaignflow.errors import ConfigurationError, StorageError
from campaignflow.security.audit_chain import AuditEntry, AuditEvent, ChainVerifier
from campaignflow.store.audit import NO_FILTER, AuditFilter, AuditStore
from campaignflow.store.database import Database
from campaignflow.store.migrate import schema_mismatch

DEFAULT_MAX_BATCH = 500
VERIFY_PAGE = 1000


class AuditAppender(Protocol):
    async def append_batch(self, events: Sequence[AuditEvent]) -> list[AuditEntry]: ...


@dataclass(slots=True)
class _Pending:
    event: AuditEvent
    done: asyncio.Future[AuditEntry]


class AuditWriter:
    """Group-committing writer; ``start()`` before the first ``record``, ``aclose()`` at shutdown
    (it commits what is queued before returning)."""

    def __init__(self, store: AuditAppender, *, max_batch: int = DEFAULT_MAX_BATCH) -> None:
        self._store = store
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._accepting = False

    async def start(self) -> None:
        self._accepting = True
        self._task = asyncio.create_task(self._run(), name="audit-writer")

    async def record(self, event: AuditEvent) -> AuditEntry:
        """Append ``event``; returns once the transaction holding it has committed."""
        if not self._accepting:
            raise StorageError("The audit log writer is not running.")
        pending = _Pending(event, asyncio.get_running_loop().create_future())
        self._queue.put_nowait(pending)
        return await pending.done

    async def aclose(self) -> None:
        """Refuse new records, commit the queued ones, stop."""
        if self._task is None:
            return
        self._accepting = False
        self._queue.put_nowait(None)
        await self._task
        self._task = None

    async def _run(self) -> None:
        try:
            while True:
                batch, stop = self._next_batch(await self._queue.get())
                if batch:
                    await self._commit(batch)
                if stop:
                    return
        finally:
            self._fail_queued()

    def _next_batch(self, first: _Pending | None) -> tuple[list[_Pending], bool]:
        """``first`` and whatever else is queued (up to the batch size); ``True``: stop after."""
        if first is None:
            return [], True
        batch = [first]
        while len(batch) < self._max_batch and not self._queue.empty():
            item = self._queue.get_nowait()
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    async def _commit(self, batch: list[_Pending]) -> None:
        try:
            entries = await self._store.append_batch([pending.event for pending in batch])
        except Exception as exc:  # handed to every caller of the batch
            for pending in batch:
                if not pending.done.done():
                    pending.done.set_exception(exc)
            return
        for pending, entry in zip(batch, entries, strict=True):
            if not pending.done.done():
                pending.done.set_result(entry)

    def _fail_queued(self) -> None:
        """The loop ended (closed or cancelled): nobody may wait forever."""
        self._accepting = False
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not None and not item.done.done():
                item.done.set_exception(StorageError("The audit log writer stopped."))


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """``first_broken_seq`` is the first entry that does not check out; ``checked`` counts the
    sound entries before it."""

    workspace_id: str
    valid: bool
    checked: int
    first_broken_seq: int | None


class AuditService:
    """Reading and verifying the audit log (REST, the CLI)."""

    def __init__(self, store: AuditStore, *, page: int = VERIFY_PAGE) -> None:
        self._store = store
        self._page = page

    async def list(
        self,
        workspace_id: str,
        wanted: AuditFilter = NO_FILTER,
        *,
        before: int | None = None,
        limit: int = 50,
    ) -> builtins.list[AuditEntry]:
        return await self._store.list(workspace_id, wanted, before=before, limit=limit)

    async def verify(self, workspace_id: str) -> VerifyReport:
        """Walk the workspace's chain from seq 1 (or from where retention purged it up to), a
        page at a time."""
        verifier = ChainVerifier(await self._store.anchor(workspace_id))
        while True:
            page = await self._store.read_range(
                workspace_id, after=verifier.checked, limit=self._page
            )
            broken = verifier.feed(page)
            if broken is not None or len(page) < self._page:
                return VerifyReport(workspace_id, broken is None, verifier.checked, broken)

    async def verify_all(self) -> builtins.list[VerifyReport]:
        return [await self.verify(workspace) for workspace in await self._store.workspace_ids()]


async def verify_audit_log_in(settings: Settings, workspace_id: str | None) -> list[VerifyReport]:
    """``campaignflow audit verify``: one workspace's chain, or every workspace's."""
    database = Database.from_url(settings.resolved_database_url)
    try:
        mismatch = await schema_mismatch(database)
        if mismatch is not None:
            raise ConfigurationError(mismatch)
        service = AuditService(AuditStore(database))
        if workspace_id is not None:
            return [await service.verify(workspace_id)]
        return await service.verify_all()
    finally:
        await database.dispose()
