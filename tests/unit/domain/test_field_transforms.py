"""The mapping transforms: what they convert, what they refuse, and that a pull undoes a push
wherever the transform is meant to be reversible."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaignflow.domain.field_transforms import NAMED, TransformError, value_map


@pytest.mark.parametrize(
    ("name", "value", "pushed"),
    [
        ("trim", "  Alice ", "Alice"),
        ("lowercase", "Alice@Example.COM", "alice@example.com"),
        ("uppercase", "de", "DE"),
        ("string", 42, "42"),
        ("string", 42.0, "42"),
        ("string", True, "true"),
        ("number", "19.99", 19.99),
        ("number", " 7 ", 7),
        ("number", 3, 3),
        ("boolean", "Yes", True),
        ("boolean", "0", False),
        ("boolean", 1, True),
        ("date", "2026-11-29T23:30:00+00:00", "2026-11-29"),
        ("date", "2026-11-29T10:00:00Z", "2026-11-29"),
        ("date", "2026-02-03", "2026-02-03"),
        ("none", {"kept": "as is"}.get("kept"), "as is"),
    ],
)
def test_push_converts(name: str, value: object, pushed: object) -> None:
    assert NAMED[name].push(value) == pushed  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("number", "12 apples"),
        ("number", True),
        ("number", "nan"),
        ("number", float("inf")),
        ("boolean", "maybe"),
        ("boolean", 2),
        ("date", "29/11/2026"),
        ("date", 20261129),
    ],
)
def test_what_a_transform_cannot_convert_is_an_error_that_does_not_repeat_the_value(
    name: str, value: object
) -> None:
    with pytest.raises(TransformError) as caught:
        NAMED[name].push(value)  # type: ignore[arg-type]
    assert str(value) not in caught.value.message


@pytest.mark.parametrize("name", sorted(NAMED))
def test_every_transform_keeps_a_missing_value_missing(name: str) -> None:
    assert NAMED[name].push(None) is None
    assert NAMED[name].pull(None) is None


def test_a_value_map_maps_both_ways_and_refuses_unmapped_values() -> None:
    stages = value_map({"lead": "Open - Not Contacted", "customer": "Closed - Converted"})
    assert stages.push("lead") == "Open - Not Contacted"
    assert stages.pull("Closed - Converted") == "customer"
    with pytest.raises(TransformError, match="push"):
        stages.push("partner")
    with pytest.raises(TransformError, match="pull"):
        stages.pull("Working - Contacted")


def test_a_value_map_must_be_one_to_one() -> None:
    with pytest.raises(ValueError, match="both map to"):
        value_map({"lead": "Open", "prospect": "Open"})


@given(st.integers(-(2**52), 2**52) | st.floats(allow_nan=False, allow_infinity=False))
def test_a_number_survives_the_trip_through_its_text(number: float) -> None:
    text = NAMED["string"].push(number)
    assert NAMED["number"].pull(text) == number


@given(st.booleans())
def test_a_boolean_survives_the_trip_through_its_text(flag: bool) -> None:
    assert NAMED["boolean"].pull(NAMED["string"].push(flag)) is flag


@given(
    st.dictionaries(st.text(min_size=1), st.text(min_size=1), min_size=1).filter(
        lambda pairs: len(set(pairs.values())) == len(pairs)
    )
)
def test_a_value_map_pull_undoes_its_push(pairs: dict[str, str]) -> None:
    stages = value_map(pairs)
    for local in pairs:
        assert stages.pull(stages.push(local)) == local


@given(st.text())
def test_text_transforms_are_idempotent(text: str) -> None:
    for name in ("trim", "lowercase", "uppercase"):
        once = NAMED[name].push(text)
        assert NAMED[name].push(once) == once
