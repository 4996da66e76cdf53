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
import difflib
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import count
from typing import Annotated, Any, Final, Self

from pydantic import Field, JsonValue, StrictBool, StrictInt, ValidationError, model_validator

from campaignflow.domain.cel import CelEvaluationError
from campaignflow.domain.durations import parse_duration
from campaignflow.domain.fields import (
    DurationValue,
    EventName,
    FormatModel,
    Timestamp,
    domain_error,
    exactly_one,
)
from campaignflow.domain.problems import Problem, document_order
from campaignflow.domain.pydantic_problems import json_type, problems_from_error
from campaignflow.domain.schedules import ScheduleError, check_timezone, format_timestamp
from campaignflow.domain.workflow import ActionNode, WaitForEventNode, WorkflowDefinition
from campaignflow.engine.actions import ActionCall, ActionFailed, ExecutorRegistry
from campaignflow.engine.clock import Clock, ManualClock
from campaignflow.engine.compiled import CompiledWorkflow, compile_workflow
from campaignflow.engine.interpreter import Interpreter, correlation_text
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
)
from campaignflow.errors import InvalidScenario

#: Where the virtual clock starts when the scenario gives neither ``start`` nor a timed event.
EPOCH: Final = datetime(2026, 1, 1, tzinfo=UTC)
#: At most this many steps are simulated; a longer path is cut and reported as truncated.
MAX_STEPS: Final = 10_000
WORKSPACE: Final = "simulation"
_ENGINE_ACTIONS: Final = frozenset({"set", "log"})  # run by the interpreter, no executor
_HTTP_OUTPUT: Final = {"status": 200, "headers": {}, "body": None}
_CONNECTOR_OUTPUT: Final = {"simulated": True}


# ---------------------------------------------------------------------- the scenario


class ScenarioEvent(FormatModel):
    """An event of the contact, at a timestamp or a duration after the start."""

    at: Timestamp | None = Field(None, description="When it arrives (RFC 3339, with offset).")
    after: DurationValue | None = Field(None, description="When it arrives, after the start.")
    event: EventName = Field(description="The event's name.")
    properties: dict[str, JsonValue] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_time(self) -> Self:
        exactly_one(self, ("at", "after"))
        return self

    def time(self, start: datetime) -> datetime:
        if self.at is not None:
            return self.at.astimezone(UTC)
        assert self.after is not None  # exactly one of them is set
        return self.after.add_to(start).astimezone(UTC)


class ActionOverride(FormatModel):
    """What one action node answers: an output, or an error for some (or all) attempts."""

    output: JsonValue = Field(None, description="Step output on success; default per action.")
    error: Annotated[str, Field(min_length=1, max_length=2000)] | None = None
    retryable: StrictBool = Field(True, description="Whether the error is worth a retry.")
    times: Annotated[StrictInt, Field(ge=1, le=1000)] | None = Field(
        None, description="Fail this many attempts of each visit, then succeed; omitted: always."
    )

    @model_validator(mode="after")
    def _error_settings(self) -> Self:
        if self.error is None:
            for name in ("retryable", "times"):
                if name in self.model_fields_set:
                    raise domain_error("not_allowed", f"{name} only applies with error", at=(name,))
        return self

    def fails(self, attempt: int) -> bool:
        return self.error is not None and (self.times is None or attempt <= self.times)

    def result(self, default: Any) -> Any:
        return copy.deepcopy(self.output) if "output" in self.model_fields_set else default


class Scenario(FormatModel):
    """A contact, its input and its events; see "Dry-run" in ``docs/workflow-format.md``."""

    start: Timestamp | None = Field(
        None, description="Virtual start; default: the earliest 'at' event, else EPOCH."
    )
    subject: Annotated[str, Field(min_length=1, max_length=200)] = "simulated-contact"
    execution_id: Annotated[str, Field(min_length=1, max_length=200)] = "simulated-execution"
    contact: dict[str, JsonValue] = Field(default_factory=dict)
    input: dict[str, JsonValue] = Field(default_factory=dict)
    events: tuple[ScenarioEvent, ...] = ()
    actions: dict[str, ActionOverride] = Field(default_factory=dict)
    horizon: DurationValue = Field(parse_duration("P90D"), description="How far to simulate.")

    @property
    def start_time(self) -> datetime:
        if self.start is not None:
            return self.start.astimezone(UTC)
        stamps = [event.at for event in self.events if event.at is not None]
        return min(stamps).astimezone(UTC) if stamps else EPOCH


_VOCABULARY: Final = frozenset(
    field.alias or name
    for model in (Scenario, ScenarioEvent, ActionOverride)
    for name, field in model.model_fields.items()
)


def parse_scenario(document: object) -> Scenario:
    """Read a scenario (parsed JSON or YAML; a bare list is its ``events``).

    Raises :class:`InvalidScenario` with every problem, pointing into ``document`` as written.
    """
    wrapped = {"events": document} if isinstance(document, list) else document
    try:
        return Scenario.model_validate(wrapped)
    except ValidationError as exc:
        problems = problems_from_error(exc, wrapped, vocabulary=_VOCABULARY)
        if wrapped is not document:
            problems = [Problem(p.path[1:], p.message, p.code, p.extra) for p in problems]
        raise InvalidScenario(sorted(problems, key=document_order)) from exc


