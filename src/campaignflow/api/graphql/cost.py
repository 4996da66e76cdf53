"""What an operation costs, computed from its document before it runs (pure: no I/O).

Each field costs 1; a field that returns a page costs 1 plus its page size (its ``first``
argument, or the default page size) times what one item selects; a list without pages (an
execution's steps) counts a fixed estimate of items. Nesting multiplies, so
``workflows(first: 500) { items { versions(first: 500) { … } } }`` costs what it would read
(250,000 versions), and is refused before a single query runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
)

PAGE_ARGUMENT = "first"


@dataclass(frozen=True, slots=True)
class ListSizes:
    """How many items a list field is assumed to return."""

    default: int  # a page asked without ``first``
    maximum: int  # a ``first`` whose value is not an integer (refused later anyway)
    paged: frozenset[str] = frozenset()  # fields that take ``first``, by name
    fixed: Mapping[str, int] = field(default_factory=dict)  # unpaged lists, by field name


def operation_cost(
    operation: OperationDefinitionNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    sizes: ListSizes,
    variables: Mapping[str, Any] | None = None,
) -> int:
    """The cost of ``operation`` with ``variables`` (see the module docstring)."""
    walker = _Walker(fragments, sizes, variables or {})
    return walker.selections(operation.selection_set, frozenset())


@dataclass(frozen=True, slots=True)
class _Walker:
    fragments: Mapping[str, FragmentDefinitionNode]
    sizes: ListSizes
    variables: Mapping[str, Any]

    def selections(self, selection_set: SelectionSetNode | None, seen: frozenset[str]) -> int:
        if selection_set is None:
            return 0
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                inner = self.selections(selection.selection_set, seen)
                total += 1 + self.multiplier(selection) * inner
            elif isinstance(selection, InlineFragmentNode):
                total += self.selections(selection.selection_set, seen)
            elif isinstance(selection, FragmentSpreadNode):
                total += self.spread(selection.name.value, seen)
        return total

    def spread(self, name: str, seen: frozenset[str]) -> int:
        fragment = self.fragments.get(name)
        if fragment is None or name in seen:  # unknown or cyclic: validation reports those
            return 0
        return self.selections(fragment.selection_set, seen | {name})

    def multiplier(self, node: FieldNode) -> int:
        name = node.name.value
        if name in self.sizes.fixed:
            return self.sizes.fixed[name]
        if name not in self.sizes.paged:
            return 1
        for argument in node.arguments or ():
            if argument.name.value == PAGE_ARGUMENT:
                return self.page_size(argument.value)
        return self.sizes.default

    def page_size(self, value: object) -> int:
        if isinstance(value, IntValueNode):
            return max(int(value.value), 1)
        if isinstance(value, VariableNode):
            given = self.variables.get(value.name.value)
            if given is None:  # not sent, or null: the default page
                return self.sizes.default
            if isinstance(given, int) and not isinstance(given, bool):
                return max(given, 1)
            return self.sizes.maximum
        return self.sizes.default  # null: the default page
