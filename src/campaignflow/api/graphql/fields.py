"""Typed spellings of Strawberry's field decorators.

``strawberry.field(description=…)`` is typed to return ``Any`` when used as a decorator with
arguments (Strawberry's mypy plugin covers it; this project runs mypy without plugins), which
makes every resolver untyped under ``--strict``. These wrappers state what the decorator does
for a type checker: the resolver keeps its signature.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import strawberry

F = TypeVar("F", bound=Callable[..., Any])


def field(description: str) -> Callable[[F], F]:
    return cast("Callable[[F], F]", strawberry.field(description=description))


def mutation(description: str) -> Callable[[F], F]:
    return cast("Callable[[F], F]", strawberry.mutation(description=description))


def subscription(description: str) -> Callable[[F], F]:
    return cast("Callable[[F], F]", strawberry.subscription(description=description))