def scenario_problems(scenario: Scenario, definition: WorkflowDefinition) -> list[Problem]:
    """What is wrong with ``scenario`` for this workflow (overrides, event times, time zone)."""
    start = scenario.start_time
    late = [
        Problem(
            ("events", index, "at"),
            f"is before the start ({format_timestamp(start)})",
            "out_of_range",
        )
        for index, event in enumerate(scenario.events)
        if event.at is not None and event.at < start
    ]
    overrides = [_override_problem(node_id, definition) for node_id in scenario.actions]
    return [*_zone_problems(scenario.contact), *late, *(p for p in overrides if p is not None)]


def _override_problem(node_id: str, definition: WorkflowDefinition) -> Problem | None:
    node = definition.nodes_by_id.get(node_id)
    where = ("actions", node_id)
    if node is None:
        close = difflib.get_close_matches(node_id, list(definition.nodes_by_id), n=1, cutoff=0.7)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return Problem(where, f"no node has id {node_id!r}{hint}", "unknown_node")
    if not isinstance(node, ActionNode):
        return Problem(where, f"{node_id!r} is a {node.type} node, not an action", "invalid_value")
    if node.config.action in _ENGINE_ACTIONS:
        return Problem(
            where,
            f"{node_id!r} runs {node.config.action!r}, which the engine performs itself; only "
            "http and connector actions can be overridden",
            "not_allowed",
        )
    return None


def _zone_problems(contact: Mapping[str, Any]) -> list[Problem]:
    zone = contact.get("timezone")
    where = ("contact", "timezone")
    if zone is None:
        return []
    if not isinstance(zone, str):
        return [Problem(where, f"must be a string, not {json_type(zone)}", "type")]
    try:
        check_timezone(zone)
    except ScheduleError as exc:
        return [Problem(where, exc.message, exc.code)]
    except OSError:  # a directory of the zone database ("America")
        return [Problem(where, f"{zone!r} is not an IANA time zone name", "invalid_timezone")]
    return []


# ---------------------------------------------------------------------- what the run shows


@dataclass(frozen=True, slots=True)
class SimulatedMessage:
    """One call an action would have made; ``seq`` is the step that logged it."""

    seq: int
    at: datetime
    node_id: str
    action: str
    attempt: int
    target: str | None
    params: dict[str, Any]
    idempotency_key: str
    error: str | None  # None: it would have been sent

    def to_dict(self, branch: str | None) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": format_timestamp(self.at),
            "nodeId": self.node_id,
            "branch": branch,
            "action": self.action,
            "attempt": self.attempt,
            "target": self.target,
            "params": self.params,
            "idempotencyKey": self.idempotency_key,
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class OpenWait:
    node_id: str
    token: str
    event_name: str
    correlation_value: str | None
    expires_at: datetime | None
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "nodeId": self.node_id,
            "branch": self.token,
            "event": self.event_name,
            "correlationValue": self.correlation_value,
            "since": format_timestamp(self.created_at),
            "expiresAt": _stamp(self.expires_at),
        }


