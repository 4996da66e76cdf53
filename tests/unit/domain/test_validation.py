from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field

from campaignflow.domain.actions import ActionCatalog, ActionSpec, builtin_catalog
from campaignflow.domain.problems import Problem
from campaignflow.domain.validation import (
    canonical_document,
    content_hash,
    validate_definition,
)
from campaignflow.domain.workflow import ActionNode, DelayNode, SplitNode

from .factories import minimal_document

BROKEN = Path(__file__).parents[3] / "examples" / "invalid" / "broken.json"


def found(document: object) -> set[tuple[str, str]]:
    return {(p.pointer, p.code) for p in validate_definition(document).problems}


def action(node_id: str, message: str = "hi", **fields: Any) -> dict[str, Any]:
    params = {"message": message}
    return {
        "id": node_id,
        "type": "action",
        "config": {"action": "log", "params": params},
        **fields,
    }


def test_minimal_document_is_valid(document: dict[str, Any]) -> None:
    result = validate_definition(document)
    assert result.ok
    assert result.problems == ()
    assert result.definition is not None
    assert result.definition.start_node_id == "hello"


@pytest.mark.parametrize("document", [None, [], "workflow", 3])
def test_non_object_is_one_problem_at_the_root(document: object) -> None:
    result = validate_definition(document)
    assert [(p.pointer, p.code) for p in result.problems] == [("", "type")]
    assert not result.ok


def test_empty_object_lists_every_required_field() -> None:
    assert found({}) == {
        ("/workflowId", "required"),
        ("/name", "required"),
        ("/triggers", "required"),
        ("/errorHandling", "required"),
        ("/nodes", "required"),
    }


def test_structural_error_in_one_node_does_not_hide_problems_elsewhere() -> None:
    document = minimal_document(
        triggers=[{"type": "behavior", "event": "x", "condition": "event.a >"}],
        nodes=[
            {"id": "a", "type": "delay", "config": {"duraton": "P1D"}, "next": "b"},
            {
                "id": "b",
                "type": "condition",
                "config": {"branches": [{"when": "1 + 1", "next": "ghost"}], "default": "a"},
            },
            {"id": "c", "type": "end"},
        ],
    )
    result = validate_definition(document)
    assert result.definition is None
    assert {(p.pointer, p.code) for p in result.problems} == {
        ("/triggers/0/condition", "cel_syntax"),
        ("/nodes/0/config/duraton", "unknown_field"),
        ("/nodes/1/config/branches/0/when", "cel_type"),
        ("/nodes/1/config/branches/0/next", "unknown_node"),
        ("/nodes/2", "unreachable_node"),
    }


def test_discriminator_tags_are_not_part_of_the_pointer() -> None:
    document = minimal_document(
        nodes=[{"id": "a", "type": "delay", "config": {"duration": "1 day"}}]
    )
    (problem,) = validate_definition(document).problems
    assert problem.pointer == "/nodes/0/config/duration"
    assert problem.code == "invalid_duration"


def test_cross_field_rules_point_at_the_field() -> None:
    document = minimal_document(
        entry={"reentry": "after"},
        nodes=[
            {"id": "w", "type": "wait_for_event", "config": {"event": "x", "onTimeout": "w"}},
            {"id": "d", "type": "delay", "config": {}},
        ],
    )
    assert found(document) >= {
        ("/entry/reentryAfter", "required"),
        ("/nodes/0/config/timeout", "required"),
        ("/nodes/1/config", "required"),
    }


def test_snake_case_keys_are_accepted_and_pointed_at_as_written() -> None:
    document = minimal_document(workflow_id="snake", error_handling={"max_retries": 200})
    del document["workflowId"], document["errorHandling"]
    assert found(document) == {("/error_handling/max_retries", "out_of_range")}


def test_unknown_field_suggests_the_right_spelling() -> None:
    document = minimal_document(nodes=[action("a", nxt="b")])
    (problem,) = validate_definition(document).problems
    assert problem.code == "unknown_field"
    assert "did you mean 'next'" in problem.message


