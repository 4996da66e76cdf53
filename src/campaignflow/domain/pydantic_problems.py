"""Turn pydantic validation errors into :class:`Problem` values users can act on.

Pydantic's locations use Python's view of the data (discriminator tags such as ``'delay'`` inside
the path, ``'[key]'`` markers) and its messages talk about Python types ("Tuple should have at
least 1 item after validation"). Users wrote JSON, so each error is re-located against the
document they sent and re-worded with a stable code. The codes are part of the public contract;
the wording is not.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from campaignflow.domain import fields
from campaignflow.domain.problems import PathPart, Problem
from campaignflow.errors import InvalidBody

#: Error types raised by our own field types and model rules; their message is already ours.
DOMAIN_CODES = frozenset(
    {
        "duplicate",
        "invalid_cron",
        "invalid_duration",
        "invalid_time",
        "invalid_timestamp",
        "invalid_timezone",
        "invalid_value",
        "not_allowed",
        "one_of",
        "out_of_range",
        "required",
    }
)
_TYPE_NAMES = {
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "tuple_type": "an array",
    "list_type": "an array",
    "none_required": "null",
}
_BOUNDS = {
    "greater_than": ("gt", "greater than"),
    "greater_than_equal": ("ge", "at least"),
    "less_than": ("lt", "less than"),
    "less_than_equal": ("le", "at most"),
}
_PATTERN_NAMES = {
    fields.NODE_ID_PATTERN: "a node id: a letter or digit, then up to 63 letters, digits, "
    "'_', '.' or '-'",
    fields.WORKFLOW_ID_PATTERN: "a slug: a lower-case letter or digit, then up to 63 lower-case "
    "letters, digits, '_' or '-'",
    fields.IDENTIFIER_PATTERN: "an identifier: a letter or '_', then letters, digits or '_'",
    fields.ATTRIBUTE_PATTERN: "an attribute name: a letter or '_', then letters, digits, '_' or "
    "'.'",
}


M = TypeVar("M", bound=BaseModel)


def validated(
    model: type[M],
    document: Any,
    *,
    prefix: tuple[PathPart, ...] = (),
    vocabulary: Collection[str] = (),
) -> M:
    """``document`` as ``model``, or :class:`InvalidBody` listing every problem with its path
    (found at ``prefix`` in the request body; unknown members get a spelling from
    ``vocabulary``)."""
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        found = problems_from_error(exc, document, prefix=prefix, vocabulary=vocabulary)
        raise InvalidBody(found) from exc


def problems_from_error(
    error: ValidationError,
    document: object,
    *,
    prefix: tuple[PathPart, ...] = (),
    vocabulary: Collection[str] = (),
    tag_choices: Mapping[str, Sequence[str]] | None = None,
) -> list[Problem]:
    """Every error in ``error`` as a problem located in ``document`` (found at ``prefix``).

    ``vocabulary`` is the set of known keys used to suggest a spelling for an unknown field;
    ``tag_choices`` maps the first path part (``"nodes"``) to the allowed ``type`` values.
    """
    translated = (
        _translate(details, document, prefix, vocabulary, tag_choices or {})
        for details in error.errors(include_url=False)
    )
    return [problem for problem in translated if problem is not None]


def _translate(
    details: ErrorDetails,
    document: object,
    prefix: tuple[PathPart, ...],
    vocabulary: Collection[str],
    tag_choices: Mapping[str, Sequence[str]],
) -> Problem | None:
    kind = details["type"]
    ctx: dict[str, Any] = dict(details.get("ctx") or {})
    where = relocate(details["loc"], document)
    path = (*prefix, *where.path, *ctx.get("at", ()))
    value = details["input"]
    if kind in ("too_short", "too_long") and _length_is_fine(kind, value, ctx):
        return None  # pydantic counts only the items that validated; the items have errors
    if kind.startswith("union_tag"):
        return _tag_problem(kind, path, value, tag_choices)
    if kind == "extra_forbidden" and path:
        message = _unknown_field(path[-1], where.tag, vocabulary)
        return Problem(path, message, "unknown_field")
    code, message = _describe(kind, details["msg"], value, ctx)
    if where.key is not None:
        message = f"key {where.key!r}: {message}"
    return Problem(path, message, code)


@dataclass(frozen=True, slots=True)
class Location:
    """A pydantic location mapped onto the document."""

    path: tuple[PathPart, ...]
    key: str | None = None  # set when the error is about a mapping key, not its value
    tag: str | None = None  # the innermost discriminator tag (the node or trigger type)


def relocate(loc: Iterable[int | str], document: object) -> Location:
    """Map a pydantic location onto ``document``: drop discriminator tags and ``[key]`` markers."""
    path: list[PathPart] = []
    current: object = document
    key: str | None = None
    tag: str | None = None
    for part in loc:
        if part == "[key]":
            key = str(path[-1]) if path else None
        elif _is_tag(current, part):
            tag = str(part)
        elif isinstance(current, str | int | float | bool):
            # The document holds a scalar where the model has an object: a shorthand the
            # model expanded before validating (``"email": "Email"`` for ``{"remote": …}``).
            # The scalar is what the user wrote, so the problem is there.
            break
        else:
            path.append(part)
            current = _child(current, part)
    return Location(tuple(path), key, tag)


def _unknown_field(name: PathPart, tag: str | None, vocabulary: Collection[str]) -> str:
    if name in vocabulary:
        where = f"when type is {tag!r}" if tag else "here"
        return f"{name!r} is not allowed {where}"
    return f"{name!r} is not a known field{_suggestion(name, vocabulary)}"


def _is_tag(container: object, part: int | str) -> bool:
    return (
        isinstance(container, Mapping) and part not in container and container.get("type") == part
    )


def _child(container: object, part: int | str) -> object:
    if isinstance(container, Mapping):
        return container.get(part)
    if isinstance(container, Sequence) and not isinstance(container, str) and isinstance(part, int):
        return container[part] if 0 <= part < len(container) else None
    return None


def _length_is_fine(kind: str, value: object, ctx: Mapping[str, Any]) -> bool:
    if not isinstance(value, Sequence | Mapping):
        return False
    if kind == "too_short":
        return len(value) >= int(ctx.get("min_length", 0))
    return len(value) <= int(ctx.get("max_length", len(value)))


def _describe(kind: str, fallback: str, value: object, ctx: Mapping[str, Any]) -> tuple[str, str]:
    if kind in DOMAIN_CODES:
        return kind, str(ctx.get("reason", fallback))
    if kind == "missing":
        return "required", "is required"
    if kind in _TYPE_NAMES:
        return "type", f"must be {_TYPE_NAMES[kind]}, not {json_type(value)}"
    return _describe_constraint(kind, fallback, value, ctx)


def _describe_constraint(
    kind: str, fallback: str, value: object, ctx: Mapping[str, Any]
) -> tuple[str, str]:
    if kind in _BOUNDS:
        bound_key, words = _BOUNDS[kind]
        return "out_of_range", f"must be {words} {ctx.get(bound_key)}"
    describe = _CONSTRAINTS.get(kind)
    return describe(value, ctx) if describe else ("invalid_value", fallback)


def _one_of(value: object, ctx: Mapping[str, Any]) -> tuple[str, str]:
    return "invalid_value", f"must be one of {ctx.get('expected', '?')}; got {value!r}"


def _pattern(value: object, ctx: Mapping[str, Any]) -> tuple[str, str]:
    pattern = str(ctx.get("pattern", ""))
    return "invalid_value", f"must be {_PATTERN_NAMES.get(pattern, 'matching ' + pattern)}"


def _empty_string(value: object, ctx: Mapping[str, Any]) -> tuple[str, str]:
    return "too_short", "must not be empty"


def _long_string(value: object, ctx: Mapping[str, Any]) -> tuple[str, str]:
    return "too_long", f"must be at most {ctx.get('max_length')} characters long"


def _few_items(value: object, ctx: Mapping[str, Any]) -> tuple[str, str]:
    return "too_short", f"must have at least {ctx.get('min_length')} item(s)"


def _many_items(value: object, ctx: Mapping[str, Any]) -> tuple[str, str]:
    count = len(value) if isinstance(value, Sequence | Mapping) else "?"
    return "too_long", f"must have at most {ctx.get('max_length')} items (has {count})"


_CONSTRAINTS: Mapping[str, Callable[[object, Mapping[str, Any]], tuple[str, str]]] = {
    "literal_error": _one_of,
    "enum": _one_of,
    "string_pattern_mismatch": _pattern,
    "string_too_short": _empty_string,
    "string_too_long": _long_string,
    "too_short": _few_items,
    "too_long": _many_items,
}


def _tag_problem(
    kind: str, path: tuple[PathPart, ...], value: object, tag_choices: Mapping[str, Sequence[str]]
) -> Problem:
    choices = tag_choices.get(str(path[0]), ()) if path else ()
    expected = ", ".join(choices)
    tag = value.get("type") if isinstance(value, Mapping) else None
    if kind == "union_tag_not_found" or tag is None:
        return Problem((*path, "type"), f"is required; one of: {expected}", "required")
    if not isinstance(tag, str):
        return Problem((*path, "type"), f"must be a string, not {json_type(tag)}", "type")
    hint = _suggestion(tag, choices) or f"; expected one of: {expected}"
    return Problem((*path, "type"), f"unknown type {tag!r}{hint}", "invalid_value")


def _suggestion(word: object, vocabulary: Collection[str]) -> str:
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, vocabulary, n=1, cutoff=0.7)
    return f"; did you mean {close[0]!r}?" if close else ""


_JSON_TYPES: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (type(None), "null"),
    (bool, "a boolean"),
    ((int, float), "a number"),
    (str, "a string"),
    (Mapping, "an object"),
    (Sequence, "an array"),
)


def json_type(value: object) -> str:
    """The JSON name of a value's type, for messages ("must be a string, not an object")."""
    for kinds, name in _JSON_TYPES:
        if isinstance(value, kinds):
            return name
    return type(value).__name__
