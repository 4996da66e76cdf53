"""Executions as a use case: start (the API trigger), inspect, cancel, retry, resume on an
event, and the dead-letter queue. REST, GraphQL and the event router call these, nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from campaignflow.bus.wakeup import Wakeup
from campaignflow.engine.clock import Clock
from campaignflow.engine.compiled import CompiledWorkflows
from campaignflow.engine.model import ExecutionRecord, ExecutionStatus
from campaignflow.engine.scenario import parse_scenario
from campaignflow.engine.simulator import simulate
from campaignflow.engine.waits import wait_takes
from campaignflow.errors import Conflict, IdempotencyKeyReused
from campaignflow.observability.metrics import execution_finished
from campaignflow.store.dead_letters import DeadLetterRecord, DeadLetterStore
from campaignflow.store.deliveries import DeliveryRecord, DeliveryStore
from campaignflow.store.executions import (
    ExecutionStore,
    NewExecution,
    StepRecord,
    WaitRecord,
)
from campaignflow.store.workflows import WorkflowStore

_RESUME_ATTEMPTS = 5


class InFlightPolicy(StrEnum):
    """What running executions do when a workflow gets a new version (DESIGN.md §3)."""

    FINISH = "finish"
    EXIT = "exit"


@dataclass(frozen=True, slots=True)
class ExecutionDetail:
    execution: ExecutionRecord
    steps: list[StepRecord]
    # The message each step sent, by the step's seq (see :func:`messages_of_steps`).
    deliveries: dict[int, DeliveryRecord] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ExecutionService:
    workflows: WorkflowStore
    executions: ExecutionStore
    letters: DeadLetterStore
    compiled: CompiledWorkflows
    wakeup: Wakeup
    clock: Clock
    deliveries: DeliveryStore | None = None

    async def execute(
        self,
        workspace_id: str,
        workflow_id: str,
        *,
        subject_id: str,
        input: Mapping[str, Any],
        contact: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        trigger: str = "api",
    ) -> tuple[ExecutionRecord, bool]:
        """Start an execution of the active workflow's latest version.

        With ``idempotency_key``, a repeated call returns the first call's execution and
        ``False``; the key is scoped to the workflow.
        """
        if idempotency_key is not None:
            existing = await self.executions.find_by_idempotency_key(
                workspace_id, workflow_id, idempotency_key
            )
            if existing is not None:
                return _same_request(existing, subject_id, input), False
        workflow = await self.workflows.get(workspace_id, workflow_id)
        if workflow.status != "active":
            raise Conflict(
                f"Workflow {workflow_id!r} is {workflow.status}; only an active workflow can be "
                "executed (activate it, or use simulate to try it out)."
            )
        compiled = await self.compiled.get(workspace_id, workflow_id, workflow.version)
        new = NewExecution(
            workspace_id=workspace_id,
            workflow_id=workflow_id,
            workflow_version=workflow.version,
            subject_id=subject_id,
            trigger=trigger,
            input=dict(input),
            contact={"id": subject_id, **(contact or {})},
            start_node=compiled.definition.start_node_id,
            idempotency_key=idempotency_key,
        )
        record, created = await self.executions.start(new, self.clock.now())
        if created:
            await self.wakeup.notify()
            return record, True
        return _same_request(record, subject_id, input), False

    async def simulate(
        self, workspace_id: str, workflow_id: str, scenario: object
    ) -> dict[str, Any]:
        """Dry-run the workflow's latest version (any status, drafts included) for
        ``scenario``: the path, messages and waits on a virtual clock; nothing is sent or
        stored. :class:`InvalidScenario` lists every problem of the scenario."""
        parsed = parse_scenario(scenario)
        workflow = await self.workflows.get(workspace_id, workflow_id)
        result = await simulate(workflow.definition, parsed)
        return result.to_dict()

    async def get(self, workspace_id: str, execution_id: str) -> ExecutionDetail:
        """The execution, its steps, and the delivery status of the messages they sent."""
        execution = await self.executions.get(workspace_id, execution_id)
        steps = await self.executions.steps(workspace_id, execution_id)
        if self.deliveries is None:
            return ExecutionDetail(execution, steps)
        sent = await self.deliveries.for_execution(workspace_id, execution_id)
        return ExecutionDetail(execution, steps, messages_of_steps(steps, sent))

    async def list_executions(
        self,
        workspace_id: str,
        *,
        workflow_id: str | None = None,
        status: ExecutionStatus | None = None,
        subject_id: str | None = None,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        before: str | None = None,
        limit: int = 50,
    ) -> list[ExecutionRecord]:
        return await self.executions.list(
            workspace_id,
            workflow_id=workflow_id,
            status=status.value if status else None,
            subject_id=subject_id,
            created_from=created_from,
            created_to=created_to,
            before=before,
            limit=limit,
        )

    async def cancel(self, workspace_id: str, execution_id: str) -> ExecutionRecord:
        record = await self.executions.cancel(workspace_id, execution_id, self.clock.now())
        execution_finished(workspace_id, record.workflow_id, record.status)
        return record

    async def exit_older_versions(self, workspace_id: str, workflow_id: str, version: int) -> int:
        """The ``exit`` in-flight policy: live executions of earlier versions are cancelled."""
        exited = await self.executions.exit_versions_below(
            workspace_id, workflow_id, version, self.clock.now()
        )
        if exited:
            execution_finished(workspace_id, workflow_id, ExecutionStatus.CANCELLED, exited)
        return exited

    async def retry(self, workspace_id: str, execution_id: str) -> ExecutionRecord:
        """Re-run a failed execution from the node(s) where it failed."""
        record = await self.executions.reopen(
            workspace_id, execution_id, self.clock.now(), dead_letter_id=None
        )
        await self.wakeup.notify()
        return record

    # ------------------------------------------------------------------ events

    async def resume(self, workspace_id: str, execution_id: str, event: Mapping[str, Any]) -> bool:
        """Offer ``event`` to the execution's waits; ``True`` if one of them took it.

        A wait takes an event with its name, the same correlation value (when it has a key)
        and a true condition. If that wait is gone by the time it is taken (a timeout, a cancel
        or another event got there first), this call re-reads and decides again.
        """
        name = event.get("event", event.get("name"))
        for _ in range(_RESUME_ATTEMPTS):
            execution = await self.executions.get(workspace_id, execution_id)
            if ExecutionStatus(execution.status).is_final:
                return False
            waits = await self.executions.waits(workspace_id, execution_id)
            chosen = await self._matching_wait(execution, waits, name, event)
            if chosen is None:
                return False
            done = await self.executions.complete_wait(
                chosen, event=dict(event), now=self.clock.now()
            )
            if done:
                await self.wakeup.notify()
                return True
        return False

    async def _matching_wait(
        self,
        execution: ExecutionRecord,
        waits: list[WaitRecord],
        name: object,
        event: Mapping[str, Any],
    ) -> WaitRecord | None:
        candidates = [wait for wait in waits if wait.event_name == name]
        if not candidates:
            return None
        compiled = await self.compiled.get(
            execution.workspace_id, execution.workflow_id, execution.workflow_version
        )
        now = self.clock.now()
        for wait in sorted(candidates, key=lambda w: w.created_at):
            if wait_takes(
                compiled,
                node_id=wait.node_id,
                correlation_value=wait.correlation_value,
                execution=execution,
                event=event,
                now=now,
            ):
                return wait
        return None

    # ------------------------------------------------------------------ dead letters

    async def dead_letters(
        self,
        workspace_id: str,
        *,
        status: str | None = None,
        workflow_id: str | None = None,
        before: str | None = None,
        limit: int = 50,
    ) -> list[DeadLetterRecord]:
        return await self.letters.list(
            workspace_id, status=status, workflow_id=workflow_id, before=before, limit=limit
        )

    async def dead_letter(self, workspace_id: str, dead_letter_id: str) -> DeadLetterRecord:
        return await self.letters.get(workspace_id, dead_letter_id)

    async def replay(self, workspace_id: str, dead_letter_id: str) -> DeadLetterRecord:
        """Re-run the failed node of a dead letter (its execution becomes running again)."""
        letter = await self.letters.get(workspace_id, dead_letter_id)
        if letter.status != "open":
            raise Conflict(f"Dead letter {dead_letter_id!r} is already {letter.status}.")
        await self.executions.reopen(
            workspace_id, letter.execution_id, self.clock.now(), dead_letter_id=dead_letter_id
        )
        await self.wakeup.notify()
        return await self.letters.get(workspace_id, dead_letter_id)

    async def discard(self, workspace_id: str, dead_letter_id: str) -> DeadLetterRecord:
        return await self.letters.discard(workspace_id, dead_letter_id, self.clock.now())


def messages_of_steps(
    steps: list[StepRecord], sent: list[DeliveryRecord]
) -> dict[int, DeliveryRecord]:
    """Which completed step sent each message (step seq → message).

    A message row names its node and branch token, not the step's seq, and one node may run
    several times on a branch (a loop, a replayed dead letter). Each message goes to the latest
    completed step of its node and branch that started no later than it was sent and has no
    message yet, the latest messages choosing first: so a visit that sent nothing (its
    recipient suppressed) is skipped, and visits keep their messages in order.
    """
    slots: dict[tuple[str, str], list[StepRecord]] = {}
    for step in steps:
        if step.status == "completed":
            slots.setdefault((step.node_id, step.token), []).append(step)
    taken: dict[int, DeliveryRecord] = {}
    for message in sorted(sent, key=lambda m: (m.sent_at, m.send_id), reverse=True):
        free = [s for s in slots.get((message.node_id, message.token), []) if s.seq not in taken]
        before = [s for s in free if s.started_at <= message.sent_at]
        chosen = before[-1] if before else (free[0] if free else None)
        if chosen is not None:
            taken[chosen.seq] = message
    return taken


def _same_request(
    existing: ExecutionRecord, subject_id: str, input: Mapping[str, Any]
) -> ExecutionRecord:
    """A repeated Idempotency-Key must come with the same request (subject and input); a
    different one is a client bug that silently getting the old execution would hide."""
    if existing.subject_id != subject_id or existing.input != dict(input):
        raise IdempotencyKeyReused(
            f"Idempotency-Key was first used for execution {existing.id!r} with a different "
            "subject or input; use a new key for a new request."
        )
    return existing
