"""Alert rules: their format, the metric catalog, and the state machine that decides when to
notify. Pure: no I/O, no clock (``now`` is always handed in).

A rule watches one metric of the catalog over a trailing ``window`` (failed executions in the
last 5 minutes, the oldest due task's lag, …), compares it with a threshold and, once the
condition has held for ``for``, fires. A firing rule notifies once when it fires, once more
every ``repeatInterval`` while it keeps firing (if one is set), and once when it resolves:

    ok ──breach──▶ pending ──held for `for`──▶ firing ──clear──▶ ok (resolved)
     ▲               │ clear                     │ breach, repeatInterval passed: repeat
     └───────────────┘                           ▼

With ``for`` = 0 a breach goes straight from ok to firing. "No value" (a failure rate over too
few finished executions, a disabled rule) counts as clear, so an incident never stays open
because its metric went quiet.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar

from campaignflow.domain.durations import InvalidDuration, parse_duration
from campaignflow.domain.problems import PathPart, Problem

_T = TypeVar("_T", bound=str)
Comparator = Literal[">", ">=", "<", "<="]
Severity = Literal["info", "warning", "critical"]
RuleStatus = Literal["ok", "pending", "firing"]
NotificationKind = Literal["fire", "repeat", "resolve"]

COMPARATORS: tuple[Comparator, ...] = (">", ">=", "<", "<=")
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "critical")
RULE_STATUSES: tuple[RuleStatus, ...] = ("ok", "pending", "firing")
NOTIFICATION_KINDS: tuple[NotificationKind, ...] = ("fire", "repeat", "resolve")

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._:-]{0,99}$")
MIN_WINDOW = timedelta(seconds=30)
MAX_WINDOW = timedelta(days=7)
MIN_REPEAT = timedelta(minutes=1)
MAX_CHANNELS = 10
DEFAULT_MIN_SAMPLES = 10
_SHORT_DURATION = re.compile(r"^(\d{1,6})([smhd])$")
_SHORT_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
_FIELDS = frozenset(
    {
        "name",
        "metric",
        "filters",
        "comparator",
        "threshold",
        "window",
        "for",
        "severity",
        "channels",
        "repeatInterval",
        "enabled",
        "description",
    }
)


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One metric of the catalog: what it counts and which filters narrow it."""

    name: str
    unit: str
    description: str
    filters: frozenset[str] = frozenset()
    windowed: bool = True  # False: a gauge of "now" (the window is ignored)


_WORKFLOW = frozenset({"workflowId"})
METRICS: Mapping[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec(
            "executions.failed", "count", "Executions that failed within the window.", _WORKFLOW
        ),
        MetricSpec(
            "executions.failure_rate",
            "ratio",
            "Failed / finished (completed + failed) executions that finished within the window, "
            "0..1; no value below `minSamples` finished executions (default 10).",
            _WORKFLOW | {"minSamples"},
        ),
        MetricSpec(
            "executions.started", "count", "Executions started within the window.", _WORKFLOW
        ),
        MetricSpec(
            "dead_letters.created",
            "count",
            "Steps that went to the dead-letter queue within the window.",
            _WORKFLOW,
        ),
        MetricSpec(
            "dead_letters.open",
            "count",
            "Dead letters not yet replayed or discarded (a gauge).",
            _WORKFLOW,
            windowed=False,
        ),
        MetricSpec(
            "queue.lag_seconds",
            "seconds",
            "How late the oldest due, unclaimed task of the workspace is (a gauge; 0 if none).",
            windowed=False,
        ),
    )
}


@dataclass(frozen=True, slots=True)
class AlertRule:
    """A validated rule. ``document`` is the canonical JSON form the API returns."""

    name: str
    metric: str
    comparator: Comparator
    threshold: float
    window: timedelta
    for_: timedelta
    severity: Severity
    channels: tuple[str, ...]
    repeat_interval: timedelta | None
    enabled: bool
    workflow_id: str | None = None
    min_samples: int = DEFAULT_MIN_SAMPLES
    description: str | None = None
    document: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def breached(self, value: float | None) -> bool:
        """Whether ``value`` meets the condition; no value never does."""
        if value is None or math.isnan(value):
            return False
        return bool(_COMPARE[self.comparator](value, self.threshold))


_COMPARE = {
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}


def parse_span(text: object) -> timedelta:
    """A duration as ISO-8601 (``PT5M``) or in the short form monitoring tools use (``5m``,
    ``30s``, ``2h``, ``1d``); :class:`InvalidDuration` otherwise. Calendar units (months,
    years) are refused: a window must be a fixed length."""
    if not isinstance(text, str):
        raise InvalidDuration("must be a string such as '5m' or 'PT5M'")
    short = _SHORT_DURATION.fullmatch(text)
    if short is not None:
        return timedelta(seconds=int(short[1]) * _SHORT_UNITS[short[2]])
    duration = parse_duration(text)
    if duration.years or duration.months:
        raise InvalidDuration(f"{text!r} has months or years; use days, e.g. P30D")
    return duration.exact


