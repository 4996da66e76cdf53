from __future__ import annotations

from datetime import UTC, datetime

import pytest

from campaignflow.domain.cel import (
    CelCompileError,
    CelContext,
    CelEvaluationError,
    environment,
    parse_diagnostics,
)

NODE = environment(CelContext.NODE)
TRIGGER = environment(CelContext.TRIGGER)


def test_compile_reports_the_column_of_a_syntax_error() -> None:
    with pytest.raises(CelCompileError) as caught:
        NODE.compile("input.total >  ( 3")
    error = caught.value
    assert error.is_syntax_error
    assert (error.line, error.column) == (1, 19)  # just past the end: the missing ')'
    assert "column 19" in str(error)


def test_compile_locates_errors_on_later_lines() -> None:
    with pytest.raises(CelCompileError) as caught:
        NODE.compile("input.a == 1 &&\n  nope.b == 2")
    assert caught.value.line == 2
    assert not caught.value.is_syntax_error
    assert "nope" in str(caught.value)


def test_every_diagnostic_is_kept() -> None:
    with pytest.raises(CelCompileError) as caught:
        NODE.compile("a + b")
    assert [d.column for d in caught.value.diagnostics] == [1, 5]
    assert "(and 1 more)" in str(caught.value)


def test_trigger_context_has_no_execution_variables() -> None:
    TRIGGER.compile("event.name == 'x' && contact.vip && now > timestamp('2020-01-01T00:00:00Z')")
    for name in ("input", "steps", "vars"):
        with pytest.raises(CelCompileError, match="undeclared reference"):
            TRIGGER.compile(f"{name}.x == 1")
        NODE.compile(f"{name}.x == 1")


def test_return_type_tells_conditions_from_values() -> None:
    assert NODE.compile("input.total > 3").may_be_boolean
    assert NODE.compile("input.flag").may_be_boolean  # dynamic: checked at evaluation
    assert not NODE.compile("1 + 2").may_be_boolean
    assert not NODE.compile("'yes'").may_be_boolean


def test_evaluate_returns_python_values() -> None:
    expression = NODE.compile("{'total': input.items.map(i, i.price).size(), 'ok': true}")
    result = expression.evaluate({"input": {"items": [{"price": 1}, {"price": 2}]}})
    assert result == {"total": 2, "ok": True}


def test_now_is_a_timestamp_passed_in() -> None:
    expression = TRIGGER.compile("now > timestamp('2026-01-01T00:00:00Z')")
    assert expression.evaluate_bool({"now": datetime(2026, 6, 1, tzinfo=UTC)}) is True
    assert expression.evaluate_bool({"now": datetime(2025, 6, 1, tzinfo=UTC)}) is False


def test_evaluation_errors_raise() -> None:
    expression = NODE.compile("vars.score + 1")
    with pytest.raises(CelEvaluationError, match="score"):
        expression.evaluate({"vars": {}})
    with pytest.raises(CelEvaluationError, match="divide by zero"):
        NODE.compile("1 / (input.n - input.n)").evaluate({"input": {"n": 1}})


def test_evaluate_bool_refuses_truthiness() -> None:
    with pytest.raises(CelEvaluationError, match="not a boolean"):
        NODE.compile("input.flag").evaluate_bool({"input": {"flag": "yes"}})


def test_environment_is_shared_per_context() -> None:
    assert environment(CelContext.NODE) is NODE


def test_unparseable_message_still_gives_a_diagnostic() -> None:
    (diagnostic,) = parse_diagnostics("INTERNAL: boom [INTERNAL]")
    assert diagnostic.message == "INTERNAL: boom"
    assert (diagnostic.line, diagnostic.column) == (1, 1)
