from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from campaignflow.domain.graph import check_graph, duplicate_names, read_nodes, start_reference
from campaignflow.domain.problems import Problem

WAITS = {"delay", "wait_for_event"}


def node(node_id: str, kind: str = "action", **fields: Any) -> dict[str, Any]:
    return {"id": node_id, "type": kind, **fields}


def problems_of(nodes: list[dict[str, Any]], **document: Any) -> list[Problem]:
    graph_nodes = read_nodes(nodes)
    return check_graph(graph_nodes, start_reference({"nodes": nodes, **document}, graph_nodes))


def codes(problems: Sequence[Problem]) -> set[tuple[str, str]]:
    return {(p.pointer, p.code) for p in problems}


def test_a_simple_path_is_clean() -> None:
    nodes = [node("a", next="b"), node("b", "delay", next="c"), node("c", "end")]
    assert problems_of(nodes) == []


def test_duplicate_id_points_at_the_second_occurrence() -> None:
    nodes = [node("a", next="b"), node("b", "end"), node("a", "end")]
    assert codes(problems_of(nodes)) == {("/nodes/2/id", "duplicate_id")}


def test_unknown_references_point_at_the_referencing_field() -> None:
    nodes = [
        node("a", next="b"),
        node(
            "b",
            "condition",
            config={"branches": [{"when": "true", "next": "ghost"}], "default": "c"},
        ),
        node("c", "wait_for_event", config={"onTimeout": "nowhere"}, onError="x"),
    ]
    found = problems_of(nodes, start="nope")
    assert codes(found) == {
        ("/start", "unknown_node"),
        ("/nodes/1/config/branches/0/next", "unknown_node"),
        ("/nodes/2/config/onTimeout", "unknown_node"),
    }  # onError is not a field of wait_for_event, so it is not read as a reference


def test_suggests_a_close_id() -> None:
    (problem,) = problems_of([node("send-welcome", next="send-welcom")])
    assert "did you mean 'send-welcome'" in problem.message


def test_snake_case_keys_are_references_too() -> None:
    nodes = [node("a", on_error="ghost")]
    assert codes(problems_of(nodes)) == {("/nodes/0/on_error", "unknown_node")}


def test_unreachable_nodes_are_reported_from_start() -> None:
    nodes = [node("a", "end"), node("b", next="a"), node("c", "end")]
    assert codes(problems_of(nodes, start="b")) == {("/nodes/2", "unreachable_node")}


def test_broken_nodes_still_count_for_reachability() -> None:
    nodes = [node("a", "delay", config="not an object", next="b"), node("b", "end")]
    assert problems_of(nodes) == []


def test_cycle_through_a_wait_is_legal_but_a_busy_loop_is_not() -> None:
    waiting = [node("a", next="w"), node("w", "wait_for_event", next="a")]
    assert problems_of(waiting) == []
    busy = [node("a", next="b"), node("b", next="a")]
    (problem,) = problems_of(busy)
    assert (problem.pointer, problem.code) == ("/nodes/0", "cycle_without_wait")
    assert "a → b → a" in problem.message


def test_busy_inner_loop_inside_a_loop_with_a_wait_is_found() -> None:
    nodes = [
        node("a", next="c"),
        node("c", "condition", config={"branches": [{"when": "x", "next": "a"}], "default": "d"}),
        node("d", "delay", next="a"),
    ]
    assert codes(problems_of(nodes)) == {("/nodes/0", "cycle_without_wait")}


def test_retry_loop_through_on_error_is_a_busy_loop() -> None:
    assert codes(problems_of([node("a", onError="a")])) == {("/nodes/0", "cycle_without_wait")}


def _parallel(join: str | None, *branches: str) -> dict[str, Any]:
    config: dict[str, Any] = {"branches": list(branches)}
    if join is not None:
        config["join"] = join
    return config


def test_parallel_and_join_pairing() -> None:
    nodes = [
        node("p", "parallel", config=_parallel("j", "b1", "b2")),
        node("b1", next="j"),
        node("b2", next="j"),
        node("j", "join", next="done"),
        node("done", "end"),
    ]
    assert problems_of(nodes) == []


