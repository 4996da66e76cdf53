"""The simple transforms a sync's field mapping may apply on the way to and from a CRM, pure.

Each transform has a *push* direction (the contact's value → the CRM's) and a *pull* direction
(back), so one mapping line serves both. They are deliberately few and obvious: a mapping is
configuration written by a marketing-ops engineer, not a program. Anything a transform cannot
convert raises :class:`TransformError` naming the value's type, never the value itself (it is
probably personal data); the sync records that record as failed and goes on with the others.

* ``trim``, ``lowercase``, ``uppercase``: text both ways (other types pass unchanged);
* ``string``: push as text (``true``/``false`` for booleans); pull unchanged;
* ``number``: numbers both ways, from numeric text too;
* ``boolean``: booleans both ways, from ``true/false/yes/no/1/0`` text too;
* ``date``: an ISO 8601 date (``2026-11-29``) both ways, from a timestamp too;
* ``{"map": {...}}``: local value → CRM value on push, the inverse on pull (a value the map does
  not name is an error rather than a silent pass-through: a stage called ``"Customer"`` in one
  system and ``"closed-won"`` in the other must not leak across unmapped).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from types import MappingProxyType
from typing import Final

from campaignflow.errors import ClientError

Scalar = str | int | float | bool | None
Convert = Callable[[Scalar], Scalar]

_TRUE: Final = frozenset({"true", "yes", "1", "on"})
_FALSE: Final = frozenset({"false", "no", "0", "off"})
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


class TransformError(ClientError):
    """A value the field's transform cannot convert."""


def _identity(value: Scalar) -> Scalar:
    return value


def _text(operation: Callable[[str], str]) -> Convert:
    def convert(value: Scalar) -> Scalar:
        return operation(value) if isinstance(value, str) else value

    return convert


def _to_string(value: Scalar) -> Scalar:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _to_number(value: Scalar) -> Scalar:
    if value is None:
        return None
    if isinstance(value, bool):
        raise TransformError("a boolean is not a number")
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise TransformError("not a finite number")
        return value
    text = value.strip()
    if not _NUMBER.fullmatch(text):
        raise TransformError("text that is not a number")
    number = float(text)
    if not math.isfinite(number):
        raise TransformError("not a finite number")
    return int(number) if number.is_integer() and abs(number) < 2**53 else number


def _to_boolean(value: Scalar) -> Scalar:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        if value in (0, 1):
            return bool(value)
        raise TransformError("a number other than 0 or 1 is not a boolean")
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise TransformError("text that is not a boolean")


def _to_date(value: Scalar) -> Scalar:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TransformError(f"a {type(value).__name__} is not a date")
    text = value.strip()
    try:
        if len(text) == 10:
            return date.fromisoformat(text).isoformat()
        return datetime.fromisoformat(text.replace("Z", "+00:00")).date().isoformat()
    except ValueError:
        raise TransformError("text that is not an ISO 8601 date") from None


@dataclass(frozen=True, slots=True)
class Transform:
    """A named pair of conversions; see the module docstring."""

    name: str
    push: Convert
    pull: Convert


NAMED: Final[Mapping[str, Transform]] = MappingProxyType(
    {
        transform.name: transform
        for transform in (
            Transform("none", _identity, _identity),
            Transform("trim", _text(str.strip), _text(str.strip)),
            Transform("lowercase", _text(str.lower), _text(str.lower)),
            Transform("uppercase", _text(str.upper), _text(str.upper)),
            Transform("string", _to_string, _identity),
            Transform("number", _to_number, _to_number),
            Transform("boolean", _to_boolean, _to_boolean),
            Transform("date", _to_date, _to_date),
        )
    }
)


def value_map(pairs: Mapping[str, str]) -> Transform:
    """``{"map": pairs}``: local → CRM on push, CRM → local on pull. The pairs must be one to
    one, or a pulled value could not say which local value it came from."""
    inverse: dict[str, str] = {}
    for local, remote in pairs.items():
        if remote in inverse:
            raise ValueError(f"{inverse[remote]!r} and {local!r} both map to {remote!r}")
        inverse[remote] = local
    forward = dict(pairs)

    def lookup(table: Mapping[str, str], direction: str) -> Convert:
        def convert(value: Scalar) -> Scalar:
            if value is None:
                return None
            if isinstance(value, str) and value in table:
                return table[value]
            raise TransformError(f"a value the map does not name ({direction})")

        return convert

    return Transform("map", lookup(forward, "push"), lookup(inverse, "pull"))
