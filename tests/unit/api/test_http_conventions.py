"""Pure pieces of the HTTP layer: cursors, ETags, JSON parsing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaignflow.api.body import parse_json
from campaignflow.api.etags import if_none_match_hits, versions_in_if_match
from campaignflow.api.pagination import decode_cursor, encode_cursor
from campaignflow.api.problems import ProblemError


@given(st.text(max_size=64))
def test_string_cursors_round_trip(key: str) -> None:
    assert decode_cursor(encode_cursor(key), str) == key


@given(st.integers(min_value=0, max_value=2**31))
def test_integer_cursors_round_trip(key: int) -> None:
    assert decode_cursor(encode_cursor(key), int) == key


@pytest.mark.parametrize(
    "cursor", ["", "!!!", "bm90IGpzb24", encode_cursor(5), "eyJ2IjoyLCJrIjoiYSJ9"]
)
def test_foreign_cursors_are_rejected_for_a_string_key(cursor: str) -> None:
    with pytest.raises(ProblemError) as raised:
        decode_cursor(cursor, str)
    assert raised.value.problems[0]["parameter"] == "cursor"


def test_no_cursor_means_the_first_page() -> None:
    assert decode_cursor(None, str) is None


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("*", None),
        ('"v3"', frozenset({3})),
        ('"v3", "v4"', frozenset({3, 4})),
        ('W/"v3"', frozenset()),
        ('"3"', frozenset()),
        ('"v0"', frozenset()),
        ("v3", frozenset()),
    ],
)
def test_if_match_accepts_only_strong_version_tags(
    header: str | None, expected: frozenset[int] | None
) -> None:
    assert versions_in_if_match(header) == expected


def test_if_none_match_uses_weak_comparison() -> None:
    assert if_none_match_hits('W/"v2"', '"v2"')
    assert if_none_match_hits('"v1", "v2"', '"v2"')
    assert if_none_match_hits("*", '"v2"')
    assert not if_none_match_hits('"v1"', '"v2"')
    assert not if_none_match_hits(None, '"v2"')


def test_malformed_json_reports_line_and_column() -> None:
    with pytest.raises(ProblemError) as raised:
        parse_json(b'{\n  "a": 1,\n  "b": }')
    problem = raised.value.problems[0]
    assert problem["line"] == 3
    assert problem["pointer"] == ""
    assert raised.value.status == 400


def test_whitespace_only_body_is_empty() -> None:
    with pytest.raises(ProblemError, match="empty"):
        parse_json(b"  \n")
