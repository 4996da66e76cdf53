"""Reading workflow files (JSON or YAML) for ``validate`` and ``apply``.

Syntax errors become problems with line and column, exactly like schema problems, so a user sees
one uniform list for a whole folder. Files are read whole: workflow definitions are small, and a
file larger than the API's body limit is refused up front for the same reason the API refuses it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import yaml

from campaignflow.domain.problems import Problem

WORKFLOW_SUFFIXES = frozenset({".json", ".yaml", ".yml"})
MAX_FILE_BYTES = 1_048_576


@dataclass(frozen=True, slots=True)
class WorkflowFile:
    path: Path
    document: object | None
    problems: tuple[Problem, ...] = field(default=())


def discover(directory: Path) -> list[Path]:
    """Workflow files below ``directory``, in a stable order (hidden folders skipped)."""
    found = (
        path
        for path in directory.rglob("*")
        if path.suffix.lower() in WORKFLOW_SUFFIXES
        and path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(directory).parts)
    )
    return sorted(found)


def _syntax_problem(message: str, line: int | None, column: int | None) -> Problem:
    extra: dict[str, object] = {}
    where = ""
    if line is not None:
        extra = {"line": line, "column": column}
        where = f" (line {line}, column {column})"
    return Problem((), f"{message}{where}", "syntax", extra)


def _parse(path: Path, raw: bytes) -> WorkflowFile:
    if path.suffix.lower() == ".json":
        try:
            return WorkflowFile(path, orjson.loads(raw))
        except orjson.JSONDecodeError as exc:
            return WorkflowFile(path, None, (_syntax_problem(exc.msg, exc.lineno, exc.colno),))
    try:
        return WorkflowFile(path, yaml.safe_load(raw))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        column = mark.column + 1 if mark is not None else None
        reason = getattr(exc, "problem", None) or str(exc)
        return WorkflowFile(path, None, (_syntax_problem(str(reason), line, column),))


def load(path: Path) -> WorkflowFile:
    """Read and parse one file; unreadable, oversized or malformed files yield a problem."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            return WorkflowFile(
                path,
                None,
                (Problem((), f"file is larger than {MAX_FILE_BYTES} bytes", "too_large"),),
            )
        raw = path.read_bytes()
    except OSError as exc:
        return WorkflowFile(
            path, None, (Problem((), f"cannot read file: {exc.strerror}", "unreadable"),)
        )
    return _parse(path, raw)


def load_all(paths: Iterable[Path]) -> list[WorkflowFile]:
    return [load(path) for path in paths]
