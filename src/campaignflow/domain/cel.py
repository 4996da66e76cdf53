"""The seam around CEL (Common Expression Language), the language of every condition.

CEL is compiled once, when a definition is validated, and evaluated per event; the compiled form
is what the engine keeps. The implementation is Google's cel-cpp (``cel_expr_python``), measured
at ~10 µs per evaluation; nothing outside this module imports it, so it can be swapped.

Variables depend on where an expression sits (:class:`CelContext`): trigger conditions and exit
criteria see ``event``, ``contact`` and ``now``; expressions inside nodes also see ``input`` (the
execution input), ``steps`` (outputs of earlier steps by node id) and ``vars`` (values assigned by
``set`` actions). ``now`` is a timestamp handed in by the caller; this module never reads a clock.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from typing import Any

from cel_expr_python import cel

from campaignflow.errors import CampaignflowError, ClientError


class CelContext(StrEnum):
    """Where an expression is evaluated, which decides the variables it may use."""

    TRIGGER = "trigger"
    NODE = "node"


CONTEXT_VARIABLES: Mapping[CelContext, tuple[str, ...]] = {
    CelContext.TRIGGER: ("event", "contact", "now"),
    CelContext.NODE: ("input", "event", "contact", "steps", "vars", "now"),
}
_TIMESTAMP_VARIABLES = frozenset({"now"})
_BOOLEAN_COMPATIBLE = frozenset({"BOOL", "DYN"})
_DIAGNOSTIC = re.compile(r"ERROR: <input>:(?P<line>\d+):(?P<column>\d+): (?P<message>[^\n]*)")
_TRAILER = re.compile(r"\s*\[[A-Z_]+\]\s*$")


@dataclass(frozen=True, slots=True)
class CelDiagnostic:
    """One message from the CEL compiler, located by 1-based line and column."""

    message: str
    line: int
    column: int

    @property
    def is_syntax_error(self) -> bool:
        return self.message.startswith("Syntax error")


class CelCompileError(ClientError):
    """The CEL expression does not compile."""

    def __init__(self, diagnostics: tuple[CelDiagnostic, ...]) -> None:
        self.diagnostics = diagnostics
        first = diagnostics[0]
        self.line, self.column = first.line, first.column
        more = f" (and {len(diagnostics) - 1} more)" if len(diagnostics) > 1 else ""
        super().__init__(f"{first.message} at line {first.line}, column {first.column}{more}")

    @property
    def is_syntax_error(self) -> bool:
        return self.diagnostics[0].is_syntax_error


class CelEvaluationError(CampaignflowError):
    """The CEL expression failed while evaluating (missing key, wrong type, division by zero)."""


@dataclass(frozen=True, slots=True)
class CompiledExpression:
    """A compiled expression; immutable and safe to share between executions."""

    source: str
    context: CelContext
    return_type: str
    _program: Any = field(repr=False, compare=False)

    @property
    def may_be_boolean(self) -> bool:
        """False when the checker proved the result is not a bool (``1 + 2``, ``"yes"``)."""
        return self.return_type in _BOOLEAN_COMPATIBLE

    def evaluate(self, variables: Mapping[str, object]) -> Any:
        """Evaluate with ``variables`` (JSON-like values; ``now`` a timezone-aware datetime)."""
        try:
            value = self._program.eval(data=dict(variables))
        except (RuntimeError, TypeError, ValueError) as exc:
            raise CelEvaluationError(f"{self.source!r}: {exc}") from exc
        if value.type().name() == "ERROR":
            raise CelEvaluationError(f"{self.source!r}: {value.plain_value()}")
        return value.plain_value()

    def evaluate_bool(self, variables: Mapping[str, object]) -> bool:
        """Evaluate a condition; a non-boolean result is an error, never truthiness."""
        result = self.evaluate(variables)
        if not isinstance(result, bool):
            kind = type(result).__name__
            raise CelEvaluationError(f"{self.source!r} returned {kind}, not a boolean")
        return result


class CelEnvironment:
    """Compiles expressions for one :class:`CelContext`; get one with :func:`environment`."""

    def __init__(self, context: CelContext) -> None:
        self.context = context
        declarations = {
            name: cel.Type.TIMESTAMP if name in _TIMESTAMP_VARIABLES else cel.Type.DYN
            for name in CONTEXT_VARIABLES[context]
        }
        self._env = cel.NewEnv(variables=declarations)

    def compile(self, source: str) -> CompiledExpression:
        """Compile ``source`` or raise :class:`CelCompileError` with line and column."""
        try:
            program = self._env.compile(source)
        except RuntimeError as exc:
            raise CelCompileError(parse_diagnostics(str(exc))) from exc
        return CompiledExpression(source, self.context, program.return_type().name(), program)


@cache
def environment(context: CelContext) -> CelEnvironment:
    """The shared environment of a context: built on first use, immutable afterwards."""
    return CelEnvironment(context)


def parse_diagnostics(text: str) -> tuple[CelDiagnostic, ...]:
    """Split the compiler's message into located diagnostics (there may be several)."""
    found = tuple(
        CelDiagnostic(
            _TRAILER.sub("", match["message"]).strip(), int(match["line"]), int(match["column"])
        )
        for match in _DIAGNOSTIC.finditer(text)
    )
    return found or (CelDiagnostic(_TRAILER.sub("", text).strip() or "invalid expression", 1, 1),)
