"""The content pass: compile every CEL expression, parse every template, check every action.

Runs on the parts the structural pass could parse. Compiled expressions and parsed templates are
kept, keyed by JSON Pointer, so whoever validated a definition never compiles it again.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from liquid import BoundTemplate
from pydantic import ValidationError

from campaignflow.domain.actions import ActionCatalog, ActionSpec, UnknownAction
from campaignflow.domain.cel import CelCompileError, CelContext, CompiledExpression, environment
from campaignflow.domain.problems import PathPart, Problem, to_pointer
from campaignflow.domain.pydantic_problems import problems_from_error
from campaignflow.domain.structure import Section, field_vocabulary
from campaignflow.domain.templates import TemplateIssue, is_template, parse_template
from campaignflow.domain.workflow import (
    ActionConfig,
    ActionNode,
    ConditionNode,
    ExitCriterion,
    Node,
    Trigger,
    WaitForEventNode,
)

Path = tuple[PathPart, ...]


@dataclass(slots=True)
class ContentCheck:
    """Accumulates what one validation run found; created per run, never shared."""

    catalog: ActionCatalog
    problems: list[Problem] = field(default_factory=list)
    expressions: dict[str, CompiledExpression] = field(default_factory=dict)
    templates: dict[str, BoundTemplate] = field(default_factory=dict)

    def triggers(self, section: Section[Trigger]) -> None:
        for index, trigger in section.items:
            path = (section.key, index)
            self.condition((*path, "condition"), trigger.condition, CelContext.TRIGGER)
            if trigger.dedup is not None:
                self.expression((*path, "dedup", "key"), trigger.dedup.key, CelContext.TRIGGER)

    def exit_criteria(self, section: Section[ExitCriterion]) -> None:
        for index, criterion in section.items:
            path = (section.key, index, "condition")
            self.condition(path, criterion.condition, CelContext.TRIGGER)

    def nodes(self, section: Section[Node]) -> None:
        for index, node in section.items:
            self.node((section.key, index), node)

    def node(self, path: Path, node: Node) -> None:
        config = (*path, "config")
        if isinstance(node, ConditionNode):
            for position, branch in enumerate(node.config.branches):
                self.condition(
                    (*config, "branches", position, "when"), branch.when, CelContext.NODE
                )
        elif isinstance(node, WaitForEventNode):
            self.condition((*config, "condition"), node.config.condition, CelContext.NODE)
        elif isinstance(node, ActionNode):
            self.action(config, node.config)

    def condition(self, path: Path, source: str | None, context: CelContext) -> None:
        compiled = self.expression(path, source, context)
        if compiled is not None and not compiled.may_be_boolean:
            self.problems.append(
                Problem(
                    path,
                    f"must be a boolean condition, but the expression returns "
                    f"{compiled.return_type.lower()}",
                    "cel_type",
                    {"line": 1, "column": 1},
                )
            )

    def expression(
        self, path: Path, source: str | None, context: CelContext
    ) -> CompiledExpression | None:
        if source is None:
            return None
        try:
            compiled = environment(context).compile(source)
        except CelCompileError as exc:
            code = "cel_syntax" if exc.is_syntax_error else "cel_check"
            where: dict[str, object] = {"line": exc.line, "column": exc.column}
            self.problems.append(Problem(path, exc.message, code, extra=where))
            return None
        self.expressions[to_pointer(path)] = compiled
        return compiled

    def action(self, path: Path, config: ActionConfig) -> None:
        try:
            spec = self.catalog.resolve(config.action)
        except UnknownAction as exc:
            self.problems.append(
                Problem((*path, "action"), exc.message, "unknown_action", {"known": exc.known})
            )
            return
        if spec.connector is not None and config.connection is None:
            self.problems.append(
                Problem(
                    (*path, "connection"),
                    f"{config.action} runs through a connection: name the workspace's "
                    f"{spec.connector} connection here",
                    "missing_connection",
                )
            )
        elif spec.connector is None and config.connection is not None:
            self.problems.append(
                Problem(
                    (*path, "connection"),
                    f"{config.action} is built in and takes no connection",
                    "unexpected_connection",
                )
            )
        params_path = (*path, "params")
        self.params(params_path, spec, config.params)
        for key, value in config.params.items():
            if key in spec.expression_params:
                self.expression_map((*params_path, key), value)
            else:
                self.template_strings((*params_path, key), value)

    def params(self, path: Path, spec: ActionSpec, params: Mapping[str, object]) -> None:
        if spec.params is None:
            return
        try:
            spec.params.model_validate(params)
        except ValidationError as exc:
            known = field_vocabulary(spec.params)
            found = problems_from_error(exc, params, prefix=path, vocabulary=known)
            self.problems += [
                problem for problem in found if not _templated(params, problem.path[len(path) :])
            ]

    def expression_map(self, path: Path, value: object) -> None:
        """CEL-valued parameters (``set.variables``): each string value is compiled."""
        if isinstance(value, Mapping):
            for key, source in value.items():
                if isinstance(source, str) and source:
                    self.expression((*path, key), source, CelContext.NODE)

    def template_strings(self, path: Path, value: object) -> None:
        for where, text in _strings(path, value):
            if not is_template(text):
                continue
            parsed = parse_template(text)
            if isinstance(parsed, TemplateIssue):
                self.problems.append(_template_problem(where, parsed))
            else:
                self.templates[to_pointer(where)] = parsed


def _templated(document: object, path: Path) -> bool:
    """Whether the value at ``path`` is a Liquid template string: its type and format are known
    only once rendered, so the operation's model checks it again at run time, not on save."""
    value = document
    for part in path:
        if isinstance(value, Mapping) and isinstance(part, str) and part in value:
            value = value[part]
        elif isinstance(value, Sequence) and not isinstance(value, str) and isinstance(part, int):
            if not 0 <= part < len(value):
                return False
            value = value[part]
        else:
            return False
    return isinstance(value, str) and is_template(value)


def _template_problem(path: Path, issue: TemplateIssue) -> Problem:
    extra: dict[str, object] = {}
    if issue.line is not None:
        extra = {"line": issue.line, "column": issue.column}
    return Problem(path, issue.message, issue.code, extra)


def _strings(path: Path, value: object) -> Iterator[tuple[Path, str]]:
    """Every string inside a JSON value with its path, iteratively (nesting depth is unbounded)."""
    pending: list[tuple[Path, object]] = [(path, value)]
    while pending:
        where, item = pending.pop()
        if isinstance(item, str):
            yield where, item
        elif isinstance(item, Mapping):
            pending.extend(((*where, key), child) for key, child in item.items())
        elif isinstance(item, Sequence):
            pending.extend(((*where, position), child) for position, child in enumerate(item))
