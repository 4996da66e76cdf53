"""Percentiles the way PostgreSQL's ``percentile_cont`` computes them, for the dialect that has
none (SQLite), so a summary reads the same on both. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Sequence


def percentile_cont(ordered: Sequence[float], fraction: float) -> float | None:
    """The value at ``fraction`` (0..1) of ``ordered`` (ascending), interpolating linearly
    between the two nearest values at position ``fraction * (n - 1)``; ``None`` when empty."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction {fraction} is not between 0 and 1")
    if not ordered:
        return None
    position = fraction * (len(ordered) - 1)
    lower = int(position)
    upper = min(lower + 1, len(ordered) - 1)
    weight = position - lower
    return ordered[lower] + (ordered[upper] - ordered[lower]) * weight
