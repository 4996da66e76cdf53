from __future__ import annotations

import math
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaignflow.domain import split
from campaignflow.domain.nodes import SplitConfig
from campaignflow.domain.split import choose_variant


def _config(*weights: float) -> SplitConfig:
    return SplitConfig.model_validate(
        {
            "variants": [
                {"name": f"v{i}", "weight": weight, "next": f"node-{i}"}
                for i, weight in enumerate(weights)
            ]
        }
    )


def _fix_u(monkeypatch: pytest.MonkeyPatch, u: float) -> None:
    monkeypatch.setattr(split, "unit_interval", lambda *parts: u)


@pytest.mark.parametrize(
    "weights",
    [(1, 1), (1, 2, 7), (0.1, 0.2, 0.7), (99, 1), (5, 5, 5, 5), (0.5, 30, 12.25)],
)
def test_shares_follow_the_weights(weights: tuple[float, ...]) -> None:
    config = _config(*weights)
    seeds = 20_000
    counts = Counter(
        choose_variant(config, seed=f"wf:split:contact-{i}").name for i in range(seeds)
    )
    total = sum(weights)
    for i, weight in enumerate(weights):
        assert abs(counts[f"v{i}"] / seeds - weight / total) < 0.015, counts


@given(
    seed=st.text(max_size=40),
    weights=st.lists(st.floats(0.001, 1000), min_size=2, max_size=6),
)
def test_same_seed_same_variant(seed: str, weights: list[float]) -> None:
    config = _config(*weights)
    chosen = choose_variant(config, seed=seed)
    assert chosen in config.variants
    assert choose_variant(config, seed=seed) == chosen


def test_different_seeds_reach_every_variant() -> None:
    config = _config(1, 1, 1)
    names = {choose_variant(config, seed=f"contact-{i}").name for i in range(50)}
    assert names == {"v0", "v1", "v2"}


def test_variants_cover_consecutive_slices_in_declared_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = _config(1, 3)  # v0 gets [0, 0.25), v1 gets [0.25, 1)
    expected = {0.0: "v0", math.nextafter(0.25, 0.0): "v0", 0.25: "v1", 0.9: "v1"}
    for u, name in expected.items():
        _fix_u(monkeypatch, u)
        assert choose_variant(config, seed="any").name == name


def test_a_target_past_the_accumulated_slices_picks_the_last_variant(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Adding 1 to 2**53 in floating point is lost, so the slices sum to less than the total.
    config = _config(2**53, 1, 1)
    u = math.nextafter(1.0, 0.0)
    assert u * config.total_weight >= 2.0**53 + 1.0 + 1.0
    _fix_u(monkeypatch, u)
    assert choose_variant(config, seed="any").name == "v2"
