"""The worker: claim due tasks in batches, advance their executions, commit, repeat.

One batch is one claim (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), one read of the executions,
the executions advanced concurrently (their actions' I/O overlaps), and one commit. A worker runs
several such lanes at once, so one lane's database round trips overlap another's Python work.
When nothing is due it sleeps until the earliest task is, or until woken (:mod:`bus.wakeup`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections import defaultdict
from collections.abc import Sequence

from campaignflow.bus.wakeup import Wakeup
from campaignflow.engine.clock import Clock
from campaignflow.engine.compiled import CompiledWorkflows
from campaignflow.engine.interpreter import Interpreter, unrunnable
from campaignflow.engine.model import ExecutionRecord, Outcome, TaskRecord
from campaignflow.engine.observers import BatchObserver, notify_claimed, notify_committed
from campaignflow.engine.options import WorkerOptions
from campaignflow.errors import CampaignflowError, InvalidDefinition
from campaignflow.observability import tracing
from campaignflow.store.database import Database
from campaignflow.store.engine_rows import Key
from campaignflow.store.ids import new_id
from campaignflow.store.task_queue import TaskQueue

logger = logging.getLogger(__name__)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{new_id()[-6:]}"


class Worker:
    """Runs executions from the task queue; stateless, so any number can run side by side."""

    def __init__(
        self,
        queue: TaskQueue,
        workflows: CompiledWorkflows,
        interpreter: Interpreter,
        wakeup: Wakeup,
        clock: Clock,
        *,
        options: WorkerOptions | None = None,
        name: str | None = None,
        observers: Sequence[BatchObserver] = (),
    ) -> None:
        self.queue = queue
        self.workflows = workflows
        self.interpreter = interpreter
        self.wakeup = wakeup
        self.clock = clock
        self.options = options or WorkerOptions()
        self.name = name or worker_name()
        self.observers = tuple(observers)
        self._stopping = asyncio.Event()

    async def run_once(self) -> int:
        """Claim one batch, advance it and commit it; return how many tasks it held."""
        now = self.clock.now()
        tasks, executions = await self.queue.claim_batch(
            self.name, now, lease=self.options.lease, limit=self.options.batch_size
        )
        if not tasks:
            return 0
        if self.observers:
            notify_claimed(self.observers, tasks, now)
        by_execution: dict[Key, list[TaskRecord]] = defaultdict(list)
        for task in tasks:
            by_execution[(task.workspace_id, task.execution_id)].append(task)
        orphans = [
            t.id for key, group in by_execution.items() if key not in executions for t in group
        ]
        advanced = await asyncio.gather(
            *(
                self._advance(executions[key], group)
                for key, group in by_execution.items()
                if key in executions
            )
        )
        outcomes = [outcome for outcome in advanced if outcome is not None]
        revisions = {key: record.revision for key, record in executions.items()}
        committed_at = self.clock.now()
        conflicts = await self.queue.commit(outcomes, revisions, self.name, committed_at)
        if self.observers:
            stale = set(conflicts)
            written = [
                o for o in outcomes if (o.execution.workspace_id, o.execution.id) not in stale
            ]
            await notify_committed(self.observers, written, committed_at)
        if orphans:
            await self.queue.drop_tasks(orphans)
        if conflicts:
            logger.debug(
                "%d execution(s) changed under the batch; their tasks run again", len(conflicts)
            )
        return len(tasks)

    async def _advance(self, execution: ExecutionRecord, tasks: list[TaskRecord]) -> Outcome | None:
        now = self.clock.now()
        try:
            compiled = await self.workflows.get(
                execution.workspace_id, execution.workflow_id, execution.workflow_version
            )
        except InvalidDefinition as exc:
            first = exc.problems[0].to_dict() if exc.problems else {}
            reason = (
                f"version {execution.workflow_version} of {execution.workflow_id!r} no longer "
                f"validates: {first.get('pointer', '')} {first.get('detail', exc.message)}"
            )
            logger.error("execution %s cannot run: %s", execution.id, reason)
            return unrunnable(execution, tasks, now, reason)
        except CampaignflowError:
            logger.exception(
                "cannot load workflow %s v%d for execution %s",
                execution.workflow_id,
                execution.workflow_version,
                execution.id,
            )
            return None  # its tasks stay leased and come back when the lease runs out
        if not tracing.enabled():
            return await self.interpreter.advance(execution, compiled, tasks, now)
        # A child of whatever started the execution (state["trace"]), however long ago.
        with tracing.tracer().start_as_current_span(
            "advance execution",
            context=tracing.context_of(execution.state.get("trace")),
            attributes={
                "campaignflow.workspace_id": execution.workspace_id,
                "campaignflow.execution_id": execution.id,
                "campaignflow.workflow_id": execution.workflow_id,
                "campaignflow.workflow_version": execution.workflow_version,
                "campaignflow.tasks": len(tasks),
            },
        ) as span:
            outcome = await self.interpreter.advance(execution, compiled, tasks, now)
            span.set_attribute("campaignflow.steps", len(outcome.steps))
            span.set_attribute("campaignflow.execution_status", str(execution.status))
            return outcome

    async def run(self) -> None:
        """Run lanes until :meth:`stop`; each finishes the batch it holds before returning."""
        lanes = [asyncio.create_task(self._lane()) for _ in range(self.options.lanes)]
        try:
            await asyncio.gather(*lanes)
        finally:
            for lane in lanes:
                lane.cancel()

    async def _lane(self) -> None:
        while not self._stopping.is_set():
            try:
                handled = await self.run_once()
            except CampaignflowError as exc:  # the database is down: back off, keep the process
                logger.warning("worker batch failed: %s", exc)
                await self._sleep(1.0)
                continue
            if handled == 0:
                await self._sleep(await self._idle_seconds())

    async def _idle_seconds(self) -> float:
        due = await self.queue.next_due()
        ceiling = self.options.max_idle.total_seconds()
        if due is None:
            return ceiling
        return min(ceiling, max(0.0, (due - self.clock.now()).total_seconds()))

    async def _sleep(self, seconds: float) -> None:
        if seconds > 0 and not self._stopping.is_set():
            await self.wakeup.wait(seconds)

    async def run_until_cancelled(self) -> None:
        """:meth:`run` for a worker that shares its process (embedded mode): cancelling it
        asks the lanes to stop and waits for their batches to be committed."""
        running = asyncio.create_task(self.run())
        try:
            await asyncio.shield(running)
        except asyncio.CancelledError:
            self.stop()
            await running
            raise

    def stop(self) -> None:
        """Ask the lanes to finish their current batch and return."""
        self._stopping.set()
        self.wakeup.poke()


def database_lanes(database: Database, requested: int) -> int:
    """SQLite has one writer: more than one lane only queues on its lock."""
    return 1 if database.dialect == "sqlite" else requested
