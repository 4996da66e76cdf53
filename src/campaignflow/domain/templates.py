"""Liquid templates in action parameters: parsed once, at validation, in a sandbox.

Liquid is what marketers already write in Braze, Customer.io, Klaviyo and Shopify. The environment
here is the only one campaignflow uses, so validation and rendering agree: ``include`` and
``render`` are removed (a template cannot read files), loops and output are bounded, and an
undefined variable is an error when rendered rather than an empty string in a customer's email.

Validation also checks what can be known before any data exists: the filters used must exist, and
every variable must start from a name the engine provides (:data:`TEMPLATE_ROOTS`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

from liquid import BoundTemplate, Environment, StrictDefaultUndefined
from liquid.exceptions import LiquidError

from campaignflow.domain.cel import CONTEXT_VARIABLES, CelContext

#: Names a template may start a variable from: the same as node CEL expressions.
TEMPLATE_ROOTS = frozenset(CONTEXT_VARIABLES[CelContext.NODE])
_MARKERS = ("{{", "{%")
_BLOCKED_TAGS = ("include", "render")


class SandboxedEnvironment(Environment):
    """Liquid with resource limits and no access to the file system."""

    context_depth_limit = 30
    loop_iteration_limit = 10_000
    output_stream_limit = 1_000_000
    local_namespace_limit = 100_000

    def __init__(self) -> None:
        super().__init__(undefined=StrictDefaultUndefined, strict_filters=True, autoescape=False)
        for tag in _BLOCKED_TAGS:
            self.tags.pop(tag, None)


@cache
def environment() -> SandboxedEnvironment:
    """The shared environment: built on first use, configured once, never changed afterwards."""
    return SandboxedEnvironment()


@dataclass(frozen=True, slots=True)
class TemplateIssue:
    """Why a template is refused; ``line``/``column`` are 1-based when known."""

    code: str
    message: str
    line: int | None = None
    column: int | None = None


def is_template(text: str) -> bool:
    """Whether ``text`` contains Liquid markup; plain strings are used as they are."""
    return any(marker in text for marker in _MARKERS)


def parse_template(text: str) -> BoundTemplate | TemplateIssue:
    """Parse ``text`` in the sandbox: the template, or the first issue found."""
    try:
        template = environment().from_string(text)
    except LiquidError as exc:
        line, column = _error_position(exc)
        message = _located(_explain(str(exc.message)), line, column)
        return TemplateIssue("template_syntax", message, line, column)
    return next(_analysis_issues(template, text), template)


def _analysis_issues(template: BoundTemplate, text: str) -> Iterator[TemplateIssue]:
    analysis = template.analyze()
    known_filters = environment().filters
    for name, spans in analysis.filters.items():
        if name not in known_filters:
            line, column = position(text, spans[0].index)
            message = _located(f"unknown filter {name!r}", line, column)
            yield TemplateIssue("template_filter", message, line, column)
    for name, variables in analysis.globals.items():
        if name not in TEMPLATE_ROOTS:
            line, column = position(text, variables[0].span.index)
            roots = ", ".join(sorted(TEMPLATE_ROOTS))
            message = _located(f"unknown variable {name!r} (available: {roots})", line, column)
            yield TemplateIssue("template_variable", message, line, column)


def _explain(message: str) -> str:
    for tag in _BLOCKED_TAGS:
        if message == f"unexpected tag {tag!r}":
            return f"the {tag!r} tag is not available: templates cannot load other templates"
    return message


def _error_position(exc: LiquidError) -> tuple[int | None, int | None]:
    token = exc.token
    if token is None or token.start_index < 0 or not token.source:
        return None, None
    return position(token.source, token.start_index)


def position(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of a character offset."""
    before = text[: max(index, 0)]
    line = before.count("\n") + 1
    return line, index - (before.rfind("\n") + 1) + 1


def _located(message: str, line: int | None, column: int | None) -> str:
    if line is None:
        return message
    return f"{message} at line {line}, column {column}"
