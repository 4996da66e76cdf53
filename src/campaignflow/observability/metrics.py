"""The Prometheus metric families of every campaignflow process, and the helpers that feed them.

One registry of our own (:data:`REGISTRY`), not ``prometheus_client``'s global one: what
``/metrics`` serves is exactly ours plus the process and Python collectors, nothing a library
registered by importing itself, and tests read the same object. Metrics are process-wide and
cross tenants, which is why ``/metrics`` is an operator's endpoint (see ``docs/metrics.md``).

Labels never carry personal or unbounded data: workspaces, workflow and node ids (bounded by
what is deployed), node types, statuses, providers and route templates — never a contact, an
execution id or a raw path. Helpers that run on hot paths (every event, every step) cache the
labelled child of a family in a dict, so a sample costs a dict lookup and an add, not the
family's lock and label validation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Final, Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

REGISTRY: Final = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

# Latencies of our own work (routing, an API request): milliseconds matter.
FAST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# A provider's answer: tens of milliseconds to the client's timeout.
CALL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# A step: an action's call (milliseconds) up to a delay or a wait (minutes to days).
STEP_BUCKETS = (0.001, 0.01, 0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 3600.0, 86_400.0, 604_800.0)
# How late a due task is claimed: a healthy worker is within a second.
LATENESS_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

EVENTS_INGESTED: Final = Counter(
    "campaignflow_events_ingested",
    "Events accepted onto the event bus (durable), by workspace and source "
    "(api, segment, webhook, sync).",
    ["workspace", "source"],
    registry=REGISTRY,
)
TRIGGER_MATCH: Final = Histogram(
    "campaignflow_trigger_match_seconds",
    "From an event's arrival to the commit of the executions it started (one sample per "
    "event that started at least one execution).",
    buckets=FAST_BUCKETS,
    registry=REGISTRY,
)
EXECUTIONS_STARTED: Final = Counter(
    "campaignflow_executions_started",
    "Executions that began running (their first step was committed).",
    ["workspace", "workflow"],
    registry=REGISTRY,
)
EXECUTIONS_FINISHED: Final = Counter(
    "campaignflow_executions_finished",
    "Executions that ended, by final status (completed, failed, cancelled).",
    ["workspace", "workflow", "status"],
    registry=REGISTRY,
)
STEP_DURATION: Final = Histogram(
    "campaignflow_step_duration_seconds",
    "Duration of committed steps by node type and step status: an action's call, a delay's "
    "or a wait's time parked, near zero for control nodes.",
    ["node_type", "status"],
    buckets=STEP_BUCKETS,
    registry=REGISTRY,
)
STEP_RETRIES: Final = Counter(
    "campaignflow_step_retries",
    "Failed step attempts for which a retry was scheduled.",
    ["workspace", "workflow", "node_type"],
    registry=REGISTRY,
)
DEAD_LETTERS: Final = Counter(
    "campaignflow_dead_letters",
    "Dead letters created (steps that failed for good).",
    ["workspace", "workflow"],
    registry=REGISTRY,
)
DEAD_LETTERS_OPEN: Final = Gauge(
    "campaignflow_dead_letters_open",
    "Dead letters waiting for a replay or a discard (sampled by each worker process).",
    ["workspace", "workflow"],
    registry=REGISTRY,
)
QUEUE_DEPTH: Final = Gauge(
    "campaignflow_queue_depth",
    "Tasks due now and not yet taken by a worker (sampled by each worker process; "
    "aggregate with max without(instance)).",
    ["workspace", "workflow", "node"],
    registry=REGISTRY,
)
QUEUE_LAG: Final = Gauge(
    "campaignflow_queue_lag_seconds",
    "Age of the oldest task that is due and not yet taken (sampled by each worker process; "
    "aggregate with max without(instance)).",
    ["workspace", "workflow", "node"],
    registry=REGISTRY,
)
TIMER_LATENESS: Final = Histogram(
    "campaignflow_timer_lateness_seconds",
    "How long after its due time a task (timer, retry or ready step) was claimed.",
    buckets=LATENESS_BUCKETS,
    registry=REGISTRY,
)
INTEGRATION_REQUESTS: Final = Counter(
    "campaignflow_integration_requests",
    "Outbound requests to providers (the built-in http action is provider http), by HTTP "
    "status code, or timeout / error when no answer came.",
    ["provider", "operation", "status"],
    registry=REGISTRY,
)
INTEGRATION_DURATION: Final = Histogram(
    "campaignflow_integration_request_duration_seconds",
    "Duration of outbound provider requests, answered or not.",
    ["provider"],
    buckets=CALL_BUCKETS,
    registry=REGISTRY,
)
CIRCUIT_BREAKER: Final = Gauge(
    "campaignflow_circuit_breaker_state",
    "The worst circuit breaker state this process last saw among a provider's accounts: "
    "0 closed, 1 half-open, 2 open.",
    ["provider"],
    registry=REGISTRY,
)
HTTP_REQUESTS: Final = Counter(
    "campaignflow_http_requests",
    "HTTP requests served by the API, by method, route template and status.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_DURATION: Final = Histogram(
    "campaignflow_http_request_duration_seconds",
    "Duration of HTTP requests served by the API, by method and route template.",
    ["method", "route"],
    buckets=FAST_BUCKETS,
    registry=REGISTRY,
)

BREAKER_VALUES: Final = {"closed": 0, "half_open": 1, "open": 2}


Child = TypeVar("Child")


class Children(Generic[Child]):
    """Labelled children of one family, cached by their label values (hot paths)."""

    __slots__ = ("_cache", "_make")

    def __init__(self, make: Callable[..., Child]) -> None:
        self._make = make
        self._cache: dict[tuple[str, ...], Child] = {}

    def get(self, *values: str) -> Child:
        child = self._cache.get(values)
        if child is None:
            child = self._cache[values] = self._make(*values)
        return child


_ingested = Children(EVENTS_INGESTED.labels)
_started = Children(EXECUTIONS_STARTED.labels)
_finished = Children(EXECUTIONS_FINISHED.labels)
_steps = Children(STEP_DURATION.labels)
_retries = Children(STEP_RETRIES.labels)
_dead = Children(DEAD_LETTERS.labels)
_requests = Children(INTEGRATION_REQUESTS.labels)
_request_seconds = Children(INTEGRATION_DURATION.labels)
_http = Children(HTTP_REQUESTS.labels)
_http_seconds = Children(HTTP_DURATION.labels)


def events_ingested(workspace_ids: Iterable[str], source: str) -> None:
    """Count accepted events, one workspace id per event (a batch is nearly always one)."""
    counts: dict[str, int] = {}
    for workspace_id in workspace_ids:
        counts[workspace_id] = counts.get(workspace_id, 0) + 1
    for workspace_id, count in counts.items():
        _ingested.get(workspace_id, source).inc(count)


def trigger_matched(received: Iterable[datetime], now: datetime) -> None:
    """One sample per event that started executions: ``now`` (after the commit) minus its
    arrival; a clock behind the sender's counts as zero."""
    for moment in received:
        TRIGGER_MATCH.observe(max(0.0, (now - moment).total_seconds()))