def validate_rule(document: object) -> tuple[AlertRule | None, list[Problem]]:
    """The rule in ``document`` and every problem found in it (the rule is None if any)."""
    problems: list[Problem] = []
    if not isinstance(document, Mapping):
        return None, [Problem((), "the rule must be a JSON object", "type")]
    for key in sorted(set(document) - _FIELDS, key=str):
        problems.append(Problem((str(key),), f"unknown member {key!r}", "unknown_field"))
    name = _name(document, problems)
    metric = _metric(document, problems)
    spec = METRICS.get(metric or "")
    filters = _filters(document, spec, problems)
    comparator = _choice(document, "comparator", COMPARATORS, None, problems)
    threshold = _threshold(document, problems)
    window = _span(document, "window", problems, required=spec is None or spec.windowed)
    for_ = _span(document, "for", problems, required=False) or timedelta(0)
    severity = _choice(document, "severity", SEVERITIES, "warning", problems)
    channels = _channels(document, problems)
    repeat = _span(document, "repeatInterval", problems, required=False)
    if repeat is not None and repeat < MIN_REPEAT:
        problems.append(Problem(("repeatInterval",), "must be at least 1 minute", "too_short"))
    enabled = document.get("enabled", True)
    if not isinstance(enabled, bool):
        problems.append(Problem(("enabled",), "must be true or false", "type"))
    description = document.get("description")
    if description is not None and (not isinstance(description, str) or len(description) > 500):
        problems.append(Problem(("description",), "must be a string of at most 500", "type"))
    if problems or name is None or metric is None or comparator is None or threshold is None:
        return None, problems
    assert severity is not None  # defaulted
    rule = AlertRule(
        name=name,
        metric=metric,
        comparator=comparator,
        threshold=threshold,
        window=window or timedelta(0),
        for_=for_,
        severity=severity,
        channels=channels,
        repeat_interval=repeat,
        enabled=bool(enabled),
        workflow_id=filters.get("workflowId"),
        min_samples=int(filters.get("minSamples", DEFAULT_MIN_SAMPLES)),
        description=description if isinstance(description, str) else None,
    )
    return replace(rule, document=rule_document(rule, document)), []


def rule_document(rule: AlertRule, source: Mapping[str, Any]) -> dict[str, Any]:
    """The canonical JSON of a rule: every member, durations as the user wrote them."""
    filters: dict[str, Any] = {}
    if rule.workflow_id is not None:
        filters["workflowId"] = rule.workflow_id
    if rule.metric == "executions.failure_rate":
        filters["minSamples"] = rule.min_samples
    return {
        "name": rule.name,
        "description": rule.description,
        "metric": rule.metric,
        "filters": filters,
        "comparator": rule.comparator,
        "threshold": rule.threshold,
        "window": source.get("window") if rule.window else None,
        "for": source.get("for", "0s"),
        "severity": rule.severity,
        "channels": list(rule.channels),
        "repeatInterval": source.get("repeatInterval"),
        "enabled": rule.enabled,
    }


def _name(document: Mapping[str, Any], problems: list[Problem]) -> str | None:
    name = document.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        problems.append(
            Problem(("name",), "required: 1-100 letters, digits, spaces or ._:-", "invalid_name")
        )
        return None
    return name


def _metric(document: Mapping[str, Any], problems: list[Problem]) -> str | None:
    metric = document.get("metric")
    if not isinstance(metric, str) or metric not in METRICS:
        known = ", ".join(METRICS)
        problems.append(
            Problem(("metric",), f"unknown metric {metric!r}; one of {known}", "unknown_metric")
        )
        return None
    return str(metric)


def _filters(
    document: Mapping[str, Any], spec: MetricSpec | None, problems: list[Problem]
) -> dict[str, Any]:
    filters = document.get("filters") or {}
    if not isinstance(filters, Mapping):
        problems.append(Problem(("filters",), "must be an object", "type"))
        return {}
    allowed = spec.filters if spec is not None else frozenset()
    for key in filters:
        if spec is not None and key not in allowed:
            message = f"{spec.name} has no filter {key!r}" + (
                f"; it supports {', '.join(sorted(allowed))}" if allowed else ""
            )
            problems.append(Problem(("filters", str(key)), message, "unknown_filter"))
    workflow = filters.get("workflowId")
    if workflow is not None and (not isinstance(workflow, str) or not 0 < len(workflow) <= 64):
        problems.append(Problem(("filters", "workflowId"), "must be a workflow id", "type"))
    samples = filters.get("minSamples", DEFAULT_MIN_SAMPLES)
    if isinstance(samples, bool) or not isinstance(samples, int) or not 1 <= samples <= 10**6:
        problems.append(
            Problem(("filters", "minSamples"), "must be an integer from 1", "out_of_range")
        )
    return dict(filters)


