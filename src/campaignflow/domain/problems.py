"""One problem found in a document, located by a JSON Pointer (RFC 6901).

Validators collect problems instead of raising on the first one, so a user fixing a workflow file
sees every mistake at once. The same value feeds the CLI (``file: /nodes/2/config: message``) and
the API (the ``errors`` member of an RFC 9457 problem document).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

PathPart = str | int


def to_pointer(path: Iterable[PathPart]) -> str:
    """Render a path as a JSON Pointer, escaping ``~`` and ``/`` as RFC 6901 requires."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


@dataclass(frozen=True, slots=True)
class Problem:
    """A single validation problem.

    ``code`` is a stable, machine-readable slug (``unknown_node``, ``cel_syntax``, …) that clients
    may branch on; ``message`` is for people and may change wording between releases.
    """

    path: tuple[PathPart, ...]
    message: str
    code: str = "invalid"
    extra: dict[str, object] = field(default_factory=dict, compare=False)

    @property
    def pointer(self) -> str:
        return to_pointer(self.path)

    def to_dict(self) -> dict[str, object]:
        return {"pointer": self.pointer, "detail": self.message, "code": self.code, **self.extra}


def document_order(problem: Problem) -> tuple[tuple[int, int | str], ...]:
    """Order problems as they appear in the document (``/nodes/2`` before ``/nodes/10``)."""
    return tuple((0, part) if isinstance(part, int) else (1, part) for part in problem.path)
