"""Schemathesis against the GraphQL schema of the live server (``campaignflow serve``): every
query and mutation, with arguments Schemathesis generates from the schema, is answered without
a 5xx and without an ``INTERNAL`` error.

Schemathesis generates and sends the operations; the property is checked here rather than by its
``not_a_server_error`` check, which counts every GraphQL error that names a resolver path as a
server error (ST113): a correct ``NOT_FOUND`` for a random id, or ``FORBIDDEN``, would fail it.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from graphql import parse_value
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.generation.case import Case

from campaignflow.api.graphql.schema import render_graphql_schema
from tests.e2e.conftest import TOKEN, Server

# JSON arguments (definitions, inputs): strings, numbers, and objects near a definition.
JSON_VALUES = st.one_of(
    st.text(max_size=20).map(schemathesis.graphql.nodes.String),
    st.integers(min_value=-(2**31), max_value=2**31 - 1).map(schemathesis.graphql.nodes.Int),
    st.sampled_from(
        [
            parse_value("{}"),
            parse_value('{workflowId: "fuzz", name: "Fuzz", nodes: []}'),
            parse_value('{workflowId: "x", name: "x", nodes: [{id: "a", type: "end"}]}'),
            parse_value('{name: "Ada", plan: ["pro", 1, null]}'),
        ]
    ),
)
schemathesis.graphql.scalar("JSON", JSON_VALUES)
SCHEMA = schemathesis.graphql.from_file(render_graphql_schema())
EXAMPLES_PER_OPERATION = 25


@pytest.mark.slow
@pytest.mark.timeout(300)
# PostgreSQL only, as the REST fuzz run: the fuzzer aims at the GraphQL layer (arguments,
# errors, auth), which is the same over both dialects.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_schemathesis_finds_no_server_errors_in_graphql(served: Server) -> None:
    operations = [result.ok() for result in SCHEMA.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) > 20  # every query and mutation field, not an empty schema
    seen: set[str] = set()
    with httpx.Client(
        base_url=served.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    ) as http:
        for operation in operations:

            @settings(
                max_examples=EXAMPLES_PER_OPERATION,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy())
            def run(case: Case[Any]) -> None:
                response = http.post("/graphql", json={"query": case.body})
                assert response.status_code < 500, (case.body, response.text)
                errors = response.json().get("errors") or []
                codes = {error.get("extensions", {}).get("code") for error in errors}
                assert "INTERNAL" not in codes, (case.body, response.text)
                assert "Traceback" not in response.text
                seen.add(case.operation.label)

            run()
    assert seen == {operation.label for operation in operations}
