"""Iterative algorithms on small directed graphs given as ``{node: [successor, ...]}``.

Written without recursion so a 500-node chain cannot exhaust Python's stack, and linear in nodes
plus edges so validation stays fast however a definition is shaped. Successors that are not keys
of the mapping are ignored.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from typing import Generic, TypeVar

N = TypeVar("N", bound=Hashable)
Graph = Mapping[N, Sequence[N]]


def reachable(graph: Graph[N], roots: Iterable[N]) -> set[N]:
    """Every node reachable from ``roots`` (the roots included when they are in the graph)."""
    seen = {root for root in roots if root in graph}
    queue = deque(seen)
    while queue:
        for successor in graph[queue.popleft()]:
            if successor in graph and successor not in seen:
                seen.add(successor)
                queue.append(successor)
    return seen


def shortest_path(graph: Graph[N], source: N, target: N) -> list[N] | None:
    """Nodes of a shortest path from ``source`` to ``target`` (inclusive), or ``None``.

    With ``source == target`` this finds a shortest cycle through ``source``.
    """
    parents: dict[N, N] = {}
    queue = deque([source])
    while queue:
        node = queue.popleft()
        for successor in graph.get(node, ()):
            if successor not in graph or successor in parents:
                continue
            parents[successor] = node
            if successor == target:
                return _unwind(parents, source, target)
            queue.append(successor)
    return None


def _unwind(parents: Mapping[N, N], source: N, target: N) -> list[N]:
    path = [target]
    node = parents[target]
    while node != source:
        path.append(node)
        node = parents[node]
    path.append(source)
    path.reverse()
    return path


def cycles(graph: Graph[N]) -> Iterator[list[N]]:
    """Strongly connected components that contain a cycle (size > 1, or a self-loop)."""
    for component in strongly_connected_components(graph):
        only = component[0]
        if len(component) > 1 or only in graph[only]:
            yield component


def strongly_connected_components(graph: Graph[N]) -> list[list[N]]:
    """Tarjan's algorithm, iteratively; components come out in reverse topological order."""
    tarjan = _Tarjan(graph)
    for root in graph:
        if root not in tarjan.index:
            tarjan.visit(root)
    return tarjan.components


class _Tarjan(Generic[N]):
    def __init__(self, graph: Graph[N]) -> None:
        self.graph = graph
        self.index: dict[N, int] = {}
        self.low: dict[N, int] = {}
        self.stack: list[N] = []
        self.on_stack: set[N] = set()
        self.components: list[list[N]] = []

    def visit(self, root: N) -> None:
        work: list[tuple[N, Iterator[N]]] = [(root, self._enter(root))]
        while work:
            node, successors = work[-1]
            child = self._next_unvisited(node, successors)
            if child is not None:
                work.append((child, self._enter(child)))
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                self.low[parent] = min(self.low[parent], self.low[node])
            if self.low[node] == self.index[node]:
                self._pop_component(node)

    def _enter(self, node: N) -> Iterator[N]:
        self.index[node] = self.low[node] = len(self.index)
        self.stack.append(node)
        self.on_stack.add(node)
        return iter(self.graph[node])

    def _next_unvisited(self, node: N, successors: Iterator[N]) -> N | None:
        for successor in successors:
            if successor not in self.graph:
                continue
            if successor not in self.index:
                return successor
            if successor in self.on_stack:
                self.low[node] = min(self.low[node], self.index[successor])
        return None

    def _pop_component(self, node: N) -> None:
        component: list[N] = []
        while True:
            member = self.stack.pop()
            self.on_stack.discard(member)
            component.append(member)
            if member == node:
                break
        self.components.append(component)