@dataclass(frozen=True, slots=True)
class EventReport:
    """An event of the scenario and what became of it; ``after_step`` orders it in the path."""

    at: datetime
    name: str
    matched: bool
    after_step: int
    node_id: str | None = None
    branch: str | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": format_timestamp(self.at),
            "name": self.name,
            "matched": self.matched,
            "nodeId": self.node_id,
            "branch": self.branch,
            "afterStep": self.after_step,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class SimulationResult:
    """What the dry-run saw; ``status`` is the execution's, ``simulated_until`` where time stopped.

    ``horizon_reached``: work or events were left beyond the horizon. ``truncated``: the path
    hit :data:`MAX_STEPS`.
    """

    workflow_id: str
    subject: str
    status: str
    start: datetime
    simulated_until: datetime
    finished_at: datetime | None
    error: dict[str, Any] | None
    path: tuple[StepEntry, ...]
    messages: tuple[SimulatedMessage, ...]
    waits: tuple[OpenWait, ...]
    dead_letters: tuple[DeadLetterDraft, ...]
    events: tuple[EventReport, ...]
    truncated: bool
    horizon_reached: bool

    def calls(self) -> dict[int, SimulatedMessage]:
        """The message each action step made, by the step's ``seq``."""
        return {message.seq: message for message in self.messages}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, camelCase; times are RFC 3339 (UTC, ``Z``)."""
        branches = {step.seq: step.token for step in self.path}
        calls = self.calls()
        return {
            "workflowId": self.workflow_id,
            "subject": self.subject,
            "status": self.status,
            "start": format_timestamp(self.start),
            "simulatedUntil": format_timestamp(self.simulated_until),
            "finishedAt": _stamp(self.finished_at),
            "error": self.error,
            "truncated": self.truncated,
            "horizonReached": self.horizon_reached,
            "path": [_step(step, calls.get(step.seq)) for step in self.path],
            "messages": [m.to_dict(branches.get(m.seq)) for m in self.messages],
            "waits": [wait.to_dict() for wait in self.waits],
            "deadLetters": [_dead_letter(letter) for letter in self.dead_letters],
            "events": [event.to_dict() for event in self.events],
        }


def _step(step: StepEntry, message: SimulatedMessage | None) -> dict[str, Any]:
    return {
        "seq": step.seq,
        "at": format_timestamp(step.finished_at),
        "startedAt": format_timestamp(step.started_at),
        "nodeId": step.node_id,
        "nodeType": step.node_type,
        "branch": step.token,
        "attempt": step.attempt,
        "status": str(step.status),
        "output": step.output,
        "error": step.error,
        "action": message.action if message else None,
        "target": message.target if message else None,
    }


def _dead_letter(letter: DeadLetterDraft) -> dict[str, Any]:
    return {
        "nodeId": letter.node_id,
        "branch": letter.token,
        "attempts": letter.attempts,
        "errors": letter.errors,
    }


def _stamp(moment: datetime | None) -> str | None:
    return None if moment is None else format_timestamp(moment)


# ---------------------------------------------------------------------- the executor


class RecordingExecutor:
    """Records each call and answers it from the scenario's overrides; sends nothing."""

    def __init__(
        self, clock: Clock, execution: ExecutionRecord, overrides: Mapping[str, ActionOverride]
    ) -> None:
        self._clock = clock
        self._execution = execution
        self._overrides = overrides
        self.messages: list[SimulatedMessage] = []

    async def execute(self, call: ActionCall) -> Any:
        override = self._overrides.get(call.node_id)
        params = copy.deepcopy(dict(call.params))
        error = override.error if override is not None and override.fails(call.attempt) else None
        self.messages.append(
            SimulatedMessage(
                # The interpreter logs the call's step right after it returns or raises.
                seq=int(self._execution.state.get("seq", 0)) + 1,
                at=self._clock.now(),
                node_id=call.node_id,
                action=call.action,
                attempt=call.attempt,
                target=_target(call.action, params),
                params=params,
                idempotency_key=call.idempotency_key,
                error=error,
            )
        )
        if error is not None:
            assert override is not None
            raise ActionFailed(error, retryable=override.retryable)
        default = _HTTP_OUTPUT if call.action == "http" else _CONNECTOR_OUTPUT
        return override.result(copy.deepcopy(default)) if override else copy.deepcopy(default)


def _target(action: str, params: Mapping[str, Any]) -> str | None:
    """Whom a call addresses, for people: ``POST <url>`` for http, else a recipient param."""
    if action == "http":
        url = params.get("url")
        return f"{params.get('method', 'POST')} {url}" if isinstance(url, str) else None
    found = (params.get(key) for key in ("to", "email", "recipient"))
    return next((value for value in found if isinstance(value, str)), None)


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
    for name in sorted((names | {"http"}) - _ENGINE_ACTIONS):
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


def _under(token: str, prefix: str) -> bool:
    """Whether ``token`` belongs to the cancelled branch ``prefix`` (``""``: every token)."""
    return not prefix or token == prefix or token.startswith(prefix + "/")


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
            gone = [task for task in self.tasks if _under(task.token, prefix)]
            self.tasks = [task for task in self.tasks if not _under(task.token, prefix)]
            removed += sum(1 for task in gone if task.kind != TaskKind.TIMEOUT)
            kept = [wait for wait in self.waits if not _under(wait.token, prefix)]
            removed += len(self.waits) - len(kept)
            self.waits = kept
        execution = self.execution
        if not outcome.cancelled_prefixes or execution.status == ExecutionStatus.FAILED:
            return
        execution.state["live"] = max(0, execution.state.get("live", 0) - removed)
        if execution.state["live"] == 0:
            execution.status = ExecutionStatus.COMPLETED
            execution.finished_at = now

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
        node = self.compiled.node(wait.node_id)
        if not isinstance(node, WaitForEventNode):
            return False
        properties = event.get("properties")
        properties = properties if isinstance(properties, Mapping) else {}
        key = node.config.correlation_key
        if key is not None and (
            key not in properties or correlation_text(properties[key]) != wait.correlation_value
        ):
            return False
        return node.config.condition is None or self._condition_holds(node, event)

    def _condition_holds(self, node: WaitForEventNode, event: Mapping[str, Any]) -> bool:
        execution = self.execution
        context = {
            "input": execution.input,
            "event": dict(event),
            "contact": execution.contact,
            "steps": execution.state.get("steps", {}),
            "vars": execution.state.get("vars", {}),
            "now": self.clock.now(),
        }
        expression = self.compiled.expression(node.id, "config", "condition")
        try:
            return expression.evaluate_bool(context)
        except CelEvaluationError:
            return False  # an event the condition cannot read does not match

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
