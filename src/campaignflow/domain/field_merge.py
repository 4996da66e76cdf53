"""Which side's value a synced field keeps: a three-way merge per field, pure.

A sync keeps, per linked record and field, the digest of the value both sides last agreed on
(the *base*). On the next run each side's value either still matches the base or has changed.
Only a side that changed has something to say:

* neither changed, or both changed to the same value: nothing to do;
* one side changed: its value goes to the other side, whatever the mode (a one-sided change
  is no conflict, and a priority list must not freeze a field only one system ever edits);
* both changed to different values: a conflict, resolved by the connection's mode:

  - ``last-write-wins``: the later change wins, by the field's own change time on each side.
    The CRM's times come from the CRM's clock, so they are first corrected by the measured
    skew between its clock and ours (from its ``Date`` headers), then capped at our ``now``:
    a clock running ahead cannot make a change win for as long as it is ahead. Changes whose
    corrected times differ by no more than ``tie_window`` are a tie, and a tie goes to the
    CRM: its records are what a sales team edits by hand, ours mostly what automation wrote;
  - ``source-priority``: the side whose source comes first in the priority list wins; a source
    the list does not name ranks after every one it does; two sources of the same rank fall
    back to ``last-write-wins``.

The winner is written to the side that lost, so both converge on one value and the next run
sees no change on either side.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Final, Literal

ConflictMode = Literal["last-write-wins", "source-priority"]
LOCAL_SOURCE: Final = "campaignflow"
"""The source name of values written in campaignflow itself (API, events, workflows)."""


class Winner(Enum):
    NONE = "none"  # nothing to do: no side changed, or both agree
    LOCAL = "local"  # push the local value to the CRM
    REMOTE = "remote"  # pull the CRM's value into the contact


@dataclass(frozen=True, slots=True)
class FieldSide:
    """One side's current value of a field, by digest, with when and by whom it was last set.

    ``changed_at`` is the side's own clock; ``source`` names the system that wrote the value
    (:data:`LOCAL_SOURCE`, or the provider of the CRM a sync took it from).
    """

    digest: str | None  # None: the field has no value on this side
    changed_at: datetime
    source: str


@dataclass(frozen=True, slots=True)
class MergePolicy:
    mode: ConflictMode
    priority: Sequence[str] = ()
    tie_window: timedelta = timedelta(0)
    remote_skew: timedelta = timedelta(0)  # the CRM's clock minus ours

    def __post_init__(self) -> None:
        if self.tie_window < timedelta(0):
            raise ValueError("the tie window cannot be negative")
        if self.mode == "source-priority" and not self.priority:
            raise ValueError("source-priority needs at least one source")


@dataclass(frozen=True, slots=True)
class Resolution:
    winner: Winner
    conflict: bool  # both sides had changed to different values
    reason: str  # why, for the sync run's history ("only the CRM changed", …)


def resolve_field(
    base: str | None,
    local: FieldSide,
    remote: FieldSide,
    policy: MergePolicy,
    now: datetime,
) -> Resolution:
    """The side whose value the field keeps; ``base`` is the digest both last agreed on (None
    before the first sync, and for a field that was empty on both sides then)."""
    if local.digest == remote.digest:
        return Resolution(Winner.NONE, False, "both sides agree")
    local_changed = local.digest != base
    remote_changed = remote.digest != base
    if local_changed and not remote_changed:
        return Resolution(Winner.LOCAL, False, "only campaignflow changed")
    if remote_changed and not local_changed:
        return Resolution(Winner.REMOTE, False, "only the CRM changed")
    if policy.mode == "source-priority":
        local_rank = _rank(local.source, policy.priority)
        remote_rank = _rank(remote.source, policy.priority)
        if local_rank != remote_rank:
            winner = Winner.LOCAL if local_rank < remote_rank else Winner.REMOTE
            source = local.source if winner is Winner.LOCAL else remote.source
            return Resolution(winner, True, f"source {source!r} has priority")
    return _later(local, remote, policy, now)


def _later(local: FieldSide, remote: FieldSide, policy: MergePolicy, now: datetime) -> Resolution:
    local_at = min(local.changed_at, now)
    remote_at = min(remote.changed_at - policy.remote_skew, now)
    if abs(local_at - remote_at) <= policy.tie_window:
        return Resolution(Winner.REMOTE, True, "changed at the same time: the CRM wins a tie")
    if local_at > remote_at:
        return Resolution(Winner.LOCAL, True, "changed later in campaignflow")
    return Resolution(Winner.REMOTE, True, "changed later in the CRM")


def _rank(source: str, priority: Sequence[str]) -> int:
    try:
        return list(priority).index(source)
    except ValueError:
        return len(priority)
