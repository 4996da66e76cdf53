"""Validate a workflow document and report every problem in one pass.

``validate_definition`` is what the API, the CLI (``campaignflow validate``) and ``apply`` call.
It runs three passes that do not hide each other's findings: the structural pass (format models),
the graph checks (read leniently from the document), and the content pass (CEL, Liquid, actions).
Each problem carries a JSON Pointer into the document exactly as the user wrote it.

``canonical_document`` and ``content_hash`` define what is stored and compared: two documents that
differ only in key order, left-out defaults or ``version`` are the same content.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import orjson
from liquid import BoundTemplate

from campaignflow.domain import graph
from campaignflow.domain.actions import ActionCatalog, builtin_catalog
from campaignflow.domain.cel import CompiledExpression
from campaignflow.domain.content import ContentCheck
from campaignflow.domain.problems import Problem, document_order
from campaignflow.domain.pydantic_problems import DOMAIN_CODES, json_type
from campaignflow.domain.structure import parse_structure
from campaignflow.domain.workflow import WorkflowDefinition

#: Every code a problem from :func:`validate_definition` can carry (documented in
#: ``docs/workflow-format.md``); clients may branch on these.
PROBLEM_CODES = frozenset(
    {
        *DOMAIN_CODES,
        "type",
        "unknown_field",
        "too_short",
        "too_long",
        "duplicate_id",
        "duplicate_name",
        "unknown_node",
        "unreachable_node",
        "cycle_without_wait",
        "join_not_a_join",
        "join_shared",
        "join_without_parallel",
        "join_unreachable",
        "cel_syntax",
        "cel_check",
        "cel_type",
        "unknown_action",
        "template_syntax",
        "template_filter",
        "template_variable",
    }
)
#: Fields that are not content: assigned by the server, or a hint for editors.
_NOT_CONTENT = frozenset({"version", "schema_uri"})


def _empty() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ValidationResult:
    """The outcome of validating one document.

    ``definition`` is ``None`` when the document does not have the format's shape; it is set (and
    ``ok`` may still be false) when only graph or content problems were found. ``expressions``
    holds every compiled CEL expression and ``templates`` every parsed Liquid template, keyed by
    the JSON Pointer of their source string; a string inside action params that is absent from
    ``templates`` contains no Liquid markup and is used as it is.
    """

    definition: WorkflowDefinition | None
    problems: tuple[Problem, ...]
    expressions: Mapping[str, CompiledExpression] = field(default_factory=_empty)
    templates: Mapping[str, BoundTemplate] = field(default_factory=_empty)

    @property
    def ok(self) -> bool:
        return self.definition is not None and not self.problems


def validate_definition(
    document: object, *, catalog: ActionCatalog | None = None
) -> ValidationResult:
    """Validate ``document`` (parsed JSON or YAML) and collect every problem, in document order."""
    if not isinstance(document, Mapping):
        problem = Problem(
            (), f"a workflow must be a JSON object, not {json_type(document)}", "type"
        )
        return ValidationResult(None, (problem,))
    structure = parse_structure(document)
    nodes = graph.read_nodes(document.get(structure.nodes.key))
    content = ContentCheck(catalog if catalog is not None else builtin_catalog())
    content.triggers(structure.triggers)
    content.exit_criteria(structure.exit_criteria)
    content.nodes(structure.nodes)
    problems = [
        *structure.problems,
        *graph.check_graph(nodes, graph.start_reference(document, nodes)),
        *graph.duplicate_names(document.get(structure.triggers.key), structure.triggers.key),
        *content.problems,
    ]
    return ValidationResult(
        structure.definition,
        _ordered(problems),
        MappingProxyType(content.expressions),
        MappingProxyType(content.templates),
    )


def _ordered(problems: list[Problem]) -> tuple[Problem, ...]:
    """Sort by position in the document; drop exact repeats (same place, code and message)."""
    unique = {(problem.path, problem.code, problem.message): problem for problem in problems}
    return tuple(sorted(unique.values(), key=lambda p: (document_order(p), p.code, p.message)))


def canonical_document(definition: WorkflowDefinition) -> dict[str, Any]:
    """The stored form: camelCase keys, defaults filled in, no ``version``, keys sorted.

    Validating the canonical document again yields the same canonical document (and hash).
    """
    dumped = definition.model_dump(
        mode="json", by_alias=True, exclude_none=True, exclude=set(_NOT_CONTENT)
    )
    ordered: dict[str, Any] = _sorted_keys(dumped)
    return ordered


def content_hash(definition: WorkflowDefinition) -> str:
    """SHA-256 (hex) of the canonical document's sorted-key JSON: equal content, equal hash."""
    return canonical_hash(canonical_document(definition))


def canonical_hash(canonical: Mapping[str, Any]) -> str:
    """:func:`content_hash` of a document already in canonical form (saves dumping it twice)."""
    return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _sorted_keys(value: Any) -> Any:
    """Sort mapping keys at every level (JSON nesting is bounded by the parser that read it)."""
    if isinstance(value, dict):
        return {key: _sorted_keys(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted_keys(item) for item in value]
    return value
