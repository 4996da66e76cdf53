"""The live step feed: what workers did, as it happens, for monitoring (SSE, GraphQL).

Workers publish a :class:`StepEvent` for every step they commit and for every execution that
reaches a final status; API processes subscribe per workspace, with filters. The feed is a view,
not a record: the step log in the database is the truth, an event may be missed by a slow or
disconnected subscriber (it is told so), and nothing is ever blocked on the feed.

Two implementations behind :class:`StepFeed`: in-process (embedded mode: the worker and the API
share the process) and Redis (a capped stream per workspace, so a subscriber in any API process
sees every worker's steps and can resume after a reconnect from the last id it saw).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

#: The kinds of :class:`StepEvent`: a step, an execution's end, and the feed's own marker that
#: events were dropped for a subscriber too slow to keep up (it carries no execution).
STEP = "step"
EXECUTION = "execution"
LAGGED = "lagged"


@dataclass(frozen=True, slots=True)
class StepEvent:
    """One step (``kind="step"``) or one execution ending (``kind="execution"``).

    Carries no step output and no error message: those may hold personal data and are read
    through the executions API, under its permissions. ``error_type`` names the failure class.
    """

    kind: str  # "step" | "execution" | "lagged"
    workspace_id: str
    execution_id: str
    workflow_id: str
    workflow_version: int
    status: str  # the step's status, or the execution's final status
    at: datetime  # when the step finished / the execution ended
    seq: int | None = None
    node_id: str | None = None
    node_type: str | None = None
    attempt: int | None = None
    started_at: datetime | None = None
    error_type: str | None = None
    id: str = ""  # the feed's position (set by the feed on delivery; Last-Event-ID resumes)

    def to_json(self) -> dict[str, Any]:
        """The wire form (SSE ``data:``, GraphQL), camelCase like the REST API. Every key is
        always present (``null`` when it does not apply), so clients read one shape; the Redis
        feed stores this form too and reads it back with :func:`event_from_json`."""
        return {
            "kind": self.kind,
            "workspaceId": self.workspace_id,
            "executionId": self.execution_id,
            "workflowId": self.workflow_id,
            "workflowVersion": self.workflow_version,
            "status": self.status,
            "at": self.at.isoformat(),
            "seq": self.seq,
            "nodeId": self.node_id,
            "nodeType": self.node_type,
            "attempt": self.attempt,
            "startedAt": self.started_at.isoformat() if self.started_at else None,
            "errorType": self.error_type,
            "id": self.id,
        }


def event_from_json(data: Mapping[str, Any], position: str) -> StepEvent:
    """The inverse of :meth:`StepEvent.to_json`, placed at ``position`` of the feed (the stored
    ``id`` is ignored: a Redis entry learns its id only once appended). ``KeyError`` /
    ``ValueError`` / ``TypeError`` on a malformed document."""
    started = data.get("startedAt")
    return StepEvent(
        kind=str(data["kind"]),
        workspace_id=str(data["workspaceId"]),
        execution_id=str(data["executionId"]),
        workflow_id=str(data["workflowId"]),
        workflow_version=int(data["workflowVersion"]),
        status=str(data["status"]),
        at=datetime.fromisoformat(data["at"]),
        seq=_optional_int(data.get("seq")),
        node_id=_optional_str(data.get("nodeId")),
        node_type=_optional_str(data.get("nodeType")),
        attempt=_optional_int(data.get("attempt")),
        started_at=datetime.fromisoformat(started) if started is not None else None,
        error_type=_optional_str(data.get("errorType")),
        id=position,
    )


def lagged(workspace_id: str, at: datetime) -> StepEvent:
    """The marker a subscriber receives in place of the events it was too slow to take. It has
    no position (SSE sends no ``id:``), so a client that reconnects with the last id it saw
    gets back what the feed still keeps."""
    return StepEvent(LAGGED, workspace_id, "", "", 0, LAGGED, at)


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class StepFilter:
    """What a subscriber wants: one workspace, optionally some workflows and statuses.
    ``workflow_ids=None`` is every workflow the subscriber may read."""

    workspace_id: str
    workflow_ids: frozenset[str] | None = None
    statuses: frozenset[str] | None = None

    def matches(self, event: StepEvent) -> bool:
        if event.workspace_id != self.workspace_id:
            return False
        if self.workflow_ids is not None and event.workflow_id not in self.workflow_ids:
            return False
        return self.statuses is None or event.status in self.statuses


#: How long a workspace counts as watched after its last subscriber left: a client that
#: reconnects within it resumes from its ``Last-Event-ID`` without a gap.
WATCH_SECONDS = 600.0


class StepFeed(Protocol):
    async def watched(self, workspace_ids: Collection[str]) -> set[str]:
        """Those of ``workspace_ids`` that someone watches, or watched in the last
        :data:`WATCH_SECONDS`: the feed keeps only their events, so a worker builds and
        publishes nothing for a workspace nobody looks at. May be a second stale."""
        ...

    async def publish(self, events: Sequence[StepEvent]) -> None:
        """Best effort, one round trip for the batch; never raises for a feed outage. Events
        of workspaces not :meth:`watched` are dropped."""
        ...

    def subscribe(
        self, filter: StepFilter, *, after: str | None = None
    ) -> AsyncIterator[StepEvent]:
        """Events matching ``filter`` from now on (or after position ``after``, as far back as
        the feed keeps). Ends only when the caller stops iterating or the feed closes."""
        ...

    async def close(self) -> None: ...
