"""Limits on what one operation may ask, checked before it runs: depth, aliases, tokens
(Strawberry's extensions) and cost (:mod:`.cost`, with the operation's variables)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial

from graphql import ExecutionResult, FragmentDefinitionNode, GraphQLError
from graphql.utilities import get_operation_ast
from strawberry.extensions import (
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)

from campaignflow.api.graphql.cost import ListSizes, operation_cost

MAX_DEPTH = 10
MAX_ALIASES = 30
MAX_TOKENS = 2000
MAX_COST = 10_000
# The fields that take ``first`` (a unit test keeps this in step with the schema), and the page
# sizes assumed without settings (those of ApiSettings' defaults).
PAGED_FIELDS = frozenset(
    {"workflows", "versions", "executions", "triggers", "contacts", "deadLetters"}
)
DEFAULT_PAGE = 50
MAX_PAGE = 500
# An execution's steps are not paged (REST returns them all); most runs have a few dozen.
STEPS_ESTIMATE = 20


class CostLimit(SchemaExtension):
    """Refuses an operation whose cost is above ``budget`` with ``QUERY_TOO_COMPLEX``: the
    result is set before execution, so Strawberry runs no resolver."""

    def __init__(self, *, sizes: ListSizes, budget: int = MAX_COST) -> None:
        self.sizes = sizes
        self.budget = budget

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        operation = get_operation_ast(document, context.operation_name) if document else None
        if document is not None and operation is not None:
            fragments = {
                d.name.value: d
                for d in document.definitions
                if isinstance(d, FragmentDefinitionNode)
            }
            cost = operation_cost(operation, fragments, self.sizes, context.variables)
            if cost > self.budget:
                context.result = ExecutionResult(data=None, errors=[self._refusal(cost)])
        yield

    def _refusal(self, cost: int) -> GraphQLError:
        return GraphQLError(
            f"This operation would cost {cost}, above the limit of {self.budget}: ask for "
            "smaller pages (first) or fewer nested lists.",
            extensions={"code": "QUERY_TOO_COMPLEX", "cost": cost, "maxCost": self.budget},
        )


def limit_extensions(sizes: ListSizes) -> list[Callable[[], SchemaExtension]]:
    """Factories: Strawberry builds each extension afresh per operation."""
    return [
        partial(QueryDepthLimiter, max_depth=MAX_DEPTH),
        partial(MaxAliasesLimiter, max_alias_count=MAX_ALIASES),
        partial(MaxTokensLimiter, max_token_count=MAX_TOKENS),
        partial(CostLimit, sizes=sizes),
    ]
