"""The structural pass: parse a document with the format models and keep every usable part.

The whole document is validated once with :class:`WorkflowDefinition`, which reports every
structural error at once. When that fails there is no definition, but the triggers, exit criteria
and nodes that had no error of their own are parsed one by one, so the checks that follow (CEL,
templates, actions) still run on them: a typo in one node never hides a problem in another.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.alias_generators import to_snake

from campaignflow.domain.problems import PathPart, Problem
from campaignflow.domain.pydantic_problems import problems_from_error
from campaignflow.domain.workflow import (
    NODE_TYPES,
    TRIGGER_TYPES,
    ExitCriterion,
    Node,
    Trigger,
    WorkflowDefinition,
)

T = TypeVar("T")
_TAG_CHOICES = {"nodes": NODE_TYPES, "triggers": TRIGGER_TYPES}
_TRIGGER: TypeAdapter[Trigger] = TypeAdapter(Trigger)
_EXIT: TypeAdapter[ExitCriterion] = TypeAdapter(ExitCriterion)
_NODE: TypeAdapter[Node] = TypeAdapter(Node)


def field_vocabulary(root: type[BaseModel]) -> frozenset[str]:
    """Every key (alias) of ``root`` and the models it contains, for "did you mean" hints."""
    seen: set[type[BaseModel]] = set()
    pending: list[type[BaseModel]] = [root]
    words: set[str] = set()
    while pending:
        model = pending.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, info in model.model_fields.items():
            words.add(info.alias or name)
            pending.extend(_models_in(info.annotation))
    return frozenset(words)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    nested = [*getattr(annotation, "__args__", ()), *getattr(annotation, "__metadata__", ())]
    origin = getattr(annotation, "__origin__", None)
    if origin is not None:
        nested.append(origin)
    return [model for arg in nested if arg is not annotation for model in _models_in(arg)]


VOCABULARY = field_vocabulary(WorkflowDefinition)


@dataclass(frozen=True, slots=True)
class Section(Generic[T]):
    """The parsed items of one list of the document, with their positions and its key."""

    key: str
    items: tuple[tuple[int, T], ...]


@dataclass(frozen=True, slots=True)
class Structure:
    """Outcome of the structural pass."""

    definition: WorkflowDefinition | None
    problems: tuple[Problem, ...]
    triggers: Section[Trigger]
    exit_criteria: Section[ExitCriterion]
    nodes: Section[Node]


def parse_structure(document: Mapping[str, object]) -> Structure:
    """Validate ``document`` against the format models; keep what parsed."""
    try:
        definition = WorkflowDefinition.model_validate(document)
    except ValidationError as exc:
        problems = problems_from_error(
            exc, document, vocabulary=VOCABULARY, tag_choices=_TAG_CHOICES
        )
        return _partial(document, tuple(problems))
    return Structure(
        definition,
        (),
        Section(_key(document, "triggers"), tuple(enumerate(definition.triggers))),
        Section(_key(document, "exitCriteria"), tuple(enumerate(definition.exit_criteria))),
        Section(_key(document, "nodes"), tuple(enumerate(definition.nodes))),
    )


def _partial(document: Mapping[str, object], problems: tuple[Problem, ...]) -> Structure:
    broken = {problem.path[:2] for problem in problems if len(problem.path) >= 2}
    return Structure(
        None,
        problems,
        _salvage(document, "triggers", _TRIGGER, broken),
        _salvage(document, "exitCriteria", _EXIT, broken),
        _salvage(document, "nodes", _NODE, broken),
    )


def _salvage(
    document: Mapping[str, object],
    alias: str,
    adapter: TypeAdapter[T],
    broken: set[tuple[PathPart, ...]],
) -> Section[T]:
    key = _key(document, alias)
    raw = document.get(key)
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        return Section(key, ())
    items: list[tuple[int, T]] = []
    for index, item in enumerate(raw):
        if (key, index) in broken:
            continue
        try:
            items.append((index, adapter.validate_python(item)))
        except ValidationError:
            continue  # its problems were reported by the whole-document pass
    return Section(key, tuple(items))


def _key(document: Mapping[str, object], alias: str) -> str:
    """The key the user wrote: the camelCase alias, or its snake_case field name."""
    snake = to_snake(alias)
    return snake if alias not in document and snake in document else alias
