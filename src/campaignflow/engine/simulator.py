"""The dry-run: a workflow simulated for one contact and a list of timed events, on a virtual clock.

Nothing leaves the process. Actions with an effect outside the execution (``http`` and connector
operations) go to a :class:`RecordingExecutor`, which records the message it would have sent and
answers with a default output or with what the scenario says — an output, or an error for some
attempts, so retries, ``onError`` paths and dead letters show up too.

The real :class:`Interpreter` takes every step; its :class:`Outcome` is applied the way the store
applies it (consumed tasks removed, new tasks and waits added, cancelled branches dropped), and an
event reaches a wait by the rules of ``ExecutionService.resume`` (name, correlation value,
condition). Only the database is replaced, by two lists. A :class:`ManualClock` jumps from one
due task or event to the next, so a month of delays takes microseconds. Work due at the same
instant as an event runs first (a ``PT4H`` timeout beats an event at ``PT4H``).
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime
from itertools import count
from typing import Any, Final

from campaignflow.domain.problems import document_order
from campaignflow.domain.schedules import format_timestamp
from campaignflow.domain.workflow import ActionNode, WorkflowDefinition
from campaignflow.engine.actions import ExecutorRegistry
from campaignflow.engine.clock import ManualClock
from campaignflow.engine.compiled import CompiledWorkflow, compile_workflow
from campaignflow.engine.interpreter import Interpreter
from campaignflow.engine.model import (
    MAIN_TOKEN,
    DeadLetterDraft,
    ExecutionRecord,
    ExecutionStatus,
    NewTask,
    Outcome,
    StepEntry,
    TaskKind,
    TaskRecord,
    branches_removed,
    in_branch,
)
from campaignflow.engine.scenario import (
    ENGINE_ACTIONS,
    EPOCH,
    Scenario,
    ScenarioEvent,
    parse_scenario,
    scenario_problems,
)
from campaignflow.engine.simulation_result import (
    EventReport,
    OpenWait,
    RecordingExecutor,
    SimulatedMessage,
    SimulationResult,
)
from campaignflow.engine.waits import wait_takes
from campaignflow.errors import InvalidScenario

#: At most this many steps are simulated; a longer path is cut and reported as truncated.
MAX_STEPS: Final = 10_000
WORKSPACE: Final = "simulation"


# ---------------------------------------------------------------------- the run


async def simulate(definition: Mapping[str, Any], scenario: Scenario) -> SimulationResult:
    """Run ``definition`` for ``scenario`` on a virtual clock, with no side effects.

    Raises ``InvalidDefinition`` (every problem of the workflow) or :class:`InvalidScenario`
    (overrides of unknown or built-in nodes, events before the start, a bad time zone).
    """
    compiled = compile_workflow(definition)
    problems = scenario_problems(scenario, compiled.definition)
    if problems:
        raise InvalidScenario(sorted(problems, key=document_order))
    run = _Simulation(compiled, scenario)
    await run.run()
    return run.result()


def _registry(definition: WorkflowDefinition, executor: RecordingExecutor) -> ExecutorRegistry:
    names = {node.config.action for node in definition.nodes if isinstance(node, ActionNode)}
    registry = ExecutorRegistry()
    for name in sorted((names | {"http"}) - ENGINE_ACTIONS):
        registry = registry.with_executor(name, executor)
    return registry


def _new_execution(
    definition: WorkflowDefinition, scenario: Scenario, start: datetime
) -> ExecutionRecord:
    return ExecutionRecord(
        workspace_id=WORKSPACE,
        id=scenario.execution_id,
        workflow_id=definition.workflow_id,
        workflow_version=definition.version or 1,
        subject_id=scenario.subject,
        status=ExecutionStatus.PENDING,
        trigger="simulation",
        input=copy.deepcopy(scenario.input),
        contact={"id": scenario.subject, **copy.deepcopy(scenario.contact)},
        state={"live": 1, "seq": 0},  # as the store starts one: its start task is live
        revision=0,
        created_at=start,
        updated_at=start,
    )


class _Simulation:
    """The in-memory execution, its tasks and waits, and what happened to them."""

    def __init__(self, compiled: CompiledWorkflow, scenario: Scenario) -> None:
        self.compiled = compiled
        self.scenario = scenario
        self.start = scenario.start_time
        self.end = scenario.horizon.add_to(self.start).astimezone(UTC)
        self.clock = ManualClock(self.start)
        self.execution = _new_execution(compiled.definition, scenario, self.start)
        self.recorder = RecordingExecutor(self.clock, self.execution, scenario.actions)
        self.interpreter = Interpreter(_registry(compiled.definition, self.recorder))
        self.tasks: list[TaskRecord] = []
        self.waits: list[OpenWait] = []
        self.path: list[StepEntry] = []
        self.dead_letters: list[DeadLetterDraft] = []
        self.reports: list[EventReport] = []
        self.truncated = False
        self.horizon_reached = False
        self._ids = count(1)
        start_node = compiled.definition.start_node_id
        self._add_task(NewTask(start_node, MAIN_TOKEN, TaskKind.RUN, 1, self.start))

    @property
    def final(self) -> bool:
        return ExecutionStatus(self.execution.status).is_final

    async def run(self) -> None:
        timed = sorted(
            (
                (event.time(self.start), index, event)
                for index, event in enumerate(self.scenario.events)
            ),
            key=lambda item: (item[0], item[1]),
        )
        queue = deque((at, event) for at, _, event in timed)
        while not self.final and not self.truncated:
            due = min((task.run_at for task in self.tasks), default=None)
            if due is not None and (not queue or due <= queue[0][0]):
                if due > self.end:
                    break
                await self._advance(max(due, self.clock.now()))
            elif queue and queue[0][0] <= self.end:
                self._offer(*queue.popleft())
            else:
                break
        self.horizon_reached = (
            not self.final and not self.truncated and (bool(self.tasks) or bool(queue))
        )
        for at, event in queue:
            self._report(at, event.event, reason=self._leftover_reason())

    def _leftover_reason(self) -> str:
        if self.final:
            return f"the execution had already ended ({self.execution.status})"
        if self.truncated:
            return f"the simulation stopped after {MAX_STEPS} steps"
        return f"after the horizon ({format_timestamp(self.end)})"

    # ------------------------------------------------------------------ tasks

    async def _advance(self, now: datetime) -> None:
        self.clock.set(now)
        claimed = [task for task in self.tasks if task.run_at <= now]
        self.tasks = [task for task in self.tasks if task.run_at > now]
        outcome = await self.interpreter.advance(self.execution, self.compiled, claimed, now)
        self._apply(outcome, now)

    def _apply(self, outcome: Outcome, now: datetime) -> None:
        """What ``ExecutionStore.commit`` does with an outcome, on the lists."""
        self._cancel_branches(outcome, now)
        removed = set(outcome.removed_wait_tokens)
        self.waits = [wait for wait in self.waits if wait.token not in removed]
        for task in outcome.tasks:
            self._add_task(task)
        self.waits.extend(
            OpenWait(w.node_id, w.token, w.event_name, w.correlation_value, w.expires_at, now)
            for w in outcome.waits
        )
        self.dead_letters.extend(outcome.dead_letters)
        room = MAX_STEPS - len(self.path)
        self.path.extend(outcome.steps[:room])
        if len(outcome.steps) > room or (len(self.path) >= MAX_STEPS and not self.final):
            self.truncated = True

    def _cancel_branches(self, outcome: Outcome, now: datetime) -> None:
        removed = 0
        for prefix in outcome.cancelled_prefixes:
            gone = [task for task in self.tasks if in_branch(task.token, prefix)]
            self.tasks = [task for task in self.tasks if not in_branch(task.token, prefix)]
            removed += sum(1 for task in gone if task.kind != TaskKind.TIMEOUT)
            kept = [wait for wait in self.waits if not in_branch(wait.token, prefix)]
            removed += len(self.waits) - len(kept)
            self.waits = kept
        if outcome.cancelled_prefixes:
            branches_removed(self.execution, removed, now)

    def _add_task(self, new: NewTask) -> None:
        self.tasks.append(
            TaskRecord(
                next(self._ids),
                WORKSPACE,
                self.execution.id,
                new.node_id,
                new.token,
                str(new.kind),
                new.attempt,
                new.run_at,
                new.payload,
                self.clock.now(),
            )
        )

    # ------------------------------------------------------------------ events

    def _offer(self, at: datetime, scenario_event: ScenarioEvent) -> None:
        """Hand the event to the first open wait that takes it (``ExecutionService.resume``)."""
        self.clock.set(at)
        event = {
            "name": scenario_event.event,
            "properties": copy.deepcopy(scenario_event.properties),
            "timestamp": format_timestamp(at),
        }
        candidates = [wait for wait in self.waits if wait.event_name == scenario_event.event]
        wait = next(
            (w for w in sorted(candidates, key=lambda w: w.created_at) if self._takes(w, event)),
            None,
        )
        if wait is None:
            reason = (
                "no open wait took it (correlation value or condition)"
                if candidates
                else "nothing was waiting for this event"
            )
            self._report(at, scenario_event.event, reason=reason)
            return
        self.waits.remove(wait)
        self.tasks = [
            task
            for task in self.tasks
            if not (task.token == wait.token and task.kind == TaskKind.TIMEOUT)
        ]
        payload = {"event": event, "since": wait.created_at.isoformat()}
        self._add_task(NewTask(wait.node_id, wait.token, TaskKind.EVENT, 1, at, payload))
        self.execution.status = ExecutionStatus.RUNNING
        self._report(at, scenario_event.event, wait=wait)

    def _takes(self, wait: OpenWait, event: Mapping[str, Any]) -> bool:
        return wait_takes(
            self.compiled,
            node_id=wait.node_id,
            correlation_value=wait.correlation_value,
            execution=self.execution,
            event=event,
            now=self.clock.now(),
        )

    def _report(
        self, at: datetime, name: str, *, wait: OpenWait | None = None, reason: str | None = None
    ) -> None:
        self.reports.append(
            EventReport(
                at,
                name,
                matched=wait is not None,
                after_step=self.path[-1].seq if self.path else 0,
                node_id=wait.node_id if wait else None,
                branch=wait.token if wait else None,
                reason=reason,
            )
        )

    # ------------------------------------------------------------------ the result

    def result(self) -> SimulationResult:
        execution = self.execution
        until = self.clock.now() if self.final or self.truncated else self.end
        last = self.path[-1].seq if self.path else 0  # calls past a truncation are dropped
        return SimulationResult(
            workflow_id=execution.workflow_id,
            subject=execution.subject_id,
            status=str(execution.status),
            start=self.start,
            simulated_until=until,
            finished_at=execution.finished_at,
            error=execution.error,
            path=tuple(self.path),
            messages=tuple(m for m in self.recorder.messages if m.seq <= last),
            waits=tuple(self.waits),
            dead_letters=tuple(self.dead_letters),
            events=tuple(self.reports),
            truncated=self.truncated,
            horizon_reached=self.horizon_reached,
        )


__all__ = [
    "EPOCH",
    "MAX_STEPS",
    "RecordingExecutor",
    "Scenario",
    "SimulatedMessage",
    "SimulationResult",
    "parse_scenario",
    "simulate",
]
