"""Which variant of a weighted split a contact gets.

The pick is :func:`unit_interval` of a caller-supplied seed laid over the cumulative weights in
declared order, so it is reproducible (a dry run and the real run agree; a re-evaluation after a
crash picks the same arm) and each variant's share is its weight over the total. The seed should
name both the split and the contact (e.g. ``f"{workflow_id}:{node_id}:{contact_id}"``): the same
seed in two splits would assign contacts to corresponding variants in both. Editing the weights or
the order of the variants moves some contacts to another variant.
"""

from __future__ import annotations

from campaignflow.domain.nodes import SplitConfig, SplitVariant
from campaignflow.domain.randomness import unit_interval


def choose_variant(config: SplitConfig, *, seed: str) -> SplitVariant:
    """The variant for ``seed``: variant ``i`` covers its slice of ``[0, total weight)``."""
    target = unit_interval(seed) * config.total_weight
    cumulative = 0.0
    for variant in config.variants:
        cumulative += variant.weight
        if target < cumulative:
            return variant
    # u < 1, but u * total can round up to the total (or past a sum accumulated differently).
    return config.variants[-1]