def test_next_on_an_end_node_is_explained() -> None:
    document = minimal_document(
        nodes=[action("a", next="b"), {"id": "b", "type": "end", "next": "a"}]
    )
    (problem,) = validate_definition(document).problems
    assert (problem.pointer, problem.code) == ("/nodes/1/next", "unknown_field")
    assert "type is 'end'" in problem.message


def test_scalar_types_are_strict() -> None:
    document = minimal_document(errorHandling={"maxRetries": "3", "jitter": True})
    assert found(document) == {
        ("/errorHandling/maxRetries", "type"),
        ("/errorHandling/jitter", "type"),
    }


def test_too_many_nodes() -> None:
    nodes = [action(f"n{i}", next=f"n{i + 1}") for i in range(500)] + [action("n500")]
    assert ("/nodes", "too_long") in found(minimal_document(nodes=nodes))


def test_cel_problems_carry_line_and_column() -> None:
    document = minimal_document(triggers=[{"type": "api", "condition": "contact.vip &&\n  )"}])
    (problem,) = validate_definition(document).problems
    assert problem.code == "cel_syntax"
    assert (problem.extra["line"], problem.extra["column"]) == (2, 3)
    assert "column 3" in problem.message


def test_expressions_are_compiled_once_and_returned() -> None:
    document = minimal_document(
        triggers=[{"type": "behavior", "event": "e", "condition": "event.total > 10"}],
        exitCriteria=[{"event": "order_completed", "condition": "event.total > 0"}],
        nodes=[
            {
                "id": "s",
                "type": "action",
                "config": {"action": "set", "params": {"variables": {"score": "input.a * 2"}}},
                "next": "c",
            },
            {
                "id": "c",
                "type": "condition",
                "config": {"branches": [{"when": "vars.score > 3", "next": "e"}], "default": "e"},
            },
            {"id": "e", "type": "end"},
        ],
    )
    result = validate_definition(document)
    assert result.ok
    assert set(result.expressions) == {
        "/triggers/0/condition",
        "/exitCriteria/0/condition",
        "/nodes/0/config/params/variables/score",
        "/nodes/1/config/branches/0/when",
    }
    when = result.expressions["/nodes/1/config/branches/0/when"]
    assert when.evaluate_bool({"vars": {"score": 4}}) is True
    score = result.expressions["/nodes/0/config/params/variables/score"]
    assert score.evaluate({"input": {"a": 5}}) == 10


def test_templates_are_checked_everywhere_in_params_and_returned() -> None:
    document = minimal_document(
        nodes=[
            {
                "id": "call",
                "type": "action",
                "config": {
                    "action": "http",
                    "params": {
                        "url": "https://api.example.com/contacts/{{ contact.id }}",
                        "headers": {"X-Trace": "{{ input.trace"},
                        "body": {"items": [{"note": "plain"}, {"note": "{{ nope }}"}]},
                    },
                },
            }
        ]
    )
    result = validate_definition(document)
    assert {(p.pointer, p.code) for p in result.problems} == {
        ("/nodes/0/config/params/headers/X-Trace", "template_syntax"),
        ("/nodes/0/config/params/body/items/1/note", "template_variable"),
    }
    assert list(result.templates) == ["/nodes/0/config/params/url"]


def test_set_variables_are_cel_not_liquid() -> None:
    document = minimal_document(
        nodes=[
            {
                "id": "s",
                "type": "action",
                "config": {"action": "set", "params": {"variables": {"x": "{{ 1 }}"}}},
            }
        ]
    )
    (problem,) = validate_definition(document).problems
    assert problem.pointer == "/nodes/0/config/params/variables/x"
    assert problem.code.startswith("cel_")