def _choice(
    document: Mapping[str, Any],
    key: str,
    values: tuple[_T, ...],
    default: _T | None,
    problems: list[Problem],
) -> _T | None:
    value = document.get(key, default)
    for candidate in values:
        if value == candidate:
            return candidate
    shown = ", ".join(values)
    problems.append(Problem((key,), f"must be one of {shown}", "invalid_choice"))
    return None


def _threshold(document: Mapping[str, Any], problems: list[Problem]) -> float | None:
    value = document.get("threshold")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        problems.append(Problem(("threshold",), "required: a finite number", "type"))
        return None
    return float(value)


def _span(
    document: Mapping[str, Any], key: str, problems: list[Problem], *, required: bool
) -> timedelta | None:
    if document.get(key) is None:
        if required:
            problems.append(Problem((key,), "required, e.g. '5m' or 'PT5M'", "required"))
        return None
    try:
        span = parse_span(document[key])
    except InvalidDuration as exc:
        problems.append(Problem((key,), exc.message, "invalid_duration"))
        return None
    if key == "window" and not MIN_WINDOW <= span <= MAX_WINDOW:
        problems.append(Problem((key,), "must be from 30 seconds to 7 days", "out_of_range"))
    if key == "for" and span > MAX_WINDOW:
        problems.append(Problem((key,), "must be at most 7 days", "out_of_range"))
    return span


def _channels(document: Mapping[str, Any], problems: list[Problem]) -> tuple[str, ...]:
    channels = document.get("channels", [])
    if not isinstance(channels, list) or len(channels) > MAX_CHANNELS:
        problems.append(
            Problem(("channels",), f"must be a list of at most {MAX_CHANNELS} ids", "type")
        )
        return ()
    seen: list[str] = []
    for index, channel in enumerate(channels):
        path: tuple[PathPart, ...] = ("channels", index)
        if not isinstance(channel, str) or not 0 < len(channel) <= 64:
            problems.append(Problem(path, "must be a channel id", "type"))
        elif channel in seen:
            problems.append(Problem(path, f"channel {channel!r} is listed twice", "duplicate"))
        else:
            seen.append(channel)
    return tuple(seen)


# ------------------------------------------------------------------------- the state machine


@dataclass(frozen=True, slots=True)
class RuleState:
    """Where a rule is: ``since`` is when it entered ``status``; ``notified_at`` and
    ``repeats`` belong to the open incident (firing only)."""

    status: RuleStatus = "ok"
    since: datetime | None = None
    notified_at: datetime | None = None
    repeats: int = 0


@dataclass(frozen=True, slots=True)
class Notify:
    """A notification to send: ``fire``, ``repeat`` number ``sequence`` (1, 2, …) or
    ``resolve``."""

    kind: NotificationKind
    sequence: int = 0


@dataclass(frozen=True, slots=True)
class Transition:
    state: RuleState
    notify: Notify | None = None

    @property
    def changed(self) -> bool:
        return self.notify is not None


def decide(rule: AlertRule, state: RuleState, value: float | None, now: datetime) -> Transition:
    """The next state of ``rule`` given the metric's ``value`` at ``now``, and what to send.

    Exactly one ``fire`` opens an incident and exactly one ``resolve`` closes it; a
    ``repeat`` comes only while firing, and only once ``repeatInterval`` has passed since the
    last notification. A disabled rule behaves as if its condition were clear.
    """
    breached = rule.enabled and rule.breached(value)
    if state.status == "firing":
        return _while_firing(rule, state, breached, now)
    if not breached:
        return Transition(RuleState())
    since = state.since if state.status == "pending" and state.since is not None else now
    if now - since >= rule.for_:
        return Transition(RuleState("firing", now, now, 0), Notify("fire"))
    return Transition(RuleState("pending", since))


def _while_firing(rule: AlertRule, state: RuleState, breached: bool, now: datetime) -> Transition:
    if not breached:
        return Transition(RuleState(), Notify("resolve"))
    last = state.notified_at or state.since or now
    if rule.repeat_interval is not None and now - last >= rule.repeat_interval:
        repeats = state.repeats + 1
        return Transition(
            replace(state, notified_at=now, repeats=repeats), Notify("repeat", repeats)
        )
    return Transition(state)
