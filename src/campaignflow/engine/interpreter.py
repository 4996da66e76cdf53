"""Node semantics: advance one execution from the tasks claimed for it until every token waits.

The interpreter has no database and no clock of its own: it receives the execution, its
compiled version, the claimed tasks and ``now``, calls action executors, and returns an
:class:`Outcome` — the steps to log, the tasks and waits to create, the dead letters — that the
caller commits in one transaction. The worker (real time, PostgreSQL or SQLite) and the dry-run
(virtual time, nothing sent) are two callers of the same code, so a simulation takes exactly the
path a real execution would.
"""

from __future__ import annotations

import base64
import copy
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final

from liquid.exceptions import LiquidError

from campaignflow.domain.cel import CelEvaluationError
from campaignflow.domain.delays import delay_due
from campaignflow.domain.retry import retry_delay
from campaignflow.domain.split import choose_variant
from campaignflow.domain.workflow import (
    ActionNode,
    ConditionNode,
    DelayNode,
    EndNode,
    JoinNode,
    Node,
    ParallelNode,
    SplitNode,
    WaitForEventNode,
)
from campaignflow.engine.actions import ActionCall, ActionExecutor, ActionFailed, ExecutorRegistry
from campaignflow.engine.compiled import CompiledWorkflow, join_node
from campaignflow.engine.model import (
    MAIN_TOKEN,
    DeadLetterDraft,
    ExecutionRecord,
    ExecutionStatus,
    NewTask,
    NewWait,
    Outcome,
    StepEntry,
    StepStatus,
    TaskKind,
    TaskRecord,
    branch_token,
    idempotency_key,
    in_branch,
    split_token,
)
from campaignflow.observability import tracing

logger = logging.getLogger(__name__)

#: Steps one token may take inline before it yields (a loop through ``delay PT0S`` never pins
#: a worker; the rest runs from a new task).
MAX_INLINE_STEPS: Final = 1000
_END: Final = "\x00end"  # the path ends here
_PARK: Final = "\x00park"  # the token now sits in a task or a wait
_STOPS: Final = frozenset({None, _END, _PARK})