def execution_started(workspace_id: str, workflow_id: str) -> None:
    _started.get(workspace_id, workflow_id).inc()


def execution_finished(workspace_id: str, workflow_id: str, status: str, count: int = 1) -> None:
    _finished.get(workspace_id, workflow_id, status).inc(count)


def step_finished(node_type: str, status: str, seconds: float) -> None:
    _steps.get(node_type, status).observe(max(0.0, seconds))


def step_retried(workspace_id: str, workflow_id: str, node_type: str) -> None:
    _retries.get(workspace_id, workflow_id, node_type).inc()


def dead_letter_created(workspace_id: str, workflow_id: str, count: int = 1) -> None:
    _dead.get(workspace_id, workflow_id).inc(count)


def integration_request(provider: str, operation: str, status: str, seconds: float) -> None:
    """An outbound request ended: ``status`` is the HTTP code, ``timeout`` or ``error``."""
    _requests.get(provider, operation, status).inc()
    _request_seconds.get(provider).observe(seconds)


def http_request(method: str, route: str, status: int, seconds: float) -> None:
    _http.get(method, route, str(status)).inc()
    _http_seconds.get(method, route).observe(seconds)


class BreakerStates:
    """The breaker gauge per provider: the worst state seen among its accounts, since one
    open account is what an operator must see (the account ids stay out of the labels)."""

    def __init__(self, gauge: Gauge = CIRCUIT_BREAKER) -> None:
        self._gauge = gauge
        self._modes: dict[str, dict[str, int]] = {}

    def observe(self, provider: str, account: str, mode: str) -> None:
        value = BREAKER_VALUES.get(mode, 0)
        accounts = self._modes.setdefault(provider, {})
        if accounts.get(account) == value:
            return
        accounts[account] = value
        self._gauge.labels(provider).set(max(accounts.values()))


BREAKERS: Final = BreakerStates()
