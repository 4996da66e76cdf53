"""What a dry-run shows (the path, the messages it would send, open waits, dead letters, the
events and who took them), and the executor that records messages instead of sending them."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from campaignflow.domain.schedules import format_timestamp
from campaignflow.engine.actions import ActionCall, ActionFailed
from campaignflow.engine.clock import Clock
from campaignflow.engine.model import (
    DeadLetterDraft,
    ExecutionRecord,
    StepEntry,
)
from campaignflow.engine.scenario import ActionOverride

_HTTP_OUTPUT: Final = {"status": 200, "headers": {}, "body": None}
_CONNECTOR_OUTPUT: Final = {"simulated": True}


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
