"""One record's sync plan: which mapped fields go to the CRM, which come back, and the new base.

The sync engine loads, for one contact and its CRM record, the values on both sides and the
per-field state kept from the last run (:class:`FieldBase`: the digest both sides agreed on and
when each side last changed the field), and asks :func:`plan_record` what to do. Everything is
compared in the contact's form: a CRM value is first converted by the mapping's *pull*
transform, so ``"ALICE@X.COM"`` pulled through ``lowercase`` agrees with ``"alice@x.com"``.

Digests, not values, are kept between runs (the values are personal data; the store keys the
digest). The digest function is handed in, so this module stays pure.

A record whose mapped values cannot be converted (a transform error) is not applied at all:
half a record is harder to reason about than none, and the sync run reports the record with
each failing field, to be retried on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

from campaignflow.domain.field_merge import (
    LOCAL_SOURCE,
    FieldSide,
    MergePolicy,
    Winner,
    resolve_field,
)
from campaignflow.domain.field_transforms import Scalar, TransformError
from campaignflow.domain.sync_config import FieldMapping

Digest = Callable[[Scalar], str | None]
"""A value's digest in the contact's form; None for a missing value (None)."""


@dataclass(frozen=True, slots=True)
class FieldBase:
    """What the last run left for one field: the agreed digest and each side's change time."""

    digest: str | None
    local_at: datetime | None = None
    remote_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class LocalSide:
    """The contact's mapped values by local name, with per-field change times and sources
    where known (a value a sync pulled records both); others changed at ``updated_at``."""

    values: Mapping[str, Scalar]
    updated_at: datetime
    field_times: Mapping[str, datetime] = field(default_factory=lambda: MappingProxyType({}))
    field_sources: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class RemoteSide:
    """The CRM record's values by CRM name; ``source`` is the CRM's provider name."""

    values: Mapping[str, Scalar]
    modified_at: datetime
    source: str
    field_times: Mapping[str, datetime] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class FieldConflict:
    local_field: str
    winner: Winner
    reason: str


@dataclass(frozen=True, slots=True)
class FieldError:
    local_field: str
    direction: str  # "push" or "pull"
    message: str


@dataclass(frozen=True, slots=True)
class RecordPlan:
    """``push``: CRM name → value to write there; ``pull``: local name → value to write here;
    ``bases``: the state to keep once both writes succeeded. ``errors`` non-empty: apply
    nothing."""

    push: dict[str, Scalar]
    pull: dict[str, Scalar]
    bases: dict[str, FieldBase]
    conflicts: list[FieldConflict]
    errors: list[FieldError]

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def changes_anything(self) -> bool:
        return bool(self.push or self.pull)


def plan_record(
    mappings: Mapping[str, FieldMapping],
    local: LocalSide | None,
    remote: RemoteSide | None,
    *,
    state: Mapping[str, FieldBase],
    policy: MergePolicy,
    digest: Digest,
    now: datetime,
) -> RecordPlan:
    """The plan for one record. ``local`` None: the CRM record has no contact yet (everything
    the mapping pulls is pulled); ``remote`` None: the contact is not in the CRM yet
    (everything it pushes is pushed). ``state`` is empty for a record never synced."""
    planner = _Planner(local, remote, policy, digest, now)
    for local_name, mapping in mappings.items():
        planner.add(local_name, mapping, state.get(local_name))
    plan = planner.plan
    if plan.errors:
        return RecordPlan({}, {}, {}, [], plan.errors)
    return plan