def test_join_problems() -> None:
    nodes = [
        node("p", "parallel", config=_parallel("j", "b1", "b2")),
        node("b1", next="j"),
        node("b2", "end"),
        node("j", "join", next="q"),
        node("q", "parallel", config=_parallel("j", "b1", "b2")),
        node("r", "parallel", config=_parallel("b1", "b1", "b2")),
        node("lonely", "join"),
    ]
    found = codes(problems_of(nodes))
    assert ("/nodes/0/config/branches/1", "join_unreachable") in found
    assert ("/nodes/4/config/join", "join_shared") in found
    assert ("/nodes/5/config/join", "join_not_a_join") in found
    assert ("/nodes/6", "join_without_parallel") in found


def test_fire_and_forget_parallel_needs_no_join() -> None:
    nodes = [node("p", "parallel", config=_parallel(None, "a", "b")), node("a"), node("b")]
    assert problems_of(nodes) == []


def test_long_chain_does_not_recurse() -> None:
    count = 5000
    nodes = [node(f"n{i}", next=f"n{i + 1}") for i in range(count - 1)]
    nodes.append(node(f"n{count - 1}", next="n0"))
    (problem,) = problems_of(nodes)
    assert problem.code == "cycle_without_wait"
    assert f"({count} nodes)" in problem.message


def test_duplicate_names() -> None:
    items = [{"name": "a"}, {"name": "b"}, {"name": "a"}, {"type": "api"}, "junk"]
    assert [p.pointer for p in duplicate_names(items, "triggers")] == ["/triggers/2/name"]


# --------------------------------------------------------------------------- generated graphs

KINDS = ("action", "delay", "wait_for_event", "condition", "end")


@st.composite
def graphs(draw: st.DrawFn) -> list[dict[str, Any]]:
    count = draw(st.integers(min_value=1, max_value=10))
    ids = [f"n{i}" for i in range(count)]
    targets = st.sampled_from([*ids, "ghost"])
    nodes = []
    for node_id in ids:
        kind = draw(st.sampled_from(KINDS))
        if kind == "condition":
            branches = draw(st.lists(targets, min_size=1, max_size=2))
            config = {"branches": [{"when": "x", "next": t} for t in branches]}
            nodes.append(node(node_id, kind, config={**config, "default": draw(targets)}))
        elif kind == "end":
            nodes.append(node(node_id, kind))
        else:
            successor = draw(st.one_of(st.none(), targets))
            nodes.append(node(node_id, kind, **({"next": successor} if successor else {})))
    return nodes


def successors(raw: Mapping[str, Any]) -> list[str]:
    found = [raw["next"]] if "next" in raw else []
    config = raw.get("config", {})
    found += [branch["next"] for branch in config.get("branches", [])]
    found += [config["default"]] if "default" in config else []
    return found


def closure(edges: Mapping[str, list[str]], sources: list[str]) -> set[str]:
    """Reachability by fixed point: the slow, obviously correct way."""
    seen = set(sources)
    changed = True
    while changed:
        changed = False
        for source in list(seen):
            for target in edges.get(source, []):
                if target in edges and target not in seen:
                    seen.add(target)
                    changed = True
    return seen


@settings(max_examples=300)
@given(graphs())
def test_generated_graphs_match_a_brute_force_reference(nodes: list[dict[str, Any]]) -> None:
    edges = {raw["id"]: successors(raw) for raw in nodes}
    kinds = {raw["id"]: raw["type"] for raw in nodes}
    found = problems_of(nodes)

    unknown = {p.pointer for p in found if p.code == "unknown_node"}
    expected_unknown = sum(target == "ghost" for targets in edges.values() for target in targets)
    assert len(unknown) == expected_unknown

    reached = closure(edges, ["n0"])
    unreachable = {p.pointer for p in found if p.code == "unreachable_node"}
    assert unreachable == {f"/nodes/{i}" for i, raw in enumerate(nodes) if raw["id"] not in reached}

    busy = {k: [t for t in v if t in kinds and kinds[t] not in WAITS] for k, v in edges.items()}
    busy = {k: v for k, v in busy.items() if kinds[k] not in WAITS}
    on_busy_cycle = {k for k in busy if k in closure(busy, busy[k])}
    flagged = {int(p.pointer.split("/")[2]) for p in found if p.code == "cycle_without_wait"}
    flagged_ids = {nodes[i]["id"] for i in flagged}
    assert flagged_ids <= on_busy_cycle
    for member in on_busy_cycle:  # every busy loop is reported through one of its nodes
        component = {k for k in on_busy_cycle if member in closure(busy, [k])} & closure(
            busy, [member]
        )
        assert len(component & flagged_ids) == 1
