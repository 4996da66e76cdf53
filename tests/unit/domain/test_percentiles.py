"""SQLite's percentiles must equal PostgreSQL's percentile_cont (linear interpolation at
fraction * (n - 1)); statistics.quantiles(method="inclusive") is that same definition."""

from __future__ import annotations

import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaignflow.domain.percentiles import percentile_cont

FRACTIONS = {50: 0.5, 90: 0.9, 95: 0.95, 99: 0.99}


def test_known_values() -> None:
    assert percentile_cont([], 0.5) is None
    assert percentile_cont([7.0], 0.99) == 7.0
    assert percentile_cont([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile_cont([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0], 0.9) == 9.1
    assert percentile_cont([1.0, 3.0], 0.0) == 1.0
    assert percentile_cont([1.0, 3.0], 1.0) == 3.0


def test_a_fraction_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        percentile_cont([1.0], 1.5)


@given(st.lists(st.floats(0, 1e6, allow_nan=False), min_size=2, max_size=200))
def test_matches_the_inclusive_quantiles(values: list[float]) -> None:
    ordered = sorted(values)
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    for percent, fraction in FRACTIONS.items():
        result = percentile_cont(ordered, fraction)
        assert result == pytest.approx(cuts[percent - 1], rel=1e-9, abs=1e-6)
        assert ordered[0] <= result <= ordered[-1]
