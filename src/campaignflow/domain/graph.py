"""Checks on the graph of nodes: ids, references, reachability, loops, parallel/join pairing.

The graph is read leniently from the document as written, not from the typed models, so a node
whose config is broken still contributes its id and its references: one structural mistake never
hides a dangling reference or an unreachable node elsewhere, and never invents one either.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from pydantic.alias_generators import to_snake

from campaignflow.domain import digraph
from campaignflow.domain.fields import NODE_ID_PATTERN
from campaignflow.domain.problems import PathPart, Problem
from campaignflow.domain.workflow import WAIT_NODE_TYPES

_NODE_ID = re.compile(NODE_ID_PATTERN)
_EACH = "*"
#: Where each node type names other nodes: (role, path inside the node; "*" is every list item).
_REFERENCE_FIELDS: Mapping[str | None, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "action": (("next", ("next",)), ("onError", ("onError",))),
    "condition": (
        ("branch", ("config", "branches", _EACH, "next")),
        ("default", ("config", "default")),
    ),
    "delay": (("next", ("next",)),),
    "parallel": (("branch", ("config", "branches", _EACH)), ("join", ("config", "join"))),
    "join": (("next", ("next",)),),
    "wait_for_event": (("next", ("next",)), ("onTimeout", ("config", "onTimeout"))),
    "split": (("variant", ("config", "variants", _EACH, "next")),),
    "end": (),
    None: (("next", ("next",)), ("onError", ("onError",))),  # unknown type: the common ones
}


@dataclass(frozen=True, slots=True)
class Reference:
    """A place in the document that names a node."""

    path: tuple[PathPart, ...]
    target: str
    role: str


@dataclass(frozen=True, slots=True)
class GraphNode:
    """What the graph checks know about ``nodes[index]``; ``id`` is ``None`` when unusable."""

    index: int
    id: str | None
    type: str | None
    references: tuple[Reference, ...]

    @property
    def path(self) -> tuple[PathPart, ...]:
        return ("nodes", self.index)


def read_nodes(raw_nodes: object) -> list[GraphNode]:
    """Extract ids, types and references from the ``nodes`` array as written."""
    if not isinstance(raw_nodes, Sequence) or isinstance(raw_nodes, str):
        return []
    return [_read_node(index, raw) for index, raw in enumerate(raw_nodes)]


def _read_node(index: int, raw: object) -> GraphNode:
    if not isinstance(raw, Mapping):
        return GraphNode(index, None, None, ())
    node_id = raw.get("id")
    kind = raw.get("type") if isinstance(raw.get("type"), str) else None
    fields = _REFERENCE_FIELDS.get(kind, _REFERENCE_FIELDS[None])
    references = tuple(
        Reference(path, target, role)
        for role, spec in fields
        for path, target in _follow(raw, spec, ("nodes", index))
    )
    return GraphNode(index, node_id if _is_node_id(node_id) else None, kind, references)


def _follow(
    value: object, spec: tuple[str, ...], path: tuple[PathPart, ...]
) -> Iterator[tuple[tuple[PathPart, ...], str]]:
    """Yield (path, node id) for every well-formed id found along ``spec``."""
    if not spec:
        if _is_node_id(value):
            yield path, str(value)
        return
    head, rest = spec[0], spec[1:]
    if head == _EACH:
        if isinstance(value, Sequence) and not isinstance(value, str):
            for position, item in enumerate(value):
                yield from _follow(item, rest, (*path, position))
        return
    if isinstance(value, Mapping):
        for key in dict.fromkeys((head, to_snake(head))):
            if key in value:
                yield from _follow(value[key], rest, (*path, key))


def _is_node_id(value: object) -> bool:
    return isinstance(value, str) and _NODE_ID.fullmatch(value) is not None


def start_reference(document: Mapping[str, object], nodes: Sequence[GraphNode]) -> Reference | None:
    """Where execution starts: ``start`` if given, else the first node (if its id is usable)."""
    start = document.get("start")
    if _is_node_id(start):
        return Reference(("start",), str(start), "start")
    if start is None and nodes and nodes[0].id is not None:
        return Reference(("nodes", 0, "id"), nodes[0].id, "start")
    return None


def check_graph(nodes: Sequence[GraphNode], start: Reference | None) -> list[Problem]:
    """Every graph problem of ``nodes``, in no particular order."""
    index = _first_occurrences(nodes)
    problems = list(_duplicate_ids(nodes, index))
    problems += _unknown_references(nodes, index, start)
    problems += _join_problems(nodes, index)
    graph = _adjacency(nodes, index)
    if start is not None and start.target in index:
        problems += _unreachable(nodes, index, graph, start.target)
    problems += _cycles_without_wait(nodes, index, graph)
    problems += _branches_missing_join(nodes, index, graph)
    return problems


def _first_occurrences(nodes: Iterable[GraphNode]) -> dict[str, GraphNode]:
    index: dict[str, GraphNode] = {}
    for node in nodes:
        if node.id is not None:
            index.setdefault(node.id, node)
    return index


def _duplicate_ids(nodes: Iterable[GraphNode], index: Mapping[str, GraphNode]) -> Iterator[Problem]:
    for node in nodes:
        if node.id is not None and index[node.id] is not node:
            first = index[node.id].index
            yield Problem(
                (*node.path, "id"),
                f"duplicate node id {node.id!r}; /nodes/{first} already uses it",
                "duplicate_id",
            )


def _unknown_references(
    nodes: Iterable[GraphNode], index: Mapping[str, GraphNode], start: Reference | None
) -> Iterator[Problem]:
    references = [ref for node in nodes for ref in node.references]
    if start is not None and start.path == ("start",):
        references.append(start)
    for ref in references:
        if ref.target not in index:
            close = difflib.get_close_matches(ref.target, list(index), n=1, cutoff=0.7)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            yield Problem(ref.path, f"no node has id {ref.target!r}{hint}", "unknown_node")


def _join_problems(nodes: Sequence[GraphNode], index: Mapping[str, GraphNode]) -> Iterator[Problem]:
    claimed: dict[str, Reference] = {}
    for node in nodes:
        for ref in _roles(node, "join"):
            target = index.get(ref.target)
            if target is None:
                continue  # reported as unknown_node
            if target.type != "join":
                yield Problem(
                    ref.path,
                    f"{ref.target!r} is a {target.type} node, not a join",
                    "join_not_a_join",
                )
            elif ref.target in claimed:
                first = "/".join(str(part) for part in claimed[ref.target].path[:2])
                yield Problem(
                    ref.path,
                    f"join {ref.target!r} already belongs to the parallel node at /{first}",
                    "join_shared",
                )
            else:
                claimed[ref.target] = ref
    for node in nodes:
        if node.type == "join" and node.id is not None and node.id not in claimed:
            yield Problem(
                node.path,
                f"join {node.id!r} is not the join of any parallel node (set config.join there)",
                "join_without_parallel",
            )


def _roles(node: GraphNode, role: str) -> Iterator[Reference]:
    return (ref for ref in node.references if ref.role == role)


def _adjacency(nodes: Iterable[GraphNode], index: Mapping[str, GraphNode]) -> dict[str, list[str]]:
    """Edges between known nodes; the parallel→join reference counts as an edge."""
    graph: dict[str, list[str]] = {node_id: [] for node_id in index}
    for node in nodes:
        if node.id is not None and index[node.id] is node:
            graph[node.id] = [ref.target for ref in node.references if ref.target in index]
    return graph


def _unreachable(
    nodes: Iterable[GraphNode],
    index: Mapping[str, GraphNode],
    graph: Mapping[str, Sequence[str]],
    start: str,
) -> Iterator[Problem]:
    seen = digraph.reachable(graph, [start])
    for node in nodes:
        if node.id is not None and index[node.id] is node and node.id not in seen:
            yield Problem(
                node.path,
                f"node {node.id!r} cannot be reached from the start node {start!r}",
                "unreachable_node",
            )


def _cycles_without_wait(
    nodes: Sequence[GraphNode], index: Mapping[str, GraphNode], graph: Mapping[str, Sequence[str]]
) -> Iterator[Problem]:
    """A loop with no delay or wait_for_event on it would spin forever without yielding."""
    busy = {
        node_id: successors
        for node_id, successors in graph.items()
        if index[node_id].type not in WAIT_NODE_TYPES
    }
    for component in digraph.cycles(busy):
        members = set(component)
        first = min(component, key=lambda node_id: index[node_id].index)
        inner = {node_id: [s for s in busy[node_id] if s in members] for node_id in members}
        loop = digraph.shortest_path(inner, first, first) or [first, first]
        yield Problem(
            index[first].path,
            f"loop without a delay or wait_for_event: {_describe_loop(loop)}; "
            "an execution would cycle without ever waiting",
            "cycle_without_wait",
        )


def _describe_loop(loop: Sequence[str], limit: int = 8) -> str:
    if len(loop) <= limit + 1:
        return " → ".join(loop)
    return " → ".join(loop[:limit]) + f" → … → {loop[-1]} ({len(loop) - 1} nodes)"


def _branches_missing_join(
    nodes: Sequence[GraphNode], index: Mapping[str, GraphNode], graph: Mapping[str, Sequence[str]]
) -> Iterator[Problem]:
    """Each branch of a parallel with a join must be able to arrive at that join."""
    for node in nodes:
        joins = [ref.target for ref in _roles(node, "join") if ref.target in index]
        if not joins or index[joins[0]].type != "join":
            continue
        for ref in _roles(node, "branch"):
            if ref.target in index and joins[0] not in digraph.reachable(graph, [ref.target]):
                yield Problem(
                    ref.path,
                    f"branch {ref.target!r} never reaches the join {joins[0]!r}",
                    "join_unreachable",
                )


def duplicate_names(
    items: object, section: str, *, code: str = "duplicate_name"
) -> Iterator[Problem]:
    """Flag the second and later items of ``section`` that reuse a ``name``."""
    if not isinstance(items, Sequence) or isinstance(items, str):
        return
    seen: dict[str, int] = {}
    for position, item in enumerate(items):
        name = item.get("name") if isinstance(item, Mapping) else None
        if not isinstance(name, str):
            continue
        if name in seen:
            yield Problem(
                (section, position, "name"),
                f"name {name!r} is already used by /{section}/{seen[name]}",
                code,
            )
        else:
            seen.setdefault(name, position)
