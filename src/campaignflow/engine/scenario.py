"""A dry-run scenario: who, starting when, which events at which times, and what the actions
answer; parsed with every problem pointed at, and checked against the workflow it is for."""

from __future__ import annotations

import copy
import difflib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Self

from pydantic import Field, JsonValue, StrictBool, StrictInt, ValidationError, model_validator

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
from campaignflow.domain.workflow import ActionNode, WorkflowDefinition
from campaignflow.errors import InvalidScenario

#: Where the virtual clock starts when the scenario gives neither ``start`` nor a timed event.
EPOCH: Final = datetime(2026, 1, 1, tzinfo=UTC)
#: Actions the interpreter runs itself; the scenario cannot override them.
ENGINE_ACTIONS: Final = frozenset({"set", "log"})
#: Virtual time stays in this range: with durations of at most ten years on top, every instant
#: the run computes stays far inside what a datetime can hold.
EARLIEST: Final = datetime(1970, 1, 1, tzinfo=UTC)
LATEST: Final = datetime(3000, 1, 1, tzinfo=UTC)

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
    return [
        *_range_problems(scenario),
        *_zone_problems(scenario.contact),
        *late,
        *(p for p in overrides if p is not None),
    ]


def _range_problems(scenario: Scenario) -> list[Problem]:
    stamps: list[tuple[tuple[str | int, ...], datetime | None]] = [(("start",), scenario.start)]
    stamps += [(("events", i, "at"), event.at) for i, event in enumerate(scenario.events)]
    window = f"{format_timestamp(EARLIEST)} … {format_timestamp(LATEST)}"
    return [
        Problem(path, f"must lie between {window}", "out_of_range")
        for path, stamp in stamps
        if stamp is not None and not EARLIEST <= stamp < LATEST
    ]


def _override_problem(node_id: str, definition: WorkflowDefinition) -> Problem | None:
    node = definition.nodes_by_id.get(node_id)
    where = ("actions", node_id)
    if node is None:
        close = difflib.get_close_matches(node_id, list(definition.nodes_by_id), n=1, cutoff=0.7)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return Problem(where, f"no node has id {node_id!r}{hint}", "unknown_node")
    if not isinstance(node, ActionNode):
        return Problem(where, f"{node_id!r} is a {node.type} node, not an action", "invalid_value")
    if node.config.action in ENGINE_ACTIONS:
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
