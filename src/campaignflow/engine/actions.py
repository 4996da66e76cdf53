"""The seam between the engine and whatever performs an action's effect.

The engine renders an action node's parameters (Liquid) and hands an :class:`ActionCall` to the
:class:`ActionExecutor` registered for the action's name. Built in: ``http``; ``set`` and ``log``
have no effect outside the execution and are interpreted by the engine itself. Connectors (the
integration layer) register one executor per ``connector.operation`` name.

An executor returns the step output (JSON) or raises :class:`ActionFailed`, saying whether the
failure is worth retrying. Anything else it raises is a bug in the executor and is treated as a
non-retryable failure, so one broken connector never stalls a worker.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

from campaignflow.errors import CampaignflowError

IDEMPOTENCY_HEADER = "Idempotency-Key"


@dataclass(frozen=True, slots=True)
class ActionCall:
    """One attempt at one action, with its parameters already rendered.

    ``idempotency_key`` is the same for every attempt of the same intent (automatic retries and
    re-runs after a crash) and differs after a deliberate replay; executors pass it to providers
    that accept one, so an effect happens once even when the engine runs the call twice.
    """

    action: str
    params: Mapping[str, Any]
    idempotency_key: str
    workspace_id: str
    execution_id: str
    node_id: str
    attempt: int
    token: str = ""  # the parallel branch ("" = the main path)
    connection: str | None = None  # connector operations: the connection's name
    # The execution's subject: a contact's id when an event or a time trigger started it (the
    # send-time policy and the processing log are about it); and why the node uses the
    # contact's data (``marketing`` or ``transactional``: the node's ``config.purpose``).
    contact_id: str | None = None
    purpose: str = "marketing"


class ActionFailed(CampaignflowError):
    """The action did not take effect (as far as the executor can tell).

    ``deferred``: the call was not attempted because of our own pacing (an account's rate limit
    is taken for the next seconds); the engine runs the step again after ``retry_after_s``
    without counting an attempt, since nothing failed.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        retry_after_s: float | None = None,
        details: Mapping[str, Any] | None = None,
        deferred: bool = False,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable or deferred
        self.deferred = deferred
        self.retry_after_s = retry_after_s
        self.details: Mapping[str, Any] = MappingProxyType(dict(details or {}))


class ActionExecutor(Protocol):
    """Performs the effect of one kind of action."""

    async def execute(self, call: ActionCall) -> Any:
        """Return the step output (a JSON value) or raise :class:`ActionFailed`."""
        ...


@dataclass(frozen=True, slots=True)
class ExecutorRegistry:
    """Action name → executor; immutable, built once per worker."""

    executors: Mapping[str, ActionExecutor] = field(default_factory=lambda: MappingProxyType({}))

    def with_executor(self, name: str, executor: ActionExecutor) -> ExecutorRegistry:
        return ExecutorRegistry(MappingProxyType({**self.executors, name: executor}))

    def get(self, name: str) -> ActionExecutor | None:
        return self.executors.get(name)
