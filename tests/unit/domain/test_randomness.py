from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from campaignflow.domain.randomness import unit_interval

parts = st.lists(st.one_of(st.text(max_size=20), st.integers()), max_size=5)


@given(parts)
def test_value_is_in_the_unit_interval_on_a_53_bit_grid(values: list[str | int]) -> None:
    u = unit_interval(*values)
    assert 0.0 <= u < 1.0
    assert (u * 2**53).is_integer()


@given(parts)
def test_same_parts_same_value(values: list[str | int]) -> None:
    assert unit_interval(*values) == unit_interval(*list(values))


def test_values_are_pinned_across_processes_and_releases() -> None:
    # Changing the encoding would silently move contacts to other A/B variants.
    first_53_bits = int(hashlib.sha256(b"").hexdigest()[:16], 16) >> 11
    assert unit_interval() == first_53_bits / 2**53
    assert unit_interval("split", "contact-1") == 0.5181995345632665
    assert unit_interval("exec-1:node", 3) == 0.8417102844860105


def test_joining_is_unambiguous() -> None:
    groups = [
        ("ab", "c"),
        ("a", "bc"),
        ("abc",),
        ("abc", ""),
        ("", "abc"),
        ("a\x1fb", "c"),
        ("a", "b\x1fc"),
        ("a", "b", "c"),
    ]
    values = {unit_interval(*group) for group in groups}
    assert len(values) == len(groups)


def test_an_int_part_equals_its_decimal_text() -> None:
    assert unit_interval("seed", 12) == unit_interval("seed", "12")
    assert unit_interval("seed", 12) != unit_interval("seed", 21)


def test_text_that_is_not_valid_utf8_still_hashes() -> None:
    assert 0.0 <= unit_interval("\udc80") < 1.0
    assert unit_interval("\udc80") != unit_interval("\udc81")


def test_values_are_uniform() -> None:
    values = [unit_interval("uniform", i) for i in range(10_000)]
    buckets = [0] * 10
    for value in values:
        buckets[int(value * 10)] += 1
    assert all(850 <= count <= 1150 for count in buckets), buckets
    assert abs(sum(values) / len(values) - 0.5) < 0.01
