"""Reading workflow files: syntax errors become located problems, folders are discovered."""

from __future__ import annotations

from pathlib import Path

from campaignflow.workflow_files import discover, load


def test_json_syntax_errors_carry_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "flow.json"
    path.write_text('{\n  "name": "x",\n  "nodes": [,]\n}')

    loaded = load(path)

    assert loaded.document is None
    (problem,) = loaded.problems
    assert problem.code == "syntax"
    assert problem.extra["line"] == 3


def test_yaml_is_read_like_json(tmp_path: Path) -> None:
    path = tmp_path / "flow.yaml"
    path.write_text("workflowId: welcome\nnodes:\n  - id: a\n    type: end\n")

    loaded = load(path)

    assert loaded.problems == ()
    assert loaded.document == {"workflowId": "welcome", "nodes": [{"id": "a", "type": "end"}]}


def test_yaml_syntax_errors_carry_line(tmp_path: Path) -> None:
    path = tmp_path / "flow.yml"
    path.write_text("workflowId: welcome\nnodes: [\n  - broken\n")

    (problem,) = load(path).problems

    assert problem.code == "syntax"
    assert isinstance(problem.extra["line"], int)


def test_a_missing_file_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    (problem,) = load(tmp_path / "absent.json").problems

    assert problem.code == "unreadable"


def test_discover_finds_workflow_files_recursively_but_not_hidden_ones(tmp_path: Path) -> None:
    (tmp_path / "b.json").write_text("{}")
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "a.yaml").write_text("{}")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "c.json").write_text("{}")
    (tmp_path / "notes.md").write_text("")

    assert discover(tmp_path) == [tmp_path / "b.json", tmp_path / "nested" / "a.yaml"]
