"""The GraphQL schema's committed SDL is current, and the cost of an operation is what it
would read: each field 1, pages times their size, nesting multiplied."""

from __future__ import annotations

from pathlib import Path

from graphql import FragmentDefinitionNode, OperationDefinitionNode, parse
from hypothesis import given
from hypothesis import strategies as st

from campaignflow.api.graphql.cost import ListSizes, operation_cost
from campaignflow.api.graphql.limits import PAGED_FIELDS
from campaignflow.api.graphql.schema import build_schema, render_graphql_schema
from campaignflow.tools.export_docs import GRAPHQL_FILE

DOCS = Path(__file__).resolve().parents[3] / "docs"
SIZES = ListSizes(default=50, maximum=500, paged=PAGED_FIELDS, fixed={"steps": 20})


def cost(document: str, **variables: object) -> int:
    parsed = parse(document)
    operation = next(d for d in parsed.definitions if isinstance(d, OperationDefinitionNode))
    fragments = {
        d.name.value: d for d in parsed.definitions if isinstance(d, FragmentDefinitionNode)
    }
    return operation_cost(operation, fragments, SIZES, variables)


def test_committed_graphql_schema_is_current() -> None:
    committed = (DOCS / GRAPHQL_FILE).read_text(encoding="utf-8")

    assert committed == render_graphql_schema(), "docs/schema.graphql is stale: run `make schema`"


def test_every_field_that_takes_first_is_costed_as_a_page() -> None:
    schema = build_schema()._schema
    paged = {
        name
        for graphql_type in schema.type_map.values()
        for name, field in (getattr(graphql_type, "fields", None) or {}).items()
        if "first" in field.args
    }
    assert paged == PAGED_FIELDS


def test_scalars_cost_one_each_and_pages_multiply_what_one_item_selects() -> None:
    assert cost('{ workflow(id: "a") { name version } }') == 3
    # workflows: 1 + 10 * (items: 1 + name 1 + version 1)
    assert cost("{ workflows(first: 10) { items { name version } } }") == 31
    # without first: the default page (50)
    assert cost("{ workflows { items { name } } }") == 1 + 50 * 2


def test_nested_pages_multiply() -> None:
    document = "{ workflows(first: 10) { items { versions(first: 5) { items { version } } } } }"
    # versions: 1 + 5 * 2 = 11; items: 1 + 11 = 12; workflows: 1 + 10 * 12
    assert cost(document) == 121


def test_variables_fragments_and_unpaged_lists_count() -> None:
    document = """
    query Q($n: Int) { executions(first: $n) { items { ...E } } }
    fragment E on Execution { id steps { seq } }
    """
    # items: 1 + id 1 + steps (1 + 20 * 1) = 23; executions: 1 + n * 23
    assert cost(document, n=3) == 1 + 3 * 23
    assert cost(document) == 1 + 50 * 23  # not sent: the default page
    assert cost(document, n="many") == 1 + 500 * 23  # not an integer: the most it could be


def test_a_cyclic_fragment_does_not_loop() -> None:
    document = "{ workflows { ...A } } fragment A on WorkflowPage { nextCursor ...A }"
    assert cost(document) == 1 + 50 * 1


@given(st.integers(min_value=1, max_value=500), st.integers(min_value=1, max_value=500))
def test_cost_grows_with_either_page_size(outer: int, inner: int) -> None:
    def nested(a: int, b: int) -> int:
        inner_page = f"versions(first: {b}) {{ items {{ version }} }}"
        return cost(f"{{ workflows(first: {a}) {{ items {{ {inner_page} }} }} }}")

    assert nested(outer, inner) == 1 + outer * (1 + 1 + inner * 2)
    assert nested(outer + 1, inner) > nested(outer, inner) < nested(outer, inner + 1)
