"""Find the triggers an event satisfies, evaluating CEL only where the prefilter cannot decide.

Triggers are bucketed by (workspace, event name). Inside a bucket, each trigger with a prefilter
is filed under one of its requirements, by path and then by allowed value (as
:func:`~campaignflow.triggers.prefilter.key`, which keeps ``true`` apart from ``1`` as CEL does),
so an event costs one dict lookup per distinct path rather than one check per trigger. A
candidate's other conditions are checked next, and its CEL condition last, unless the prefilter is
exact: then it has decided already. Variables that are not
:func:`~campaignflow.triggers.prefilter.plain` skip the prefilters, and CEL decides every trigger.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Generic, TypeVar

from campaignflow.domain.cel import CelEvaluationError, CompiledExpression
from campaignflow.triggers.prefilter import Prefilter, extract, key, plain, resolve

T = TypeVar("T")
_Path = tuple[str, tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class IndexedTrigger(Generic[T]):
    """A trigger as the index sees it; ``value`` is whatever the caller wants back on a match.

    ``prefilter`` must be sound for ``condition``, and when exact, exact for it (see
    :mod:`campaignflow.triggers.prefilter`); :meth:`of` extracts it from the condition's source.
    """

    workspace_id: str
    event_name: str
    condition: CompiledExpression | None
    prefilter: Prefilter
    value: T

    @classmethod
    def of(
        cls, workspace_id: str, event_name: str, condition: CompiledExpression | None, value: T
    ) -> IndexedTrigger[T]:
        prefilter = extract(condition.source) if condition is not None else Prefilter()
        return cls(workspace_id, event_name, condition, prefilter, value)


@dataclass(frozen=True, slots=True)
class MatchResult(Generic[T]):
    """The values of the matched triggers in the order given, and what it took to find them."""

    matched: list[T] = field(default_factory=list)
    evaluated: int = 0
    """CEL evaluations run (an exact prefilter decides without one)."""
    errors: int = 0
    """CEL evaluations that failed; such a condition does not match."""


@dataclass(frozen=True, slots=True)
class _Entry(Generic[T]):
    position: int
    trigger: IndexedTrigger[T]
    rest: Prefilter  # the conditions the bucket's lookup did not already check
    exact: bool  # the trigger's prefilter decides its condition


@dataclass(frozen=True, slots=True)
class _Group(Generic[T]):
    """Triggers filed under one path, by the value they require there."""

    root: str
    path: tuple[str, ...]
    by_value: dict[object, list[_Entry[T]]]

    def candidates(self, variables: Mapping[str, object]) -> list[_Entry[T]]:
        value = key(resolve(variables, self.root, self.path))
        try:
            return self.by_value.get(value, [])
        except TypeError:  # a list or map: CEL never finds it equal to a scalar literal
            return []


@dataclass(frozen=True, slots=True)
class _Bucket(Generic[T]):
    members: list[_Entry[T]]  # every trigger, with its whole prefilter
    unfiltered: list[_Entry[T]]
    groups: tuple[_Group[T], ...]
    filtering: bool  # some prefilter has conditions: the variables must be plain for them

    def candidates(self, variables: Mapping[str, object]) -> list[_Entry[T]]:
        if not self.groups:
            return self.unfiltered
        found = list(self.unfiltered)
        for group in self.groups:
            found += group.candidates(variables)
        found.sort(key=attrgetter("position"))
        return found


class TriggerIndex(Generic[T]):
    """An immutable index of triggers, built once per trigger set and shared by the router."""

    def __init__(self, triggers: Iterable[IndexedTrigger[T]]) -> None:
        members: dict[tuple[str, str], list[_Entry[T]]] = {}
        for position, trigger in enumerate(triggers):
            address = (trigger.workspace_id, trigger.event_name)
            entry = _Entry(position, trigger, trigger.prefilter, trigger.prefilter.exact)
            members.setdefault(address, []).append(entry)
        self._buckets = {address: _bucket(entries) for address, entries in members.items()}
        names: dict[str, set[str]] = {}
        for workspace_id, event_name in members:
            names.setdefault(workspace_id, set()).add(event_name)
        self._names = {workspace_id: frozenset(found) for workspace_id, found in names.items()}

    def names(self, workspace_id: str) -> frozenset[str]:
        """The event names some trigger of the workspace listens to."""
        return self._names.get(workspace_id, frozenset())

    def match(
        self, workspace_id: str, event_name: str, variables: Mapping[str, object]
    ) -> MatchResult[T]:
        """The triggers whose condition holds for ``variables`` (``event``, ``contact``, ``now``).

        A condition that fails to evaluate does not match and is counted in ``errors``.
        """
        bucket = self._buckets.get((workspace_id, event_name))
        if bucket is None:
            return MatchResult()
        if bucket.filtering and not plain(variables):
            return _decide(bucket.members, variables, prefiltered=False)
        return _decide(bucket.candidates(variables), variables, prefiltered=True)


def _decide(
    entries: list[_Entry[T]], variables: Mapping[str, object], *, prefiltered: bool
) -> MatchResult[T]:
    """Decide each entry: when ``prefiltered`` (the entries are the bucket's candidates for plain
    variables), by the rest of its prefilter, and then by CEL unless the prefilter is exact."""
    matched: list[T] = []
    evaluated = errors = 0
    for entry in entries:
        if prefiltered and not entry.rest.admits(variables):
            continue
        condition = entry.trigger.condition
        if condition is None or (prefiltered and entry.exact):
            matched.append(entry.trigger.value)
            continue
        evaluated += 1
        try:
            if condition.evaluate_bool(variables):
                matched.append(entry.trigger.value)
        except CelEvaluationError:
            errors += 1
    return MatchResult(matched, evaluated, errors)


def _bucket(entries: list[_Entry[T]]) -> _Bucket[T]:
    """File each entry under its most selective requirement, sharing paths where possible.

    ``entries`` still carry their whole prefilter as ``rest``; the filed ones keep the others.
    """
    popularity = Counter(
        (requirement.root, requirement.path)
        for entry in entries
        for requirement in set(entry.rest.requirements)
    )
    unfiltered: list[_Entry[T]] = []
    groups: dict[_Path, dict[object, list[_Entry[T]]]] = {}
    for entry in entries:
        requirements = entry.rest.requirements
        if not requirements:
            unfiltered.append(entry)
            continue
        chosen = min(requirements, key=lambda r: (len(r.values), -popularity[(r.root, r.path)]))
        others = tuple(r for r in requirements if r is not chosen)
        filed = _Entry(
            entry.position, entry.trigger, Prefilter(others, entry.rest.checks), entry.exact
        )
        by_value = groups.setdefault((chosen.root, chosen.path), {})
        for value in chosen.values:
            by_value.setdefault(value, []).append(filed)
    filtering = any(entry.rest.requirements or entry.rest.checks for entry in entries)
    return _Bucket(
        entries,
        unfiltered,
        tuple(_Group(root, path, by) for (root, path), by in groups.items()),
        filtering,
    )