@dataclass(slots=True)
class _Planner:
    local: LocalSide | None
    remote: RemoteSide | None
    policy: MergePolicy
    digest: Digest
    now: datetime
    plan: RecordPlan = field(default_factory=lambda: RecordPlan({}, {}, {}, [], []))

    def add(self, name: str, mapping: FieldMapping, base: FieldBase | None) -> None:
        local, remote, plan = self.local, self.remote, self.plan
        transform = mapping.resolved_transform()
        local_value = local.values.get(name) if local is not None else None
        try:
            remote_value = (
                transform.pull(remote.values.get(mapping.remote)) if remote is not None else None
            )
        except TransformError as exc:
            plan.errors.append(FieldError(name, "pull", exc.message))
            return
        local_side = FieldSide(
            self.digest(local_value),
            _local_time(local, name, self.now),
            local.field_sources.get(name, LOCAL_SOURCE) if local is not None else LOCAL_SOURCE,
        )
        remote_side = FieldSide(
            self.digest(remote_value),
            _remote_time(remote, mapping.remote, self.now),
            remote.source if remote is not None else "",
        )
        agreed = base.digest if base is not None else None
        winner = self._winner(name, agreed, local_side, remote_side)
        winner = _respect_direction(
            winner, mapping.direction, agreed, local_side.digest, remote_side.digest
        )
        if winner is Winner.LOCAL:
            try:
                plan.push[mapping.remote] = transform.push(local_value)
            except TransformError as exc:
                plan.errors.append(FieldError(name, "push", exc.message))
                return
            plan.bases[name] = FieldBase(local_side.digest, local_side.changed_at, self.now)
        elif winner is Winner.REMOTE:
            plan.pull[name] = remote_value
            plan.bases[name] = FieldBase(remote_side.digest, self.now, remote_side.changed_at)
        else:
            agree = local_side.digest == remote_side.digest
            plan.bases[name] = FieldBase(
                local_side.digest if agree else agreed,
                local_side.changed_at if local is not None else None,
                remote_side.changed_at if remote is not None else None,
            )

    def _winner(self, name: str, agreed: str | None, local: FieldSide, remote: FieldSide) -> Winner:
        if self.local is None or self.remote is None:
            # The record is new on one side: the other's value is simply copied.
            if local.digest == remote.digest:
                return Winner.NONE
            return Winner.REMOTE if self.local is None else Winner.LOCAL
        resolution = resolve_field(agreed, local, remote, self.policy, self.now)
        if resolution.conflict:
            self.plan.conflicts.append(FieldConflict(name, resolution.winner, resolution.reason))
        return resolution.winner


def _respect_direction(
    winner: Winner, direction: str, agreed: str | None, local: str | None, remote: str | None
) -> Winner:
    """A push-only field never takes the CRM's value and a pull-only field never overwrites
    it; the losing side's change is left alone (it is not reverted, so the two systems do
    not fight over a field one of them owns)."""
    if direction == "push" and winner is Winner.REMOTE:
        return Winner.LOCAL if local != agreed else Winner.NONE
    if direction == "pull" and winner is Winner.LOCAL:
        return Winner.REMOTE if remote != agreed else Winner.NONE
    return winner


def _local_time(local: LocalSide | None, name: str, now: datetime) -> datetime:
    if local is None:
        return now
    return local.field_times.get(name, local.updated_at)


def _remote_time(remote: RemoteSide | None, name: str, now: datetime) -> datetime:
    if remote is None:
        return now
    return remote.field_times.get(name, remote.modified_at)


def plan_local_changes(
    mappings: Mapping[str, FieldMapping],
    local: LocalSide,
    *,
    state: Mapping[str, FieldBase],
    digest: Digest,
    now: datetime,
) -> RecordPlan:
    """The push of a contact whose CRM record did not change since the last sync (a run's
    pull saw no change of it): every field campaignflow may push whose value no longer matches
    the agreed one. A contact never synced (``state`` empty) pushes every value it has."""
    plan = RecordPlan({}, {}, {}, [], [])
    for name, mapping in mappings.items():
        if mapping.direction == "pull":
            continue
        value = local.values.get(name)
        current = digest(value)
        base = state.get(name)
        if base is not None and base.digest == current:
            continue
        if base is None and value is None:
            continue  # nothing to tell the CRM about a field empty on both sides
        try:
            plan.push[mapping.remote] = mapping.resolved_transform().push(value)
        except TransformError as exc:
            plan.errors.append(FieldError(name, "push", exc.message))
            continue
        plan.bases[name] = FieldBase(current, _local_time(local, name, now), now)
    if plan.errors:
        return RecordPlan({}, {}, {}, [], plan.errors)
    return plan