def test_action_params_are_validated_against_the_catalog() -> None:
    document = minimal_document(
        nodes=[
            {
                "id": "a",
                "type": "action",
                "config": {"action": "http", "params": {"url": "ftp://x"}},
            },
            {"id": "b", "type": "action", "config": {"action": "log", "params": {"mesage": "x"}}},
            {"id": "c", "type": "action", "config": {"action": "email", "params": {}}},
            {
                "id": "d",
                "type": "action",
                "config": {"action": "acme.do_it", "connection": "acme", "params": {"x": 1}},
            },
            {"id": "start", "type": "parallel", "config": {"branches": ["a", "b", "c", "d"]}},
        ]
    )
    document["start"] = "start"
    problems = {(p.pointer, p.code) for p in validate_definition(document).problems}
    assert ("/nodes/0/config/params/url", "invalid_value") in problems
    assert ("/nodes/1/config/params/mesage", "unknown_field") in problems
    hint = next(p for p in validate_definition(document).problems if "mesage" in p.pointer)
    assert "did you mean 'message'" in hint.message
    assert ("/nodes/1/config/params/message", "required") in problems
    assert ("/nodes/2/config/action", "unknown_action") in problems
    assert not any(pointer.startswith("/nodes/3") for pointer, _ in problems)


def test_a_given_catalog_is_used() -> None:
    catalog = builtin_catalog().register(ActionSpec("acme.do_it", "Do it.", connector="acme"))
    config = {"action": "acme.do_other", "connection": "acme"}
    document = minimal_document(nodes=[{"id": "d", "type": "action", "config": config}])
    assert validate_definition(document).ok
    result = validate_definition(document, catalog=catalog)
    assert [(p.pointer, p.code) for p in result.problems] == [
        ("/nodes/0/config/action", "unknown_action")
    ]
    assert result.problems[0].extra["known"] == ("acme.do_it",)


