"""Recording the action steps that sent a person's data to a third party (GDPR Art. 30).

:class:`RecordingExecutor` wraps the connector executor and the built-in ``http`` executor:
after a call that took effect for a contact it notes one entry — activity ``action``, the node's
purpose and its legal basis, the recipient: ``<provider> (<connection>)`` for a connector
(:func:`connection_recipient`), the origin of the URL for ``http`` (:func:`url_recipient`). A
call that failed (``ActionFailed``) is not noted: the engine retries it, and the attempt that
takes effect is. A call the send-time rules skipped disclosed nothing and is not noted either
(:func:`~campaignflow.domain.processing.took_effect`).

Entries go through :class:`ProcessingBuffer`, written in one statement per batch (at most
``max_batch`` entries, or every ``interval_s``), not one transaction per step: at thousands of
actions a second a commit each would cost the worker more than the action itself. The
durability trade-off: entries still in the buffer when the process dies (``kill -9``, a power
cut) are lost — at most ``interval_s`` worth of steps (100 ms), and never more than
``max_batch`` plus what a failing database held back (capped by ``max_pending``). A graceful
stop (``Integrations.aclose``) flushes the buffer. A step's own record, its output in the step
log, is unaffected: only its Art. 30 entry can be missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from campaignflow.domain.processing import Activity, ProcessingEntry, recipient_of, took_effect
from campaignflow.engine.actions import ActionCall, ActionExecutor
from campaignflow.errors import CampaignflowError

logger = logging.getLogger(__name__)


class ProcessingWriter(Protocol):
    async def add(self, entries: Sequence[ProcessingEntry]) -> None:
        """Write ``entries`` (one batch)."""
        ...


class ProcessingBuffer:
    """Entries noted by the steps, written by one background task in batches."""

    def __init__(
        self,
        writer: ProcessingWriter,
        *,
        max_batch: int = 500,
        interval_s: float = 0.1,
        max_pending: int = 50_000,
    ) -> None:
        self._writer = writer
        self._max_batch = max_batch
        self._interval_s = interval_s
        self._max_pending = max_pending
        self._pending: list[ProcessingEntry] = []
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def pending(self) -> int:
        return len(self._pending)

    def add(self, entry: ProcessingEntry) -> None:
        """Note ``entry``; it is written within ``interval_s`` (sooner when a batch is full)."""
        if self._closed:  # after shutdown (a step finishing late): nothing will flush it
            logger.warning("processing log closed; an entry of %s was not kept", entry.activity)
            return
        self._pending.append(entry)
        if len(self._pending) >= self._max_batch:
            self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="processing-log")

    async def flush(self) -> None:
        """Write everything noted so far (batch by batch); entries a failing write kept back
        stay pending for the next flush, up to ``max_pending``."""
        async with self._lock:  # one writer at a time, or two would write the same batch
            while self._pending:
                batch = self._pending[: self._max_batch]
                try:
                    await self._writer.add(batch)
                except CampaignflowError:
                    logger.warning("processing log entries not written yet", exc_info=True)
                    self._drop_overflow()
                    return
                del self._pending[: len(batch)]

    async def aclose(self) -> None:
        """Let the background task finish its flush, then write what is left (a graceful
        stop loses nothing unless the database is down)."""
        self._closed = True
        self._wake.set()
        if self._task is not None:
            await self._task
        await self.flush()
        if self._pending:
            logger.error("%d processing log entries lost at shutdown", len(self._pending))

    async def _run(self) -> None:
        while not self._closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval_s)
            self._wake.clear()
            await self.flush()

    def _drop_overflow(self) -> None:
        excess = len(self._pending) - self._max_pending
        if excess > 0:
            del self._pending[:excess]
            logger.error("processing log: %d oldest entries dropped (database unavailable)", excess)


class EntrySink(Protocol):
    def add(self, entry: ProcessingEntry) -> None: ...


def connection_recipient(call: ActionCall) -> str:
    """A connector operation's recipient: its provider (``sendgrid.send_email`` → ``sendgrid``)
    and the connection's name."""
    return recipient_of(call.action.partition(".")[0], call.connection)


def url_recipient(call: ActionCall) -> str:
    """The built-in ``http`` action's recipient: the origin of the URL it called (never its
    path or query, which may carry the person's data)."""
    return recipient_of(call.action, url=str(call.params.get("url")))


class RecordingExecutor:
    """An :class:`ActionExecutor` that notes each call to ``inner`` that took effect for a
    contact in the records of processing, naming the recipient with ``recipient``."""

    def __init__(
        self,
        inner: ActionExecutor,
        sink: EntrySink,
        now: Callable[[], datetime],
        *,
        recipient: Callable[[ActionCall], str] = connection_recipient,
    ) -> None:
        self._inner = inner
        self._sink = sink
        self._now = now
        self._recipient = recipient

    async def execute(self, call: ActionCall) -> Any:
        output = await self._inner.execute(call)
        if call.contact_id is not None and took_effect(output):
            self._note(call)
        return output

    def _note(self, call: ActionCall) -> None:
        """The provider has the data by now: a failure to note it must not fail the step
        (a retry would send it again), so it is only logged."""
        try:
            entry = ProcessingEntry.of(
                workspace_id=call.workspace_id,
                contact_id=call.contact_id or "",
                occurred_at=self._now(),
                activity=Activity.ACTION,
                purpose=call.purpose,
                recipient=self._recipient(call),
                details={
                    "execution": call.execution_id,
                    "node": call.node_id,
                    "action": call.action,
                },
            )
        except ValueError as exc:  # a purpose without a legal basis; a URL without a host
            logger.warning("%s: no processing entry (%s)", call.action, exc)
            return
        self._sink.add(entry)