class StepFailure(Exception):
    """A node failed; ``retryable`` decides between another attempt and the error path."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = False,
        retry_after_s: float | None = None,
        details: Mapping[str, Any] | None = None,
        deferred: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        self.details = dict(details or {})
        self.deferred = deferred and retry_after_s is not None

    def to_dict(self, attempt: int, at: datetime) -> dict[str, Any]:
        error: dict[str, Any] = {
            "attempt": attempt,
            "at": at.isoformat(),
            "message": self.message,
            "retryable": self.retryable,
        }
        if self.details:
            error["details"] = self.details
        return error


@dataclass(frozen=True, slots=True)
class Interpreter:
    """Runs node semantics with the given action executors."""

    executors: ExecutorRegistry

    async def advance(
        self,
        execution: ExecutionRecord,
        compiled: CompiledWorkflow,
        tasks: list[TaskRecord],
        now: datetime,
    ) -> Outcome:
        outcome = Outcome(execution)
        if ExecutionStatus(execution.status).is_final:
            outcome.consumed_task_ids.extend(task.id for task in tasks)  # leftovers: drop
            return outcome
        run = _Run(self.executors, execution, compiled, outcome, now)
        for task in sorted(tasks, key=lambda t: (t.run_at, t.id)):
            outcome.consumed_task_ids.append(task.id)
            if run.failed:
                continue
            await run.resume(task)
        run.finish()
        return outcome


def unrunnable(
    execution: ExecutionRecord, tasks: list[TaskRecord], now: datetime, reason: str
) -> Outcome:
    """The outcome for an execution whose pinned version cannot be compiled any more (a newer
    release refuses what an older one stored): it fails now, with the reason, instead of its
    tasks coming back after every lease forever. There is no dead letter: replaying would meet
    the same version."""
    outcome = Outcome(execution, consumed_task_ids=[task.id for task in tasks])
    outcome.cancelled_prefixes.append(MAIN_TOKEN)
    execution.state["live"] = 0
    execution.status = ExecutionStatus.FAILED
    execution.error = {"message": reason, "retryable": False, "at": now.isoformat()}
    execution.finished_at = now
    execution.updated_at = now
    return outcome


class _Run:
    """One advance of one execution: the working state of :meth:`Interpreter.advance`."""

    def __init__(
        self,
        executors: ExecutorRegistry,
        execution: ExecutionRecord,
        compiled: CompiledWorkflow,
        outcome: Outcome,
        now: datetime,
    ) -> None:
        self.executors = executors
        self.execution = execution
        self.compiled = compiled
        self.outcome = outcome
        self.now = now
        self.failed = False
        state = execution.state
        self.state = state
        self.vars: dict[str, Any] = state.setdefault("vars", {})
        self.steps: dict[str, Any] = state.setdefault("steps", {})
        self.joins: dict[str, Any] = state.setdefault("joins", {})
        self.last: dict[str, Any] = state.setdefault("last", {})
        self.errors: dict[str, list[dict[str, Any]]] = state.setdefault("errors", {})
        self.visits: dict[str, int] = state.setdefault("visits", {})
        self.groups: dict[str, int] = state.setdefault("groups", {})
        state.setdefault("live", 0)
        state.setdefault("seq", 0)

    # ------------------------------------------------------------------ tasks

    async def resume(self, task: TaskRecord) -> None:
        kind = TaskKind(task.kind)
        node = self.compiled.definition.nodes_by_id.get(task.node_id)
        self.state["live"] -= 1
        if node is None:  # cannot happen for a pinned version; never crash a batch on it
            self._fail(
                task.node_id,
                "unknown",
                task.token,
                task.attempt,
                StepFailure(
                    f"node {task.node_id!r} is not in version {self.execution.workflow_version}"
                ),
            )
            return
        if kind is TaskKind.RUN:
            await self.walk(task.token, node.id, task.attempt)
        elif kind is TaskKind.TIMER and isinstance(node, DelayNode):
            since = _instant(task.payload, "since", task.created_at)
            output = {"until": _iso(_instant(task.payload, "due", task.run_at))}
            self._log(node, task.token, 1, StepStatus.COMPLETED, output, started=since)
            await self.walk(task.token, node.next)
        elif kind is TaskKind.TIMEOUT and isinstance(node, WaitForEventNode):
            self.outcome.removed_wait_tokens.append(task.token)
            since = _instant(task.payload, "since", task.created_at)
            self._log(node, task.token, 1, StepStatus.TIMED_OUT, None, started=since)
            await self.walk(task.token, node.config.on_timeout)
        elif kind is TaskKind.EVENT and isinstance(node, WaitForEventNode):
            event = task.payload.get("event") if isinstance(task.payload, dict) else None
            since = _instant(task.payload, "since", task.created_at)
            self.steps[node.id] = event
            self.state["event"] = event
            self._log(node, task.token, 1, StepStatus.COMPLETED, event, started=since)
            await self.walk(task.token, node.next)
        else:
            self._fail(
                node.id,
                node.type,
                task.token,
                task.attempt,
                StepFailure(f"a {kind.value} task cannot resume a {node.type} node"),
            )

    def finish(self) -> None:
        execution = self.execution
        if self.failed:
            self.outcome.tasks.clear()  # made earlier in this run by branches now stopped
            self.outcome.waits.clear()
            return
        self._prune_cancelled()
        if self.state["live"] <= 0:
            self.state["live"] = 0
            execution.status = ExecutionStatus.COMPLETED
            execution.finished_at = self.now
        else:
            due = self.outcome.has_due_work(self.now)
            execution.status = ExecutionStatus.RUNNING if due else ExecutionStatus.WAITING
        execution.updated_at = self.now

    def _prune_cancelled(self) -> None:
        """Drop tasks and waits this run made for branches a join "any" has since cancelled
        (the store deletes the ones that exist from earlier runs)."""
        prefixes = tuple(prefix for prefix in self.outcome.cancelled_prefixes if prefix)
        if not prefixes:
            return

        def cancelled(token: str) -> bool:
            return any(in_branch(token, prefix) for prefix in prefixes)

        kept_tasks = []
        for task in self.outcome.tasks:
            if not cancelled(task.token):
                kept_tasks.append(task)
            elif task.kind is not TaskKind.TIMEOUT:
                self.state["live"] -= 1
        kept_waits = [wait for wait in self.outcome.waits if not cancelled(wait.token)]
        self.state["live"] -= len(self.outcome.waits) - len(kept_waits)
        self.outcome.tasks[:] = kept_tasks
        self.outcome.waits[:] = kept_waits

    # ------------------------------------------------------------------ walking the graph

    async def walk(self, token: str, node_id: str | None, attempt: int = 1) -> None:
        """Advance ``token`` from ``node_id``; parallel branches are walked depth-first."""
        pending: list[tuple[str, str | None, int]] = [(token, node_id, attempt)]
        budget = MAX_INLINE_STEPS
        while pending and not self.failed:
            current, position, tries = pending.pop()
            while position not in _STOPS and not self.failed:
                assert position is not None
                if budget == 0:
                    self._park(NewTask(position, current, TaskKind.RUN, 1, self.now))
                    position = _PARK
                    break
                budget -= 1
                node = self.compiled.node(position)
                if isinstance(node, ParallelNode):
                    self._log(
                        node,
                        current,
                        1,
                        StepStatus.COMPLETED,
                        {"branches": list(node.config.branches)},
                    )
                    children = [
                        (branch_token(current, node.id, branch), branch, 1)
                        for branch in node.config.branches
                    ]
                    pending.extend(reversed(children))
                    position = _PARK  # the token lives on in its branches
                    break
                if isinstance(node, JoinNode):
                    current, position = self._arrive(node, current)
                    continue
                position = await self._step(node, current, tries)
                tries = 1
            if position is None or position == _END:
                ended = self._path_ended(current)
                if ended is not None:
                    pending.append((ended[0], ended[1], 1))

    async def _step(self, node: Node, token: str, attempt: int) -> str | None:
        """Run one node; the next node's id, :data:`_PARK` or :data:`_END`."""
        try:
            if isinstance(node, ActionNode):
                return await self._action(node, token, attempt)
            return self._control(node, token)
        except StepFailure as failure:
            return self._failed(node, token, attempt, failure)

    def _control(self, node: Node, token: str) -> str | None:
        """Nodes that decide where to go without calling out."""
        if isinstance(node, ConditionNode):
            return self._condition(node, token)
        if isinstance(node, DelayNode):
            return self._delay(node, token)
        if isinstance(node, WaitForEventNode):
            return self._wait(node, token)
        if isinstance(node, SplitNode):
            return self._split(node, token)
        if isinstance(node, EndNode):
            self._record(node, token, None)
            return _END
        raise TypeError(f"no semantics for node type {node.type!r}")  # pragma: no cover

    # ------------------------------------------------------------------ node types

    async def _action(self, node: ActionNode, token: str, attempt: int) -> str | None:
        action = node.config.action
        if attempt == 1:
            self._visit(token, node.id)
        if action == "set":
            output = self._set(node)
            self.vars.update(output)
        elif action == "log":
            params = self._render(node)
            output = {"level": params.get("level", "info"), "message": params.get("message")}
        else:
            output = await self._call(node, token, attempt, self._render(node))
        self.errors.pop(f"{token}|{node.id}", None)
        self._record(node, token, output, attempt=attempt)
        return node.next

    def _set(self, node: ActionNode) -> dict[str, Any]:
        variables = node.config.params.get("variables")
        names = list(variables) if isinstance(variables, Mapping) else []
        context = self._context()
        return {
            name: _jsonable(self._evaluate(node, ("config", "params", "variables", name), context))
            for name in names
        }

    async def _call(
        self, node: ActionNode, token: str, attempt: int, params: dict[str, Any]
    ) -> Any:
        executor = self.executors.get(node.config.action)
        if executor is None:
            raise StepFailure(f"no executor for action {node.config.action!r} in this worker")
        key = f"{token}|{node.id}"
        call = ActionCall(
            action=node.config.action,
            params=params,
            idempotency_key=idempotency_key(
                self.execution.id, token, node.id, self.visits.get(key, 1), self.groups.get(key, 0)
            ),
            workspace_id=self.execution.workspace_id,
            execution_id=self.execution.id,
            node_id=node.id,
            attempt=attempt,
            token=token,
            connection=node.config.connection,
            contact_id=self.execution.subject_id,
            purpose=node.config.purpose,
        )
        try:
            if not tracing.enabled():
                return await executor.execute(call)
            return await _traced(executor, call)
        except ActionFailed as exc:
            raise StepFailure(
                exc.message,
                retryable=exc.retryable,
                retry_after_s=exc.retry_after_s,
                details=exc.details,
                deferred=exc.deferred,
            ) from exc
        except Exception as exc:  # a bug in an executor must not take the batch down
            logger.exception("action executor %r raised", node.config.action)
            raise StepFailure(f"the {node.config.action!r} executor failed: {exc!r}") from exc

    def _condition(self, node: ConditionNode, token: str) -> str:
        context = self._context()
        for position, branch in enumerate(node.config.branches):
            expression = self.compiled.expression(node.id, "config", "branches", position, "when")
            if _evaluate_bool(expression, context):
                self._record(node, token, {"branch": position, "next": branch.next})
                return branch.next
        self._record(node, token, {"branch": "default", "next": node.config.default})
        return node.config.default

    def _split(self, node: SplitNode, token: str) -> str:
        visit = self._visit(token, node.id)
        variant = choose_variant(node.config, seed=f"{self.execution.id}:{token}:{node.id}:{visit}")
        self._record(node, token, {"variant": variant.name})
        return variant.next

    def _delay(self, node: DelayNode, token: str) -> str | None:
        zone = self.execution.contact.get("timezone")
        due = delay_due(
            node.config, now=self.now, contact_timezone=zone if isinstance(zone, str) else None
        )
        if due <= self.now:
            self._record(node, token, {"until": _iso(due)})
            return node.next
        payload = {"since": _iso(self.now), "due": _iso(due)}
        self._park(NewTask(node.id, token, TaskKind.TIMER, 1, due, payload))
        return _PARK

    def _wait(self, node: WaitForEventNode, token: str) -> str:
        config = node.config
        correlation: str | None = None
        if config.correlation_key is not None:
            value = self.execution.input.get(config.correlation_key)
            if value is None:
                raise StepFailure(
                    f"the correlation key {config.correlation_key!r} is not in the execution's "
                    "input, so no event could be matched to this execution"
                )
            correlation = correlation_text(value)
        expires = config.timeout.add_to(self.now) if config.timeout is not None else None
        self.outcome.waits.append(NewWait(node.id, token, config.event, correlation, expires))
        self.state["live"] += 1
        if expires is not None:
            payload = {"since": _iso(self.now)}
            self.outcome.tasks.append(
                NewTask(node.id, token, TaskKind.TIMEOUT, 1, expires, payload)
            )
        return _PARK

    # ------------------------------------------------------------------ parallel and join

    def _arrive(self, node: JoinNode, token: str) -> tuple[str, str | None]:
        """A branch reaches its join: (token, next node) to go on with, or a parked/ended token."""
        parts = split_token(token)
        parallel_id = self.compiled.parallel_of_join(node.id)
        if parts is None or parts[1] != parallel_id or parallel_id is None:
            self._record(node, token, None)  # not a branch of this join's parallel
            return token, node.next
        parent, _, branch = parts
        join = self._join_state(parent, node.id)
        if join["done"]:
            return token, _PARK  # a late branch of an "any" join: absorbed
        join["arrived"][branch] = self.last.pop(token, None)
        return self._maybe_complete(node, parent, join)

    def _path_ended(self, token: str) -> tuple[str, str | None] | None:
        """A path ended without reaching a join: account for it where its branch is awaited."""
        parts = split_token(token)
        self.last.pop(token, None)
        if parts is None:
            return None
        parent, parallel_id, branch = parts
        join_id = self.compiled.join_of_parallel.get(parallel_id)
        if join_id is None:
            return None
        join = self._join_state(parent, join_id)
        if join["done"]:
            return None
        join["ended"].append(branch)
        resumed = self._maybe_complete(join_node(self.compiled, join_id), parent, join)
        return None if resumed[1] == _PARK else resumed

    def _maybe_complete(
        self, node: JoinNode, parent: str, join: dict[str, Any]
    ) -> tuple[str, str | None]:
        parallel = self.compiled.node(self.compiled.parallel_of_join(node.id) or "")
        assert isinstance(parallel, ParallelNode)
        branches = parallel.config.branches
        arrived: dict[str, Any] = join["arrived"]
        settled = len(arrived) + len(join["ended"]) >= len(branches)
        if node.config.mode == "any" and arrived:
            join["done"] = True
            for branch in branches:
                if branch not in arrived and branch not in join["ended"]:
                    self.outcome.cancelled_prefixes.append(
                        branch_token(parent, parallel.id, branch)
                    )
        elif settled:
            join["done"] = True
        if not join["done"]:
            return parent, _PARK
        del self.joins[f"{parent}|{node.id}"]
        if not arrived:
            return parent, _END
        merged: dict[str, Any] = {}
        for output in arrived.values():
            if isinstance(output, Mapping):
                merged.update(output)
        self._record(node, parent, {"branches": arrived, "merged": merged})
        return parent, node.next

    def _join_state(self, parent: str, join_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self.joins.setdefault(
            f"{parent}|{join_id}", {"arrived": {}, "ended": [], "done": False}
        )
        return found

    # ------------------------------------------------------------------ failure

    def _failed(self, node: Node, token: str, attempt: int, failure: StepFailure) -> str | None:
        key = f"{token}|{node.id}"
        if failure.deferred and failure.retry_after_s is not None:  # not tried: not an attempt
            due = self.now + timedelta(seconds=failure.retry_after_s)
            held = failure.details.get("policy")
            if isinstance(held, Mapping):  # the send-time policy: logged, due when it allows
                due = max(due, datetime.fromisoformat(str(held["until"])))
                deferral: dict[str, Any] = {"at": self.now.isoformat(), "message": failure.message}
                deferral["policy"] = dict(held)
                self._log(node, token, attempt, StepStatus.DEFERRED, None, error=deferral)
            self._park(NewTask(node.id, token, TaskKind.RUN, attempt, due))
            return _PARK
        history = self.errors.setdefault(key, [])
        history.append(failure.to_dict(attempt, self.now))
        policy = self.compiled.retry_policies.get(node.id)
        if failure.retryable and policy is not None:
            seed = f"{self.execution.id}:{key}:{self.visits.get(key, 1)}"
            wait = retry_delay(policy, attempt, seed=seed, retry_after_s=failure.retry_after_s)
            if wait is not None:
                self._log(node, token, attempt, StepStatus.RETRYING, None, error=history[-1])
                self._park(NewTask(node.id, token, TaskKind.RUN, attempt + 1, self.now + wait))
                return _PARK
        on_error = node.on_error if isinstance(node, ActionNode) else None
        if on_error is not None:
            self.errors.pop(key, None)
            self.steps[node.id] = {"error": history[-1], "attempts": attempt}
            self._log(node, token, attempt, StepStatus.FAILED, None, error=history[-1])
            return on_error
        self._fail(node.id, node.type, token, attempt, failure)
        return _PARK

    def _fail(
        self, node_id: str, node_type: str, token: str, attempt: int, failure: StepFailure
    ) -> None:
        """No way forward: the execution fails and the step goes to the dead letters."""
        key = f"{token}|{node_id}"
        history = self.errors.pop(key, None) or [failure.to_dict(attempt, self.now)]
        self._append_step(
            node_id,
            node_type,
            token,
            attempt,
            StepStatus.FAILED,
            output=None,
            started=self.now,
            error=history[-1],
        )
        self.outcome.dead_letters.append(DeadLetterDraft(node_id, token, attempt, history))
        self.outcome.cancelled_prefixes.append(MAIN_TOKEN)  # every other branch stops too
        self.failed = True
        self.state["live"] = 0
        execution = self.execution
        execution.status = ExecutionStatus.FAILED
        execution.error = {"node": node_id, "token": token, **history[-1]}
        execution.finished_at = self.now
        execution.updated_at = self.now

    # ------------------------------------------------------------------ helpers

    def _park(self, task: NewTask) -> None:
        self.outcome.tasks.append(task)
        self.state["live"] += 1

    def _visit(self, token: str, node_id: str) -> int:
        key = f"{token}|{node_id}"
        visit = self.visits.get(key, 0) + 1
        self.visits[key] = visit
        return visit

    def _record(self, node: Node, token: str, output: Any, *, attempt: int = 1) -> None:
        """A completed step: logged, and visible to later nodes as ``steps.<id>``."""
        self.steps[node.id] = output
        self.last[token] = output
        self._log(node, token, attempt, StepStatus.COMPLETED, output)

    def _log(
        self,
        node: Node,
        token: str,
        attempt: int,
        status: StepStatus,
        output: Any,
        *,
        error: dict[str, Any] | None = None,
        started: datetime | None = None,
    ) -> None:
        self._append_step(
            node.id, node.type, token, attempt, status, output=output, started=started, error=error
        )

    def _append_step(
        self,
        node_id: str,
        node_type: str,
        token: str,
        attempt: int,
        status: StepStatus,
        *,
        output: Any,
        started: datetime | None,
        error: dict[str, Any] | None,
    ) -> None:
        self.state["seq"] += 1
        self.outcome.steps.append(
            StepEntry(
                self.state["seq"],
                node_id,
                node_type,
                token,
                attempt,
                status,
                started or self.now,
                self.now,
                output,
                error,
            )
        )

    def _context(self) -> dict[str, Any]:
        execution = self.execution
        event = self.state.get("event")
        return {
            "input": execution.input,
            "event": execution.input if event is None else event,
            "contact": execution.contact,
            "steps": self.steps,
            "vars": self.vars,
            "now": self.now,
        }

    def _evaluate(self, node: Node, path: tuple[str | int, ...], context: dict[str, Any]) -> Any:
        try:
            return self.compiled.expression(node.id, *path).evaluate(context)
        except CelEvaluationError as exc:
            raise StepFailure(str(exc)) from exc

    def _render(self, node: ActionNode) -> dict[str, Any]:
        """The node's params with every Liquid template rendered (the definition is untouched)."""
        slots = self.compiled.template_slots.get(node.id, ())
        params = node.config.params
        if not slots:
            return dict(params)
        rendered: dict[str, Any] = copy.deepcopy(dict(params))
        context = self._context()
        for slot in slots:
            try:
                text = slot.template.render(**context)
            except LiquidError as exc:
                where = "/".join(str(part) for part in slot.path)
                raise StepFailure(f"template params/{where}: {exc}") from exc
            _assign(rendered, slot.path, text)
        return rendered


def _evaluate_bool(expression: Any, context: dict[str, Any]) -> bool:
    try:
        result: bool = expression.evaluate_bool(context)
    except CelEvaluationError as exc:
        raise StepFailure(str(exc)) from exc
    return result


def _assign(target: Any, path: tuple[str | int, ...], value: str) -> None:
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value


def _jsonable(value: Any) -> Any:
    """CEL results as JSON: timestamps and dates as ISO strings, durations in seconds."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value


def correlation_text(value: object) -> str:
    """How a correlation value is compared: JSON scalars by their canonical text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def _instant(payload: Any, key: str, default: datetime) -> datetime:
    if isinstance(payload, Mapping) and isinstance(payload.get(key), str):
        try:
            return datetime.fromisoformat(payload[key])
        except ValueError:
            return default
    return default


async def _traced(executor: ActionExecutor, call: ActionCall) -> Any:
    """The action as a span: its client requests (connectors, ``http``) are its children."""
    with tracing.tracer().start_as_current_span(
        f"action {call.action}",
        attributes=tracing.attributes(
            campaignflow__action=call.action,
            campaignflow__node_id=call.node_id,
            campaignflow__attempt=call.attempt,
            campaignflow__connection=call.connection,
        ),
        record_exception=False,  # an executor's message may quote the person's data
    ) as span:
        try:
            return await executor.execute(call)
        except ActionFailed as exc:
            span.set_attribute("campaignflow.retryable", exc.retryable)
            span.set_status(tracing.error_status("action failed"))
            raise