class _Recipient(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    count: int
    tags: list[str] = []


def _connector_catalog() -> ActionCatalog:
    spec = ActionSpec("acme.send", "Send.", _Recipient, connector="acme")
    return replace(builtin_catalog().register(spec), open_namespaces=False)


def test_a_connector_operation_needs_a_connection_and_a_builtin_refuses_one() -> None:
    document = minimal_document(
        nodes=[
            {"id": "s", "type": "action", "config": {"action": "acme.send", "params": {}}},
            {
                "id": "h",
                "type": "action",
                "config": {"action": "log", "connection": "acme", "params": {"message": "x"}},
            },
            {"id": "start", "type": "parallel", "config": {"branches": ["s", "h"]}},
        ]
    )
    document["start"] = "start"
    problems = {
        (p.pointer, p.code)
        for p in validate_definition(document, catalog=_connector_catalog()).problems
    }
    assert ("/nodes/0/config/connection", "missing_connection") in problems
    assert ("/nodes/1/config/connection", "unexpected_connection") in problems


def test_templated_params_are_checked_after_rendering_and_literal_ones_on_save() -> None:
    def problems(params: dict[str, object]) -> set[tuple[str, str]]:
        config = {"action": "acme.send", "connection": "acme", "params": params}
        document = minimal_document(nodes=[{"id": "s", "type": "action", "config": config}])
        result = validate_definition(document, catalog=_connector_catalog())
        return {(p.pointer, p.code) for p in result.problems}

    # Known only once rendered: an address and a number from the contact and the input.
    assert problems({"to": "{{ contact.email }}", "count": "{{ input.items | size }}"}) == set()
    assert problems({"to": "x@example.com", "count": 1, "tags": ["{{ input.tag }}"]}) == set()
    # Literal values are checked now, with the pointer of each.
    literal = problems({"to": "not-an-address", "count": "many", "extra": 1})
    assert {pointer for pointer, _ in literal} == {
        "/nodes/0/config/params/to",
        "/nodes/0/config/params/count",
        "/nodes/0/config/params/extra",
    }
    # A template cannot stand in for a missing parameter.
    assert ("/nodes/0/config/params/count", "required") in problems({"to": "{{ contact.email }}"})


def test_problems_are_in_document_order_and_deterministic() -> None:
    with BROKEN.open(encoding="utf-8") as handle:
        document = json.load(handle)
    first = validate_definition(document).problems
    again = validate_definition(copy.deepcopy(document)).problems
    assert first == again
    node_indexes = [p.path[1] for p in first if p.path[:1] == ("nodes",)]
    assert node_indexes == sorted(node_indexes)  # numeric, not lexicographic


def test_broken_example_reports_every_problem_with_its_path() -> None:
    with BROKEN.open(encoding="utf-8") as handle:
        result = validate_definition(json.load(handle))
    assert result.definition is None
    assert {(p.pointer, p.code) for p in result.problems} == {
        ("/descripton", "unknown_field"),
        ("/entry/reentryAfter", "not_allowed"),
        ("/errorHandling/initialInterval", "invalid_duration"),
        ("/errorHandling/maxRetries", "out_of_range"),
        ("/exitCriteria/0/goal", "type"),
        ("/name", "too_short"),
        ("/nodes/0/config/branches/0/next", "unknown_node"),
        ("/nodes/1/config/action", "unknown_action"),
        ("/nodes/2/config/until", "one_of"),
        ("/nodes/3", "cycle_without_wait"),
        ("/nodes/3/config/params/message", "template_filter"),
        ("/nodes/4/config/params/method", "invalid_value"),
        ("/nodes/4/config/params/url", "template_syntax"),
        ("/nodes/5/id", "duplicate_id"),
        ("/nodes/6", "unreachable_node"),
        ("/nodes/6/config/branches/1", "duplicate"),
        ("/nodes/6/config/join", "join_not_a_join"),
        ("/nodes/7", "join_without_parallel"),
        ("/nodes/7/config/mode", "invalid_value"),
        ("/nodes/8", "unreachable_node"),
        ("/nodes/8/next", "unknown_field"),
        ("/nodes/9/config/variants", "too_short"),
        ("/nodes/9/config/variants/0/weight", "out_of_range"),
        ("/nodes/10/config/onTimeout", "required"),
        ("/nodes/11/config/timeOfDay/time", "invalid_time"),
        ("/nodes/12/id", "invalid_value"),
        ("/nodes/13/id", "required"),
        ("/nodes/14/config/branches/1", "join_unreachable"),
        ("/nodes/15", "unreachable_node"),
        ("/nodes/15/config/branches/1", "join_unreachable"),
        ("/nodes/15/config/join", "join_shared"),
        ("/nodes/19/config/params/variables/score", "cel_syntax"),
        ("/nodes/20/config/params/message", "template_variable"),
        ("/nodes/21/type", "invalid_value"),
        ("/triggers/0/condition", "cel_syntax"),
        ("/triggers/1/cron", "invalid_cron"),
        ("/triggers/1/timezone", "invalid_timezone"),
        ("/triggers/2/at", "invalid_timestamp"),
        ("/triggers/3/at", "one_of"),
        ("/triggers/4/type", "invalid_value"),
        ("/triggers/5/condition", "cel_type"),
        ("/triggers/6/condition", "cel_check"),
        ("/triggers/6/name", "duplicate_name"),
        ("/workflowId", "invalid_value"),
    }


# --------------------------------------------------------------------------- split weights


@given(st.lists(st.one_of(st.integers(1, 1000), st.floats(0.001, 1000)), min_size=2, max_size=6))
def test_any_positive_weights_are_valid(weights: list[float]) -> None:
    variants = [{"name": f"v{i}", "weight": w, "next": "end"} for i, w in enumerate(weights)]
    document = minimal_document(
        nodes=[
            {"id": "s", "type": "split", "config": {"variants": variants}},
            {"id": "end", "type": "end"},
        ]
    )
    result = validate_definition(document)
    assert result.ok, result.problems
    assert result.definition is not None
    split = result.definition.nodes[0]
    assert isinstance(split, SplitNode)
    assert split.config.total_weight == pytest.approx(sum(weights))
    dumped = canonical_document(result.definition)["nodes"][0]["config"]["variants"]
    assert [v["weight"] for v in dumped] == weights  # integers stay integers


@given(
    st.lists(st.integers(1, 100), min_size=1, max_size=4),
    st.one_of(st.integers(-100, 0), st.floats(max_value=0), st.booleans(), st.text(max_size=3)),
)
def test_non_positive_or_non_numeric_weights_are_refused(good: list[int], bad: object) -> None:
    weights: list[object] = [*good, bad]
    variants = [{"name": f"v{i}", "weight": w, "next": "end"} for i, w in enumerate(weights)]
    document = minimal_document(
        nodes=[
            {"id": "s", "type": "split", "config": {"variants": variants}},
            {"id": "end", "type": "end"},
        ]
    )
    pointer = f"/nodes/0/config/variants/{len(good)}/weight"
    assert {code for p, code in found(document) if p == pointer} <= {"out_of_range", "type"}
    assert any(p == pointer for p, _ in found(document))


def test_variant_names_must_be_unique() -> None:
    variants = [
        {"name": "A", "weight": 1, "next": "end"},
        {"name": "A", "weight": 1, "next": "end"},
    ]
    document = minimal_document(
        nodes=[
            {"id": "s", "type": "split", "config": {"variants": variants}},
            {"id": "end", "type": "end"},
        ]
    )
    assert found(document) == {("/nodes/0/config/variants/1/name", "duplicate")}


# --------------------------------------------------------------------------- canonical form


def rich_document() -> dict[str, Any]:
    return minimal_document(
        version=7,
        triggers=[
            {"type": "time", "cron": "0 9 * * MON", "timezone": "Europe/Berlin"},
            {"type": "time", "at": "2026-12-01T10:00:00+01:00"},
            {
                "type": "time",
                "relativeTo": {"attribute": "birthday", "offset": "-P1W", "timeOfDay": "09:00"},
            },
        ],
        errorHandling={"initialInterval": "PT90S"},
        nodes=[
            {"id": "d", "type": "delay", "config": {"duration": "P1W"}, "next": "j"},
            {"id": "j", "type": "parallel", "config": {"branches": ["a", "b"]}},
            action("a", message="{{ contact.email }}", retry={"maxInterval": "PT2H"}),
            action("b"),
        ],
    )


def test_canonical_document_fills_defaults_and_drops_version() -> None:
    result = validate_definition(rich_document())
    assert result.definition is not None
    canonical = canonical_document(result.definition)
    assert "version" not in canonical
    assert canonical["entry"] == {"allowConcurrent": False, "reentry": "never"}
    assert canonical["errorHandling"] == {
        "initialInterval": "PT90S",
        "jitter": 0.2,
        "maxInterval": "PT1H",
        "maxRetries": 3,
        "retryPolicy": "exponential",
    }
    assert canonical["triggers"][0]["timezone"] == "Europe/Berlin"
    assert canonical["triggers"][2]["relativeTo"]["offset"] == "-P1W"  # as written
    assert canonical["nodes"][0]["config"] == {"duration": "P1W"}
    assert list(canonical) == sorted(canonical)


def test_canonical_document_validates_again_to_the_same_hash() -> None:
    first = validate_definition(rich_document())
    assert first.definition is not None
    canonical = canonical_document(first.definition)
    second = validate_definition(canonical)
    assert second.ok, second.problems
    assert second.definition is not None
    assert canonical_document(second.definition) == canonical
    assert content_hash(second.definition) == content_hash(first.definition)


def test_hash_ignores_key_order_version_and_spelled_out_defaults() -> None:
    base = validate_definition(minimal_document()).definition
    reordered_document = dict(reversed(list(minimal_document(version=9).items())))
    reordered_document["entry"] = {"reentry": "never", "allowConcurrent": False}
    reordered = validate_definition(reordered_document).definition
    changed = validate_definition(minimal_document(name="Other")).definition
    assert base is not None
    assert reordered is not None
    assert changed is not None
    assert content_hash(reordered) == content_hash(base)
    assert content_hash(changed) != content_hash(base)
    assert len(content_hash(base)) == 64


def test_typed_values_are_parsed_once() -> None:
    result = validate_definition(rich_document())
    assert result.definition is not None
    delay = result.definition.nodes_by_id["d"]
    assert isinstance(delay, DelayNode)
    assert delay.config.duration is not None
    assert delay.config.duration.exact.days == 7
    node = result.definition.nodes_by_id["a"]
    assert isinstance(node, ActionNode)
    policy = result.definition.error_handling.with_override(node.retry)
    assert policy.max_interval.exact.total_seconds() == 7200
    assert policy.initial_interval.exact.total_seconds() == 90


def test_problem_type_is_stable() -> None:
    problem = validate_definition([]).problems[0]
    assert isinstance(problem, Problem)
    assert problem.to_dict()["pointer"] == ""
